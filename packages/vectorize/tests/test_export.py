import numpy as np
import pytest

from vectorize import synth
from vectorize.drawing import Drawing
from vectorize.export import read_dxf, read_svg, write_drawing, write_dxf, write_svg
from vectorize.raster import iou, render


@pytest.fixture
def page():
    return synth.drawing(np.random.default_rng(3), 160, 192)


def test_svg_round_trip(page, tmp_path):
    assert len(page.lines) > 5 and len(page.curves) > 0
    back = read_svg(write_svg(tmp_path / "a.svg", page))
    assert back.size == page.size
    np.testing.assert_allclose(back.lines, page.lines, atol=1e-6)
    np.testing.assert_allclose(back.curves, page.curves, atol=1e-6)


def test_dxf_round_trip(page, tmp_path):
    back = read_dxf(write_dxf(tmp_path / "a.dxf", page))
    assert back.size == page.size
    np.testing.assert_allclose(back.lines, page.lines, atol=1e-6)
    np.testing.assert_allclose(back.curves, page.curves, atol=1e-6)
    import ezdxf

    types = sorted({e.dxftype() for e in ezdxf.readfile(tmp_path / "a.dxf").modelspace()})
    assert types == ["LWPOLYLINE", "SPLINE"]


def test_unknown_format(page, tmp_path):
    with pytest.raises(ValueError, match="svg or dxf"):
        write_drawing(tmp_path / "a.pdf", page)
    assert not (tmp_path / "a.pdf").exists()


def test_cairosvg_renders_what_we_measure(tmp_path):
    """The SVG users get, rendered by an independent renderer, matches our rasteriser."""
    pytest.importorskip("cairosvg")
    from vectorize.baselines import svg_ink

    for seed in range(3):  # lines only: >= 0.98 (measured 0.99+)
        d = synth.drawing(np.random.default_rng(seed), 128, 128, curves=False)
        theirs = svg_ink(write_svg(tmp_path / "x.svg", d).read_text(), 128, 128)
        assert iou(theirs, render(d), None) >= 0.98, seed
    for seed in range(3):  # with Béziers: sharp short bends differ most (measured 0.976-0.99)
        d = synth.drawing(np.random.default_rng(seed), 128, 128)
        theirs = svg_ink(write_svg(tmp_path / "x.svg", d).read_text(), 128, 128)
        assert iou(theirs, render(d), None) >= 0.97, seed


def test_empty_drawing_round_trip(tmp_path):
    d = Drawing(None, None, 30, 40)
    assert len(read_svg(write_svg(tmp_path / "e.svg", d))) == 0
    assert read_dxf(write_dxf(tmp_path / "e.dxf", d)).size == (30, 40)
