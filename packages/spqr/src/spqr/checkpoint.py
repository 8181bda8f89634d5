"""Save and load SpQR-quantized transformers models (safetensors + ``config.json``).

A checkpoint is a ``save_pretrained`` folder whose ``config.json`` has::

    "quantization_config": {
        "quant_method": "spqr_papers",
        "bits": wbits, "beta1": groupsize, "beta2": qq_groupsize,
        "qq_scale_bits": ..., "qq_zero_bits": ..., "sym": ...,
        "outlier_threshold": tau (null: no outliers),
        "config": the full SpQRConfig (to_dict),
        "layers": {"model.layers.0.self_attn.q_proj": {"in_features", "out_features", "nnz", "bias"}, ...}
    }

and whose safetensors hold, for each quantized linear ``<name>``, the buffers of
:class:`~spqr.quantized_linear.QuantizedLinear` (``<name>.codes``, ``<name>.perm``, the statistics,
``<name>.outlier_row_offsets`` / ``outlier_col_indices`` / ``outlier_values``, ``<name>.bias``).

``quant_method`` is ``"spqr_papers"`` because transformers' built-in ``"spqr"`` belongs to the
authors' ``spqr_quant`` package (3-bit 16x16 only, another tensor layout). Load these folders with
:func:`load_quantized` (which checks every tensor against the config first), or, after
``import spqr`` (which registers a transformers quantizer, :mod:`spqr.hf_quantizer`), with
``AutoModelForCausalLM.from_pretrained``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from papercore.io import safetensors_headers
from spqr.config import SpQRConfig
from spqr.quantized_linear import QuantizedLinear

QUANT_METHOD = "spqr_papers"


class CheckpointError(ValueError):
    """A checkpoint whose files or tensors do not match its configuration."""


def quantization_config(model: nn.Module, config: SpQRConfig | None = None) -> dict:
    """The ``quantization_config`` entry describing ``model``'s QuantizedLinear layers."""
    layers = {n: m for n, m in model.named_modules() if isinstance(m, QuantizedLinear)}
    if not layers:
        raise ValueError("the model has no spqr.QuantizedLinear layers: quantize it with store=True first")
    schemes = {
        (m.wbits, m.groupsize, m.qq_scale_bits, m.qq_zero_bits, m.qq_groupsize, m.sym)
        for m in layers.values()
    }
    if len(schemes) > 1:
        raise ValueError(f"all quantized layers must share one grid, found {sorted(schemes)}")
    wbits, beta1, qs, qz, beta2, sym = schemes.pop()
    if config is None:
        config = SpQRConfig(
            wbits=wbits, groupsize=beta1, qq_scale_bits=qs, qq_zero_bits=qz, qq_groupsize=beta2, sym=sym
        )
    tau = config.outlier_threshold
    return {
        "quant_method": QUANT_METHOD,
        "bits": wbits,
        "beta1": beta1,
        "beta2": beta2,
        "qq_scale_bits": qs,
        "qq_zero_bits": qz,
        "sym": sym,
        "outlier_threshold": tau if math.isfinite(tau) else None,
        "config": {**config.to_dict(), "outlier_threshold": tau if math.isfinite(tau) else None},
        "layers": {
            n: {
                "in_features": m.in_features,
                "out_features": m.out_features,
                "nnz": m.nnz,
                "bias": m.bias is not None,
            }
            for n, m in layers.items()
        },
    }


def save_quantized(
    model: nn.Module, path: str | os.PathLike, tokenizer=None, config: SpQRConfig | None = None
) -> Path:
    """Save a model with QuantizedLinear layers into the folder ``path`` (created if needed).

    The files are written to a temporary folder inside ``path`` and moved in, ``config.json`` last
    (it is removed first, so a crash halfway leaves a folder that is not a model rather than a mixed
    one). An earlier model's weights in ``path`` are replaced; other files (a run's summary, its
    per-block checkpoints) are kept, so ``path`` can be the output folder of a run.
    """
    path = Path(path)
    qcfg = quantization_config(model, config)
    path.mkdir(parents=True, exist_ok=True)
    old = model.config.to_dict().get("quantization_config")
    tmp = Path(tempfile.mkdtemp(prefix=".save-", dir=path))
    try:
        model.config.quantization_config = qcfg
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        (path / "config.json").unlink(missing_ok=True)
        for stale in [*path.glob("*.safetensors"), *path.glob("*.safetensors.index.json")]:
            stale.unlink()
        for f in sorted(tmp.iterdir(), key=lambda f: f.name == "config.json"):
            os.replace(f, path / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is None:
            del model.config.quantization_config
        else:
            model.config.quantization_config = old
    return path


def _read_qcfg(path: Path) -> dict:
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no config.json in {path}: not a saved model folder")
    qcfg = json.loads((path / "config.json").read_text()).get("quantization_config")
    if not qcfg or qcfg.get("quant_method") != QUANT_METHOD:
        raise CheckpointError(
            f"{path}/config.json has no SpQR quantization_config (quant_method {QUANT_METHOD!r})"
        )
    return qcfg


def spqr_config(qcfg: dict) -> SpQRConfig:
    d = dict(qcfg["config"])
    if d.get("outlier_threshold") is None:
        d["outlier_threshold"] = math.inf
    return SpQRConfig.from_dict(d)


def _build(path: Path, qcfg: dict, device) -> nn.Module:
    """The model of ``config.json`` with QuantizedLinear layers of the recorded shapes (uninitialised)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(path)
    config.quantization_config = None
    del config.quantization_config
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config)
    try:
        swap_quantized_layers(model, qcfg)
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from e
    return model


def swap_quantized_layers(model: nn.Module, qcfg: dict) -> None:
    """Replace each linear named in ``qcfg["layers"]`` by an uninitialised QuantizedLinear of its shape."""
    cfg = spqr_config(qcfg)
    for name, shape in qcfg["layers"].items():
        try:
            old = model.get_submodule(name)
        except AttributeError as e:
            raise ValueError(f"quantized layer {name} is not in the model of config.json") from e
        if not isinstance(old, nn.Linear) or (old.out_features, old.in_features) != (
            shape["out_features"],
            shape["in_features"],
        ):
            raise ValueError(f"{name} is not a {shape['out_features']}x{shape['in_features']} linear")
        q = QuantizedLinear.from_config(
            cfg,
            shape["in_features"],
            shape["out_features"],
            nnz=shape["nnz"],
            bias=shape["bias"],
            device=old.weight.device,
            dtype=old.weight.dtype,
        )
        q.requires_grad_(False)
        model.set_submodule(name, q)


_ST_DTYPES = {
    torch.int8: "I8",
    torch.int16: "I16",
    torch.int32: "I32",
    torch.int64: "I64",
    torch.uint8: "U8",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float32: "F32",
    torch.float64: "F64",
    torch.bool: "BOOL",
}


def expected_tensors(
    path: Path, qcfg: dict
) -> tuple[dict[str, tuple[tuple[int, ...], str | None]], nn.Module]:
    """Names, shapes and (for quantized layers) dtypes the checkpoint's config.json implies."""
    meta = _build(path, qcfg, "meta")
    tied = getattr(meta.config, "tie_word_embeddings", False)
    quantized = tuple(f"{n}." for n in qcfg["layers"])
    expected = {}
    for name, t in meta.state_dict().items():
        if tied and name == "lm_head.weight":
            continue
        dtype = _ST_DTYPES[t.dtype] if name.startswith(quantized) and not name.endswith(".bias") else None
        expected[name] = (tuple(t.shape), dtype)
    return expected, meta


def check_checkpoint(path: str | os.PathLike) -> dict:
    """Check every tensor of the checkpoint against its config.json (headers only); raise CheckpointError."""
    path = Path(path)
    qcfg = _read_qcfg(path)
    expected, _ = expected_tensors(path, qcfg)
    found = safetensors_headers(path)
    for key, (shape, st_dtype) in found.items():
        if key not in expected:
            raise CheckpointError(
                f"{path}: unexpected tensor {key} (not in the model described by config.json)"
            )
        want_shape, want_dtype = expected[key]
        if shape != want_shape:
            raise CheckpointError(f"{path}: {key} has shape {shape}, the config implies {want_shape}")
        if want_dtype is not None and st_dtype != want_dtype:
            raise CheckpointError(f"{path}: {key} is stored as {st_dtype}, the format needs {want_dtype}")
    missing = [k for k in expected if k not in found]
    if missing:
        raise CheckpointError(f"{path}: tensor {missing[0]} is missing ({len(missing)} missing in all)")
    return qcfg


def load_quantized(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Load a folder written by :func:`save_quantized`: checked first (:func:`check_checkpoint`), then built
    on the CPU with QuantizedLinear layers, loaded, converted to the kernel layout (which replaces
    the stored buffers), moved to ``device`` and put in eval mode."""
    from safetensors.torch import load_file

    path = Path(path)
    qcfg = check_checkpoint(path)
    model = _build(path, qcfg, "cpu")
    state = {}
    for f in sorted(path.glob("*.safetensors")):
        state.update(load_file(str(f)))
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    tied = getattr(model.config, "tie_word_embeddings", False)
    if unexpected or [m for m in missing if not (tied and m == "lm_head.weight")]:
        raise CheckpointError(f"{path}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    if tied:
        model.tie_weights()
    to_kernel_layout_(model)
    model.config.quantization_config = qcfg
    return model.to(device).eval()


def to_kernel_layout_(model: nn.Module) -> nn.Module:
    """Convert every QuantizedLinear of ``model`` to the kernel layout (one copy of each weight in
    memory; see :meth:`QuantizedLinear.to_kernel_layout_`), in place."""
    for m in model.modules():
        if isinstance(m, QuantizedLinear):
            m.to_kernel_layout_()
    return model
