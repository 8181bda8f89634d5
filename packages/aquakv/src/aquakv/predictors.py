r"""Inter-layer linear predictors fitted in closed form, and their safetensors + JSON files.

For layer :math:`L \ge 1` (rows are tokens, C = KV channels):

* keys: :math:`\hat K_L \approx P_K(\hat K_{L-1})`, a ``C -> C`` affine map;
* values: :math:`\hat V_L \approx P_V([\hat K_L, \hat V_{L-1}])`, ``2C -> C``.

Ridge regression with an intercept on :math:`\tilde X = [X, 1]`, sums accumulated in float32:

.. math:: [W^\top; b^\top] = (\tilde X^\top \tilde X + \lambda I')^{-1} \tilde X^\top Y, \qquad
          \lambda = \mathrm{percdamp} \cdot \mathrm{mean}\,\mathrm{diag}(X^\top X),

where :math:`I'` is the identity without the intercept entry (the intercept is not shrunk).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

FORMAT = "aquakv-predictors"
FORMAT_VERSION = 1


class RidgeAccumulator:
    """Accumulates :math:`\\tilde X^\\top \\tilde X` and :math:`\\tilde X^\\top Y` over token chunks."""

    def __init__(self, in_features: int, out_features: int, device=None, dtype=torch.float32):
        self.xtx = torch.zeros(in_features + 1, in_features + 1, dtype=dtype, device=device)
        self.xty = torch.zeros(in_features + 1, out_features, dtype=dtype, device=device)
        self.count = 0

    def update(self, x: torch.Tensor, y: torch.Tensor, chunk: int = 4096) -> None:
        x, y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
        if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
            raise ValueError("non-finite activations during calibration (NaN or inf in keys/values)")
        for s in range(0, x.shape[0], chunk):
            xs = x[s : s + chunk].to(self.xtx)
            xs = torch.cat([xs, torch.ones_like(xs[:, :1])], 1)
            self.xtx.addmm_(xs.T, xs)
            self.xty.addmm_(xs.T, y[s : s + chunk].to(self.xtx))
        self.count += x.shape[0]

    def solve(self, percdamp: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weight [out, in], bias [out])`` in float32 (solved in float64)."""
        a = self.xtx.double().clone()
        n = a.shape[0] - 1
        lam = percdamp * a.diagonal()[:n].mean()
        a.diagonal()[:n] += lam
        try:
            sol = torch.linalg.solve(a, self.xty.double())
        except RuntimeError:  # singular even with the ridge (percdamp = 0 on rank-deficient data)
            sol = torch.linalg.pinv(a) @ self.xty.double()
        return sol[:n].T.float().contiguous(), sol[n].float().contiguous()


def fit_ridge(x: torch.Tensor, y: torch.Tensor, percdamp: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    acc = RidgeAccumulator(x.shape[-1], y.shape[-1], device=x.device)
    acc.update(x, y)
    return acc.solve(percdamp)


def model_fingerprint(model_or_config) -> str:
    """Hash of the attention-relevant architecture (layers, heads, head_dim, RoPE) and, for a model,
    of its layer-0 and last-layer k/v projection weights (so another checkpoint of the same shape differs)."""
    config = getattr(model_or_config, "config", model_or_config)
    keys = ("model_type", "num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads",
            "head_dim", "rope_theta", "rope_scaling", "rope_parameters", "vocab_size")  # fmt: skip
    arch = {k: getattr(config, k, None) for k in keys}
    h = hashlib.sha256(json.dumps(arch, sort_keys=True, default=str).encode())
    if hasattr(model_or_config, "model") and hasattr(model_or_config.model, "layers"):
        for i in (0, len(model_or_config.model.layers) - 1):
            attn = model_or_config.model.layers[i].self_attn
            for name in ("k_proj", "v_proj"):
                w = getattr(attn, name).weight.detach().float().cpu()
                h.update(w.flatten()[:: max(1, w.numel() // 4096)].numpy().round(4).tobytes())
    return h.hexdigest()[:16]


@dataclass
class Predictors:
    """Per-layer predictors. ``key[L] = (W [C, C], b [C])``, ``value[L] = (W [C, 2C], b [C])`` for L >= 1."""

    num_layers: int
    channels: int
    key: dict[int, tuple[torch.Tensor, torch.Tensor]]
    value: dict[int, tuple[torch.Tensor, torch.Tensor]]
    fingerprint: str = ""
    meta: dict | None = None

    @classmethod
    def zeros(cls, num_layers: int, channels: int, fingerprint: str = "") -> Predictors:
        """All-zero predictors: the cache then quantizes K and V directly (HIGGS-only)."""
        z = lambda i: (torch.zeros(channels, i * channels), torch.zeros(channels))
        return cls(num_layers, channels, {L: z(1) for L in range(1, num_layers)},
                   {L: z(2) for L in range(1, num_layers)}, fingerprint)  # fmt: skip

    def to(self, device=None, dtype=None) -> Predictors:
        mv = lambda p: tuple(t.to(device=device, dtype=dtype) for t in p)
        return Predictors(self.num_layers, self.channels, {k: mv(v) for k, v in self.key.items()},
                          {k: mv(v) for k, v in self.value.items()}, self.fingerprint, self.meta)  # fmt: skip

    def num_parameters(self) -> int:
        return sum(w.numel() + b.numel() for w, b in [*self.key.values(), *self.value.values()])

    def check(self, model) -> None:
        """Raise ``ValueError`` unless these predictors fit ``model`` (shapes and fingerprint)."""
        cfg = model.config
        hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        channels = cfg.num_key_value_heads * hd
        if self.num_layers != cfg.num_hidden_layers or self.channels != channels:
            raise ValueError(
                f"predictors are for {self.num_layers} layers x {self.channels} KV channels, but the model has "
                f"{cfg.num_hidden_layers} layers x {channels}: calibrate predictors for this model (aquakv calibrate)"
            )
        fp = model_fingerprint(model)
        if self.fingerprint and fp != self.fingerprint:
            raise ValueError(
                f"predictors were calibrated for another model (fingerprint {self.fingerprint}, this model {fp}): "
                "calibrate predictors for this model (aquakv calibrate)"
            )

    # ------------------------------------------------------------------- files
    def save(self, folder: str | Path) -> None:
        from papercore.io import save_tensors, write_json

        folder = Path(folder)
        tensors = {}
        for L, (w, b) in self.key.items():
            tensors[f"key.{L}.weight"], tensors[f"key.{L}.bias"] = w, b
        for L, (w, b) in self.value.items():
            tensors[f"value.{L}.weight"], tensors[f"value.{L}.bias"] = w, b
        save_tensors(folder / "predictors.safetensors", tensors, metadata={"format": FORMAT})
        write_json(folder / "predictors.json", {
            "format": FORMAT, "version": FORMAT_VERSION, "num_layers": self.num_layers,
            "channels": self.channels, "fingerprint": self.fingerprint, "meta": self.meta or {},
        })  # fmt: skip

    @classmethod
    def load(cls, folder: str | Path, device="cpu") -> Predictors:
        from papercore.io import load_tensors, read_json

        folder = Path(folder)
        meta_path = folder / "predictors.json"
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"no predictors.json in {folder}: pass a folder written by `aquakv calibrate`"
            )
        meta = read_json(meta_path)
        if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
            raise ValueError(f"{meta_path} is not an aquakv predictors file of version {FORMAT_VERSION}")
        t = load_tensors(folder / "predictors.safetensors", device=device)
        L, C = meta["num_layers"], meta["channels"]
        key, value = {}, {}
        for i in range(1, L):
            try:
                key[i] = (t[f"key.{i}.weight"], t[f"key.{i}.bias"])
                value[i] = (t[f"value.{i}.weight"], t[f"value.{i}.bias"])
            except KeyError as e:
                raise ValueError(f"{folder} lacks the predictor {e.args[0]}") from e
            if key[i][0].shape != (C, C) or value[i][0].shape != (C, 2 * C):
                raise ValueError(f"{folder}: predictor shapes of layer {i} do not match {C} channels")
        return cls(L, C, key, value, meta.get("fingerprint", ""), meta.get("meta"))
