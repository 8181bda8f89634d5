"""Multi-process quantization through ``torch.distributed`` (one process per GPU, or gloo on CPU).

Calibration sequences are split across ranks; every rank runs the blocks on its own shard, the
per-linear :math:`X^\\top X` sums and token counts are all-reduced so every rank sees the global
mean, the linears of a block are shared out round-robin (each rank quantizes its own and
broadcasts the result), and block fine-tuning averages gradients and validation losses across
ranks. Rank 0 writes checkpoints. Launch with ``torchrun --nproc-per-node N`` or
``aqlm quantize --devices cuda:0 cuda:1``.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def enabled() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if enabled() else 0


def world_size() -> int:
    return dist.get_world_size() if enabled() else 1


def shard(calibration: torch.Tensor) -> torch.Tensor:
    """This rank's calibration sequences (an equal share: the count must divide evenly)."""
    n, w = calibration.shape[0], world_size()
    if n % w:
        raise ValueError(
            f"{n} calibration sequences cannot be split evenly over {w} processes: use a multiple of {w}"
        )
    return calibration[rank() :: w]


def global_mean_xtx(xtx: torch.Tensor, count: int) -> torch.Tensor:
    """All-reduce a rank's mean :math:`X^\\top X` over ``count`` tokens into the mean over all ranks' tokens."""
    if not enabled():
        return xtx
    total = xtx * count
    n = torch.tensor([float(count)], dtype=torch.float64, device=xtx.device)
    dist.all_reduce(total)
    dist.all_reduce(n)
    return total / n.item()


def owner(index: int) -> int:
    """The rank that quantizes the ``index``-th linear of a block."""
    return index % world_size()


def broadcast_(tensors: list[torch.Tensor], src: int) -> None:
    if enabled():
        for t in tensors:
            dist.broadcast(t, src)


def average_gradients_(params) -> None:
    if enabled():
        w = world_size()
        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= w


def average(value: float, device: torch.device | str = "cpu") -> float:
    if not enabled():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.item() / world_size()


def barrier() -> None:
    if enabled():
        dist.barrier()


def init_from_env(device: torch.device) -> bool:
    """Join the process group described by torchrun's environment variables (if any)."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) <= 1 or dist.is_initialized():
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return True
