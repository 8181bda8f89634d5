"""Classical baselines: skeleton + Douglas-Peucker (scikit-image), and vtracer (an outline tracer,
benchmark only: ``pip install vtracer cairosvg``)."""

from __future__ import annotations

import numpy as np

from vectorize.drawing import Drawing


def _trace(skel: np.ndarray) -> list[np.ndarray]:
    """Pixel paths ``[(row, col), ...]`` between end points and junctions of a skeleton (loops too)."""
    H, W = skel.shape
    ys, xs = np.nonzero(skel)
    on = set(zip(ys.tolist(), xs.tolist()))
    nb = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]

    def nbrs(p):
        return [(p[0] + a, p[1] + b) for a, b in nb if (p[0] + a, p[1] + b) in on]

    deg = {p: len(nbrs(p)) for p in on}
    nodes = {p for p, k in deg.items() if k != 2}
    seen_edges: set = set()
    paths = []

    def walk(a, b):
        path = [a, b]
        seen_edges.add((a, b))
        seen_edges.add((b, a))
        while path[-1] not in nodes:
            nxt = [q for q in nbrs(path[-1]) if (path[-1], q) not in seen_edges and q != path[-2]]
            if not nxt:
                break
            seen_edges.add((path[-1], nxt[0]))
            seen_edges.add((nxt[0], path[-1]))
            path.append(nxt[0])
            if nxt[0] == path[0]:
                break
        return np.array(path, float)

    for a in nodes:
        for b in nbrs(a):
            if (a, b) not in seen_edges:
                paths.append(walk(a, b))
    for a in on:  # loops without nodes
        for b in nbrs(a):
            if (a, b) not in seen_edges:
                paths.append(walk(a, b))
    for p in nodes:
        if deg[p] == 0:
            paths.append(np.array([p, p], float))
    return paths


def skeleton_baseline(ink: np.ndarray, tolerance: float = 1.0, threshold: float = 0.5) -> Drawing:
    """Skeletonise the ink mask, trace the skeleton into paths, simplify each with Douglas-Peucker
    (``tolerance`` px); each piece is a line whose width is twice the median distance-transform value
    along it, minus one (at least 1 px)."""
    from scipy.ndimage import distance_transform_edt
    from skimage.measure import approximate_polygon
    from skimage.morphology import skeletonize

    mask = ink > threshold
    dt = distance_transform_edt(mask)
    lines = []
    for path in _trace(skeletonize(mask)):
        poly = approximate_polygon(path, tolerance)
        for a, b in zip(poly[:-1], poly[1:]):
            n = max(int(np.hypot(*(b - a))), 1) + 1
            rr = np.linspace(a[0], b[0], n).round().astype(int)
            cc = np.linspace(a[1], b[1], n).round().astype(int)
            w = max(2 * float(np.median(dt[rr, cc])) - 1, 1.0)
            lines.append([a[1] + 0.5, a[0] + 0.5, b[1] + 0.5, b[0] + 0.5, w])
    lines = [x for x in lines if np.hypot(x[2] - x[0], x[3] - x[1]) > 0.5]
    return Drawing(np.array(lines).reshape(-1, 5), None, *ink.shape)


def vtracer_svg(image: np.ndarray) -> str:
    """vtracer's binary outline tracing of a paper image in [0, 1] (an SVG string of filled paths)."""
    import io

    import vtracer
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).save(buf, format="PNG")
    return vtracer.convert_raw_image_to_svg(buf.getvalue(), img_format="png", colormode="binary")


def svg_ink(svg: str | bytes, height: int, width: int) -> np.ndarray:
    """Render an SVG with cairosvg (an independent renderer) to an ink map ``[height, width]``."""
    import io

    import cairosvg
    from PIL import Image

    data = svg.encode() if isinstance(svg, str) else svg
    png = cairosvg.svg2png(
        bytestring=data, output_width=width, output_height=height, background_color="white"
    )
    return 1 - np.asarray(Image.open(io.BytesIO(png)).convert("L"), np.float32) / 255


def svg_segment_count(svg: str) -> int:
    """Path segments (M/L/C/Q/... commands after the first move) of an SVG string: vtracer's #P."""
    import re

    n = 0
    for d in re.findall(r'\sd="([^"]*)"', svg):
        n += len(re.findall(r"[LCQHVSTAZlcqhvstaz]", d))
    return n
