"""Fit the OT map between two point clouds given as arrays, map new points both ways, save and reload.

Runs in a few seconds on a CPU: python packages/w2gn/examples/fit_arrays.py
"""

import tempfile

import numpy as np
import torch

from w2gn import W2GNConfig, W2GNTrainConfig, W2Map, fit

torch.set_num_threads(1)
rng = np.random.default_rng(0)
source = rng.normal(size=(2000, 3))  # your data: [n, d] arrays (or .npy/.csv files through the CLI)
target = rng.normal(size=(2000, 3)) @ np.diag([2.0, 1.0, 0.5]) + np.array([1.0, -1.0, 0.0])

T = fit(
    source, target, W2GNConfig(pretrain_steps=200), W2GNTrainConfig(steps=300, batch_size=256), device="cpu"
)
mapped = T.forward(source[:5])  # NumPy in, NumPy out
back = T.inverse(mapped)
print("mapped:", np.round(mapped.astype(float), 2).tolist())
print("round trip error:", float(np.abs(back - source[:5]).max()))
print(
    "W2^2 estimate:",
    round(T.w2(), 3),
    "(the Gaussians' closed form: |m|^2 + sum (s_i - 1)^2 = 2 + 1 + 0.25 = 3.25)",
)

with tempfile.TemporaryDirectory() as d:
    T.save(d)
    U = W2Map.load(d)
    assert np.allclose(U.forward(source[:5]), mapped)
