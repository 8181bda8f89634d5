"""Every workspace member's wheel installs alone into a fresh venv and its CLIs answer `--help`.

The members come from ci/members.py (the folders on disk), so a new package is covered without
editing this file. Each case runs ci/check_wheel.py, the same script the CI `wheels` job calls;
~30 s per member, mostly unpacking torch into the fresh venv. Skip with `-m "not packaging"`.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.packaging


def discovered_members() -> list[str]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "ci" / "members.py"), "--list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


@pytest.mark.parametrize("member", discovered_members())
def test_wheel_installs_alone_and_cli_runs(member: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "ci" / "check_wheel.py"), member],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    print(proc.stdout)  # the per-step timings, visible with -rP or on failure
    assert proc.returncode == 0, f"ci/check_wheel.py {member} failed:\n{proc.stdout}\n{proc.stderr}"
