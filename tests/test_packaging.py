"""Every workspace member's wheel installs alone into a fresh venv and its CLIs answer `--help`.

The members come from ci/members.py (the folders on disk), so a new package is covered without
editing this file. Each case runs ci/check_wheel.py, the same script the CI `wheels` job calls;
30-70 s per member, mostly unpacking torch into the fresh venv: the checks run PACKAGING_JOBS at a
time (default 3; the work is mostly disk and decompression) when the first case asks for its
result. Skip with `-m "not packaging"`.
"""

import os
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


MEMBERS = discovered_members()


def _check(member: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "ci" / "check_wheel.py"), member],
        capture_output=True,
        text=True,
        timeout=1200,
    )


@pytest.fixture(scope="session")
def wheel_checks():
    """Every member's check, started together (PACKAGING_JOBS at a time); futures by member."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max(1, int(os.environ.get("PACKAGING_JOBS", "3"))))
    futures = {m: pool.submit(_check, m) for m in MEMBERS}
    yield futures
    pool.shutdown(wait=True)


@pytest.mark.parametrize("member", MEMBERS)
def test_wheel_installs_alone_and_cli_runs(member: str, wheel_checks) -> None:
    proc = wheel_checks[member].result()
    print(proc.stdout)  # the per-step timings, visible with -rP or on failure
    assert proc.returncode == 0, f"ci/check_wheel.py {member} failed:\n{proc.stdout}\n{proc.stderr}"
