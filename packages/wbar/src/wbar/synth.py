r""" "Ave, synth!": an image barycentre with image-level truth, built offline.

WIN's "Ave, celeba!" recipe on procedurally drawn images instead of faces:

1. clean images ``x`` (:func:`draw_images`: filled shapes, glyphs and colour blobs on a background);
2. two convex potentials :math:`D_i(x) = C_i(L_i x)`, :math:`C_i` a random strongly convex
   :class:`~papercore.ot.icnn.ConvICNN` and :math:`L_i` a fixed orthogonal colour mixing (and, for
   :math:`D_2`, a horizontal flip), so the marginals look different from the clean images;
3. for each ``x``, :math:`a_i` solves :math:`\tfrac12 a_i + \tfrac12\nabla D_i(a_i) = x` (L-BFGS on the
   strongly convex :math:`\tfrac14\|a\|^2 + \tfrac12 D_i(a) - \langle a, x\rangle`) and
   :math:`b_i = \nabla D_i(a_i) = 2x - a_i`;
4. the marginals are :math:`P_1 = \mathrm{Law}(a_1)`, :math:`P_2 = \mathrm{Law}(\tfrac12(b_1 + a_2))`,
   :math:`P_3 = \mathrm{Law}(b_2)` with α = (¼, ½, ¼). Each map :math:`x \mapsto` marginal is the
   gradient of a convex function and :math:`\tfrac14 a_1 + \tfrac12\cdot\tfrac12(b_1 + a_2) + \tfrac14 b_2 = x`,
   so the clean images are the barycentre, image by image.

Data sets are cached under ``$PAPERCORE_CACHE/wbar`` keyed by their parameters.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import torch

from papercore.io import cache_dir, load_tensors, save_tensors
from papercore.ot.icnn import ConvICNN
from papercore.ot.samplers import ArraySampler
from wbar.suites import BarycenterProblem

WEIGHTS = (0.25, 0.5, 0.25)


def draw_images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """``n`` RGB images ``[n, 3, size, size]`` in [0, 1]: 1-3 filled shapes or glyphs and a colour blob on a
    plain background, drawn at 4x and downsampled (antialiased)."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    big = 4 * size
    font = ImageFont.load_default(size=int(big * 0.6))
    out = np.empty((n, size, size, 3), dtype=np.float32)
    glyphs = "ABEFGHKMNPRSTWXYZ2345789"
    for i in range(n):
        bg = tuple(int(c) for c in rng.integers(0, 256, 3))
        img = Image.new("RGB", (big, big), bg)
        d = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(1, 4))):
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            cx, cy = rng.uniform(0.25, 0.75, 2) * big
            r = rng.uniform(0.12, 0.3) * big
            kind = rng.integers(0, 4)
            if kind == 0:
                d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
            elif kind == 1:
                d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
            elif kind == 2:
                a = rng.uniform(0, 2 * math.pi)
                d.polygon(
                    [
                        (
                            cx + r * math.cos(a + k * 2 * math.pi / 3),
                            cy + r * math.sin(a + k * 2 * math.pi / 3),
                        )
                        for k in range(3)
                    ],
                    fill=colour,
                )
            else:
                d.text((cx, cy), glyphs[int(rng.integers(len(glyphs)))], fill=colour, font=font, anchor="mm")
        arr = np.asarray(img.resize((size, size), Image.LANCZOS), dtype=np.float32) / 255.0
        yy, xx = np.mgrid[0:size, 0:size] / size
        cx, cy, s = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.1, 0.25)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))[..., None]
        arr = np.clip(arr * (1 - 0.5 * blob) + 0.5 * blob * rng.uniform(0, 1, 3), 0, 1)
        out[i] = arr
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


class _Potential(torch.nn.Module):
    """``D(x) = C(L x)``: a ConvICNN after a fixed orthogonal colour mixing (and optionally a flip)."""

    def __init__(self, size: int, seed: int, flip: bool, width: int, sc: float, init_std: float):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        q, r = torch.linalg.qr(torch.randn(3, 3, generator=g))
        self.register_buffer("mix", q * torch.sign(torch.diagonal(r)))
        self.flip = flip
        torch.manual_seed(seed)
        self.net = ConvICNN(3, size, width=width, depth=3, rank=2, strong_convexity=sc, init_std=init_std)

    def _lin(self, x):
        y = torch.einsum("ij,njhw->nihw", self.mix, x)
        return y.flip(-1) if self.flip else y

    def forward(self, x):
        return self.net(self._lin(x))

    def grad(self, x):
        from papercore.ot.icnn import gradient

        return gradient(self, x, create_graph=False)


def _solve(D: _Potential, x: torch.Tensor, iters: int = 60) -> torch.Tensor:
    """``a`` with ``½a + ½∇D(a) = x`` for a batch of images (L-BFGS on the strongly convex objective)."""
    a = x.clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [a], lr=1, max_iter=iters, line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12
    )

    def closure():
        opt.zero_grad()
        f = (0.25 * (a * a).flatten(1).sum(1) + 0.5 * D(a) - (a * x).flatten(1).sum(1)).sum()
        f.backward()
        return f

    opt.step(closure)
    return a.detach()


def ave_synth(n: int = 2048, size: int = 32, seed: int = 0, width: int = 16, sc: float = 0.5, init_std: float = 0.05,
              batch: int = 256, device="cpu") -> BarycenterProblem:  # fmt: skip
    """The three marginals (pools of ``n`` images each, flattened) and the clean images as the truth.

    ``extra`` holds ``clean`` (the truth, ``[n, 3·size·size]``), ``marginal_images`` (the joint images,
    so inverse maps can be scored image by image) and ``residual`` (the worst relative error of the
    inversions, ``max ‖½a + ½∇D(a) − x‖ / ‖x‖``).
    """
    key = hashlib.sha256(json.dumps([n, size, seed, width, sc, init_std, 1]).encode()).hexdigest()[:16]
    path = cache_dir("wbar", f"ave-synth-{key}.safetensors")
    if path.is_file():
        t = load_tensors(path)
        clean, marg, residual = t["clean"], [t[f"m{k}"] for k in range(3)], float(t["residual"])
    else:
        clean = draw_images(n, size, seed)
        pots = [
            _Potential(size, 7919 * seed + 1, False, width, sc, init_std),
            _Potential(size, 7919 * seed + 2, True, width, sc, init_std),
        ]
        for p in pots:
            p.requires_grad_(False)
        pairs, residual = [], 0.0
        for D in pots:
            a = torch.cat([_solve(D, c) for c in clean.split(batch)])
            r = (
                (0.5 * a + 0.5 * torch.cat([D.grad(c) for c in a.split(batch)]) - clean)
                .flatten(1)
                .norm(dim=1)
            )
            residual = max(residual, float((r / clean.flatten(1).norm(dim=1)).max()))
            pairs.append((a, 2 * clean - a))
        (a1, b1), (a2, b2) = pairs
        marg = [a1, 0.5 * (b1 + a2), b2]
        save_tensors(
            path,
            {"clean": clean, "m0": marg[0], "m1": marg[1], "m2": marg[2], "residual": torch.tensor(residual)},
        )
    flat = [m.flatten(1).to(device) for m in marg]
    return BarycenterProblem([ArraySampler(f) for f in flat], WEIGHTS, f"ave-synth-{size}px-{n}-seed{seed}",
                             image_shape=(3, size, size),
                             extra={"clean": clean.flatten(1).to(device), "marginal_images": flat, "residual": residual})  # fmt: skip


def bench_ave_synth(seed, cfg, train, device, n: int = 2048, size: int = 32) -> dict:
    """WIN with convolutional networks (and inverse maps) on Ave, synth!: FD-pixel of generated images to
    the clean images, and the per-image error of the inverse maps (L2-UVP against the clean image)."""
    import time

    from papercore.ot.metrics import frechet_distance, l2_uvp, total_variance
    from wbar.solver import fit

    prob = ave_synth(n, size, seed, device=device)
    cfg = cfg.replace(network="conv", inverse_maps=True)
    t0 = time.perf_counter()
    bar = fit(
        prob.marginals, prob.weights, cfg, train, image_shape=prob.image_shape, seed=seed, device=device
    )
    clean = prob.extra["clean"]
    g = torch.Generator(device=device).manual_seed(99)
    gen = bar.sample(len(clean), g)
    mean_of_marginals = sum(
        a * m for a, m in zip(prob.weights, prob.extra["marginal_images"])
    )  # = clean, exactly
    row = {"suite": "ave-synth", "dim": prob.dim, "seed": seed, "seconds": round(time.perf_counter() - t0, 1),
           "inversion_residual": prob.extra["residual"], "fd_pixel_win": frechet_distance(gen, clean),
           "fd_pixel_marginal1": frechet_distance(prob.extra["marginal_images"][1], clean),
           "barycentric_mean_error": float((mean_of_marginals - clean).abs().max())}  # fmt: skip
    var = total_variance(clean)
    for k, m in enumerate(prob.extra["marginal_images"]):
        row[f"inverse{k}_l2_uvp"] = l2_uvp(bar.inverse_maps[k](m), clean, var)
    return row
