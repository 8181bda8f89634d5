"""Checkpoints in the upstream AQLM format, loadable by transformers' built-in AQLM support.

A checkpoint is a ``save_pretrained`` folder: ``config.json`` with
``quantization_config = {"quant_method": "aqlm", "num_codebooks", "nbits_per_codebook",
"in_group_size", "out_group_size", "linear_weights_not_to_quantize"}``, and safetensors weights in
which every quantized linear ``<name>`` has ``<name>.codes`` (``[out/out_g, in/g, M]``, int8 for
B <= 8 else int16, unsigned codes stored signed), ``<name>.codebooks`` (``[M, 2^B, out_g, g]``),
``<name>.scales`` (``[out/out_g, 1, 1, 1]``) and ``<name>.bias`` when it has one.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from aqlm.quantized_linear import QuantizedLinear
from papercore.io import atomic_dir, safetensors_headers

log = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A checkpoint whose files or tensors do not match its configuration."""


def quantization_config(model: nn.Module) -> dict:
    """The ``quantization_config`` entry describing ``model``'s quantized linears."""
    layers = {n: m for n, m in model.named_modules() if isinstance(m, QuantizedLinear)}
    if not layers:
        raise ValueError("the model has no aqlm.QuantizedLinear layers: quantize it first")
    schemes = {
        (m.num_codebooks, m.nbits_per_codebook, m.in_group_size, m.out_group_size) for m in layers.values()
    }
    if len(schemes) > 1:
        raise ValueError(f"the upstream format needs one scheme for all layers, found {sorted(schemes)}")
    m, b, g, og = schemes.pop()
    # Both module names and parameter names: transformers matched "<name>.weight" in older versions
    # and matches module-name patterns in newer ones.
    keep = [n for n, mod in model.named_modules() if isinstance(mod, nn.Linear)]
    return {
        "quant_method": "aqlm",
        "num_codebooks": m,
        "nbits_per_codebook": b,
        "in_group_size": g,
        "out_group_size": og,
        "linear_weights_not_to_quantize": sorted(keep + [f"{n}.weight" for n in keep]),
    }


def save_quantized(
    model: nn.Module,
    path: str | os.PathLike,
    tokenizer=None,
    *,
    codebook_dtype: torch.dtype | None = torch.float16,
) -> Path:
    """Save a quantized transformers model as an upstream-format AQLM checkpoint.

    Codebooks and scales are first rounded to ``codebook_dtype`` *in place* (float16 by default,
    the upstream format's dtype; None keeps them as they are), so the model in memory is the one
    on disk. A new folder is written atomically. Into an existing folder (e.g. the output folder
    of ``aqlm quantize``, which also holds a summary and per-block checkpoints) the model files
    are moved one by one, ``config.json`` last, after the old model files are removed: an
    interrupted save leaves no ``config.json``, so never a loadable mix of two models.
    """
    path = Path(path)
    qcfg = quantization_config(model)
    if codebook_dtype is not None:
        for module in model.modules():
            if isinstance(module, QuantizedLinear):
                module.store_as_(codebook_dtype)

    def write(folder: Path) -> None:
        model.config.quantization_config = qcfg
        model.save_pretrained(folder, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)

    if not path.exists() or not any(path.iterdir()):
        with atomic_dir(path) as tmp:
            write(tmp)
        return path
    with tempfile.TemporaryDirectory(prefix=".save-", dir=path) as tmp:
        write(Path(tmp))
        (path / "config.json").unlink(missing_ok=True)
        for old in [*path.glob("*.safetensors"), *path.glob("*.safetensors.index.json")]:
            old.unlink()
        files = sorted(Path(tmp).iterdir(), key=lambda f: f.name == "config.json")
        for f in files:
            os.replace(f, path / f.name)
    return path


def replace_linears(model: nn.Module, qcfg: dict, *, device=None, dtype=None) -> list[str]:
    """Swap every ``nn.Linear`` not listed in ``linear_weights_not_to_quantize`` for an empty QuantizedLinear."""
    skip = set(qcfg.get("linear_weights_not_to_quantize") or [])
    replaced = []
    for name, module in list(model.named_modules()):
        if not isinstance(module, nn.Linear) or name in skip or f"{name}.weight" in skip:
            continue
        q = QuantizedLinear(
            module.in_features,
            module.out_features,
            qcfg["in_group_size"],
            qcfg["out_group_size"],
            qcfg["num_codebooks"],
            qcfg["nbits_per_codebook"],
            bias=module.bias is not None,
            device=device,
            dtype=dtype or module.weight.dtype,
        )
        model.set_submodule(name, q)
        replaced.append(name)
    return replaced


def load_quantized(
    path: str | os.PathLike, *, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
):
    """Load an AQLM checkpoint (ours or upstream) as a transformers model with ``QuantizedLinear`` layers.

    Codebooks and scales keep the dtype they are stored in (fp16 in the upstream format; the
    forward computes in the activations' dtype), so bits are counted from what is stored.

    Every tensor is checked against the configuration first (names, shapes, code dtypes, read from
    the safetensors headers without loading data); a mismatch raises :class:`CheckpointError`
    naming it. Loading itself goes through ``AutoModelForCausalLM.from_pretrained``, which builds
    ``aqlm.QuantizedLinear`` layers from the ``quantization_config``.
    """
    from transformers import AutoModelForCausalLM

    path = Path(path)
    expected = expected_tensors(path)
    _check_files(path, expected)
    kwargs = {"dtype": dtype} if dtype is not None else {}
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    _restore_stored(model, path)
    return model.to(device).eval()


@torch.no_grad()
def _restore_stored(model: nn.Module, path: Path) -> None:
    """Codebooks and scales exactly as stored (transformers casts them to the model's dtype)."""
    from safetensors import safe_open

    layers = {n: m for n, m in model.named_modules() if isinstance(m, QuantizedLinear)}
    for f in sorted(path.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            for key in st.keys():  # noqa: SIM118 (safe_open is not iterable)
                name, _, attr = key.rpartition(".")
                if name in layers and attr in ("codebooks", "scales"):
                    layer = layers[name]
                    old = getattr(layer, attr)
                    setattr(layer, attr, nn.Parameter(st.get_tensor(key).to(old.device), requires_grad=False))


def expected_tensors(path: Path) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Names, shapes and dtypes of the tensors the checkpoint's config.json describes."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no config.json in {path}: not a saved model folder")
    qcfg = json.loads((path / "config.json").read_text()).get("quantization_config")
    if not qcfg or qcfg.get("quant_method") != "aqlm":
        raise CheckpointError(f"{path}/config.json has no AQLM quantization_config (quant_method 'aqlm')")
    config = AutoConfig.from_pretrained(path)
    config.quantization_config = None
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    replace_linears(model, qcfg, device="meta")
    tied = getattr(config, "tie_word_embeddings", False)
    return {
        name: (tuple(p.shape), p.dtype)
        for name, p in model.named_parameters(remove_duplicate=False)
        if not (tied and name == "lm_head.weight")
    }


def _check_files(path: Path, expected: dict) -> None:
    found = safetensors_headers(path)
    missing = [k for k in expected if k not in found]
    if missing:
        raise CheckpointError(
            f"{path}: tensors missing from the checkpoint: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
        )
    for key, (shape, st_dtype) in found.items():
        if key not in expected:
            if key.endswith(".weight") and key.removesuffix(".weight") + ".codes" in expected:
                raise CheckpointError(
                    f"{path}: {key} is a dense weight but the config says this layer is quantized"
                )
            raise CheckpointError(
                f"{path}: unexpected tensor {key} (not in the model described by config.json)"
            )
        want_shape, want_dtype = expected[key]
        if shape != want_shape:
            raise CheckpointError(f"{path}: {key} has shape {shape}, the config implies {want_shape}")
        if key.endswith(".codes") and st_dtype != _ST_DTYPES[want_dtype]:
            raise CheckpointError(
                f"{path}: {key} is stored as {st_dtype}, expected {_ST_DTYPES[want_dtype]} for its bit width"
            )


_ST_DTYPES = {torch.int8: "I8", torch.int16: "I16", torch.int32: "I32", torch.int64: "I64"}
