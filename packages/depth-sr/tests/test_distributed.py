"""`depth-sr train` under torchrun (2 gloo processes on the CPU) against one process: the same global
batch and seed give the same loss curve and weights, and a checkpoint written by 2 processes resumes
on 1 (and the reverse) to the weights of an uninterrupted run."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from papercore.io import load_tensors
from papercore.testing import torchrun

ARGS = ["--steps", "4", "--batch-size", "4", "--size", "32", "--crop", "16", "--n-train", "4", "--n-val", "0",
        "--checkpoint-every", "2", "--log-every", "1", "--eval-every", "0", "--no-plot", "--width", "8"]  # fmt: skip


def _one(out: Path, *extra: str) -> None:
    exe = Path(sys.executable).parent / "depth-sr"
    env = {"OMP_NUM_THREADS": "1", "PAPERCORE_PROGRESS": "0", "PATH": str(exe.parent)}
    subprocess.run([str(exe), "train", "--out", str(out), *ARGS, *extra], check=True, env=env, timeout=300,
                   capture_output=True)  # fmt: skip


def _losses(out: Path) -> list[float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r.get("split") == "train"]


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_tensors(out / "model" / "msg.safetensors")


def _close(a: dict, b: dict) -> None:
    # float tolerance: gloo sums the two halves' gradients in another order than one process sums the
    # batch, and Adam's division by sqrt(v) enlarges that rounding on near-zero gradients (measured:
    # 1 weight in 9,800 off by 1.3e-5 after 4 steps)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_two_processes_train_the_model_of_one_and_checkpoints_cross_world_sizes(tmp_path):
    torchrun(["depth-sr", "train", "--out", str(tmp_path / "two"), *ARGS], 2, timeout=300)
    _one(tmp_path / "one")
    assert len(_losses(tmp_path / "one")) == 4
    assert _losses(tmp_path / "two") == pytest.approx(_losses(tmp_path / "one"), rel=1e-4)
    _close(_weights(tmp_path / "two"), _weights(tmp_path / "one"))
    # 2 processes stop at step 2 (a checkpoint), 1 process resumes to step 4, and the reverse
    torchrun(["depth-sr", "train", "--out", str(tmp_path / "a"), *ARGS, "--steps", "2"], 2, timeout=300)
    _one(tmp_path / "a", "--resume")
    _close(_weights(tmp_path / "a"), _weights(tmp_path / "one"))
    _one(tmp_path / "b", "--steps", "2")
    torchrun(["depth-sr", "train", "--out", str(tmp_path / "b"), *ARGS, "--resume"], 2, timeout=300)
    _close(_weights(tmp_path / "b"), _weights(tmp_path / "one"))
