import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from papercore.config import ConfigError
from papercore.io import load_tensors
from papercore.runtime import seed_everything
from papercore.testing import torchrun
from papercore.train import TrainConfig, Trainer, load_optimizer, save_optimizer

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from worker import make_model, step, toy_data  # noqa: E402


class Dropout(torch.nn.Module):
    """A model that draws from the global RNG, so a resume must restore it."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(5, 32), torch.nn.Dropout(0.3), torch.nn.ReLU(), torch.nn.Linear(32, 1)
        )

    def forward(self, x):
        return self.net(x).squeeze(-1)


def run(out, steps, total=None, interrupt_at=None, resume=False):
    """Train the dropout model for ``steps`` (a config of ``total`` steps); SIGINT itself at ``interrupt_at``."""
    seed_everything(0)
    net = Dropout()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.5)
    cfg = TrainConfig(steps=total or steps, batch_size=16, checkpoint_every=5, log_every=3)
    t = Trainer(
        {"net": net},
        {"net": opt},
        cfg,
        out=out,
        seed=3,
        device="cpu",
        resume=resume,
        schedulers={"net": sched},
    )

    def step_fn(tr, batch):
        x, y = batch
        noise = torch.randn(x.shape, generator=tr.generator)  # per-step generator: same after a resume
        loss = tr.optimize("net", torch.nn.functional.mse_loss(tr.models["net"](x + 0.01 * noise), y))
        if interrupt_at is not None and tr.step + 1 == interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)  # handled after this step completes
        return {"loss": loss}

    if steps < (total or steps):
        t.config = cfg.replace(steps=steps)
    t.fit(step_fn, toy_data(), plot=False)
    return net, t


def test_resume_is_bit_exact_after_a_stop_and_after_ctrl_c(tmp_path):
    whole, _ = run(tmp_path / "a", 20)
    run(tmp_path / "b", 8, total=20)  # stop at 8 (a checkpoint between the periodic ones)
    resumed, t = run(tmp_path / "b", 20, resume=True)
    assert t.step == 20
    for p, q in zip(whole.parameters(), resumed.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "c", 20, interrupt_at=13)
    assert json.loads((tmp_path / "c" / "checkpoint" / "trainer.json").read_text())["step"] == 13
    after_ctrl_c, _ = run(tmp_path / "c", 20, resume=True)
    for p, q in zip(whole.parameters(), after_ctrl_c.parameters()):
        assert torch.equal(p, q)
    lines = lambda d: [json.loads(x) for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
    drop = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]
    assert drop(lines("a")) == drop(lines("c"))  # the same records: none lost or duplicated by the stop
    assert drop(lines("a"))[-1] == drop(lines("b"))[-1]


def test_checkpoint_is_refused_without_resume_or_with_another_config(tmp_path):
    run(tmp_path / "a", 5)
    with pytest.raises(ConfigError, match="already holds a training checkpoint"):
        run(tmp_path / "a", 5)
    seed_everything(0)
    net = Dropout()
    with pytest.raises(ConfigError, match="batch_size: 16 != 32"):
        Trainer(
            {"net": net},
            {"net": torch.optim.Adam(net.parameters())},
            TrainConfig(steps=5, batch_size=32),
            out=tmp_path / "a",
            seed=3,
            device="cpu",
            resume=True,
        )
    with pytest.raises(ConfigError, match="--seed 3, not 4"):
        Trainer(
            {"net": net},
            {"net": torch.optim.Adam(net.parameters())},
            TrainConfig(steps=9, batch_size=16, checkpoint_every=5, log_every=3),
            out=tmp_path / "a",
            seed=4,
            device="cpu",
            resume=True,
        )


def test_optimizer_state_round_trips_without_pickle(tmp_path):
    w = torch.nn.Parameter(torch.randn(4, 3))
    opt = torch.optim.AdamW([w], lr=0.1, betas=(0.8, 0.95))
    for _ in range(3):
        opt.zero_grad()
        (w**2).sum().backward()
        opt.step()
    save_optimizer(opt, tmp_path / "opt")
    assert not list(tmp_path.glob("*.pt")) and (tmp_path / "opt.safetensors").is_file()
    w2 = torch.nn.Parameter(w.detach().clone())
    opt2 = torch.optim.AdamW([w2], lr=0.5)
    load_optimizer(opt2, tmp_path / "opt")
    assert opt2.param_groups[0]["lr"] == 0.1 and tuple(opt2.param_groups[0]["betas"]) == (0.8, 0.95)
    for o, p in ((opt, w), (opt2, w2)):
        o.zero_grad()
        (p**2).sum().backward()
        o.step()
    assert torch.equal(w, w2)


def test_grad_accum_gives_the_full_batch_gradient():
    results = []
    for k in (1, 4):
        seed_everything(0)
        net = make_model()
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        t = Trainer(
            {"net": net}, {"net": opt}, TrainConfig(steps=6, batch_size=16, grad_accum=k), device="cpu"
        )

        def step_fn(tr, batch):
            x, y = batch
            return {
                "loss": tr.optimize(
                    "net",
                    lambda b: torch.nn.functional.mse_loss(tr.models["net"](b[0]).squeeze(-1), b[1]),
                    (x, y),
                )
            }

        t.fit(step_fn, toy_data(), plot=False)
        results.append(torch.cat([p.flatten() for p in net.parameters()]))
    torch.testing.assert_close(results[0], results[1], rtol=1e-5, atol=1e-6)


def test_max_min_with_two_optimizers_and_inner_steps():
    """min over theta, max over phi of  phi . (E[theta + z] - E[y]) - |phi|^2 / 2  -> theta = E[y] = (2, -1)."""
    seed_everything(0)
    theta = torch.nn.Linear(1, 2, bias=False)  # theta = weight @ [1]
    phi = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(theta.weight)
    mean = torch.tensor([2.0, -1.0])
    t = Trainer({"gen": theta, "critic": phi},
                {"gen": torch.optim.SGD(theta.parameters(), lr=0.05), "critic": torch.optim.SGD(phi.parameters(), lr=0.2)},
                TrainConfig(steps=300, batch_size=64, log_every=50), device="cpu")  # fmt: skip
    ones = torch.ones(64, 1)

    def sampler(n, g):
        return mean + 0.5 * torch.randn(n, 2, generator=g)

    def step_fn(tr, y):
        for _ in range(3):  # inner maximisation steps of the critic
            with torch.no_grad():
                fake = tr.models["gen"](ones)
            gap = tr.models["critic"](fake).mean() - tr.models["critic"](y).mean()
            reg = 0.5 * (tr.models["critic"].weight ** 2).sum()
            tr.optimize("critic", -(gap - reg))
        loss = tr.models["critic"](tr.models["gen"](ones)).mean()
        tr.optimize("gen", loss)
        return {"gap": gap}

    result = t.fit(step_fn, sampler, plot=False)
    assert result.step == 300 and len(result.history) == 6
    torch.testing.assert_close(theta.weight.squeeze(-1), mean, atol=0.1, rtol=0)


def test_validation_keeps_the_best_weights_and_stops_early(tmp_path):
    seed_everything(0)
    net = make_model()
    snapshots = {}
    scripted = iter([3.0, 1.0, 2.0, 4.0, 5.0, 0.5])

    def val_fn(tr):
        snapshots[tr.step] = [p.detach().clone() for p in net.parameters()]
        return {"val_loss": next(scripted)}

    cfg = TrainConfig(steps=60, batch_size=8, eval_every=5, patience=3, checkpoint_every=0)
    t = Trainer(
        {"net": net}, {"net": torch.optim.Adam(net.parameters(), 1e-2)}, cfg, out=tmp_path, device="cpu"
    )
    result = t.fit(step, toy_data(), val_fn=val_fn, monitor="val_loss")
    assert result.stopped_early and result.step == 25 and (result.best_step, result.best_value) == (10, 1.0)
    for p, q in zip(net.parameters(), snapshots[10]):
        assert torch.equal(p, q)
    best = load_tensors(tmp_path / "best" / "net.safetensors")
    assert torch.equal(best["0.weight"], snapshots[10][0])
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["val_loss"] for r in records if r["split"] == "val"] == [3.0, 1.0, 2.0, 4.0, 5.0]
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_too_little_data_and_bad_batch_are_errors():
    net = make_model()
    t = Trainer(
        {"net": net},
        {"net": torch.optim.SGD(net.parameters(), 0.1)},
        TrainConfig(steps=2, batch_size=200),
        device="cpu",
    )
    with pytest.raises(ValueError, match="96 samples, fewer than one batch \\(200\\)"):
        t.fit(step, toy_data())
    with pytest.raises(ConfigError, match="grad_accum must be >= 1"):
        TrainConfig(grad_accum=0)


def test_two_processes_give_the_weights_of_one(tmp_path):
    """Same global batch (8) and seed over 2 gloo processes (torchrun) and over 1: same weights."""
    torchrun(["python", str(HERE / "worker.py"), str(tmp_path / "two")], 2, timeout=120)
    subprocess.run([sys.executable, str(HERE / "worker.py"), str(tmp_path / "one")], check=True,
                   env={**os.environ, "PAPERCORE_PROGRESS": "0"}, timeout=120)  # fmt: skip
    one = load_tensors(tmp_path / "one" / "checkpoint" / "model-net.safetensors")
    two = load_tensors(tmp_path / "two" / "checkpoint" / "model-net.safetensors")
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-5, atol=1e-6)
    seen = [
        json.loads((tmp_path / d / f"seen-{r}.json").read_text())
        for d, r in (("one", 0), ("two", 0), ("two", 1))
    ]
    assert all(len(s) == 30 for s in seen) and len(seen[1][0]) == 4  # each process trains on its half
    assert [a + b for a, b in zip(seen[1], seen[2])] == seen[0]  # ... of the same global batch
    meta = json.loads((tmp_path / "two" / "checkpoint" / "trainer.json").read_text())
    assert meta["world_size"] == 2 and (tmp_path / "two" / "checkpoint" / "rng-1.safetensors").is_file()
    # the logged loss is the global batch's (the mean over processes of equal shards' means), not rank 0's
    curve = lambda d: [
        json.loads(x)["loss"] for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()
    ]
    assert curve("two") == pytest.approx(curve("one"), rel=1e-5)
