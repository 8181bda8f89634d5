"""Every Python and shell block of the READMEs and docs, and every examples/ script, runs here (CPU).

Blocks marked ``<!-- docs: gpu|slow|skip ... -->`` are not run; each is listed as a skipped test with
its reason, so nothing is skipped silently. See papercore.testing for the markers.
"""

from pathlib import Path

import pytest

from papercore.testing import example_marker, markdown_blocks, run_example, run_markdown

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted(
    [
        ROOT / "README.md",
        ROOT / "shared" / "README.md",
        *ROOT.glob("packages/*/README.md"),
        *ROOT.glob("docs/*.md"),
    ]
)
EXAMPLES = sorted([*ROOT.glob("packages/*/examples/*.py"), *ROOT.glob("shared/examples/*.py")])


def _id(p: Path) -> str:
    return str(p.relative_to(ROOT))


@pytest.mark.parametrize("doc", DOCS, ids=_id)
def test_readme_blocks_run(doc, tmp_path):
    run_markdown(doc, tmp_path)


MARKED = [b for d in DOCS for b in markdown_blocks(d) if b.marker in ("gpu", "slow", "skip")]


@pytest.mark.parametrize("block", MARKED, ids=[f"{_id(b.path)}:{b.line}" for b in MARKED])
def test_marked_block_is_listed(block):
    pytest.skip(f"{_id(block.path)}:{block.line} marked '{block.marker}' {block.note}".strip())


@pytest.mark.parametrize("script", EXAMPLES, ids=_id)
def test_example_runs(script, tmp_path):
    marker, note = example_marker(script)
    if marker in ("gpu", "slow", "skip"):
        pytest.skip(f"{_id(script)} marked '{marker}' {note}".strip())
    run_example(script, tmp_path)
