import torch

from def3d import DataConfig, annotate, combine, fuse_patches, fuse_views, render_view, scaled_shape


def test_combiners_on_a_hand_checked_table():
    nan = float("nan")
    v = torch.tensor([[0.1, 0.5, nan, 0.9, 0.3, 0.4], [nan] * 6, [0.7, nan, nan, nan, nan, nan]])
    assert combine(v, "min").tolist() == torch.tensor([0.1, 1.0, 0.7]).tolist()
    # adv60: the band [q20, q80] of (0.1, 0.3, 0.4, 0.5, 0.9) is [0.26, 0.58] -> min 0.3
    assert abs(float(combine(v, "adv60")[0]) - 0.3) < 1e-6
    assert (combine(v, "min") <= combine(v, "mean") + 1e-7).all()


def test_patch_fusion_takes_the_minimum_over_overlaps():
    idx = torch.tensor([[0, 1, 2], [2, 3, 4]])
    val = torch.tensor([[0.5, 0.2, 0.9], [0.4, 0.1, 0.3]])
    assert torch.allclose(fuse_patches(6, idx, val, "min"), torch.tensor([0.5, 0.2, 0.4, 0.1, 0.3, 1.0]))


def test_view_fusion_of_true_fields_returns_the_truth_within_r():
    r = 0.05
    cfg = DataConfig(resolution=r)
    s = scaled_shape("L", 3)
    dirs = ([1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1], [1, 1, 1], [-1, -1, -1])
    views = [render_view(s, torch.tensor(d, dtype=torch.float64), torch.zeros(3), 96, r, cfg) for d in dirs]
    pts = torch.cat([v["points"][v["mask"]] for v in views])
    lab = torch.cat([v["surface"][v["mask"]] for v in views])
    truth = annotate(pts, lab, s, upper=cfg.upper) / cfg.upper
    for method in ("min", "adv60"):
        fused = fuse_views(pts, views, [v["distances"] for v in views], r, method)
        assert ((fused.double() - truth).abs() < r / cfg.upper).double().mean() >= 0.99
    mn = fuse_views(pts, views, [v["distances"] for v in views], r, "min")
    assert (mn <= fuse_views(pts, views, [v["distances"] for v in views], r, "mean") + 1e-6).all()
