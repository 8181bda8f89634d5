r"""Grids that are MSE-optimal for the standard Gaussian :math:`\mathcal N(0, I_d)` (EDEN/HIGGS grids).

A grid is ``n`` points :math:`g_1..g_n \in \mathbb R^d`; a vector is snapped to its nearest point.
The grids are *generated here*, never copied: Lloyd's algorithm (k-means on the distribution),

.. math:: g_j \leftarrow \mathbb E[X \mid X \in V_j], \qquad V_j = \{x : \|x - g_j\| \le \|x - g_i\|\ \forall i\},

* for ``d = 1`` with exact Gaussian integrals (Lloyd–Max): the centroid of the cell :math:`[a, b]`
  is :math:`(\varphi(a) - \varphi(b)) / (\Phi(b) - \Phi(a))`;
* for ``d > 1`` on seeded Gaussian samples (a few restarts for small grids, the best kept).

Known values (tests): the 2-level grid :math:`\pm\sqrt{2/\pi}` has distortion :math:`1 - 2/\pi`;
the 4-level Lloyd–Max grid has 0.1175 per dimension.

Grids are cached as safetensors under ``<papercore cache>/aquakv/grids``; the small, common
ones are shipped in ``aquakv/grid_data`` (made by :func:`generate_grid` with the default seed).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SUPPORTED = ((1, 2), (1, 4), (2, 16), (2, 64), (2, 256), (4, 256), (6, 4096), (8, 65536))
GRID_FORMAT = 1
DEFAULT_SEED = 0
SHIPPED_DIR = Path(__file__).parent / "grid_data"


def bits_per_value(d: int, n: int) -> float:
    """Code bits per scalar: :math:`\\log_2(n) / d`."""
    return math.log2(n) / d


def code_bits(n: int) -> int:
    """Bits of one code (``n`` must be a power of two)."""
    if n < 2 or n & (n - 1):
        raise ValueError(f"grid size n must be a power of two >= 2, got {n}")
    return int(math.log2(n))


# ---------------------------------------------------------------------------- generation
def _phi(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _Phi(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def gaussian_mse_1d(levels: torch.Tensor) -> float:
    """Exact :math:`\\mathbb E[(X - q(X))^2]` for :math:`X \\sim \\mathcal N(0,1)` and nearest-level rounding.

    Per cell :math:`[a,b]` around level :math:`c`: :math:`\\int_a^b (x-c)^2\\varphi = (\\Phi(b)-\\Phi(a))(1+c^2)
    - 2c(\\varphi(a)-\\varphi(b)) + a\\varphi(a) - b\\varphi(b)` (with :math:`\\pm\\infty` ends).
    """
    c = torch.sort(levels.double().flatten()).values
    mids = (c[1:] + c[:-1]) / 2
    inf = torch.tensor([math.inf], dtype=torch.float64)
    a, b = torch.cat([-inf, mids]), torch.cat([mids, inf])
    pa, pb = _phi(a), _phi(b)  # 0 at +-inf
    apa = torch.where(torch.isinf(a), torch.zeros_like(a), a * pa)
    bpb = torch.where(torch.isinf(b), torch.zeros_like(b), b * pb)
    mass = _Phi(b) - _Phi(a)
    return float((mass * (1 + c * c) - 2 * c * (pa - pb) + apa - bpb).sum())


def _lloyd_max_1d(n: int, iters: int = 2000) -> torch.Tensor:
    c = torch.linspace(-2.0, 2.0, n, dtype=torch.float64) if n > 1 else torch.zeros(1, dtype=torch.float64)
    inf = torch.tensor([math.inf], dtype=torch.float64)
    for _ in range(iters):
        mids = (c[1:] + c[:-1]) / 2
        a, b = torch.cat([-inf, mids]), torch.cat([mids, inf])
        new = (_phi(a) - _phi(b)) / (_Phi(b) - _Phi(a))
        if torch.allclose(new, c, atol=1e-13, rtol=0):
            c = new
            break
        c = new
    return c.view(n, 1)


def nearest(x: torch.Tensor, grid: torch.Tensor, chunk: int = 1 << 16) -> torch.Tensor:
    """Index of the nearest grid point for each row of ``x`` ``[N, d]``: :math:`\\arg\\max_j 2\\langle x, g_j\\rangle - \\|g_j\\|^2`."""
    g = grid.to(x.dtype)
    norms = (g * g).sum(1)
    out = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    step = max(1, chunk * 64 // max(grid.shape[0], 64))
    for s in range(0, x.shape[0], step):
        out[s : s + step] = torch.addmm(norms, x[s : s + step], g.T, beta=-1, alpha=2).argmax(1)
    return out


def _kmeans(samples: torch.Tensor, n: int, iters: int, gen: torch.Generator,
            desc: str | None = None) -> tuple[torch.Tensor, float]:  # fmt: skip
    from papercore.runtime import progress

    idx = torch.randperm(samples.shape[0], generator=gen, device="cpu")[:n].to(samples.device)
    c = samples[idx].clone()
    steps = range(iters) if desc is None else progress(range(iters), desc=desc)
    for _ in steps:
        a = nearest(samples, c)
        sums = torch.zeros_like(c).index_add_(0, a, samples)
        counts = torch.bincount(a, minlength=n).to(samples.dtype)
        empty = counts == 0
        c = torch.where(empty[:, None], c, sums / counts.clamp_min(1)[:, None])
        if empty.any():  # re-seed dead points on random samples
            k = int(empty.sum())
            c[empty] = samples[torch.randint(0, samples.shape[0], (k,), generator=gen).to(samples.device)]
    a = nearest(samples, c)
    mse = float(((samples - c[a]) ** 2).sum(1).mean()) / samples.shape[1]
    return c, mse


def generate_grid(
    d: int,
    n: int,
    *,
    seed: int = DEFAULT_SEED,
    num_samples: int | None = None,
    iters: int | None = None,
    restarts: int | None = None,
    device: str | torch.device = "cpu",
    show_progress: bool | None = None,
) -> torch.Tensor:
    """A grid of ``n`` points in ``d`` dimensions minimising the Gaussian MSE (float32 ``[n, d]``).

    Deterministic given ``seed`` (and the device). Sizes default to about 400 samples per point
    (at least 200k, at most 4M), 60 Lloyd iterations and 4 restarts for ``n <= 256``.
    A progress bar (``papercore.runtime.progress``) is shown for large grids (``n >= 4096``) unless
    ``show_progress=False``.
    """
    code_bits(n)
    if d < 1:
        raise ValueError(f"grid dimension d must be >= 1, got {d}")
    if d == 1:
        return _lloyd_max_1d(n).float()
    device = torch.device(device)
    num_samples = num_samples or int(min(max(400 * n, 200_000), 4_000_000))
    iters = iters or 60
    restarts = restarts or (4 if n <= 256 else 1)
    gen = torch.Generator().manual_seed(seed)
    best, best_mse = None, math.inf
    show = n >= 4096 if show_progress is None else show_progress
    for r in range(restarts):
        samples = torch.randn(num_samples, d, generator=gen).to(device)
        desc = f"grid ({d}, {n}) Lloyd" + (f" {r + 1}/{restarts}" if restarts > 1 else "")
        c, mse = _kmeans(samples, n, iters, gen, desc if show else None)
        if mse < best_mse:
            best, best_mse = c, mse
    # Symmetrise the scale: E||g||^2 slightly off 1 - E||x||^2 ... keep Lloyd's fixed point as is.
    return best.float().cpu()


def monte_carlo_mse(grid: torch.Tensor, num_samples: int = 1_000_000, seed: int = 12345) -> float:
    """Per-dimension MSE of nearest-point rounding of fresh Gaussian samples (on the grid's device)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(num_samples, grid.shape[1], generator=gen).to(grid.device)
    g = grid.float()
    return float(((x - g[nearest(x, g)]) ** 2).mean())


# -------------------------------------------------------------------------------- caching
def _name(d: int, n: int, seed: int) -> str:
    return f"edenn_d{d}_n{n}_seed{seed}_v{GRID_FORMAT}.safetensors"


def cache_folder() -> Path:
    from papercore.llm.zoo import cache_dir

    return cache_dir() / "aquakv" / "grids"


_MEMO: dict[tuple[int, int, int], torch.Tensor] = {}


def get_grid(
    d: int, n: int, *, seed: int = DEFAULT_SEED, device: str | torch.device | None = None
) -> torch.Tensor:
    """The ``(d, n)`` grid: shipped, cached on disk, or generated now (and cached).

    Large grids (``(6, 4096)``, ``(8, 65536)``) are generated on first use; that takes minutes on a
    CPU (pass ``device="cuda"`` to :func:`generate_grid` through :func:`ensure_grid` to go faster).
    """
    key = (d, n, seed)
    if key not in _MEMO:
        _MEMO[key] = _load_or_make(d, n, seed, None)
    g = _MEMO[key]
    return g if device is None else g.to(device)


def ensure_grid(d: int, n: int, *, seed: int = DEFAULT_SEED, device: str | torch.device = "cpu") -> Path:
    """Generate (on ``device``) and cache a grid unless it already exists; returns its file."""
    _MEMO[(d, n, seed)] = _load_or_make(d, n, seed, device)
    return _find(d, n, seed) or cache_folder() / _name(d, n, seed)


def _find(d, n, seed) -> Path | None:
    for folder in (SHIPPED_DIR, cache_folder()):
        p = folder / _name(d, n, seed)
        if p.is_file():
            return p
    return None


def _load_or_make(d, n, seed, device) -> torch.Tensor:
    from papercore.io import load_tensors, save_tensors

    p = _find(d, n, seed)
    if p is not None:
        try:
            g = load_tensors(p)["grid"]
            if tuple(g.shape) == (n, d) and torch.isfinite(g).all():
                return g.float()
        except Exception:  # a corrupt cache entry is rebuilt
            log.warning("grid file %s is unreadable; regenerating it", p)
    if n * d >= 4096 * 6:
        log.warning("generating the (%d, %d) grid (one-off; cached under %s)", d, n, cache_folder())
    g = generate_grid(d, n, seed=seed, device=device or "cpu")
    mse = gaussian_mse_1d(g) if d == 1 else monte_carlo_mse(g.to(device or "cpu"), 200_000)
    save_tensors(
        cache_folder() / _name(d, n, seed),
        {"grid": g},
        metadata={"d": str(d), "n": str(n), "seed": str(seed), "mse_per_dim": f"{mse:.6f}"},
    )
    return g
