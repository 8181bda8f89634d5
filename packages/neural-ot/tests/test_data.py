import numpy as np
import pytest

from neural_ot import data as D
from neural_ot import evaluate as E


def test_grid_permutation_and_labels():
    p = D.gaussian_grid(n=2000, seed=3)
    # a sample labelled k (in source ids) is of target class perm[k]
    assert np.array_equal(p.perm[p.target_labels], p.target_classes)
    assert (D.grid_classify(p.source) == p.source_labels).mean() > 0.99  # cells are well separated
    assert (p.perm != np.arange(16)).sum() >= 12


def test_labelled_subset_keeps_k_per_class():
    labels = np.repeat(np.arange(5), 30)
    sub = D.labelled_subset(labels, 3, seed=0)
    assert all((sub == k).sum() == 3 for k in range(5)) and (sub == -1).sum() == 150 - 15
    assert np.array_equal(sub[sub >= 0], labels[sub >= 0])


def test_glyphs_and_digits():
    x, y = D.glyphs(50, 8, seed=0)
    assert x.shape == (50, 64) and x.min() >= -1 and x.max() <= 1 and set(y) <= set(range(10))
    x32, _ = D.glyphs(4, 32, seed=0)
    assert x32.shape == (4, 1024)
    xd, yd = D.digits()
    assert xd.shape == (1797, 64) and xd.min() == -1 and xd.max() == 1
    p = D.digits_to_glyphs(seed=0)
    assert len(p.source) + len(p.extra["test"]) == 1797 and p.image_shape == (1, 8, 8)


def test_plan_accuracy_by_hand():
    plan = np.array([[0.25, 0.25], [0.0, 0.5]])
    # row 0 (label 0 -> class perm[0] = 1) sends half its mass to column 1 (class 1); row 1 (label 1 -> 0) all to class 1
    assert E.plan_accuracy(plan, [0, 1], [1, 0], [0, 1]) == pytest.approx(0.25)
    x = np.random.default_rng(0).normal(size=(30, 2))
    plan = E.emd_plan(x, x + 0.01)
    assert np.allclose(plan, np.eye(30) / 30)  # a small shift: the identity matching


def test_fd_pixel_is_zero_on_itself_and_grows():
    x, _ = D.glyphs(300, 8, seed=0)
    assert E.fd_pixel(x, x) == pytest.approx(0, abs=1e-6)
    assert E.fd_pixel(x, x + 0.5) == pytest.approx(0.25 * 64, rel=1e-6)  # a mean shift of 0.5 on 64 pixels
