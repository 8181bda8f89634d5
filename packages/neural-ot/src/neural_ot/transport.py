""":class:`TransportMap`: a fitted (stochastic) map T(x, z), applied to arrays, saved as safetensors + JSON."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from neural_ot.config import NOTConfig
from neural_ot.nets import build_map
from papercore.io import load_tensors, read_json, save_tensors, write_json

__all__ = ["TransportMap"]

FORMAT_VERSION = 1


class TransportMap:
    """A fitted map from the source to the target distribution.

    ``transport(x)`` returns ``T(x, z)`` with fresh noise ``z ~ N(0, z_std² I)`` (or the given ``z``);
    ``sample(x, n)`` returns ``n`` draws per point, ``[len(x), n, d]``. Inputs are ``[n, d]`` arrays or
    tensors (images flattened; ``image_shape`` says how to view them); NumPy in, NumPy out.
    """

    def __init__(self, net: torch.nn.Module, config: NOTConfig, dim: int, image_shape=None, cost: dict | None = None,
                 info: dict | None = None):  # fmt: skip
        self.net = net.eval()
        self.config, self.dim = config, dim
        self.image_shape = tuple(image_shape) if image_shape else None
        self.cost = dict(cost or {})
        self.info = dict(info or {})

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    @property
    def stochastic(self) -> bool:
        return self.config.z_dim > 0

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def _input(self, x) -> tuple[torch.Tensor, bool]:
        as_numpy = not isinstance(x, torch.Tensor)
        t = torch.as_tensor(np.asarray(x, dtype=np.float32)) if as_numpy else x
        if t.ndim != 2 or t.shape[1] != self.dim:
            raise ValueError(f"expected points of shape [n, {self.dim}], got {tuple(t.shape)}")
        if not torch.isfinite(t).all():
            row = int((~torch.isfinite(t)).any(1).nonzero()[0, 0])
            raise ValueError(f"the input has NaN or inf (first in row {row}): clean or drop those rows")
        return t, as_numpy

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        if not self.stochastic:
            return None
        return self.config.z_std * torch.randn(n, self.z_dim, device=self.device, generator=generator)

    @torch.no_grad()
    def transport(self, x, z=None, *, generator: torch.Generator | None = None, chunk: int = 4096):
        """``T(x, z)`` for each row of ``x`` (one noise draw per row unless ``z`` is given)."""
        t, as_numpy = self._input(x)
        if z is not None:
            z = torch.as_tensor(np.asarray(z, dtype=np.float32)) if not isinstance(z, torch.Tensor) else z
            if z.shape != (len(t), self.z_dim):
                raise ValueError(f"z must have shape [{len(t)}, {self.z_dim}], got {tuple(z.shape)}")
        outs = []
        for i in range(0, len(t), chunk):
            xc = t[i : i + chunk].to(self.device, torch.float32)
            zc = (
                z[i : i + chunk].to(self.device, torch.float32)
                if z is not None
                else self.noise(len(xc), generator)
            )
            outs.append(self.net(xc, zc))
        out = torch.cat(outs) if outs else t.new_zeros(0, self.dim)
        return out.cpu().numpy() if as_numpy else out.to(t.device)

    @torch.no_grad()
    def sample(self, x, n: int = 16, *, generator: torch.Generator | None = None):
        """``n`` draws of ``T(x, z)`` per row: ``[len(x), n, d]`` (the conditional plan π(·|x))."""
        t, as_numpy = self._input(x)
        xr = t.repeat_interleave(n, 0)
        out = self.transport(xr, generator=generator).reshape(len(t), n, self.dim)
        return out.cpu().numpy() if as_numpy else out

    __call__ = transport

    # ------------------------------------------------------------------ files
    def save(self, folder: str | os.PathLike) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_tensors(folder / "map.safetensors", self.net.state_dict())
        write_json(folder / "transport.json", {
            "format": "neural-ot-map", "format_version": FORMAT_VERSION, "dim": self.dim,
            "image_shape": list(self.image_shape) if self.image_shape else None,
            "config": self.config.to_dict(), "cost": self.cost, "info": self.info,
        })  # fmt: skip
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, device="cpu") -> TransportMap:
        folder = Path(folder)
        if not (folder / "transport.json").is_file():
            raise FileNotFoundError(
                f"no transport.json in {folder}: pass a folder written by `neural-ot fit` or TransportMap.save"
            )
        meta = read_json(folder / "transport.json")
        if meta.get("format") != "neural-ot-map" or meta.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(f"{folder} is not a map this neural-ot can read (format {meta.get('format')!r} "
                             f"v{meta.get('format_version')})")  # fmt: skip
        cfg = NOTConfig.from_dict(meta["config"])
        shape = tuple(meta["image_shape"]) if meta["image_shape"] else None
        net = build_map(cfg.map_net, meta["dim"], cfg.z_dim, cfg.width, cfg.depth, shape, cfg.identity_init)
        net.load_state_dict(load_tensors(folder / "map.safetensors"))
        net.to(device)
        return cls(net, cfg, meta["dim"], shape, meta.get("cost"), meta.get("info"))
