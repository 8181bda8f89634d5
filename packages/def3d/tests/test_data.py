import numpy as np
import torch

from def3d import (
    DataConfig,
    annotate,
    farthest_point_sampling,
    make_images,
    make_patches,
    render_view,
    scaled_shape,
)
from def3d.data import load_or_make


def test_patches_have_the_requested_shape_noise_and_exact_targets():
    cfg = DataConfig(patch_points=256, noise="0")
    d = make_patches(cfg, 3, 0)
    assert d["points"].shape == (3, 256, 3) and d["distances"].shape == (3, 256)
    assert float(d["distances"].min()) >= 0 and float(d["distances"].max()) <= 1
    assert torch.allclose(d["points"].mean(1), torch.zeros(3, 3), atol=1e-5)
    noisy = make_patches(DataConfig(patch_points=256, noise="1"), 3, 0)
    # same shapes and centres, noise of sigma = r per coordinate
    diff = noisy["points"] - d["points"]
    assert abs(float(diff.std()) - cfg.resolution) < 0.2 * cfg.resolution
    assert torch.equal(noisy["distances"], d["distances"])


def test_range_image_hits_lie_on_the_shape_and_carry_exact_distances():
    cfg = DataConfig(resolution=0.05, image_size=32)
    s = scaled_shape("box", 4)
    v = render_view(s, torch.tensor([0.3, 0.2, -1.0], dtype=torch.float64), torch.zeros(3), 32, 0.05, cfg)
    assert v["mask"].any() and not v["mask"].all()
    pts, lab = v["points"][v["mask"]], v["surface"][v["mask"]]
    assert torch.allclose(v["distances"][v["mask"]], annotate(pts, lab, s) / cfg.upper)
    assert (v["distances"][~v["mask"]] == 1).all()
    imgs = make_images(cfg, 2, 0)
    assert imgs["inputs"].shape == (2, 2, 32, 32)


def test_blue_noise_sampling_spreads_points_more_evenly_than_uniform():
    from scipy.spatial import cKDTree

    s = scaled_shape("box", 1)
    gen = torch.Generator().manual_seed(0)
    p, _, _ = s.sample(4000, gen)
    idx = farthest_point_sampling(p, 1000)
    nn_b = cKDTree(p[idx].numpy()).query(p[idx].numpy(), k=2)[0][:, 1]
    q, _, _ = s.sample(1000, gen)
    nn_u = cKDTree(q.numpy()).query(q.numpy(), k=2)[0][:, 1]
    assert nn_b.min() > 2 * nn_u.min() and nn_b.std() / nn_b.mean() < nn_u.std() / nn_u.mean()


def test_generated_data_is_seeded_and_cached():
    cfg = DataConfig(patch_points=64)
    a = load_or_make("points", cfg, 2, 7)
    b = load_or_make("points", cfg, 2, 7)
    assert torch.equal(a["points"], b["points"])
    assert np.array_equal(make_patches(cfg, 2, 7)["distances"].numpy(), a["distances"].numpy())
