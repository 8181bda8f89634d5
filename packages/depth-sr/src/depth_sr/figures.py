"""Side-by-side figures: each map as a depth colour map (:func:`papercore.plot.depth_maps`) above
its shaded render (:func:`papercore.plot.images`), stacked into one PNG."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from depth_sr.camera import Intrinsics
from depth_sr.visual import LIGHTS4, render_depth
from papercore.io import atomic_path

__all__ = ["compare"]


def _shade(depth: torch.Tensor, K) -> torch.Tensor:
    d = torch.nan_to_num(depth.detach().float().cpu().squeeze(), nan=0.0)
    return render_depth(d, K, lights=LIGHTS4[:1]).squeeze(0)


def compare(path, maps: dict[str, torch.Tensor], K: Intrinsics, titles_suffix: str = "") -> Path:
    """One PNG: top row depth maps (shared colour scale), bottom row renders under one light.

    ``maps``: title -> depth ``[H, W]`` (maps of another size, such as the LR input, are rendered
    with ``K`` scaled to their width)."""
    from PIL import Image

    from papercore.plot import depth_maps, images

    path = Path(path)
    W = max(m.shape[-1] for m in maps.values())
    shades = [_shade(m, K.scaled(m.shape[-1] / W)) for m in maps.values()]
    titles = [f"{t}{titles_suffix}" for t in maps]
    with tempfile.TemporaryDirectory() as tmp:
        a = depth_maps(
            Path(tmp) / "depth.png", [m.detach().float().cpu().squeeze() for m in maps.values()], titles
        )
        b = images(Path(tmp) / "render.png", shades, [f"{t} (render)" for t in maps], vmin=0, vmax=1)
        top, bottom = Image.open(a).convert("RGB"), Image.open(b).convert("RGB")
        width = max(top.width, bottom.width)
        canvas = Image.new("RGB", (width, top.height + bottom.height), "white")
        canvas.paste(top, (0, 0))
        canvas.paste(bottom, (0, top.height))
        with atomic_path(path) as out:
            canvas.save(out, format="PNG")
    return path
