"""Multi-process quantization through ``torch.distributed`` (one process per GPU, or gloo on CPU).

Calibration sequences are split across ranks; every rank runs the blocks on its own shard, the
per-linear :math:`X^\\top X` sums and token counts are all-reduced so every rank sees the global
mean, the linears of a block are shared out round-robin (each rank quantizes its own and
broadcasts the result), and block fine-tuning sums gradients and losses across ranks so that a
step covers the same sequences as in one process. Rank 0 writes checkpoints and outputs. Launch
with ``torchrun --nproc-per-node N -m aqlm quantize ...`` (:func:`init_from_env` joins the group).

Every collective runs on the device of the group's backend (:func:`comm_device`: the current
CUDA device for NCCL, the CPU for gloo); tensors living elsewhere are copied there and back.
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


def comm_device() -> torch.device:
    """The device collectives of the default group take tensors on (NCCL: CUDA only; gloo: CPU)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def shard_indices(n: int) -> list[int]:
    """Global indices of the sequences this rank holds: ``rank, rank + W, rank + 2W, ...``."""
    return list(range(rank(), n, world_size()))


def shard(calibration: torch.Tensor) -> torch.Tensor:
    """This rank's calibration sequences (an equal share: the count must divide evenly)."""
    n, w = calibration.shape[0], world_size()
    if n % w:
        raise ValueError(
            f"{n} calibration sequences cannot be split evenly over {w} processes: use a multiple of {w}"
        )
    return calibration[rank() :: w]


def _all_reduce_(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over ranks in place, through the backend's device."""
    dev = comm_device()
    if t.device == dev:
        dist.all_reduce(t)
    else:
        buf = t.to(dev)
        dist.all_reduce(buf)
        t.copy_(buf)
    return t


def global_mean_xtx(xtx: torch.Tensor, count: int) -> torch.Tensor:
    """All-reduce a rank's mean :math:`X^\\top X` over ``count`` tokens into the mean over all ranks' tokens."""
    if not enabled():
        return xtx
    total = _all_reduce_(xtx * count)
    n = _all_reduce_(torch.tensor([float(count)], dtype=torch.float64))
    return total / n.item()


def owner(index: int) -> int:
    """The rank that quantizes the ``index``-th linear of a block."""
    return index % world_size()


def broadcast_(tensors: list[torch.Tensor], src: int) -> None:
    if not enabled():
        return
    dev = comm_device()
    for t in tensors:
        if t.device == dev:
            dist.broadcast(t, src)
        else:
            buf = t.to(dev)
            dist.broadcast(buf, src)
            t.copy_(buf)


def sum_gradients_(params) -> None:
    """Sum the gradients of ``params`` over ranks (a missing gradient counts as zeros)."""
    if not enabled():
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        _all_reduce_(p.grad)


def total(value: float) -> float:
    """Sum of ``value`` over ranks."""
    if not enabled():
        return value
    return _all_reduce_(torch.tensor([value], dtype=torch.float64)).item()


def average(value: float) -> float:
    """Mean of ``value`` over ranks."""
    return total(value) / world_size()


def barrier() -> None:
    if enabled():
        dist.barrier()


def init_from_env(device: torch.device | str) -> torch.device:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1), if any; returns this rank's device.

    With a CUDA ``device`` each process takes ``cuda:LOCAL_RANK`` and the NCCL backend; otherwise
    gloo on the CPU. Without torchrun's variables (or with one process) nothing happens.
    """
    device = torch.device(device)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
