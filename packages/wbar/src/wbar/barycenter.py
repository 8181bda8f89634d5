""":class:`Barycenter`: a fitted generator, the maps from it to each marginal, and (Algorithm 2) back."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from papercore.io import load_tensors, read_json, save_tensors, write_json
from wbar.config import WINConfig
from wbar.networks import build

FORMAT_VERSION = 1


class Barycenter:
    r"""The barycentre :math:`Q = G\#N(0, I)` of marginals :math:`P_1, \dots, P_K` with weights α.

    ``maps[k]`` maps barycentre samples to :math:`P_k`; ``inverse_maps[k]`` (when learned) maps
    :math:`P_k` to the barycentre. Inputs and outputs are ``[n, d]`` tensors (images flattened;
    ``image_shape`` says how to view them) or NumPy arrays.
    """

    def __init__(self, generator, maps, inverse_maps, weights, config: WINConfig, dim: int, z_dim: int,
                 image_shape=None, info=None):  # fmt: skip
        self.generator = generator.eval()
        self.map_nets = [m.eval() for m in maps]
        self.inverse_nets = [m.eval() for m in inverse_maps] if inverse_maps else []
        self.weights = tuple(float(w) for w in weights)
        self.config, self.dim, self.z_dim = config, dim, z_dim
        self.image_shape = tuple(image_shape) if image_shape else None
        self.info = dict(info or {})

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, *, chunk: int = 8192) -> torch.Tensor:
        """``n`` samples of the barycentre, ``[n, d]``."""
        z = torch.randn(n, self.z_dim, device=self.device, generator=generator)
        return torch.cat([self.generator(c) for c in z.split(chunk)]) if n else z.new_zeros(0, self.dim)

    def _apply(self, net, x):
        as_numpy = not isinstance(x, torch.Tensor)
        t = torch.as_tensor(np.asarray(x, dtype=np.float32)) if as_numpy else x
        if t.ndim != 2 or t.shape[1] != self.dim:
            raise ValueError(f"expected points of shape [n, {self.dim}], got {tuple(t.shape)}")
        with torch.no_grad():
            out = torch.cat([net(c.to(self.device, torch.float32)) for c in t.split(8192)])
        return out.cpu().numpy() if as_numpy else out.to(t.device)

    @property
    def maps(self) -> list:
        """Functions mapping barycentre samples to each marginal."""
        return [lambda x, m=m: self._apply(m, x) for m in self.map_nets]

    @property
    def inverse_maps(self) -> list:
        """Functions mapping each marginal's samples to the barycentre (Algorithm 2; empty if not learned)."""
        return [lambda x, m=m: self._apply(m, x) for m in self.inverse_nets]

    # ------------------------------------------------------------------ files
    def save(self, folder: str | os.PathLike) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_tensors(folder / "generator.safetensors", self.generator.state_dict())
        for k, m in enumerate(self.map_nets):
            save_tensors(folder / f"map{k}.safetensors", m.state_dict())
        for k, m in enumerate(self.inverse_nets):
            save_tensors(folder / f"inverse{k}.safetensors", m.state_dict())
        write_json(folder / "barycenter.json", {
            "format": "wbar-barycenter", "format_version": FORMAT_VERSION, "dim": self.dim, "z_dim": self.z_dim,
            "weights": list(self.weights), "image_shape": list(self.image_shape) if self.image_shape else None,
            "inverse": bool(self.inverse_nets), "config": self.config.to_dict(), "info": self.info,
        })  # fmt: skip
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, device="cpu") -> Barycenter:
        folder = Path(folder)
        if not (folder / "barycenter.json").is_file():
            raise FileNotFoundError(
                f"no barycenter.json in {folder}: pass a folder written by `wbar fit` or Barycenter.save"
            )
        meta = read_json(folder / "barycenter.json")
        if meta.get("format") != "wbar-barycenter" or meta.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(f"{folder} is not a barycentre this wbar can read (format {meta.get('format')!r} "
                             f"v{meta.get('format_version')})")  # fmt: skip
        cfg = WINConfig.from_dict(meta["config"])
        shape = tuple(meta["image_shape"]) if meta["image_shape"] else None
        gen, make_map, _ = build(cfg.network, meta["dim"], meta["z_dim"], cfg.width, cfg.depth, shape)
        gen.load_state_dict(load_tensors(folder / "generator.safetensors"))
        k = len(meta["weights"])
        maps = [make_map() for _ in range(k)]
        for i, m in enumerate(maps):
            m.load_state_dict(load_tensors(folder / f"map{i}.safetensors"))
        inv = []
        if meta["inverse"]:
            inv = [make_map() for _ in range(k)]
            for i, m in enumerate(inv):
                m.load_state_dict(load_tensors(folder / f"inverse{i}.safetensors"))
        nets = [gen, *maps, *inv]
        for n in nets:
            n.to(device)
        return cls(gen, maps, inv, meta["weights"], cfg, meta["dim"], meta["z_dim"], shape, meta.get("info"))
