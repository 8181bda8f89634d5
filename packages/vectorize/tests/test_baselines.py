import numpy as np

from vectorize.baselines import skeleton_baseline
from vectorize.drawing import Drawing
from vectorize.evaluate import score
from vectorize.raster import render


def test_skeleton_baseline_on_a_straight_line():
    truth = Drawing([[10, 32.5, 54, 32.5, 5.0]], None)  # edges on pixel boundaries: a 5-row mask
    d = skeleton_baseline(render(truth))
    assert 1 <= len(d) <= 2
    assert abs(np.average(d.lines[:, 4], weights=np.hypot(*(d.lines[:, 2:4] - d.lines[:, :2]).T)) - 5) < 1.0
    s = score(d, truth)
    assert s["iou"] > 0.7 and s["d_m"] < 1.0


def test_score_of_the_truth_is_perfect():
    truth = Drawing([[10, 32, 54, 32, 2.0]], [[5, 5, 30, 50, 60, 10, 3]])
    s = score(truth, truth)
    assert s["iou"] == 1.0 and s["d_h"] == 0 and s["n_ratio"] == 1.0
