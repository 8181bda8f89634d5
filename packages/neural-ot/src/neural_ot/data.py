r"""Built-in data: 2-D toys with permuted target classes, Gaussians with a known map, and offline image
domains (scikit-learn's bundled 8×8 digits and procedurally rendered glyphs).

Every function is seeded and offline. Class-guided problems return a :class:`ClassProblem`: labelled
source, target with labels, and the permutation ``perm`` saying that source class ``k`` must go to the
target class ``perm[k]``; the target labels are already expressed in source class ids (target
sample of class ``perm[k]`` is labelled ``k``), so a functional only matches equal ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ClassProblem", "digits", "gaussian_grid", "glyphs", "labelled_subset", "two_moons"]


@dataclass
class ClassProblem:
    """A class-guided transfer problem (all arrays NumPy ``float32``/``int64``)."""

    source: np.ndarray  # [n, d]
    source_labels: np.ndarray  # [n] class ids 0..K-1
    target: np.ndarray  # [m, d]
    target_classes: np.ndarray  # [m] the target's own class ids (what a target classifier predicts)
    perm: np.ndarray  # [K]: source class k goes to target class perm[k]
    image_shape: tuple[int, int, int] | None = None
    name: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def target_labels(self) -> np.ndarray:
        """Target labels in source class ids (``inv_perm[target_class]``): what the functional matches."""
        inv = np.argsort(self.perm)
        return inv[self.target_classes]

    def expected(self, source_labels: np.ndarray) -> np.ndarray:
        """The target class each source sample must reach."""
        return self.perm[source_labels]


def labelled_subset(labels: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """``labels`` with all but ``per_class`` random samples of each class set to -1 (unlabelled)."""
    rng = np.random.default_rng(seed)
    out = np.full_like(labels, -1)
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        keep = rng.choice(idx, size=min(per_class, len(idx)), replace=False)
        out[keep] = k
    return out


def grid_centres(side: int = 4, spacing: float = 2.0) -> np.ndarray:
    """Centres of a ``side × side`` grid on ``[0, spacing·(side-1)]²`` (class k = row-major cell k)."""
    g = np.arange(side) * spacing
    return np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2).astype(np.float32)


def gaussian_grid(
    n: int = 4096, side: int = 4, std: float = 0.15, spacing: float = 2.0, seed: int = 0
) -> ClassProblem:
    """The GNOT toy: source and target are the same ``side²``-Gaussian grid (std ``std``, on
    ``[0, 6]²`` for 4×4), with the target's classes randomly permuted, so class-guided transport must
    move each source cell to another cell, while quadratic-cost OT leaves cells in place."""
    rng = np.random.default_rng(seed)
    c = grid_centres(side, spacing)
    K = len(c)
    ls, lt = rng.integers(0, K, n), rng.integers(0, K, n)
    xs = c[ls] + std * rng.standard_normal((n, 2))
    xt = c[lt] + std * rng.standard_normal((n, 2))
    perm = rng.permutation(K)
    return ClassProblem(xs.astype(np.float32), ls.astype(np.int64), xt.astype(np.float32), lt.astype(np.int64),
                        perm, name=f"grid{side}x{side}", extra={"centres": c})  # fmt: skip


def grid_classify(points: np.ndarray, side: int = 4, spacing: float = 2.0) -> np.ndarray:
    """The grid cell (class id) nearest to each point."""
    c = grid_centres(side, spacing)
    return np.argmin(((points[:, None, :] - c[None]) ** 2).sum(-1), 1)


def two_moons(n: int = 2048, noise: float = 0.08, seed: int = 0) -> ClassProblem:
    """Two moons as source; the target is the same moons rotated by 90° and shifted, with the two
    classes swapped (class-guided transport must send the upper moon to the target's lower one)."""
    from sklearn.datasets import make_moons

    xs, ls = make_moons(n, noise=noise, random_state=seed)
    xt, lt = make_moons(n, noise=noise, random_state=seed + 1)
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])
    xt = xt @ rot.T + np.array([4.0, 0.0])
    return ClassProblem(xs.astype(np.float32), ls.astype(np.int64), xt.astype(np.float32), lt.astype(np.int64),
                        np.array([1, 0]), name="two-moons")  # fmt: skip


# ------------------------------------------------------------------------------------ image domains
def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled handwritten digits (1,797 images, 8×8, offline), scaled to [-1, 1]:
    ``([n, 64] float32, [n] labels)``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 8.0 - 1.0).astype(np.float32), d.target.astype(np.int64)


# Ten glyphs as strokes in the unit square: ("l", x0, y0, x1, y1) segments and ("e", cx, cy, rx, ry) ellipses.
GLYPHS: list[list[tuple]] = [
    [("e", 0.5, 0.5, 0.32, 0.32)],  # 0 ring
    [("l", 0.15, 0.5, 0.85, 0.5), ("l", 0.5, 0.15, 0.5, 0.85)],  # 1 plus
    [("l", 0.18, 0.18, 0.82, 0.82), ("l", 0.18, 0.82, 0.82, 0.18)],  # 2 cross
    [("l", 0.5, 0.15, 0.15, 0.85), ("l", 0.5, 0.15, 0.85, 0.85), ("l", 0.15, 0.85, 0.85, 0.85)],  # 3 triangle
    [
        ("l", 0.2, 0.2, 0.8, 0.2),
        ("l", 0.8, 0.2, 0.8, 0.8),
        ("l", 0.8, 0.8, 0.2, 0.8),
        ("l", 0.2, 0.8, 0.2, 0.2),
    ],  # 4 square
    [("l", 0.15, 0.3, 0.85, 0.3), ("l", 0.15, 0.7, 0.85, 0.7)],  # 5 equals
    [("l", 0.3, 0.15, 0.3, 0.85), ("l", 0.7, 0.15, 0.7, 0.85)],  # 6 pillars
    [("l", 0.2, 0.15, 0.2, 0.85), ("l", 0.2, 0.85, 0.85, 0.85)],  # 7 L-shape
    [("l", 0.15, 0.8, 0.5, 0.2), ("l", 0.5, 0.2, 0.85, 0.8)],  # 8 caret
    [("e", 0.5, 0.5, 0.12, 0.12), ("l", 0.15, 0.15, 0.85, 0.15)],  # 9 dot over bar
]


# A second alphabet (domain A of the glyph-to-glyph task, e.g. the GPU run at 32×32).
GLYPHS_B: list[list[tuple]] = [
    [("l", 0.2, 0.2, 0.8, 0.2), ("l", 0.5, 0.2, 0.5, 0.85)],  # T
    [("l", 0.25, 0.15, 0.25, 0.85), ("l", 0.75, 0.15, 0.75, 0.85), ("l", 0.25, 0.5, 0.75, 0.5)],  # H
    [("l", 0.2, 0.2, 0.8, 0.2), ("l", 0.8, 0.2, 0.2, 0.8), ("l", 0.2, 0.8, 0.8, 0.8)],  # Z
    [("l", 0.2, 0.2, 0.5, 0.8), ("l", 0.5, 0.8, 0.8, 0.2)],  # V
    [
        ("l", 0.5, 0.15, 0.85, 0.5),
        ("l", 0.85, 0.5, 0.5, 0.85),
        ("l", 0.5, 0.85, 0.15, 0.5),
        ("l", 0.15, 0.5, 0.5, 0.15),
    ],  # diamond
    [("e", 0.5, 0.3, 0.2, 0.15), ("e", 0.5, 0.7, 0.2, 0.15)],  # two rings
    [("l", 0.5, 0.15, 0.5, 0.85)],  # bar
    [("l", 0.15, 0.5, 0.85, 0.5), ("l", 0.6, 0.3, 0.85, 0.5), ("l", 0.6, 0.7, 0.85, 0.5)],  # arrow
    [("e", 0.5, 0.5, 0.32, 0.2)],  # flat ellipse
    [("l", 0.2, 0.8, 0.2, 0.2), ("l", 0.2, 0.2, 0.8, 0.8), ("l", 0.8, 0.8, 0.8, 0.2)],  # N
]


def _render(strokes, size: int, rng: np.random.Generator, n: int, supersample: int = 4) -> np.ndarray:
    """Rasterise ``n`` copies of a glyph, each with its own random rotation, scale, shift and stroke
    width; antialiased by supersampling. Returns ``[n, size, size]`` in [0, 1]."""
    r = size * supersample
    u = (np.arange(r) + 0.5) / r
    px, py = np.meshgrid(u, u, indexing="xy")  # px: column (x), py: row (y, downwards)
    ang = rng.normal(0, 0.15, (n, 1, 1))
    scale = rng.uniform(0.8, 1.05, (n, 1, 1))
    shift = rng.normal(0, 0.05, (n, 2, 1, 1))
    width = rng.uniform(0.06, 0.11, (n, 1, 1))
    ca, sa = np.cos(ang), np.sin(ang)
    qx, qy = px - 0.5 - shift[:, 0], py - 0.5 - shift[:, 1]  # pixel -> glyph coordinates (inverse map)
    gx, gy = (ca * qx + sa * qy) / scale + 0.5, (-sa * qx + ca * qy) / scale + 0.5
    d = np.full(gx.shape, np.inf)
    for s in strokes:
        if s[0] == "l":
            _, x0, y0, x1, y1 = s
            vx, vy = x1 - x0, y1 - y0
            t = np.clip(((gx - x0) * vx + (gy - y0) * vy) / (vx * vx + vy * vy), 0, 1)
            d = np.minimum(d, np.hypot(gx - x0 - t * vx, gy - y0 - t * vy))
        else:
            _, cx, cy, rx, ry = s
            rho = np.hypot((gx - cx) / rx, (gy - cy) / ry)
            d = np.minimum(d, np.abs(rho - 1) * min(rx, ry))
    img = (d < width).astype(np.float32)
    return img.reshape(n, size, supersample, size, supersample).mean((2, 4))


def glyphs(n: int = 2000, size: int = 8, seed: int = 0, alphabet: str = "a") -> tuple[np.ndarray, np.ndarray]:
    """``n`` procedurally rendered glyphs of 10 classes (alphabet ``"a"``: :data:`GLYPHS`, ``"b"``:
    :data:`GLYPHS_B`), ``size × size``, in [-1, 1]: ``([n, size²] float32, [n] labels)``. Each image
    has its own rotation, scale, shift and stroke width."""
    shapes = {"a": GLYPHS, "b": GLYPHS_B}[alphabet]
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(shapes), n)
    imgs = np.zeros((n, size, size), np.float32)
    for k in range(len(GLYPHS)):
        idx = np.flatnonzero(labels == k)
        if len(idx):
            imgs[idx] = _render(shapes[k], size, rng, len(idx), supersample=4 if size <= 16 else 2)
    return (imgs.reshape(n, -1) * 2 - 1).astype(np.float32), labels.astype(np.int64)


def digits_to_glyphs(
    size: int = 8, n_target: int = 2000, seed: int = 0, test_fraction: float = 0.3, source: str = "digits"
) -> ClassProblem:
    """Domain A = scikit-learn digits (all labelled; ``source="glyphs-b"``: 1,797 glyphs of the second
    alphabet instead, no scikit-learn needed), domain B = glyphs whose classes are a random
    permutation of A's (class k must become glyph ``perm[k]``). A is split into train and test
    (``extra["test"]``, ``extra["test_labels"]``); 8×8 digits are upsampled for larger ``size``."""
    if source == "digits":
        x, y = digits()
        if size != 8:
            x = _resize(x, 8, size)
    elif source == "glyphs-b":
        x, y = glyphs(1797, size, seed=2000 + seed, alphabet="b")
    else:
        raise ValueError(f"source must be digits or glyphs-b, got {source!r}")
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(x))
    n_test = int(test_fraction * len(x))
    te, tr = idx[:n_test], idx[n_test:]
    xt, lt = glyphs(n_target, size, seed=1000 + seed)
    perm = rng.permutation(10)
    return ClassProblem(x[tr], y[tr], xt, lt, perm, (1, size, size), name=f"{source}-to-glyphs{size}",
                        extra={"test": x[te], "test_labels": y[te]})  # fmt: skip


def _resize(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(x).reshape(-1, 1, src, src)
    return F.interpolate(t, size=(dst, dst), mode="bilinear", align_corners=False).reshape(len(x), -1).numpy()
