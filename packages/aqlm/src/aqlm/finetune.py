"""Fine-tuning of quantized models: per block (against the original block's outputs) and end to end
(distillation of the whole model against the original model's logits).

Codes are discrete and stay frozen in the gradient steps; what trains is every floating-point
parameter the quantized model keeps: codebooks, scales, norm weights, biases, and for the
end-to-end stage also the unquantized layers (embeddings, head). End-to-end fine-tuning can also
move the codes, as PV-tuning's discrete step does: Adam on each layer's dense weight seen straight
through the codes (:class:`StraightThroughAdam`), then a beam search that re-encodes the moved
weight (:func:`beam_encode_groups`), of which a bounded fraction of code groups is accepted
(:func:`update_codes`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from aqlm.config import DistillConfig
from aqlm.kernels.reference import dequantize, signed_codes
from aqlm.quantized_linear import QuantizedLinear

log = logging.getLogger(__name__)


@dataclass
class BlockFinetuneResult:
    epochs: int
    steps: int = 0  # optimizer steps taken
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    initial_val_loss: float = float("nan")


class MasterAdam:
    """Adam whose half-precision parameters are stepped through float32 master copies.

    Adam steps of lr ~1e-5 are far below bf16/fp16 resolution and would round away if applied to
    the parameters directly; float32 parameters are stepped in place as usual.
    """

    def __init__(self, params: list[nn.Parameter], lr: float, betas: tuple[float, float]):
        self.params = params
        self.masters = [
            p if p.dtype == torch.float32 else p.detach().float().requires_grad_(True) for p in params
        ]
        self.opt = torch.optim.Adam(self.masters, lr=lr, betas=betas)

    def step(self) -> None:
        for p, m in zip(self.params, self.masters):
            if m is not p:
                m.grad = None if p.grad is None else p.grad.float()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            for p, m in zip(self.params, self.masters):
                if m is not p:
                    p.copy_(m)
                    p.grad = None


def _trainable_block_params(block: nn.Module) -> list[nn.Parameter]:
    """Codebooks, scales, biases and norm weights: every float parameter of a block once its linears are quantized."""
    return [
        p
        for module in block.modules()
        if not isinstance(module, nn.Linear)  # an unquantized dense linear stays as it is
        for p in module.parameters(recurse=False)
        if p.is_floating_point()
    ]


def finetune_block(
    block: nn.Module,
    run_block,
    inputs: list[torch.Tensor],
    targets: list[torch.Tensor],
    *,
    max_epochs: int,
    lr: float = 1e-5,
    batch_size: int = 1,
    val_size: int = 0,
    relative_tolerance: float = 1e-3,
    early_stop: int = 3,
    keep_best: bool = True,
    index: list[int] | None = None,
    num_items: int | None = None,
    sum_gradients: Callable[[list[nn.Parameter]], None] | None = None,
    sum_losses: Callable[[float], float] | None = None,
    seed: int = 0,
) -> BlockFinetuneResult:
    """Train ``block``'s codebooks, scales and norms so its outputs match ``targets`` (MSE).

    ``run_block(hidden, i)`` runs the block on item ``i``'s inputs (an item is one calibration
    sequence, or one batch of them). Each optimizer step covers ``batch_size`` items: the gradient
    is the mean over them of the per-item loss (output MSE relative to the target's mean square).
    The last ``val_size`` items are held out; training stops when the held-out loss has not
    improved by ``relative_tolerance`` for ``early_stop`` epochs, and the best state is kept.

    In a distributed run each process holds a share of the items: ``index`` gives the global
    index of each local item, ``num_items`` the global count, ``sum_gradients`` sums gradients
    and ``sum_losses`` sums floats across processes. The batches are drawn from the global indices
    (the same permutation on every process), so the steps are those of one process holding all
    items, up to the order of floating-point sums.
    """
    index = list(range(len(inputs))) if index is None else list(index)
    n = len(inputs) if num_items is None else num_items
    if len(index) != len(inputs):
        raise ValueError(f"index has {len(index)} entries for {len(inputs)} local items")
    if val_size >= n:
        raise ValueError(
            f"val_size ({val_size}) must be smaller than the number of calibration sequences ({n})"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    local = {g: k for k, g in enumerate(index)}
    train_ids, val_ids = list(range(n - val_size)), list(range(n - val_size, n))
    params = _trainable_block_params(block)
    for p in params:
        p.requires_grad_(True)
    opt = MasterAdam(params, lr=lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(seed)
    total = sum_losses or (lambda v: v)

    def loss_of(k):
        out = run_block(inputs[k], k)
        ref = targets[k].to(out.device, out.dtype)
        return (out - ref).float().pow(2).mean() / ref.float().pow(2).mean().clamp_min(1e-12)

    def evaluate(ids):
        with torch.no_grad():
            value = sum(loss_of(local[g]).item() for g in ids if g in local)
        return total(value) / max(len(ids), 1)

    result = BlockFinetuneResult(0)
    watch = val_ids or train_ids
    best = result.initial_val_loss = evaluate(watch)
    best_state = [p.detach().clone() for p in params] if keep_best else None
    stale = 0
    for epoch in range(max_epochs):
        running = 0.0
        order = [train_ids[j] for j in torch.randperm(len(train_ids), generator=gen).tolist()]
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            mine = [local[g] for g in batch if g in local]
            if mine:
                with torch.enable_grad():
                    losses = [loss_of(k) for k in mine]
                    (sum(losses) / len(batch)).backward()
                running += sum(v.item() for v in losses)
            if sum_gradients:
                sum_gradients(params)
            opt.step()
            result.steps += 1
        result.train_loss.append(total(running) / len(train_ids))
        current = evaluate(watch)
        result.val_loss.append(current)
        result.epochs = epoch + 1
        if not math.isfinite(current):
            log.warning("block fine-tuning diverged (loss %s); keeping the best state", current)
            break
        if current < best * (1 - relative_tolerance):
            best, stale = current, 0
            if keep_best:
                best_state = [p.detach().clone() for p in params]
        else:
            stale += 1
            if stale >= early_stop:
                break
    if keep_best and best_state is not None:
        with torch.no_grad():
            for p, v in zip(params, best_state):
                p.copy_(v)
    for p in params:
        p.requires_grad_(False)
    return result


def quantized_layers(model: nn.Module) -> dict[str, QuantizedLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, QuantizedLinear)}


@dataclass
class DistillResult:
    steps: int = 0
    train_kl: list[float] = field(default_factory=list)
    val_kl: list[float] = field(default_factory=list)
    code_changes: list[float] = field(default_factory=list)  # fraction of codes changed at each code update


def kl_to_teacher(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Mean over tokens of :math:`\\mathrm{KL}(p_{teacher} \\| p_{student})`, computed in float32."""
    t = torch.log_softmax(teacher_logits.float(), dim=-1)
    s = torch.log_softmax(student_logits.float(), dim=-1)
    return (t.exp() * (t - s)).sum(-1).mean()


def distill_(
    student: nn.Module,
    teacher: nn.Module,
    data: torch.Tensor,
    config: DistillConfig | None = None,
    *,
    val_data: torch.Tensor | None = None,
    progress: bool = True,
    seed: int = 0,
) -> DistillResult:
    """End-to-end fine-tuning: distil ``teacher``'s next-token distributions into the quantized ``student``.

    Trains codebooks, scales and (``train_nonquantized``) every other float parameter of the student
    (norms, embeddings, head) with Adam on the per-token KL divergence to the teacher's logits
    (the "P" step of PV-tuning). Codebooks and scales train in float32 and are rounded back to their
    stored dtype at the end.

    With ``code_update_every = k > 0`` the codes move too (the discrete "V" step): the gradient of
    every quantized layer's dense weight :math:`\\hat W` is accumulated over ``k`` steps, an Adam step
    (:class:`StraightThroughAdam`, ``code_lr``, ``code_betas``) moves :math:`\\hat W`, and a beam
    search (:func:`beam_encode_groups`, ``code_beam_size``) re-encodes the moved weight with the
    layer's codebooks and scales; at most ``max_code_change`` of the layer's code groups take their
    new codes (those whose error to the moved weight drops most). The part of the move the codes
    did not take is kept for the next update, times ``1 - code_residual_decay``: with the default 0
    the dense weights keep training and the codes follow them, 1 restarts every update from the
    codes (then only moves larger than the gap to another code combination change anything).
    """
    from papercore.runtime import progress as progress_bar

    config = config or DistillConfig()
    device = next(student.parameters()).device
    layers = quantized_layers(student)
    if not layers:
        raise ValueError("the student has no QuantizedLinear layers: quantize it first")
    stored = {n: (m.codebooks.dtype, m.scales.dtype) for n, m in layers.items()}
    for m in layers.values():  # train in float32; rounded back to the stored dtypes at the end
        m.store_as_(torch.float32)
    q_params = {id(p) for m in layers.values() for p in (m.codebooks, m.scales)}
    params = [m.codebooks for m in layers.values()] + [m.scales for m in layers.values()]
    if config.train_nonquantized:
        params += [p for p in student.parameters() if p.is_floating_point() and id(p) not in q_params]
    teacher.eval().requires_grad_(False)
    student.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = MasterAdam(params, lr=config.lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(seed)
    result = DistillResult()
    dense_grads: dict[str, torch.Tensor] = {}
    codes = CodeUpdater(config)
    hooks = []
    if config.code_update_every:
        hooks = [_track_weight_grad(name, m, dense_grads) for name, m in layers.items()]
    try:
        student.train()
        for _ in range(config.epochs):
            order = torch.randperm(data.shape[0], generator=gen)
            bs = config.batch_size
            batches = [order[i : i + bs] for i in range(0, len(order), bs)]
            for idx in progress_bar(batches, desc="distill") if progress else batches:
                ids = data[idx].to(device)
                with torch.no_grad():
                    target = teacher(input_ids=ids, use_cache=False).logits
                with torch.enable_grad():
                    loss = kl_to_teacher(student(input_ids=ids, use_cache=False).logits, target)
                    loss.backward()
                opt.step()
                result.steps += 1
                result.train_kl.append(loss.item())
                if config.code_update_every and result.steps % config.code_update_every == 0:
                    changed = [
                        codes.step(n, m, dense_grads.pop(n) / config.code_update_every)
                        if n in dense_grads
                        else 0.0
                        for n, m in layers.items()
                    ]
                    result.code_changes.append(sum(changed) / len(changed))
            if val_data is not None:
                result.val_kl.append(evaluate_kl(student, teacher, val_data, config.batch_size))
    finally:
        for h in hooks:
            h.remove()
        student.eval()
        student.requires_grad_(False)
        for n, m in layers.items():
            m.codebooks.grad = m.scales.grad = None
            m.codebooks = nn.Parameter(m.codebooks.detach().to(stored[n][0]), requires_grad=False)
            m.scales = nn.Parameter(m.scales.detach().to(stored[n][1]), requires_grad=False)
    return result


@torch.no_grad()
def evaluate_kl(student: nn.Module, teacher: nn.Module, data: torch.Tensor, batch_size: int = 4) -> float:
    device = next(student.parameters()).device
    total = 0.0
    for i in range(0, data.shape[0], batch_size):
        ids = data[i : i + batch_size].to(device)
        total += kl_to_teacher(student(input_ids=ids).logits, teacher(input_ids=ids).logits).item() * len(ids)
    return total / data.shape[0]


def _track_weight_grad(name: str, layer: QuantizedLinear, store: dict[str, torch.Tensor]):
    """Accumulate dL/dW (the gradient of the dequantized weight) for the next code update."""

    def hook(module, args, output):
        x = args[0].detach()

        def on_grad(grad_out):
            g = grad_out.reshape(-1, grad_out.shape[-1]).float().T @ x.reshape(-1, x.shape[-1]).float()
            store[name] = store[name] + g if name in store else g

        if output.requires_grad:
            output.register_hook(on_grad)

    return layer.register_forward_hook(hook)


class StraightThroughAdam:
    """Adam on the dense weights of quantized layers, seen straight through their codes.

    ``step(name, weight, grad)`` returns :math:`W - \\eta\\, \\hat m / (\\sqrt{\\hat v} + \\epsilon)` with
    the moments of layer ``name`` kept across calls; the codes are then re-fitted to the result
    (:func:`update_codes`). Memory: two float32 tensors the size of each layer's dense weight.
    """

    def __init__(self, lr: float, betas: tuple[float, float] = (0.0, 0.95), eps: float = 1e-8):
        self.lr, self.betas, self.eps = lr, betas, eps
        self.state: dict[str, dict] = {}

    @torch.no_grad()
    def step(self, name: str, weight: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.to(weight.device, torch.float32)
        st = self.state.setdefault(name, {"t": 0, "m": torch.zeros_like(grad), "v": torch.zeros_like(grad)})
        b1, b2 = self.betas
        st["t"] += 1
        st["m"].mul_(b1).add_(grad, alpha=1 - b1)
        st["v"].mul_(b2).addcmul_(grad, grad, value=1 - b2)
        m_hat = st["m"] / (1 - b1 ** st["t"])
        v_hat = st["v"] / (1 - b2 ** st["t"])
        return weight.float() - self.lr * m_hat / (v_hat.sqrt() + self.eps)


class CodeUpdater:
    """PV-tuning's discrete step for quantized layers (the V step of :func:`distill_`).

    ``step(name, layer, grad)`` moves the layer's dense weight (its dequantized weight, plus the
    move earlier steps kept) with :class:`StraightThroughAdam` along ``grad`` (dL/dW), re-fits the
    codes to the moved weight (:func:`update_codes`: beam search, at most ``max_code_change`` of the
    groups), and keeps the part of the move the codes did not take, times
    ``1 - code_residual_decay``. Returns the fraction of code groups changed.
    """

    def __init__(self, config: DistillConfig):
        self.config = config
        self.adam = StraightThroughAdam(config.code_lr, config.code_betas)
        self.residual: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def step(self, name: str, layer: QuantizedLinear, grad: torch.Tensor) -> float:
        cfg = self.config
        w = layer.dequantize().float()
        if name in self.residual:
            w = w + self.residual[name]
        moved = self.adam.step(name, w, grad)
        changed = update_codes(layer, moved, cfg.code_beam_size, cfg.max_code_change)
        if cfg.code_residual_decay < 1:
            self.residual[name] = (1 - cfg.code_residual_decay) * (moved - layer.dequantize().float())
        return changed


def _group_targets(target: torch.Tensor, scales: torch.Tensor, og: int, g: int) -> torch.Tensor:
    """``[out, in]`` divided by the scales -> ``[O * I, og * g]``, one row per code group."""
    out, inp = target.shape
    o, i = out // og, inp // g
    t = target / scales.reshape(-1, 1).repeat_interleave(og, 0)
    return t.reshape(o, og, i, g).permute(0, 2, 1, 3).reshape(o * i, og * g)


@torch.no_grad()
def beam_encode_groups(
    target: torch.Tensor,
    codebooks: torch.Tensor,
    scales: torch.Tensor,
    codes: torch.Tensor,
    beam_size: int = 1,
    chunk_elements: int = 1 << 24,
) -> torch.Tensor:
    """Codes that fit ``target`` (``[out, in]``) in plain L2 with fixed codebooks and scales, by beam search.

    In L2 every code group ``(o, i)`` is independent: its error is
    :math:`\\|t_{o,i} - \\sum_m C_m[b_m]\\|^2` with :math:`t = W / s_o`. Each group runs one pass of
    beam search over its ``M`` codebooks in order, starting from its current codes as the only
    hypothesis: at codebook ``m`` every hypothesis is expanded by all :math:`2^B` values of code
    ``m`` and the ``beam_size`` best are kept (hypotheses differ in codes before ``m`` only, so
    none repeats). Keeping a code is always a candidate, so no group gets worse. With
    ``beam_size >= 2^B`` and ``M = 2`` the search is exhaustive. Memory: ``chunk_elements`` scores
    at a time. Returns unsigned int64 codes ``[O, I, M]``.
    """
    num_cb, size, og, g = codebooks.shape
    o, i, _ = codes.shape
    t_all = _group_targets(target.float(), scales.float(), og, g)
    cb = codebooks.float().reshape(num_cb, size, og * g)
    cb_sq = cb.pow(2).sum(-1)  # [M, 2^B]
    flat_codes = codes.reshape(o * i, num_cb).to(torch.int64)
    out = torch.empty_like(flat_codes)
    rows = max(1, chunk_elements // (beam_size * size))
    ar = torch.arange(num_cb, device=cb.device)
    for s0 in range(0, o * i, rows):
        t = t_all[s0 : s0 + rows]
        hyp = flat_codes[s0 : s0 + rows, None, :].clone()  # [N, K, M]
        recon = cb[ar, hyp].sum(2)  # [N, K, D]
        for m in range(num_cb):
            n, k = hyp.shape[:2]
            partial = recon - cb[m][hyp[..., m]]
            r = t[:, None] - partial  # what codebook m has to fill
            scores = torch.baddbmm(
                (r * r).sum(-1, keepdim=True) + cb_sq[m], r, cb[m].T.expand(n, -1, -1), alpha=-2
            )  # [N, K, 2^B]: ||r - C_m[c]||^2
            best = scores.reshape(n, k * size).topk(min(beam_size, k * size), dim=1, largest=False).indices
            parent, code = best // size, best % size
            hyp = hyp.gather(1, parent[..., None].expand(-1, -1, num_cb)).clone()
            hyp[..., m] = code
            recon = partial.gather(1, parent[..., None].expand(-1, -1, og * g)) + cb[m][code]
        err = (t[:, None] - recon).pow(2).sum(-1)
        out[s0 : s0 + rows] = hyp[torch.arange(len(t), device=t.device), err.argmin(1)]
    return out.view(o, i, num_cb)


def _group_errors(layer: QuantizedLinear, codes: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error to ``target`` of every (output group, input group) block, ``[O, I]``."""
    og, g = layer.out_group_size, layer.in_group_size
    rec = dequantize(codes, layer.codebooks.float(), layer.scales.float())
    diff = (rec - target).view(rec.shape[0] // og, og, rec.shape[1] // g, g)
    return diff.pow(2).sum(dim=(1, 3))


@torch.no_grad()
def update_codes(layer: QuantizedLinear, target: torch.Tensor, beam_size: int, max_change: float) -> float:
    """Re-fit ``layer``'s codes to the dense weight ``target`` (``[out, in]``), changing few of them.

    :func:`beam_encode_groups` proposes new codes for every group; at most a ``max_change``
    fraction of the code groups take them (those whose squared error to ``target`` drops most;
    a group whose error would not drop keeps its codes). Returns the fraction of groups changed.
    """
    if max_change <= 0:
        return 0.0
    target = target.to(layer.codes.device, torch.float32)
    codes = layer.unsigned_codes()
    proposal = beam_encode_groups(target, layer.codebooks, layer.scales, codes, beam_size)
    gain = _group_errors(layer, codes, target) - _group_errors(layer, proposal, target)
    candidates = (proposal != codes).any(-1) & (gain > 0)
    budget = int(max_change * candidates.numel())
    if int(candidates.sum()) > budget:
        keep = torch.zeros_like(candidates).flatten()
        if budget:
            keep[torch.topk(torch.where(candidates, gain, -torch.inf).flatten(), budget).indices] = True
        candidates = keep.view_as(candidates)
    codes[candidates] = proposal[candidates]
    layer.codes.copy_(signed_codes(codes, layer.nbits_per_codebook))
    return candidates.float().mean().item()
