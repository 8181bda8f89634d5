"""Reading and writing depth maps and RGB images the way RGB-D data sets store them.

* 16-bit PNG (Kinect, RealSense, NYUv2, TUM, ScanNet...): integer depth times ``depth_scale``
  (0.001: millimetres, the default; TUM uses 1/5000), 0 for holes. An 8-bit PNG is refused: it cannot
  hold depth (it is a visualisation, or a 16-bit file was converted);
* OpenEXR (``pip install openexr``): float depth, its first channel (``Z``, ``Y``, ``R`` or ``depth``
  preferred), NaN/inf/<= 0 for holes;
* NPY: a float or integer ``[H, W]`` array (``np.load(allow_pickle=False)``), times ``depth_scale``
  (1 by default).

Depth comes back as a float32 tensor ``[H, W]`` with 0 at holes (:func:`~depth_sr.camera.valid_mask`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from papercore.io import atomic_path

__all__ = ["read_depth", "read_rgb", "write_depth"]

DEPTH_SUFFIXES = (".png", ".exr", ".npy")


def _exists(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    return path


def _exr_read(path: Path) -> np.ndarray:
    try:
        import OpenEXR
    except ImportError as e:
        raise ImportError(f"{path}: reading EXR needs the openexr package: pip install openexr") from e
    with OpenEXR.File(str(path)) as f:
        channels = f.channels()
        for name in ("Z", "depth", "Y", "R", *channels):
            if name in channels:
                return np.asarray(channels[name].pixels, dtype=np.float32)
    raise ValueError(f"{path}: the EXR file has no channel")


def read_depth(path, depth_scale: float | None = None) -> torch.Tensor:
    """A depth map ``[H, W]`` float32 in scene units, 0 at holes (see the module docstring)."""
    path = _exists(path)
    suffix = path.suffix.lower()
    if suffix == ".png":
        from PIL import Image

        with Image.open(path) as im:
            if im.mode not in ("I;16", "I;16B", "I;16L", "I"):
                raise ValueError(
                    f"{path} is an 8-bit {im.mode} PNG: depth must be a single-channel 16-bit PNG "
                    "(integer millimetres by default; --depth-scale sets the unit)"
                )
            arr = np.asarray(im).astype(np.float32)
        arr = arr * (0.001 if depth_scale is None else depth_scale)
    elif suffix == ".exr":
        arr = _exr_read(path) * (1.0 if depth_scale is None else depth_scale)
    elif suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
        if arr.dtype.kind not in "fiu":
            raise ValueError(f"{path} holds {arr.dtype} values, not depths")
        arr = arr.astype(np.float32).squeeze() * (1.0 if depth_scale is None else depth_scale)
    else:
        raise ValueError(
            f"{path}: unknown depth file type {suffix!r}; use one of {', '.join(DEPTH_SUFFIXES)}"
        )
    if arr.ndim != 2:
        raise ValueError(f"{path}: a depth map must be one [H, W] channel, got shape {arr.shape}")
    arr = np.where(np.isfinite(arr) & (arr > 0), arr, 0).astype(np.float32)
    return torch.from_numpy(arr)


def read_rgb(path) -> torch.Tensor:
    """An RGB image ``[3, H, W]`` float32 in [0, 1] (any format Pillow reads; 16-bit images scaled)."""
    path = _exists(path)
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im).astype(np.float32) / 65535.0
            arr = np.repeat(arr[..., None], 3, -1)
        else:
            arr = np.asarray(im.convert("RGB")).astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def write_depth(path, depth, depth_scale: float | None = None) -> Path:
    """Write a depth map ``[H, W]`` (NaN or <= 0 at holes): 16-bit PNG (``depth / depth_scale``
    rounded, 0 at holes), EXR (float, channel ``Z``, NaN at holes) or NPY (float32, NaN at holes)."""
    path = Path(path)
    d = depth.detach().cpu().numpy() if isinstance(depth, torch.Tensor) else np.asarray(depth)
    d = np.asarray(d, dtype=np.float32).squeeze()
    ok = np.isfinite(d) & (d > 0)
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix == ".png":
            from PIL import Image

            q = np.where(ok, np.round(d / (0.001 if depth_scale is None else depth_scale)), 0)
            if q.max(initial=0) > 65535:
                raise ValueError(f"{path}: depths up to {d[ok].max():.4g} overflow 16 bits at this --depth-scale; "
                                 "choose a larger scale or write .npy/.exr")  # fmt: skip
            Image.fromarray(q.astype(np.uint16)).save(tmp, format="PNG")
        elif suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, np.where(ok, d, np.nan).astype(np.float32))
        elif suffix == ".exr":
            try:
                import OpenEXR
            except ImportError as e:
                raise ImportError("writing EXR needs the openexr package: pip install openexr") from e
            header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
            with OpenEXR.File(header, {"Z": np.where(ok, d, np.nan).astype(np.float32)}) as f:
                f.write(str(tmp))
        else:
            raise ValueError(
                f"{path}: unknown depth file type {suffix!r}; use one of {', '.join(DEPTH_SUFFIXES)}"
            )
    return path
