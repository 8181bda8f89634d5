"""Several processes: `torchrun ... -m aqlm quantize` (gloo, 2 CPU processes) against one process, and
the device every collective runs on."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

import aqlm.distributed as D
from papercore.testing import free_port


class Recorded(Exception):
    pass


@pytest.fixture
def fake_group(monkeypatch):
    """A 2-process group whose backend takes tensors on the meta device only: each collective records
    the device of the tensor it was given and stops the call (meta tensors hold no values)."""
    seen = []

    def collective(t, *args, **kwargs):
        seen.append(t.device.type)
        raise Recorded

    monkeypatch.setattr(D, "enabled", lambda: True)
    monkeypatch.setattr(D, "world_size", lambda: 2)
    monkeypatch.setattr(D, "comm_device", lambda: torch.device("meta"))
    monkeypatch.setattr(torch.distributed, "all_reduce", collective)
    monkeypatch.setattr(torch.distributed, "broadcast", collective)
    return seen


def test_every_collective_runs_on_the_backend_device(fake_group):
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.ones(3)
    calls = [
        lambda: D.average(1.0),
        lambda: D.total(1.0),
        lambda: D.global_mean_xtx(torch.eye(4, dtype=torch.float64), 10),
        lambda: D.broadcast_([torch.zeros(2, dtype=torch.int64)], 0),
        lambda: D.sum_gradients_([p]),
    ]
    for call in calls:
        with pytest.raises(Recorded):
            call()
    assert fake_group == ["meta"] * len(calls)  # CPU tensors went through the backend's device


def test_comm_device_follows_the_backend(monkeypatch):
    monkeypatch.setattr(torch.distributed, "get_backend", lambda group=None: "nccl")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert D.comm_device() == torch.device("cuda", 1)
    monkeypatch.setattr(torch.distributed, "get_backend", lambda group=None: "gloo")
    assert D.comm_device() == torch.device("cpu")


@pytest.mark.slow
def test_torchrun_two_processes_write_the_model_of_one(quantized_run, tmp_path, cli):
    """2 gloo processes through torchrun and the CLI write the checkpoint one process writes.

    Codes, codebooks and scales are identical. Dense tensors that block fine-tuning trains (norm
    weights) may differ in the last float32 bit: their gradients are summed over the processes in
    another order than in one process.
    """
    _, fast = cli
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PAPERCORE_PROGRESS": "0"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2"]
    cmd += ["--master-addr", "127.0.0.1", "--master-port", str(free_port())]
    r = subprocess.run(
        [*cmd, "-m", "aqlm", "quantize", "--out", str(out), *fast],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("saved the quantized model") == 1 and "in 2 processes" in r.stdout  # rank 0 only
    summary = json.loads((out / "summary.json").read_text())
    assert summary["calibration_sequences_per_process"] == 4 and summary["linears_per_process"] == [
        8,
        6,
    ]  # 7 a block, dealt out
    two, one = load_file(out / "model.safetensors"), load_file(quantized_run / "model.safetensors")
    assert two.keys() == one.keys()
    for key in one:
        if key.endswith((".codes", ".codebooks", ".scales")):
            assert torch.equal(two[key], one[key]), key
        else:
            torch.testing.assert_close(two[key], one[key], rtol=1e-6, atol=0)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in quantized_run.iterdir())
