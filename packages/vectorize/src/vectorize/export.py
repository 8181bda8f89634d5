"""Writers and readers: canonical SVG, DXF (ezdxf), and a PNG overlay of a drawing on its input.

Every writer goes through a temporary file renamed into place: an interrupted run never leaves a
half-written output.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from papercore.io import atomic_path
from vectorize.drawing import Drawing

SVG_NS = "http://www.w3.org/2000/svg"
DXF_APP = "VECTORIZE"  # XDATA application holding each entity's exact stroke width


def _f(v: float) -> str:
    return format(float(v), ".12g")


def svg_string(d: Drawing, color: str = "black") -> str:
    """The canonical SVG: one ``<line>`` per line and one ``<path d="M .. Q ..">`` per Bézier, butt
    caps, ``stroke-width`` per element, ``viewBox`` = the pixel grid."""
    out = [
        f'<svg xmlns="{SVG_NS}" width="{d.width}" height="{d.height}" viewBox="0 0 {d.width} {d.height}">',
        f'<g fill="none" stroke="{color}" stroke-linecap="butt" stroke-linejoin="round">',
    ]
    for x1, y1, x2, y2, w in d.lines:
        out.append(f'<line x1="{_f(x1)}" y1="{_f(y1)}" x2="{_f(x2)}" y2="{_f(y2)}" stroke-width="{_f(w)}"/>')
    for x0, y0, x1, y1, x2, y2, w in d.curves:
        out.append(
            f'<path d="M {_f(x0)} {_f(y0)} Q {_f(x1)} {_f(y1)} {_f(x2)} {_f(y2)}" stroke-width="{_f(w)}"/>'
        )
    out += ["</g>", "</svg>", ""]
    return "\n".join(out)


def write_svg(path: str | os.PathLike, d: Drawing) -> Path:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(svg_string(d))
    return Path(path)


_NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def read_svg(path: str | os.PathLike) -> Drawing:
    """Read the canonical SVG written by :func:`write_svg` (``<line>`` and ``M .. Q ..`` or
    ``M .. L ..`` paths, no transforms). Other SVG files: see :func:`vectorize.realdata.svg_segments`."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ValueError(f"{path}: not an SVG file ({e})") from e
    H = int(float(root.get("height", "64").rstrip("px")))
    W = int(float(root.get("width", "64").rstrip("px")))
    lines, curves = [], []
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        w = float(el.get("stroke-width", "1"))
        if tag == "line":
            lines.append([float(el.get(k, "0")) for k in ("x1", "y1", "x2", "y2")] + [w])
        elif tag == "path":
            dstr = el.get("d", "")
            v = [float(x) for x in _NUM.findall(dstr)]
            if "Q" in dstr.upper() and len(v) == 6:
                curves.append(v + [w])
            elif len(v) == 4:
                lines.append(v + [w])
            else:
                raise ValueError(f"{path}: path {dstr[:40]!r} is not a canonical line or quadratic Bézier")
    return Drawing(np.array(lines).reshape(-1, 5), np.array(curves).reshape(-1, 7), H, W)


def write_dxf(path: str | os.PathLike, d: Drawing) -> Path:
    """A DXF (R2010) drawing in the CAD convention (y up: ``y_dxf = height - y``). Lines are
    LWPOLYLINEs with a constant width; Béziers are degree-2 SPLINEs (their control points) whose
    width goes into the lineweight (nearest standard value, 1 px = 0.25 mm) and, exactly, into XDATA."""
    import ezdxf
    from ezdxf.lldxf.const import VALID_DXF_LINEWEIGHTS

    doc = ezdxf.new("R2010")
    doc.header["$INSUNITS"] = 0
    doc.appids.add(DXF_APP)
    msp = doc.modelspace()
    lw = np.array(VALID_DXF_LINEWEIGHTS)

    def weight(w):
        return int(lw[np.argmin(np.abs(lw - w * 25))])

    def flip(xy):
        return [(float(xy[i]), float(d.height - xy[i + 1])) for i in range(0, len(xy), 2)]

    for x1, y1, x2, y2, w in d.lines:
        e = msp.add_lwpolyline(
            flip([x1, y1, x2, y2]), dxfattribs={"const_width": float(w), "lineweight": weight(w)}
        )
        e.set_xdata(DXF_APP, [(1040, float(w))])
    for c in d.curves:
        e = msp.add_open_spline(
            [(x, y, 0.0) for x, y in flip(c[:6])], degree=2, dxfattribs={"lineweight": weight(c[6])}
        )
        e.set_xdata(DXF_APP, [(1040, float(c[6]))])
    doc.header.custom_vars.append("VECTORIZE_CANVAS", f"{d.height} {d.width}")
    with atomic_path(path) as tmp:
        doc.saveas(tmp)
    return Path(path)


def read_dxf(path: str | os.PathLike, height: int | None = None, width: int | None = None) -> Drawing:
    """Read LINE / LWPOLYLINE / degree-2 SPLINE entities back into a :class:`Drawing` (pixel
    coordinates, y down). Widths: our XDATA, else the polyline width, else the lineweight."""
    import ezdxf

    try:
        doc = ezdxf.readfile(path)
    except (OSError, ezdxf.DXFStructureError) as e:
        raise ValueError(f"{path}: not a readable DXF file ({e})") from e
    canvas = doc.header.custom_vars.get("VECTORIZE_CANVAS")
    h0, w0 = (int(v) for v in canvas.split()) if canvas else (64, 64)
    H, W = height or h0, width or w0
    lines, curves = [], []

    def w_of(e, default):
        if e.has_xdata(DXF_APP):
            return float(e.get_xdata(DXF_APP)[0].value)
        lw = e.dxf.get("lineweight", -1)
        return lw / 25 if lw > 0 else default

    for e in doc.modelspace():
        t = e.dxftype()
        if t == "LINE":
            s, t2 = e.dxf.start, e.dxf.end
            lines.append([s[0], H - s[1], t2[0], H - t2[1], w_of(e, 1.0)])
        elif t == "LWPOLYLINE":
            pts = [(p[0], p[1]) for p in e.get_points("xy")]
            w = w_of(e, float(e.dxf.get("const_width", 0)) or 1.0)
            for (xa, ya), (xb, yb) in zip(pts[:-1], pts[1:]):
                lines.append([xa, H - ya, xb, H - yb, w])
        elif t == "SPLINE" and e.dxf.degree == 2 and len(e.control_points) == 3:
            cp = [c for p in e.control_points for c in (p[0], H - p[1])]
            curves.append(cp + [w_of(e, 1.0)])
    return Drawing(np.array(lines).reshape(-1, 5), np.array(curves).reshape(-1, 7), H, W)


def write_overlay(path: str | os.PathLike, image: np.ndarray, d: Drawing) -> Path:
    """A PNG of the input (gray) with the drawing's strokes in red on top (half transparent)."""
    from PIL import Image

    from vectorize.raster import render

    gray = np.clip(image if image.ndim == 2 else image.mean(-1), 0, 1)
    cov = render(d)[..., None] * 0.7
    rgb = np.repeat(gray[..., None], 3, -1) * (1 - cov) + cov * np.array([0.9, 0.05, 0.05])
    with atomic_path(path) as tmp:
        Image.fromarray((rgb * 255).round().astype(np.uint8)).save(tmp, format="PNG")
    return Path(path)


def write_drawing(path: str | os.PathLike, d: Drawing, fmt: str | None = None) -> Path:
    """SVG or DXF by ``fmt`` (default: the file's suffix)."""
    fmt = (fmt or Path(path).suffix.lstrip(".") or "svg").lower()
    if fmt == "svg":
        return write_svg(path, d)
    if fmt == "dxf":
        return write_dxf(path, d)
    raise ValueError(f"unknown output format {fmt!r}: use svg or dxf (--format, or a .svg/.dxf file name)")
