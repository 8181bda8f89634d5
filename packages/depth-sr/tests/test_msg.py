import numpy as np
import pytest
import torch
import torch.nn.functional as F

from depth_sr.config import MSGConfig
from depth_sr.msg import MSGNet, guidance


@pytest.mark.parametrize("scale", [4, 8])
def test_shapes(scale):
    net = MSGNet(MSGConfig(scale=scale, width=8, y_channels=8, depth_channels=8))
    lr = 1 + torch.rand(2, 1, 6, 5)
    out = net(lr, torch.rand(2, 3, 6 * scale, 5 * scale))
    assert out.shape == (2, 1, 6 * scale, 5 * scale) and torch.isfinite(out).all()
    assert len(net.ups) == {4: 2, 8: 3}[scale]
    with pytest.raises(ValueError, match="needs a"):
        net(lr, torch.rand(2, 3, 6 * scale + 1, 5 * scale))


def test_low_plus_high_frequencies_is_exact_when_hf_is_zero():
    net = MSGNet(MSGConfig(scale=4, width=8, y_channels=8, depth_channels=8))
    torch.nn.init.zeros_(net.out.weight)
    torch.nn.init.zeros_(net.out.bias)
    lr = 2 + 3 * torch.rand(1, 1, 8, 8, dtype=torch.float64)
    out = net.double()(lr, torch.rand(1, 3, 32, 32, dtype=torch.float64))
    # independent: min-max normalise, 3x3 box with edge replication (numpy), bicubic, de-normalise
    a, b = lr.min(), lr.max()
    x = ((lr - a) / (b - a))[0, 0].numpy()
    p = np.pad(x, 1, mode="edge")
    box = sum(p[i : i + 8, j : j + 8] for i in range(3) for j in range(3)) / 9
    up = F.interpolate(torch.from_numpy(box)[None, None], scale_factor=4, mode="bicubic", align_corners=False)
    assert torch.allclose(out, a + (b - a) * up, atol=1e-12)


def test_holes_are_not_invented():
    net = MSGNet(MSGConfig(scale=2, width=4, y_channels=4, depth_channels=4))
    lr = 1 + torch.rand(1, 1, 8, 8)
    lr[0, 0, 2:4, 3] = 0
    lr[0, 0, 6, 6] = float("nan")
    out = net.upsample(lr, torch.rand(1, 3, 16, 16))
    assert torch.isnan(out[0, 0, 4:8, 6:8]).all() and torch.isnan(out[0, 0, 12:14, 12:14]).all()
    assert torch.isfinite(out).sum() == 256 - 12
    with pytest.raises(ValueError, match="no valid pixel"):
        net(torch.zeros(1, 1, 8, 8), torch.rand(1, 3, 16, 16))


def test_guidance_is_normalised_high_pass():
    g = guidance(torch.full((1, 3, 8, 8), 0.5) + torch.linspace(0, 0.1, 8))
    assert g.min() == 0 and g.max() == 1 and g.shape == (1, 1, 8, 8)
