import os
import subprocess
import sys

import torch

from vectorize.kernels.energy import energy, energy_and_grad_torch

SCRIPT = """
import torch
from vectorize.kernels.energy import energy_and_grad_torch, energy_and_grad_triton
g = torch.Generator().manual_seed(0)
rect = torch.cat([torch.rand(1, 3, 2, generator=g) * 16, torch.rand(1, 3, 1, generator=g) * 3,
                  1 + torch.rand(1, 3, 2, generator=g) * 10], -1)
yy, xx = torch.meshgrid(torch.arange(10) + 0.5, torch.arange(16) + 0.5, indexing="ij")
px, py = xx.reshape(-1), yy.reshape(-1)
r = torch.randn(1, 3, px.numel(), generator=g)
for sigma in (1.0, 32.0):
    E0, g0 = energy_and_grad_torch(rect, px, py, r, sigma)
    E1, g1 = energy_and_grad_triton(rect, px, py, r, sigma, block=64)
    torch.testing.assert_close(E1, E0, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(g1, g0, atol=1e-4, rtol=1e-4)
print("ok")
"""


def test_triton_kernel_matches_the_torch_reference_under_the_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_energy_function_gradient_matches_autograd():
    rect = torch.tensor([[[10.0, 12.0, 0.4, 9.0, 2.5]]], dtype=torch.float64, requires_grad=True)
    yy, xx = torch.meshgrid(torch.arange(24.0) + 0.5, torch.arange(24.0) + 0.5, indexing="ij")
    px, py = xx.reshape(-1).double(), yy.reshape(-1).double()
    r = torch.randn(1, 1, px.numel(), dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: energy(x, px, py, r, 1.0, backend="torch"), (rect,))
    E, g = energy_and_grad_torch(rect, px, py, r, 1.0)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
