"""Trains the regression toy of test_train.py; run by the tests under 1 or 2 processes (torchrun, gloo).

python worker.py OUT [STEPS]     # or: torchrun --nproc-per-node 2 worker.py OUT [STEPS]
"""

import json
import sys

import torch

from papercore.runtime import seed_everything
from papercore.train import TrainConfig, Trainer


def toy_data(n: int = 96, d: int = 5):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)
    y = x @ torch.linspace(-1, 1, d) + 0.1 * torch.randn(n, generator=g)
    return torch.utils.data.TensorDataset(x, y)


def make_model(d: int = 5):
    return torch.nn.Sequential(torch.nn.Linear(d, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))


SEEN: list[list[float]] = []  # per step: the targets this process trained on


def step(t, batch):
    x, y = batch
    SEEN.append(y.tolist())
    loss = t.optimize("net", torch.nn.functional.mse_loss(t.models["net"](x).squeeze(-1), y))
    return {"loss": loss}


if __name__ == "__main__":
    out, steps = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 30
    seed_everything(0)
    net = make_model()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    cfg = TrainConfig(steps=steps, batch_size=8, checkpoint_every=10, log_every=5)
    trainer = Trainer({"net": net}, {"net": opt}, cfg, out=out, seed=0, device="cpu", resume=True)
    trainer.fit(step, toy_data(), plot=False)
    with open(f"{out}/seen-{trainer.rank}.json", "w") as f:
        json.dump(SEEN, f)
