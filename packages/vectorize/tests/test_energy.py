import numpy as np
import pytest
import torch
from scipy import integrate

from vectorize.energy import curve_rects, lines_to_rects, rects_to_lines, two_range_energy, unit_energy


@pytest.mark.parametrize("sigma", [1.0, 32.0])
def test_closed_form_matches_quadrature(sigma):
    rect = torch.tensor([[10.3, 7.1, 0.6, 12.0, 3.0]], dtype=torch.float64)
    pts = [(10.0, 7.0), (16.0, 11.0), (3.5, 2.0), (10.3 + 8 * np.cos(0.6), 7.1 + 8 * np.sin(0.6))]
    cx, cy, th, L, W = rect[0].tolist()
    c, s = np.cos(th), np.sin(th)
    for px, py in pts:
        got = unit_energy(
            rect, torch.tensor([px], dtype=torch.float64), torch.tensor([py], dtype=torch.float64), sigma
        )

        def f(v, u, px=px, py=py):  # Gaussian density at p - z, z = c + u e + v n over the rectangle
            zx, zy = cx + u * c - v * s, cy + u * s + v * c
            return np.exp(-((px - zx) ** 2 + (py - zy) ** 2) / (2 * sigma**2)) / (2 * np.pi * sigma**2)

        ref, _ = integrate.dblquad(f, -L / 2, L / 2, -W / 2, W / 2, epsabs=1e-10)
        assert abs(got.item() - ref) < 1e-4, (px, py, got.item(), ref)


def test_energy_gradients_are_finite():
    rect = torch.tensor([[[20.0, 20.0, 0.3, 10.0, 2.0], [5.0, 5.0, 0.0, 0.0, 0.01]]], requires_grad=True)
    q = torch.randn(1, 64, 64)
    E = two_range_energy(rect, q).sum()
    E.backward()
    assert torch.isfinite(rect.grad).all() and rect.grad[0, 0].abs().sum() > 0


def test_rect_conversions():
    lines = torch.tensor([[1.0, 2.0, 7.0, 10.0, 3.0]])
    torch.testing.assert_close(rects_to_lines(lines_to_rects(lines)), lines)
    straight = torch.tensor([[0.0, 0.0, 5.0, 0.0, 10.0, 0.0, 2.0]])
    r = curve_rects(straight, 4)
    torch.testing.assert_close(r[0, :, 3].sum(), torch.tensor(10.0))
