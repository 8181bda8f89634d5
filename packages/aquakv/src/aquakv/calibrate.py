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
from aquakv.config import FIRST_LAYER_GRIDS, AquaKVConfig, CalibrationConfig, UnsupportedLayoutError
from aquakv.predictors import Predictors, RidgeAccumulator, model_fingerprint
from aquakv.quantizer import HiggsQuantizer, IdentityQuantizer, equivalent_bits
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


def calibration_windows(tokenizer, calibration: CalibrationConfig, *, dataset: str = "stdlib", seed: int = 0,
                        small: bool = False, max_chars: int | None = None) -> torch.Tensor:  # fmt: skip
    """``[nsamples, seqlen]`` token ids drawn from ``dataset`` (``papercore.llm.data``); sizes left at
    None take the paper's (or, with ``small``, the zoo models') defaults. ``max_chars`` tokenizes only
    a seeded subset of documents of about that many characters (default: the whole split)."""
    from papercore.llm.data import get_calibration_data

    c = calibration.resolved(small)
    return get_calibration_data(dataset, tokenizer, c.nsamples, c.seqlen, seed=seed, max_chars=max_chars)


def calibration_memory(num_layers: int, hidden_size: int, channels: int, nsamples: int = 256,
                       seqlen: int = 8192, *, dtype_bytes: int = 2) -> dict[str, int]:  # fmt: skip
    r"""Bytes :func:`calibrate` holds, **computed from the sizes** (not measured), for ``nsamples``
    windows of ``seqlen`` tokens, a model of ``hidden_size`` and ``channels`` KV channels whose
    activations have ``dtype_bytes`` bytes per value.

    Grows with the windows (``T = nsamples * seqlen`` tokens; on the CPU with ``offload=True``):

    * ``block_activations``: the engine's inputs of the current block and its outputs, :math:`2 T h` values;
    * ``captured_kv``: the block's keys and values, :math:`2 T C` values;
    * ``reconstructions``: :math:`\hat K, \hat V` of the previous layer and of this one, :math:`4 T C` float32.

    Does not (on the device): ``ridge``, the float32 sums of the value predictor and their float64
    solve, :math:`4 (2C+1)(3C+1) + 8 (2C+1)(4C+1)`; ``window`` (an estimate), one window's rows
    through the predictors and the quantizer, about 12 float32 ``[seqlen, C]`` tensors. The
    decoder block's weights and its forward on one window come on top of ``window``.
    ``num_layers`` does not enter: one layer is processed at a time.
    """
    del num_layers
    T, C = nsamples * seqlen, channels
    return {
        "block_activations": 2 * T * hidden_size * dtype_bytes,
        "captured_kv": 2 * T * C * dtype_bytes,
        "reconstructions": 4 * T * C * 4,
        "ridge": 4 * (2 * C + 1) * (3 * C + 1) + 8 * (2 * C + 1) * (4 * C + 1),
        "window": 12 * seqlen * C * 4,
    }


class _Errors:
    r"""Running sums for the held-out relMSE: :math:`\sum \|\hat x - x\|^2 / \sum \|x\|^2` in float64."""

    def __init__(self):
        self.num = self.den = 0.0

    def add(self, x: torch.Tensor, xhat: torch.Tensor) -> None:
        x = x.double()
        self.num += float(((xhat.double() - x) ** 2).sum())
        self.den += float((x * x).sum())

    def value(self) -> float:
        return self.num / max(self.den, 1e-300)


@torch.no_grad()
def calibrate(model, windows: torch.Tensor, config: AquaKVConfig | None = None,
              calibration: CalibrationConfig | None = None, *, out_dir: str | Path | None = None,
              resume: bool = False, offload: bool = False, progress: bool = True, device=None) -> CalibrationResult:  # fmt: skip
    """Fit the predictors of every layer on ``windows`` (``[N, L]`` token ids); the last
    ``calibration.valid_nsamples`` windows (default one in eight) are held out for the per-layer report.

    Memory: everything is done one window at a time. Per layer, the ridge sums of the key predictor
    are accumulated over the windows, then each window's keys are reconstructed (kept for the
    next layer) while the value predictor's sums accumulate, then each window's values are
    reconstructed. Beyond the engine's per-window activations, what stays is the two
    reconstructions per window handed to the next layer (on the CPU with ``offload``) and the
    sums, :math:`(2C+1)^2 + (2C+1) C` floats; the working set on the device is one window's rows.
    """
    cfg = config or AquaKVConfig()
    calib = calibration or CalibrationConfig()
    num_layers, kv_heads, head_dim = kv_layout(model.config)
    C = kv_heads * head_dim
    q0, q = quantizers(cfg, C)
    n = windows.shape[0]
    valid_nsamples = calib.holdout(n)
    percdamp = calib.percdamp
    n_train = n - valid_nsamples
    held = range(n_train, n) if valid_nsamples else range(n)
    key_name, value_name = capture_names(model)
    ckpt = None
    if out_dir is not None:
        meta = {"aquakv": cfg.to_dict(), "percdamp": percdamp, "windows": list(windows.shape),
                "valid_nsamples": valid_nsamples, "fingerprint": model_fingerprint(model)}  # fmt: skip
        ckpt = BlockCheckpoints(Path(out_dir) / "layers", meta, resume=resume)
    preds = Predictors(num_layers, C, {}, {}, model_fingerprint(model))
    result = CalibrationResult(preds)
    state: dict = {
        "prev": None
    }  # per window: layer L-1's reconstructed (keys, values), on the storage device
    t0 = time.perf_counter()

    def predict(pred, x, like):
        return torch.addmm(pred[1], x, pred[0].T) if pred is not None else torch.zeros_like(like)

    def callback(ctx):
        L, dev, storage = ctx.index, ctx.device, ctx.inputs.storage
        quant = q0 if L == 0 else q
        prev = state["prev"]

        def rows(name: str, b: int) -> torch.Tensor:  # one window's keys or values, [L, C] float32
            return ctx.captured[name][b].reshape(-1, C).to(dev).float()

        def prev_rows(i: int, b: int) -> torch.Tensor:
            return prev[i][b].to(dev)

        for b in range(n):
            for name in (key_name, value_name):
                if not torch.isfinite(ctx.captured[name][b]).all():
                    raise ValueError(f"non-finite keys/values in layer {L} during calibration")
        resumed = ckpt is not None and ckpt.done(L) and L > 0
        saved = None
        if resumed:
            from papercore.io import load_tensors

            saved = load_tensors(ckpt.path(L), device=dev)
        # 1. key predictor: ridge sums over the training windows, one window at a time
        kp = vp = None
        if L > 0:
            if saved is not None:
                kp = (saved["key.weight"], saved["key.bias"])
            else:
                acc = RidgeAccumulator(C, C, device=dev)
                for b in range(n_train):
                    acc.update(prev_rows(0, b), rows(key_name, b))
                kp = acc.solve(percdamp)
                del acc
        # 2. reconstruct each window's keys (kept for the next layer); value predictor's sums
        acc = RidgeAccumulator(2 * C, C, device=dev) if L > 0 and saved is None else None
        errs = {k: _Errors() for k in ("k_pred", "k_hat", "v_pred", "v_hat")}
        k_hats = []
        for b in range(n):
            k = rows(key_name, b)
            pk = predict(kp, prev_rows(0, b) if L else None, k)
            k_hat = pk + quant(k - pk)
            if b in held:
                errs["k_pred"].add(k, pk)
                errs["k_hat"].add(k, k_hat)
            if acc is not None and b < n_train:
                acc.update(torch.cat([k_hat, prev_rows(1, b)], 1), rows(value_name, b))
            k_hats.append(k_hat.to(storage))
            del k, pk, k_hat
        if L > 0:
            vp = (saved["value.weight"], saved["value.bias"]) if saved is not None else acc.solve(percdamp)
        del acc
        # 3. reconstruct each window's values
        v_hats = []
        for b in range(n):
            v = rows(value_name, b)
            x = torch.cat([k_hats[b].to(dev), prev_rows(1, b)], 1) if L else None
            pv = predict(vp, x, v)
            v_hat = pv + quant(v - pv)
            if b in held:
                errs["v_pred"].add(v, pv)
                errs["v_hat"].add(v, v_hat)
            v_hats.append(v_hat.to(storage))
            del v, x, pv, v_hat
        rep = LayerReport(
            L,
            errs["k_pred"].value() if L else None,
            errs["v_pred"].value() if L else None,
            errs["k_hat"].value(),
            errs["v_hat"].value(),
            resumed,
        )
        result.layers.append(rep)
        if L > 0:
            preds.key[L], preds.value[L] = (kp[0].cpu(), kp[1].cpu()), (vp[0].cpu(), vp[1].cpu())
            if ckpt is not None and not resumed:
                from papercore.io import save_tensors

                save_tensors(ckpt.path(L), {"key.weight": kp[0], "key.bias": kp[1],
                                            "value.weight": vp[0], "value.bias": vp[1]})  # fmt: skip
        state["prev"] = (k_hats, v_hats)  # layer L-1's are dropped when this callback returns
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
