import json

import numpy as np
import pytest
import torch

pytest.importorskip("matplotlib")
from papercore import plot  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def _pixels(path):
    import matplotlib.image

    return matplotlib.image.imread(path)


def _ink(path) -> float:
    """Share of pixels that are not white: a blank figure has none."""
    img = _pixels(path)[..., :3]
    return float((img < 0.95).any(-1).mean())


def test_curves_from_records_and_from_jsonl(tmp_path):
    records = [{"step": s, "split": "train", "loss": 1 / s, "gap": s**0.5} for s in range(1, 50)]
    records += [{"step": 10, "split": "val", "loss": 0.2}, {"step": 20, "split": "val", "loss": 0.1}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    a = plot.curves(records, tmp_path / "a.png")
    b = plot.curves(tmp_path / "m.jsonl", tmp_path / "b.png", keys=["loss"])
    assert a.read_bytes()[:8] == PNG and b.read_bytes()[:8] == PNG
    assert _pixels(a).shape[1] > _pixels(b).shape[1]  # two panels are wider than one
    assert _ink(a) > 0.01


def test_map_2d_samples_and_pareto(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2))
    m = plot.map_2d(tmp_path / "map.png", torch.tensor(x), 2 * x + 1, target=2 * x + 1,
                    potential=lambda p: (p**2).sum(1))  # fmt: skip
    s = plot.samples_2d(tmp_path / "s.png", x, x + 3, labels=["p", "q"])
    p = plot.pareto(tmp_path / "p.png", [(1, 0.5, "a"), (2, 0.9, "a"), (3, 0.8, "b"), (0.5, 0.2, "b")])
    for f in (m, s, p):
        assert f.read_bytes()[:8] == PNG and _ink(f) > 0.01
    with pytest.raises(ValueError, match="source and image must both be"):
        plot.map_2d(tmp_path / "bad.png", x, x[:10])


def test_point_clouds_depth_maps_and_images(tmp_path):
    rng = np.random.default_rng(0)
    clouds = [rng.normal(size=(500, 3)), torch.randn(200, 3)]
    d = rng.uniform(1, 3, size=(32, 48))
    d[0, 0] = np.nan
    d[1, 1] = 0
    files = [
        plot.point_clouds(tmp_path / "pc.png", clouds, ["a", "b"]),
        plot.depth_maps(tmp_path / "d.png", [d, torch.tensor(d)], ["gt", "pred"]),
        plot.images(tmp_path / "i.png", [rng.uniform(size=(16, 16, 3)), torch.rand(3, 16, 16)]),
    ]
    for f in files:
        assert f.read_bytes()[:8] == PNG and _ink(f) > 0.01
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, nothing left behind
