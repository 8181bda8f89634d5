"""The whole pipeline: image -> (cleaning) -> 64x64 patches -> primitive network -> refinement ->
merging -> :class:`Drawing`; and reading users' images."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vectorize.config import MergeConfig, PipelineConfig, RefineConfig
from vectorize.drawing import Drawing, curves_to_lines, split_straight
from vectorize.merge import assemble, merge, split
from vectorize.model import CleanNet, PrimitiveNet
from vectorize.refine import refine

log = logging.getLogger(__name__)
MAX_PIXELS = 400_000_000  # refuse images larger than this (decoding alone would need GBs)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def read_image(path: str | Path) -> np.ndarray:
    """A user's raster drawing as ``[H, W]`` float32 in [0, 1], 1 = paper: PNG, JPG or TIFF, gray,
    colour or with alpha (composited on white), 8 or 16 bit."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such image: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes): give a PNG, JPG or TIFF drawing")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I", "F"):
                a = np.asarray(im, dtype=np.float64)
                a = a / (65535.0 if a.max() > 255 else 255.0)
            else:
                if im.mode in ("RGBA", "LA", "P", "PA"):
                    im = im.convert("RGBA")
                    bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                    im = Image.alpha_composite(bg, im)
                a = np.asarray(im.convert("L"), dtype=np.float64) / 255.0
    except Image.DecompressionBombError as e:
        raise ValueError(f"{path}: more than {MAX_PIXELS} pixels; downscale or crop it first") from e
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"{path}: not a readable image ({type(e).__name__}); give a PNG, JPG or TIFF") from e
    if a.size == 0:
        raise ValueError(f"{path} has no pixels")
    return np.clip(a, 0, 1).astype(np.float32)


@dataclass
class Result:
    drawing: Drawing
    raw: Drawing  # the network's output, assembled (before refinement and merging)
    refined: Drawing  # after refinement, before merging
    ink: np.ndarray  # the (cleaned) ink map the drawing was fitted to
    seconds: dict = field(default_factory=dict)


@dataclass
class Vectorizer:
    """``Vectorizer(net, cleaner)(image) -> Result``: the pipeline with its stage configs."""

    net: PrimitiveNet | None
    cleaner: CleanNet | None = None
    cfg: PipelineConfig = field(default_factory=PipelineConfig)
    refine_cfg: RefineConfig = field(default_factory=RefineConfig)
    merge_cfg: MergeConfig = field(default_factory=MergeConfig)
    device: str = "cpu"
    batch: int = 128

    def ink(self, image: np.ndarray) -> np.ndarray:
        if self.cfg.clean and self.cleaner is not None:
            return self.cleaner.to(self.device).clean(image)
        return np.clip(1 - image, 0, 1)

    @torch.no_grad()
    def predict(self, patches: np.ndarray) -> list[Drawing]:
        """The network's primitives of each patch (confidence above the threshold)."""
        out = []
        if self.net is None:
            return [Drawing() for _ in patches]
        net = self.net.to(self.device).eval()
        for s in range(0, len(patches), self.batch):
            p = net(torch.as_tensor(patches[s : s + self.batch], device=self.device)).cpu().numpy()
            for row in p:
                row = row[1 / (1 + np.exp(-row[:, -1])) > self.cfg.confidence][:, :-1].astype(np.float64)
                if row.shape[1] == 5:
                    out.append(Drawing(row, None))
                else:
                    out.append(self._typed(row))
        return out

    def _typed(self, curves: np.ndarray) -> Drawing:
        if self.cfg.primitives == "curves":
            return Drawing(None, curves)
        if self.cfg.primitives == "lines":
            return Drawing(curves_to_lines(curves), None)
        lines, curves = split_straight(curves)
        return Drawing(lines, curves)

    def __call__(self, image: np.ndarray, seed: int = 0) -> Result:
        t = {"start": time.perf_counter()}
        H, W = image.shape
        ink = self.ink(image)
        t["clean"] = time.perf_counter()
        patches, origins = split(ink)
        busy = [i for i, p in enumerate(patches) if (p > self.cfg.threshold).sum() >= 2]
        empty = Drawing(None, None, H, W)
        if not busy:
            return Result(empty, empty, empty, ink, {"total": time.perf_counter() - t["start"]})
        raw = self.predict(patches[busy])
        t["network"] = time.perf_counter()
        ref = (
            refine(patches[busy], raw, self.refine_cfg, device=self.device, seed=seed)
            if self.refine_cfg.iterations
            else raw
        )
        if self.cfg.primitives != "curves":
            ref = [Drawing(np.concatenate([d.lines, split_straight(d.curves)[0]]), split_straight(d.curves)[1], 64, 64)
                   if self.cfg.primitives == "both" else d for d in ref]  # fmt: skip
        t["refine"] = time.perf_counter()
        org = [origins[i] for i in busy]
        raw_page, ref_page = assemble(raw, org, H, W), assemble(ref, org, H, W)
        final = merge(ref_page, self.merge_cfg, target=ink)
        t["merge"] = time.perf_counter()
        names = ["clean", "network", "refine", "merge"]
        prev, secs = t["start"], {}
        for n in names:
            secs[n] = round(t[n] - prev, 3)
            prev = t[n]
        secs["total"] = round(prev - t["start"], 3)
        return Result(final, raw_page, ref_page, ink, secs)
