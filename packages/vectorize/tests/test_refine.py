import numpy as np

from vectorize.config import RefineConfig
from vectorize.drawing import Drawing
from vectorize.raster import iou, render
from vectorize.refine import refine

TRUTH = Drawing(
    [[8, 10, 52, 12, 2.0], [20, 24, 20, 58, 3.0], [30, 56, 58, 30, 4.0], [36, 20, 56, 20, 1.5]], None
)


def _endpoint_error(pred: Drawing, truth: Drawing) -> float:
    errs = []
    for t in truth.lines:
        d = [min(np.hypot(*(p[:2] - t[:2])) + np.hypot(*(p[2:4] - t[2:4])),
                 np.hypot(*(p[:2] - t[2:4])) + np.hypot(*(p[2:4] - t[:2]))) / 2 for p in pred.lines]  # fmt: skip
        errs.append(min(d))
    return float(np.mean(errs))


def test_refinement_from_noisy_truth_converges():
    rng = np.random.default_rng(0)
    target = render(TRUTH)[None]
    noisy = TRUTH.lines.copy()
    noisy[:, :4] += rng.uniform(-2, 2, (4, 4))
    noisy[:, 4] += rng.uniform(-1, 1, 4)
    init = Drawing(noisy, None)
    assert iou(render(init), target[0], None) < 0.8
    out = refine(target, [init], RefineConfig(iterations=200))[0]
    assert iou(render(out), target[0], None) >= 0.95
    assert _endpoint_error(out, TRUTH) <= 0.5


def test_refinement_from_random_init():
    rng = np.random.default_rng(1)
    target = render(TRUTH)[None]
    init = Drawing(np.c_[rng.uniform(0, 64, (10, 4)), np.full(10, 2.0)], None)
    out = refine(target, [init], RefineConfig(iterations=200))[0]
    assert iou(render(out), target[0], None) >= 0.8


def test_refinement_is_batched_and_keeps_empty_patches_empty():
    target = np.stack([render(TRUTH), np.zeros((64, 64), np.float32)])
    out = refine(
        target, [Drawing(TRUTH.lines, None), Drawing([[5, 5, 30, 30, 2]], None)], RefineConfig(iterations=40)
    )
    assert len(out[1]) == 0 and iou(render(out[0]), target[0], None) > 0.9
