"""The layer-by-layer calibration engine shared by GPTQ/SpQR, AQLM and AQUA-KV.

1. Capture the inputs of the first decoder block for the calibration sequences (hidden states
   plus everything the model passes to its blocks: attention mask, position ids, rotary
   embeddings).
2. For each block in order: run it on its inputs while hooks accumulate, per linear layer, the
   mean :math:`\\frac{1}{T} X^\\top X` of its inputs (float64 by default) and capture any
   requested submodule outputs; hand the block and its statistics to the method's callback,
   which quantizes or replaces its linears (optionally in true-sequential groups: q/k/v, then
   o, then gate/up, then down, each group's statistics taken after the previous group was
   modified); then recompute the block's outputs and feed them to the next block.

Example::

    def quantize_block(ctx: BlockContext) -> None:
        for name, linear in ctx.linears.items():
            linear.weight.data = my_quantizer(linear.weight, ctx.xtx[name])

    run_calibration(model, calibration_ids, quantize_block, CalibConfig(offload=True))
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from papercore.llm.hf_compat import decoder_layers
from papercore.runtime import progress as progress_bar

log = logging.getLogger(__name__)

# Default true-sequential order for Llama-style blocks; linears matching none run last, together.
SEQUENTIAL_GROUPS: tuple[tuple[str, ...], ...] = (
    ("q_proj", "k_proj", "v_proj", "qkv_proj"),
    ("o_proj",),
    ("gate_proj", "up_proj", "gate_up_proj"),
    ("down_proj",),
)


@dataclass
class CalibConfig:
    """Options of :func:`run_calibration`."""

    batch_size: int = 1  # sequences per block forward
    offload: bool = False  # keep block inputs/outputs on the CPU between blocks
    device: str | torch.device | None = None  # where blocks run (default: the model's device)
    dtype: torch.dtype | None = None  # run blocks and activations in this dtype (default: the model's)
    xtx_dtype: torch.dtype = torch.float64
    collect_xtx: bool = True
    true_sequential: bool = False
    groups: tuple[tuple[str, ...], ...] = SEQUENTIAL_GROUPS
    propagate: Literal["modified", "original"] = "modified"  # what the next block sees
    capture: tuple[str, ...] = ()  # names of submodules (within a block) whose outputs are kept
    progress: bool = True


@dataclass
class BlockInputs:
    """Inputs of one decoder block, in batches: hidden states plus the keyword arguments the model passes."""

    hidden: list[torch.Tensor]
    kwargs: list[dict[str, Any]]
    storage: torch.device

    def __len__(self) -> int:
        return len(self.hidden)


@dataclass
class BlockContext:
    """What a method callback gets for one block (or one true-sequential group of it)."""

    index: int
    block: nn.Module
    linears: dict[str, nn.Linear]  # the linears to process now, by name within the block
    xtx: dict[str, torch.Tensor]  # mean X^T X of each linear's input, [in, in]
    num_tokens: dict[str, int]
    inputs: BlockInputs
    reference_outputs: list[torch.Tensor]  # outputs of the unmodified block, per batch
    captured: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    device: torch.device = torch.device("cpu")
    group: int = 0  # index of the true-sequential group (0 when not sequential)

    def run_block(self, hidden: torch.Tensor, batch: int) -> torch.Tensor:
        """Run the (possibly modified) block on ``hidden`` with the kwargs of batch ``batch``."""
        return _call_block(self.block, hidden.to(self.device), _to(self.inputs.kwargs[batch], self.device))


class _StopForward(Exception):
    pass


class _Catcher(nn.Module):
    """Stands in for the first block: records its inputs, then stops the forward pass."""

    def __init__(self, block: nn.Module, store: Callable[[torch.Tensor, dict], None]):
        super().__init__()
        self.block = block
        self.store = store

    def __getattr__(self, name: str):  # models read attributes such as `attention_type` off blocks
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.block, name)

    def forward(self, hidden_states, *args, **kwargs):
        if args:
            raise NotImplementedError(
                "decoder blocks called with extra positional arguments are not supported"
            )
        self.store(hidden_states, kwargs)
        raise _StopForward


def _to(obj, device):
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, tuple | list):
        return type(obj)(_to(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    return obj


def _cast_float(obj, dtype):
    """Cast floating-point tensors (rotary cos/sin, additive masks) to ``dtype``; leave the rest."""
    if isinstance(obj, torch.Tensor):
        return obj.to(dtype) if obj.is_floating_point() else obj
    if isinstance(obj, tuple | list):
        return type(obj)(_cast_float(o, dtype) for o in obj)
    return obj


def _call_block(block: nn.Module, hidden: torch.Tensor, kwargs: dict) -> torch.Tensor:
    out = block(hidden, **kwargs)
    return out[0] if isinstance(out, tuple | list) else out


def _model_device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def capture_block_inputs(
    model,
    input_ids: torch.Tensor | Sequence[torch.Tensor],
    *,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    offload: bool = False,
) -> BlockInputs:
    """Inputs of the first decoder block for each batch of ``input_ids`` (``[N, L]`` or a list of ``[L]``)."""
    layers = decoder_layers(model)
    device = torch.device(device) if device is not None else _model_device(model)
    storage = torch.device("cpu") if offload else device
    if isinstance(input_ids, torch.Tensor):
        if input_ids.dim() != 2:
            raise ValueError(
                f"calibration input_ids must be [num_sequences, seqlen], got {tuple(input_ids.shape)}"
            )
        sequences = list(input_ids)
    else:
        sequences = list(input_ids)
    if not sequences:
        raise ValueError("no calibration sequences were given")
    inputs = BlockInputs([], [], storage)

    def store(hidden, kwargs):
        kwargs = {k: v for k, v in kwargs.items() if k not in ("past_key_values", "cache", "use_cache")}
        inputs.hidden.append(hidden.detach().to(storage))
        inputs.kwargs.append(_to(kwargs, storage))

    # Everything that runs before the first block (embeddings, rotary) goes to `device` for the capture.
    pre = [m for name, m in model.model.named_children() if name not in ("layers", "norm")]
    homes = [_model_device(m) if any(True for _ in m.parameters()) else None for m in pre]
    for m in pre:
        m.to(device)
    first = layers[0]
    layers[0] = _Catcher(first, store)
    try:
        for start in range(0, len(sequences), batch_size):
            ids = torch.stack(sequences[start : start + batch_size]).to(device)
            with contextlib.suppress(_StopForward):
                model(input_ids=ids, use_cache=False)
    finally:
        layers[0] = first
        for m, home in zip(pre, homes):
            if home is not None:
                m.to(home)
    return inputs


@torch.no_grad()
def run_calibration(
    model,
    input_ids: torch.Tensor | Sequence[torch.Tensor],
    callback: Callable[[BlockContext], None],
    config: CalibConfig | None = None,
    *,
    layer_indices: Sequence[int] | None = None,
) -> BlockInputs:
    """Process the decoder blocks in order (see the module docstring); returns the last block's outputs.

    ``layer_indices`` limits which blocks get the callback (all blocks still propagate, in order).
    """
    config = config or CalibConfig()
    if config.propagate not in ("modified", "original"):
        raise ValueError(f"propagate must be 'modified' or 'original', got {config.propagate!r}")
    layers = decoder_layers(model)
    device = torch.device(config.device) if config.device is not None else _model_device(model)
    inputs = capture_block_inputs(
        model, input_ids, batch_size=config.batch_size, device=device, offload=config.offload
    )
    selected = set(range(len(layers)) if layer_indices is None else layer_indices)
    blocks = range(len(layers))
    for i in progress_bar(blocks, desc="blocks") if config.progress else blocks:
        block = layers[i]
        home, home_dtype = _model_device(block), next(block.parameters()).dtype
        block.to(device=device, dtype=config.dtype or home_dtype)
        if i in selected:
            outputs = _process_block(i, block, inputs, callback, config, device)
        else:
            outputs = [_run(block, inputs, b, device).to(inputs.storage) for b in range(len(inputs))]
        inputs = BlockInputs(outputs, inputs.kwargs, inputs.storage)
        block.to(device=home, dtype=home_dtype)
    return inputs


def _run(block, inputs: BlockInputs, b: int, device) -> torch.Tensor:
    return _call_block(block, inputs.hidden[b].to(device), _to(inputs.kwargs[b], device))


def _linears(block: nn.Module) -> dict[str, nn.Linear]:
    return {name: m for name, m in block.named_modules() if isinstance(m, nn.Linear)}


def _groups(linears: dict[str, nn.Linear], config: CalibConfig) -> list[list[str]]:
    names = list(linears)
    if not config.true_sequential:
        return [names]
    groups, taken = [], set()
    for suffixes in config.groups:
        g = [n for n in names if n.rsplit(".", 1)[-1] in suffixes and n not in taken]
        if g:
            groups.append(g)
            taken.update(g)
    rest = [n for n in names if n not in taken]
    return groups + ([rest] if rest else [])


def _process_block(
    i, block, inputs: BlockInputs, callback, config: CalibConfig, device
) -> list[torch.Tensor]:
    linears = _linears(block)
    reference: list[torch.Tensor] = []
    for g, names in enumerate(_groups(linears, config)):
        group = {n: linears[n] for n in names}
        sums = {n: None for n in names}
        counts = {n: 0 for n in names}
        captured: dict[str, list[torch.Tensor]] = {name: [] for name in config.capture} if g == 0 else {}
        handles = []
        if config.collect_xtx:
            for n, lin in group.items():
                handles.append(lin.register_forward_hook(_xtx_hook(n, sums, counts, config.xtx_dtype)))
        for name in captured:
            module = block.get_submodule(name)
            handles.append(
                module.register_forward_hook(
                    lambda m, inp, out, name=name, captured=captured: captured[name].append(
                        (out[0] if isinstance(out, tuple) else out).detach().to(inputs.storage)
                    )
                )
            )
        try:
            for b in range(len(inputs)):
                out = _run(block, inputs, b, device)
                if g == 0:
                    reference.append(out.to(inputs.storage))
        finally:
            for h in handles:
                h.remove()
        xtx = {n: sums[n] / max(counts[n], 1) for n in names if sums[n] is not None}
        callback(BlockContext(i, block, group, xtx, counts, inputs, reference, captured, device, g))
    if config.propagate == "original":
        return reference
    return [_run(block, inputs, b, device).to(inputs.storage) for b in range(len(inputs))]


def _xtx_hook(name, sums, counts, dtype):
    def hook(module, inp, out):
        x = inp[0].detach().reshape(-1, inp[0].shape[-1]).to(dtype)
        if sums[name] is None:
            sums[name] = torch.zeros(x.shape[1], x.shape[1], dtype=dtype, device=x.device)
        sums[name].addmm_(x.T, x)
        counts[name] += x.shape[0]

    return hook


class BlockCheckpoints:
    """Finished blocks of a resumable layer-by-layer job: one safetensors file per block, written
    atomically, in a folder tied to one configuration (a run never mixes blocks of two).

    Parameters
    ----------
    folder : path
        Created if missing.
    config : dict
        The method's configuration (JSON-serialisable); stored as ``config_name`` in the folder.
    resume : bool
        Blocks already in the folder may be reused; without it a folder holding blocks is refused.
    write : bool
        Whether this process writes (False on all but rank 0 of a distributed run).
    """

    def __init__(
        self,
        folder: str | Path,
        config: dict,
        *,
        resume: bool,
        config_name: str = "config.json",
        write: bool = True,
    ):
        from papercore.io import write_json

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / config_name
        current = json.loads(json.dumps(config))  # as JSON sees it (tuples become lists)
        if path.exists():
            saved = json.loads(path.read_text())
            if saved != current:
                diff = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
                raise ValueError(
                    f"{self.folder} holds blocks quantized with another configuration (differs in: "
                    f"{', '.join(diff)}): use another checkpoint folder or the same options"
                )
            if not resume and any(self.folder.glob("block_*.safetensors")):
                raise ValueError(
                    f"{self.folder} already holds quantized blocks: pass --resume (resume=True) "
                    "to continue, or choose a new folder"
                )
        if write:
            write_json(path, current)

    def path(self, index: int) -> Path:
        return self.folder / f"block_{index:04d}.safetensors"

    def done(self, index: int) -> bool:
        return self.path(index).exists()

    def save(self, block: nn.Module, index: int) -> None:
        """Save a finished block's tensors (its quantized layers included)."""
        from papercore.io import save_tensors

        save_tensors(self.path(index), dict(block.state_dict()), metadata={"block": str(index)})

    def load(
        self,
        block: nn.Module,
        index: int,
        make_layer: Callable[[str, nn.Linear, dict[str, torch.Tensor]], nn.Module | None],
    ) -> None:
        """Load a saved block: ``make_layer(name, linear, state)`` returns the (empty) quantized layer
        that replaces ``linear``, or None to keep it; then every saved tensor must fit the block."""
        from papercore.io import load_tensors

        state = load_tensors(self.path(index))
        for name, module in list(block.named_modules()):
            if isinstance(module, nn.Linear):
                layer = make_layer(name, module, state)
                if layer is not None:
                    layer.requires_grad_(False)
                    block.set_submodule(name, layer)
        missing, unexpected = block.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{self.path(index)} does not match block {index}: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}"
            )
