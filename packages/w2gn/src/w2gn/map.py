""":class:`W2Map`: a fitted pair of convex potentials and the maps they define."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from papercore.io import load_tensors, read_json, save_tensors, write_json
from papercore.ot.icnn import DenseICNN
from w2gn.config import W2GNConfig

FORMAT_VERSION = 1


class W2Map:
    r"""The OT map :math:`T = \nabla\psi` from P to Q and its inverse :math:`\nabla\bar\psi` (Q to P).

    Inputs may be tensors (any device; the result comes back on it) or NumPy arrays (the result is
    a NumPy array). Large batches are pushed in chunks without building a graph.
    """

    def __init__(
        self, forward: DenseICNN, conjugate: DenseICNN, config: W2GNConfig, info: dict | None = None
    ):
        self.forward_potential, self.conjugate_potential = forward.eval(), conjugate.eval()
        self.config = config
        self.dim = forward.dim
        self.info = dict(info or {})  # w2 estimates, training steps, data description

    # ------------------------------------------------------------------ maps
    def _apply(self, net: DenseICNN, x: Any, fn: str) -> Any:
        as_numpy = not isinstance(x, torch.Tensor)
        t = torch.as_tensor(np.asarray(x, dtype=np.float32)) if as_numpy else x
        if t.ndim != 2 or t.shape[1] != self.dim:
            raise ValueError(
                f"expected points of shape [n, {self.dim}] (this map was fitted in dimension {self.dim}), "
                f"got {tuple(t.shape)}"
            )
        if not torch.isfinite(t).all():
            raise ValueError("the input holds NaN or inf values: clean or drop those rows first")
        dev = next(net.parameters()).device
        with torch.no_grad():
            out = net.push(t.to(dev, torch.float32)) if fn == "grad" else net(t.to(dev, torch.float32))
        return out.cpu().numpy() if as_numpy else out.to(t.device)

    def forward(self, x: Any) -> Any:
        """T(x) = ∇ψ(x): points of P mapped to Q."""
        return self._apply(self.forward_potential, x, "grad")

    __call__ = forward

    def inverse(self, y: Any) -> Any:
        """∇ψ̄(y): points of Q mapped back to P."""
        return self._apply(self.conjugate_potential, y, "grad")

    def potential(self, x: Any) -> Any:
        """ψ(x), the convex (Brenier) potential whose gradient is the map."""
        return self._apply(self.forward_potential, x, "value")

    def w2(self, x: Any = None) -> float:
        r""":math:`W_2^2(P, Q)` estimated as :math:`\mathbb{E}\|x - T(x)\|^2` over ``x`` (samples of P),
        or the estimate made at the end of the fit on 2^14 samples when ``x`` is None."""
        if x is None:
            if "w2" not in self.info:
                raise ValueError("no W2 estimate was stored with this map: pass samples of P")
            return float(self.info["w2"])
        t = torch.as_tensor(np.asarray(x, dtype=np.float32)) if not isinstance(x, torch.Tensor) else x
        y = torch.as_tensor(self.forward(t))
        return float(((y.double() - t.double()) ** 2).sum(1).mean())

    def to(self, device) -> W2Map:
        self.forward_potential.to(device)
        self.conjugate_potential.to(device)
        return self

    # ------------------------------------------------------------------ files
    def save(self, folder: str | os.PathLike) -> Path:
        """``map.json`` (config, dimension, widths, estimates) + ``forward.safetensors`` + ``conjugate.safetensors``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_tensors(folder / "forward.safetensors", self.forward_potential.state_dict())
        save_tensors(folder / "conjugate.safetensors", self.conjugate_potential.state_dict())
        write_json(
            folder / "map.json",
            {
                "format": "w2gn-map",
                "format_version": FORMAT_VERSION,
                "dim": self.dim,
                "hidden": list(self.forward_potential.hidden),
                "config": self.config.to_dict(),
                "info": self.info,
            },
        )
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str | torch.device = "cpu") -> W2Map:
        """Load a map written by :meth:`save` (tensors through safetensors; nothing is unpickled)."""
        folder = Path(folder)
        meta_path = folder / "map.json"
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"no map.json in {folder}: pass a folder written by `w2gn fit` or W2Map.save"
            )
        meta = read_json(meta_path)
        if meta.get("format") != "w2gn-map":
            raise ValueError(f"{meta_path} is not a w2gn map (format {meta.get('format')!r})")
        if meta.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(
                f"{folder} was written by a newer w2gn (format {meta['format_version']}): upgrade w2gn"
            )
        config = W2GNConfig.from_dict(meta["config"])
        nets = []
        for name in ("forward", "conjugate"):
            net = DenseICNN(
                meta["dim"], meta["hidden"], config.rank, config.activation, config.strong_convexity
            )
            net.load_state_dict(load_tensors(folder / f"{name}.safetensors"))
            nets.append(net.to(device))
        return cls(nets[0], nets[1], config, meta.get("info"))
