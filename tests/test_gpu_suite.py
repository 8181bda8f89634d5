"""The GPU suite's dry run: every step's script exists, answers --help and takes the flags the step passes."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_suite_dry_run():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_suite.py"), "--dry-run"],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_gpu_suite_rejects_unknown_steps():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_suite.py"), "--steps", "nope", "--list"],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2 and "unknown step(s) nope" in proc.stderr
