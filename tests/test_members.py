"""The rules ci/members.py uses to map a diff to the members CI must test."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_members_module():
    spec = importlib.util.spec_from_file_location("ci_members", ROOT / "ci" / "members.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


mm = _load_members_module()
SHARED = mm.Member("shared", "papercore", "0.1.0", {"papercore": "papercore.cli:main"})
AQLM = mm.Member("packages/aqlm", "aqlm", "0.1.0", {"aqlm": "aqlm.cli:main"})
SPQR = mm.Member("packages/spqr", "spqr", "0.1.0", {"spqr": "spqr.cli:main"})
ALL = [SHARED, AQLM, SPQR]


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        (["packages/aqlm/src/aqlm/quant.py"], [AQLM]),
        (["packages/aqlm/x.py", "packages/spqr/tests/test_y.py"], [AQLM, SPQR]),
        (["shared/src/papercore/io.py"], ALL),
        (["pyproject.toml"], ALL),
        (["ci/members.py"], ALL),
        (["tests/test_packaging.py"], ALL),
        (["packages/conftest.py"], ALL),  # directly in packages/, not inside a member
        (["docs/benchmarks/aqlm.md", "README.md", "docs/img/plot.png"], []),
        (["packages/aqlm/README.md"], [AQLM]),  # a member's README is its wheel's long description
        (["shared/README.md"], [SHARED]),
        (["packages/removed/src/x.py"], []),  # a deleted package has nothing left to test
        ([], []),
    ],
)
def test_affected(paths, expected):
    assert mm.affected(paths, ALL) == expected


def test_member_prefix_is_a_whole_folder():
    aqlm2 = mm.Member("packages/aqlm2", "aqlm2", "0.1.0", {})
    assert mm.affected(["packages/aqlm2/a.py"], [AQLM, aqlm2]) == [aqlm2]


def test_discover_reads_the_folders(tmp_path):
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "pyproject.toml").write_text(
        '[project]\nname = "papercore"\nversion = "0.1.0"\n[project.scripts]\npapercore = "papercore.app:main"\n'
    )
    for name in ("zeta", "alpha"):
        (tmp_path / "packages" / name).mkdir(parents=True)
        (tmp_path / "packages" / name / "pyproject.toml").write_text(
            f'[project]\nname = "{name}"\ndynamic = ["version"]\n[project.scripts]\n{name} = "{name}.cli:main"\n'
        )
    (tmp_path / "packages" / "notes").mkdir()  # no pyproject.toml: not a member
    found = mm.discover(tmp_path)
    assert [m.path for m in found] == ["shared", "packages/alpha", "packages/zeta"]
    assert found[1].version == "dynamic" and found[1].scripts == {"alpha": "alpha.cli:main"}
    matrix = mm.matrix(found)["include"]
    assert len(matrix) == 3 * len(mm.PYTHONS)
    assert matrix[0] == {
        "member": "shared",
        "dist": "papercore",
        "version": "0.1.0",
        "cli": "papercore",
        "python": "3.11",
    }


def test_changed_paths_uses_the_merge_base_and_falls_back_to_all(tmp_path):
    def git(*args):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
        )

    git("init", "-q", "-b", "main")
    (tmp_path / "a.txt").write_text("a")
    git("add", "."), git("commit", "-qm", "base")
    git("checkout", "-qb", "feature")
    (tmp_path / "packages" / "aqlm").mkdir(parents=True)
    (tmp_path / "packages" / "aqlm" / "x.py").write_text("x")
    git("add", "."), git("commit", "-qm", "feature")
    git("checkout", "-q", "main")
    (tmp_path / "b.txt").write_text("b")  # a later commit on main must not count as the feature's change
    git("add", "."), git("commit", "-qm", "main moves on")
    git("checkout", "-q", "feature")
    assert mm.changed_paths("main", tmp_path) == ["packages/aqlm/x.py"]
    assert mm.changed_paths("no-such-ref", tmp_path) is None  # main() then selects every member
