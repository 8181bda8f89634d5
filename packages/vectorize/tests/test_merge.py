import numpy as np

from vectorize import synth
from vectorize.drawing import Drawing
from vectorize.merge import assemble, merge, merge_lines, split
from vectorize.raster import render


def test_split_assemble_bookkeeping():
    rng = np.random.default_rng(0)
    ink = rng.random((100, 150)).astype(np.float32)
    patches, origins = split(ink)
    assert patches.shape == (4, 64, 64) or patches.shape == (6, 64, 64)
    assert len(origins) == 6 and origins[1] == (64, 0) and origins[3] == (0, 64)
    for p, (x, y) in zip(patches, origins):
        h, w = min(64, 100 - y), min(64, 150 - x)
        np.testing.assert_array_equal(p[:h, :w], ink[y : y + h, x : x + w])
    # a primitive placed in patch coordinates lands at origin + offset on the page
    ds = [Drawing([[1, 2, 30, 40, 2]], None) if (x, y) == (64, 64) else Drawing() for x, y in origins]
    page = assemble(ds, origins, 100, 150)
    np.testing.assert_allclose(page.lines, [[65, 66, 94, 104, 2]])


def test_line_split_across_four_patches_merges_into_one():
    from shapely.geometry import LineString, box

    truth = LineString([(5, 30.5), (250, 30.5)])
    parts = []
    for x0 in range(0, 256, 64):
        c = np.array(truth.intersection(box(x0, 0, x0 + 64, 64)).coords)
        parts.append([*c[0], *c[1], 2.0])
    assert len(parts) == 4
    out = merge(
        Drawing(parts, None, 64, 256), target=render(Drawing([[5, 30.5, 250, 30.5, 2]], None, 64, 256))
    )
    assert len(out) == 1
    np.testing.assert_allclose(sorted(out.lines[0, [0, 2]]), [5, 250], atol=1e-6)


def test_collinear_gap_merges_and_kink_does_not():
    assert len(merge_lines(np.array([[0, 0, 10, 0, 2], [13, 0, 20, 0, 2]]), 15, 3)) == 1
    assert len(merge_lines(np.array([[0, 0, 10, 0, 2], [14.5, 0, 20, 0, 2]]), 15, 3)) == 2  # 4.5 px gap
    a = np.deg2rad(20)
    kink = np.array([[0, 0, 10, 0, 2], [10, 0, 10 + 10 * np.cos(a), 10 * np.sin(a), 2]])
    assert len(merge_lines(kink, 15, 3)) == 2
    parallel = np.array([[0, 0, 20, 0, 2], [0, 4, 20, 4, 2]])  # near-duplicates stay apart
    assert len(merge_lines(parallel, 15, 3)) == 2


def test_merge_removes_duplicates_jointly_over_lines_and_curves():
    d = synth.drawing(np.random.default_rng(5), 128, 128, n=6)
    dup = Drawing(np.concatenate([d.lines, d.lines[:2] + [0.2, 0, 0.2, 0, 0]]), d.curves, 128, 128)
    out = merge(dup, target=render(d))
    assert len(out) <= len(d)
