import pytest

from papercore.testing import DocsBlockError, markdown_blocks, run_markdown

DOC = """# Tool

<!-- docs: file settings.yaml -->
```yaml
steps: 3
```

```python
x = 40
```

Some text.

```bash
test -f settings.yaml && echo made > out.txt
```

```python
assert open("out.txt").read().strip() == "made"
y = x + 2
```

<!-- docs: gpu -->
```python
import torch; torch.ones(1, device="cuda")
```

```console
$ echo hi
hi
```

```text
not code
```
"""


def test_blocks_are_found_with_their_markers(tmp_path):
    doc = tmp_path / "README.md"
    doc.write_text(DOC)
    blocks = markdown_blocks(doc)
    assert [(b.lang, b.marker) for b in blocks] == [
        ("yaml", "file"), ("python", None), ("shell", None), ("python", None), ("python", "gpu"), ("shell", None),
    ]  # fmt: skip
    assert blocks[0].note == "settings.yaml" and blocks[-1].code == "echo hi" and blocks[1].line == 8


def test_blocks_run_in_order_and_marked_ones_are_listed(tmp_path):
    doc = tmp_path / "README.md"
    doc.write_text(DOC)
    listed = run_markdown(doc, tmp_path / "work")
    assert [b.marker for b in listed] == ["gpu"]
    assert (tmp_path / "work" / "settings.yaml").read_text() == "steps: 3\n"


@pytest.mark.parametrize(
    "broken,needle",
    [
        (
            "```python\nimport no_such_module_xyz\n```\n",
            "README.md:1: python block raised ModuleNotFoundError",
        ),
        ("text\n\n```bash\nfalse\necho never\n```\n", "README.md:3: shell block exited 1"),
        ("```sh\nexit 3\n```\n", "exited 3"),
    ],
)
def test_a_broken_block_fails_with_its_line(tmp_path, broken, needle):
    doc = tmp_path / "README.md"
    doc.write_text(broken)
    with pytest.raises(DocsBlockError) as e:
        run_markdown(doc, tmp_path / "work")
    assert needle in str(e.value)


def test_unknown_marker_is_an_error(tmp_path):
    doc = tmp_path / "README.md"
    doc.write_text("<!-- docs: gpus -->\n```python\npass\n```\n")
    with pytest.raises(ValueError, match="unknown docs marker 'gpus'"):
        markdown_blocks(doc)
