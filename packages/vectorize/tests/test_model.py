import numpy as np
import torch
from scipy import integrate

from vectorize import synth
from vectorize.config import CleanConfig, NetConfig
from vectorize.drawing import Drawing
from vectorize.model import CleanNet, PrimitiveNet, canonical_targets, slot_loss


def test_sorted_slot_loss_does_not_depend_on_truth_order():
    rng = np.random.default_rng(0)
    d = synth.drawing(rng, n=6)
    cfg = NetConfig(slots=10)
    perm = Drawing(d.lines[rng.permutation(len(d.lines))][:, [2, 3, 0, 1, 4]], d.curves[::-1], 64, 64)
    pred = torch.rand(1, 10, 8) * 64
    a = slot_loss(pred, *canonical_targets([d], 10, "curves"), cfg)["loss"]
    b = slot_loss(pred, *canonical_targets([perm], 10, "curves"), cfg)["loss"]
    torch.testing.assert_close(a, b)
    other = Drawing(d.lines + 1, d.curves, 64, 64)  # and it does depend on the truth
    assert slot_loss(pred, *canonical_targets([other], 10, "curves"), cfg)["loss"] != a


def test_mapping_loss_is_the_integrated_squared_distance():
    cfg = NetConfig(loss="mapping", conf_weight=0.0)
    p = np.array([3.0, 5.0, 20.0, 9.0, 40.0, 30.0, 2.0])
    t = np.array([4.0, 1.0, 25.0, 12.0, 37.0, 33.0, 2.0])

    def bez(c, s):
        return (1 - s) ** 2 * c[0:2] + 2 * s * (1 - s) * c[2:4] + s**2 * c[4:6]

    ref = integrate.quad(lambda s: np.sum((bez(p, s) - bez(t, s)) ** 2) / 64**2, 0, 1)[0]
    pred = torch.tensor([[[*p, 5.0]]], dtype=torch.float32)
    got = slot_loss(pred, torch.tensor(np.array([[t]]), dtype=torch.float32), torch.tensor([[True]]), cfg)[
        "params"
    ]
    assert abs(got.item() - ref) < 1e-5


def test_networks_shapes():
    net = PrimitiveNet(NetConfig(channels=8, d_model=16, layers=1, heads=2, ffn=16))
    out = net(torch.rand(2, 64, 64))
    assert out.shape == (2, 10, 8) and (out[..., :6] >= 0).all() and (out[..., :6] <= 64).all()
    lines = PrimitiveNet(NetConfig(primitive="lines", channels=8, d_model=16, layers=1, heads=2, ffn=16))
    assert lines(torch.rand(1, 64, 64)).shape == (1, 10, 6)
    clean = CleanNet(CleanConfig(clean_channels=4, clean_levels=2))
    m, r = clean(torch.rand(2, 32, 48))
    assert m.shape == r.shape == (2, 32, 48)
    assert clean.clean(np.ones((37, 50), np.float32)).shape == (37, 50)
