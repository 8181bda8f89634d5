"""One copy in memory: a loaded model's quantized linears hold about what the checkpoint stores.

The kernel layout replaces the stored buffers (converted at load and quantize time, converted back
at save); nothing is cached beside them. Bytes are counted on the CPU, after a forward pass of every
layer through the Triton path (under ``TRITON_INTERPRET=1``), which is when a cache would be built.
The GPU check (``torch.cuda.memory_allocated`` around ``load_quantized(..., device="cuda")``) is
for a GPU run (see the README).
"""

import dataclasses

import pytest
import torch
from torch import nn

from papercore.io import safetensors_headers
from papercore.kernels.packing import pack_bits
from papercore.llm import zoo
from papercore.testing import triton_or_skip
from spqr.checkpoint import load_quantized, save_quantized
from spqr.config import SpQRConfig
from spqr.kernels import spqr_linear
from spqr.quantized_linear import QuantizedLinear, build_csr

ST_BYTES = {"I8": 1, "U8": 1, "I16": 2, "F16": 2, "BF16": 2, "I32": 4, "F32": 4, "I64": 8, "F64": 8}


def random_stored_layer(cfg: SpQRConfig, inp: int, out: int, seed: int, outliers: float = 0.01):
    """A QuantizedLinear filled through its stored buffers (random codes, statistics, outliers)."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(out, inp, generator=gen) < outliers
    q = QuantizedLinear.from_config(cfg, inp, out, nnz=int(mask.sum()), bias=False)
    groups = inp // cfg.groupsize
    with torch.no_grad():
        q.codes.copy_(
            pack_bits(torch.randint(0, 2**cfg.wbits, (out, inp), generator=gen, dtype=torch.int32), cfg.wbits)
        )
        q.perm.copy_(torch.randperm(inp, generator=gen).to(q.perm.dtype))
        for stat, bits in q._stats():
            if bits < 16:
                c = torch.randint(0, 2**bits, (out * groups,), generator=gen, dtype=torch.int32)
                getattr(q, f"{stat}_codes").copy_(pack_bits(c, bits))
                getattr(q, f"{stat}_qq_scale").copy_(
                    (torch.rand(out // 16, groups, generator=gen) * 0.1).half()
                )
                getattr(q, f"{stat}_qq_zero").copy_((torch.rand(out // 16, groups, generator=gen) * 4).half())
            else:
                getattr(q, stat).copy_(torch.rand(out, groups, generator=gen).half())
        offsets, cols, vals = build_csr(mask, torch.randn(int(mask.sum()), generator=gen), q.perm.dtype)
        q.outlier_row_offsets.copy_(offsets)
        q.outlier_col_indices.copy_(cols)
        q.outlier_values.copy_(vals)
    return q


def held_bytes(module: nn.Module) -> int:
    """Bytes of every tensor the module holds: parameters, buffers, and tensors kept in its attributes
    (directly, in containers or in dataclasses such as a cached kernel layout), each storage once."""
    seen, total = set(), 0

    def visit(obj, depth=0):
        nonlocal total
        if isinstance(obj, torch.Tensor):
            key = (obj.untyped_storage().data_ptr(), obj.untyped_storage().nbytes())
            if key not in seen:
                seen.add(key)
                total += obj.untyped_storage().nbytes()
        elif depth < 3 and isinstance(obj, dict):
            for v in obj.values():
                visit(v, depth + 1)
        elif depth < 3 and isinstance(obj, list | tuple):
            for v in obj:
                visit(v, depth + 1)
        elif depth < 3 and dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            for f in dataclasses.fields(obj):
                visit(getattr(obj, f.name), depth + 1)

    visit({k: v for k, v in vars(module).items() if k not in ("_modules",)})
    return total


@pytest.mark.parametrize("preset", ["w3", "gptq4"])  # 3-bit statistics; fp16 ones in groups of 4 slabs
def test_loaded_quantized_linears_hold_one_copy(tmp_path, preset):
    triton_or_skip()
    cfg = SpQRConfig.from_preset(preset)
    model = zoo.random_model("llama", vocab_size=64, hidden_size=128, intermediate_size=128, num_layers=1)
    block = model.model.layers[0]
    names = []
    for i, (name, lin) in enumerate(list(block.named_modules())):
        if isinstance(lin, nn.Linear):
            block.set_submodule(name, random_stored_layer(cfg, lin.in_features, lin.out_features, seed=i))
            names.append(f"model.layers.0.{name}")
    save_quantized(model, tmp_path / "m", config=cfg)
    headers = safetensors_headers(tmp_path / "m")
    loaded = load_quantized(tmp_path / "m")
    for name in names:
        layer = loaded.get_submodule(name)
        if name.endswith(("k_proj", "v_proj")):  # the smallest layers: the interpreter is slow
            with torch.no_grad():  # the fast kernel path, where a cache would be built
                spqr_linear(torch.randn(1, layer.in_features), layer, backend="triton")
        stored = sum(
            torch.Size(shape).numel() * ST_BYTES[dt]
            for k, (shape, dt) in headers.items()
            if k.startswith(name + ".")
        )
        held = held_bytes(layer)
        assert held <= 1.05 * stored, f"{name}: holds {held} bytes, the checkpoint stores {stored}"
