"""Calibration of the inter-layer predictors, layer by layer (``papercore.llm.calib``).

For every calibration window the engine runs the decoder blocks in order on the original
activations; hooks catch what the cache will store: the pre-RoPE keys (the ``k_norm`` output
on Qwen3-style models, else ``k_proj``) and the values (``v_proj``). Then for layer L:

1. fit :math:`P_K` on (:math:`\\hat K_{L-1}` -> :math:`K_L`) over the train windows, in closed form;
2. :math:`\\hat K_L = P_K(\\hat K_{L-1}) + Q(K_L - P_K(\\hat K_{L-1}))` on every window;
3. fit :math:`P_V` on (:math:`[\\hat K_L, \\hat V_{L-1}]` -> :math:`V_L`), reconstruct :math:`\\hat V_L`.

Inputs are *reconstructed* states, so the predictors learn on top of the quantization error.
Layer 0 is only quantized (the first-layer quantizer). Held-out windows give each layer's
predictor relMSE and "equivalent bits" (:math:`-\\log_4` relMSE). With ``out_dir`` each finished
layer is saved and a rerun with ``resume=True`` reloads it (the quantization is deterministic,
so the reconstructions it feeds forward are the same).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from aquakv.cache import kv_layout
from aquakv.config import FIRST_LAYER_GRIDS, AquaKVConfig, UnsupportedLayoutError
from aquakv.predictors import Predictors, RidgeAccumulator, model_fingerprint
from aquakv.quantizer import HiggsQuantizer, IdentityQuantizer, equivalent_bits, relative_mse
from papercore.llm.calib import BlockCheckpoints, CalibConfig, run_calibration

log = logging.getLogger(__name__)


@dataclass
class LayerReport:
    layer: int
    key_pred_rel_mse: float | None
    value_pred_rel_mse: float | None
    key_rel_mse: float  # of the final reconstruction (prediction + quantized residual), held-out windows
    value_rel_mse: float
    resumed: bool = False

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        for k in ("key_pred_rel_mse", "value_pred_rel_mse"):
            d[k.replace("rel_mse", "equiv_bits")] = None if d[k] is None else equivalent_bits(d[k])
        return d


@dataclass
class CalibrationResult:
    predictors: Predictors
    layers: list[LayerReport] = field(default_factory=list)
    seconds: float = 0.0


def capture_names(model) -> tuple[str, str]:
    """Submodules (within a block) whose outputs are what the cache stores: (keys, values)."""
    attn = model.model.layers[0].self_attn
    for name in ("k_proj", "v_proj"):
        if not hasattr(attn, name):
            raise UnsupportedLayoutError(
                f"{type(model).__name__}: attention without `{name}` is not supported by AQUA-KV calibration"
            )
    return ("self_attn.k_norm" if hasattr(attn, "k_norm") else "self_attn.k_proj", "self_attn.v_proj")


def quantizers(cfg: AquaKVConfig, channels: int):
    group = cfg.resolved_group(channels)
    q = HiggsQuantizer(channels, cfg.edenn_d, cfg.edenn_n, group, cfg.scale_dtype)
    if cfg.first_layer_bits == 16:
        q0 = IdentityQuantizer(channels, torch.float16)
    else:
        d, n = FIRST_LAYER_GRIDS[cfg.first_layer_bits]
        q0 = HiggsQuantizer(channels, d, n, group, cfg.scale_dtype)
    return q0, q


@torch.no_grad()
def calibrate(model, windows: torch.Tensor, config: AquaKVConfig | None = None, *, percdamp: float = 1e-3,
              valid_nsamples: int = 0, out_dir: str | Path | None = None, resume: bool = False,
              offload: bool = False, progress: bool = True, device=None) -> CalibrationResult:  # fmt: skip
    """Fit the predictors of every layer on ``windows`` (``[N, L]`` token ids); the last
    ``valid_nsamples`` windows are held out for the per-layer report."""
    cfg = config or AquaKVConfig()
    num_layers, kv_heads, head_dim = kv_layout(model.config)
    C = kv_heads * head_dim
    q0, q = quantizers(cfg, C)
    n = windows.shape[0]
    if not 0 <= valid_nsamples < n:
        raise ValueError(
            f"valid_nsamples must be in [0, {n - 1}] for {n} calibration windows, got {valid_nsamples}"
        )
    n_train = n - valid_nsamples
    key_name, value_name = capture_names(model)
    ckpt = None
    if out_dir is not None:
        meta = {"aquakv": cfg.to_dict(), "percdamp": percdamp, "windows": list(windows.shape),
                "valid_nsamples": valid_nsamples, "fingerprint": model_fingerprint(model)}  # fmt: skip
        ckpt = BlockCheckpoints(Path(out_dir) / "layers", meta, resume=resume)
    preds = Predictors(num_layers, C, {}, {}, model_fingerprint(model))
    result = CalibrationResult(preds)
    state: dict = {"prev": None}
    t0 = time.perf_counter()

    def rows(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(-1, C).float()

    def apply(pred, x, y, quant):
        p = torch.addmm(pred[1], x, pred[0].T) if pred is not None else torch.zeros_like(y)
        return p, p + quant(y - p)

    def callback(ctx):
        L, dev = ctx.index, ctx.device
        ks = [rows(k).to(dev) for k in ctx.captured[key_name]]
        vs = [rows(v).to(dev) for v in ctx.captured[value_name]]
        for t in (*ks, *vs):
            if not torch.isfinite(t).all():
                raise ValueError(f"non-finite keys/values in layer {L} during calibration")
        quant = q0 if L == 0 else q
        prev = state["prev"]
        resumed = ckpt is not None and ckpt.done(L) and L > 0
        kp = vp = None
        if L > 0:
            if resumed:
                from papercore.io import load_tensors

                t = load_tensors(ckpt.path(L), device=dev)
                kp = (t["key.weight"], t["key.bias"])
            else:
                acc = RidgeAccumulator(C, C, device=dev)
                for b in range(n_train):
                    acc.update(prev[0][b].to(dev), ks[b])
                kp = acc.solve(percdamp)
        k_pred, k_hat = zip(*[apply(kp, prev[0][b].to(dev) if L else None, ks[b], quant) for b in range(n)])
        if L > 0:
            x = [torch.cat([k_hat[b], prev[1][b].to(dev)], 1) for b in range(n)]
            if resumed:
                vp = (t["value.weight"], t["value.bias"])
            else:
                acc = RidgeAccumulator(2 * C, C, device=dev)
                for b in range(n_train):
                    acc.update(x[b], vs[b])
                vp = acc.solve(percdamp)
        v_pred, v_hat = zip(*[apply(vp, x[b] if L else None, vs[b], quant) for b in range(n)])
        held = range(n_train, n) if valid_nsamples else range(n)
        cat = lambda seq: torch.cat([seq[b] for b in held])
        rep = LayerReport(
            L,
            relative_mse(cat(ks), cat(k_pred)) if L else None,
            relative_mse(cat(vs), cat(v_pred)) if L else None,
            relative_mse(cat(ks), cat(k_hat)),
            relative_mse(cat(vs), cat(v_hat)),
            resumed,
        )
        result.layers.append(rep)
        if L > 0:
            preds.key[L], preds.value[L] = (kp[0].cpu(), kp[1].cpu()), (vp[0].cpu(), vp[1].cpu())
            if ckpt is not None and not resumed:
                from papercore.io import save_tensors

                save_tensors(ckpt.path(L), {"key.weight": kp[0], "key.bias": kp[1],
                                            "value.weight": vp[0], "value.bias": vp[1]})  # fmt: skip
        storage = ctx.inputs.storage
        state["prev"] = ([k.to(storage) for k in k_hat], [v.to(storage) for v in v_hat])
        log.info("layer %d: %s", L, rep.as_dict())

    run_calibration(
        model, windows,
        callback,
        CalibConfig(collect_xtx=False, capture=(key_name, value_name), propagate="original",
                    offload=offload, progress=progress, device=device),
    )  # fmt: skip
    result.seconds = time.perf_counter() - t0
    preds.meta = {"aquakv": cfg.to_dict(), "percdamp": percdamp, "windows": list(windows.shape),
                  "valid_nsamples": valid_nsamples, "seconds": round(result.seconds, 2)}  # fmt: skip
    return result
