"""The evaluation harness shared by the CLI and the benchmarks: one cache factory per method,
chunked-feeding perplexity, exact bits and measured bytes."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import torch

from aquakv.cache import AquaKVCache, kv_layout
from aquakv.config import AquaKVConfig, CalibrationConfig, config_bytes_per_token
from aquakv.kivi import KIVICache, hf_quantized_cache
from aquakv.predictors import Predictors, model_fingerprint

log = logging.getLogger(__name__)

METHODS = ("aquakv", "higgs", "kivi2", "kivi4", "hf-quantized2", "fp16")


def cache_factory(method: str, model, predictors: Predictors | None, cfg: AquaKVConfig, *,
                  backend: str = "auto", kivi_group: int = 32):  # fmt: skip
    """A zero-argument function returning a fresh cache for ``method`` (None: the plain dynamic cache);
    raises ``ValueError`` for an unknown method, ``RuntimeError`` when a backend is missing."""
    if method == "aquakv":
        if predictors is None:
            raise ValueError("method aquakv needs predictors")
        return lambda: AquaKVCache(model, predictors, cfg, backend=backend)
    if method == "higgs":
        return lambda: AquaKVCache(model, None, cfg, backend=backend)
    if method in ("kivi2", "kivi4"):
        bits = int(method[-1])
        return lambda: KIVICache(model, bits, group=kivi_group, residual=cfg.buffer_size)
    if method == "hf-quantized2":
        if hf_quantized_cache(model, 2) is None:
            raise RuntimeError(
                "transformers' QuantizedCache needs optimum-quanto or hqq, neither is installed"
            )
        return lambda: hf_quantized_cache(model, 2)
    if method == "fp16":
        return None
    raise ValueError(f"unknown method {method!r}: choose from {', '.join(METHODS)}")


def chunked_perplexity(model, windows: torch.Tensor, factory, *, chunk_size: int = 32, batch_size: int = 4,
                       progress: bool = False) -> tuple[float, object]:  # fmt: skip
    """Perplexity with tokens fed ``chunk_size`` at a time; returns (ppl, the last cache)."""
    from papercore.llm.metrics import perplexity

    last = {}

    def make():
        last["cache"] = factory() if factory is not None else None
        if last["cache"] is None:
            from transformers import DynamicCache

            last["cache"] = DynamicCache(config=model.config)
        return last["cache"]

    ppl = perplexity(model, windows, batch_size=batch_size, chunk_size=chunk_size, cache_factory=make,
                     progress=progress)  # fmt: skip
    return ppl, last.get("cache")


def storage_report(model, cache, cfg: AquaKVConfig | None = None) -> dict:
    """Measured quantized bytes per token (from the packed tensors) and, for AQUA-KV, the formula."""
    L, H, D = kv_layout(model.config)
    fp16 = 2 * L * H * D * 2
    out = {"fp16_bytes_per_token": fp16}
    if hasattr(cache, "measured_bytes_per_token"):
        m = cache.measured_bytes_per_token()
        out.update(measured_bytes_per_token=m, bits_per_value=8 * m / (2 * L * H * D),
                   compression_vs_fp16=fp16 / m if m else None, memory=cache.memory())  # fmt: skip
    if isinstance(cache, AquaKVCache) and cfg is not None:
        out["formula_bytes_per_token"] = config_bytes_per_token(cfg, L, H * D)
    return out


def builtin_predictors(model, cfg: AquaKVConfig, tokenizer, *, nsamples: int = 32, seqlen: int = 256,
                       seed: int = 0, device=None, progress: bool = False) -> Predictors:  # fmt: skip
    """Predictors for ``model`` calibrated on the offline stdlib corpus, cached on disk (first use calibrates)."""
    from aquakv.calibrate import calibrate
    from papercore.llm.data import get_calibration_data
    from papercore.llm.zoo import cache_dir

    fields = cfg.to_dict()
    fields["version"] = fields.pop(
        "version"
    )  # the key's field order of aquakv 0.1 (cached predictors stay valid)
    key = json.dumps({"fp": model_fingerprint(model), "cfg": fields, "n": nsamples, "L": seqlen, "s": seed})
    folder = cache_dir() / "aquakv" / "predictors" / hashlib.sha256(key.encode()).hexdigest()[:16]
    if (folder / "predictors.json").is_file():
        try:
            return Predictors.load(folder)
        except (ValueError, OSError):
            log.warning("cached predictors in %s are unreadable; recalibrating", folder)
    windows = get_calibration_data("stdlib", tokenizer, nsamples, seqlen, seed=seed)
    result = calibrate(
        model, windows, cfg, CalibrationConfig(valid_nsamples=0), progress=progress, device=device
    )
    from papercore.io import atomic_dir

    with atomic_dir(folder) as tmp:  # built under a temporary name, renamed into place
        result.predictors.save(tmp)
    return result.predictors


def load_predictors(path: str | Path, model) -> Predictors:
    p = Predictors.load(path)
    p.check(model)
    return p
