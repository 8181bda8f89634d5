"""Host side of split-K launches: how many programs share one output tile, and the arrival counters
that let the last of them reduce the partials in the same launch (no zero-filled workspace, no
second kernel: at batch 1 those would cost about as much as the product itself).

The kernel side (aqlm's and spqr's GEMVs) stores its partial, bumps the tile's counter with an
``acq_rel`` atomic and, if it arrived last, sums the partials and resets the counter to zero.
"""

from __future__ import annotations

import functools

import torch


@functools.cache
def _sm_count_cached(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def sm_count(device: torch.device) -> int:
    """Multiprocessors of a CUDA device (2 for a CPU device: the interpreter's stand-in)."""
    if device.type != "cuda":
        return 2
    return _sm_count_cached(device.index if device.index is not None else torch.cuda.current_device())


def split_plan(n_steps: int, n_tiles: int, split: int, programs_per_sm: int, device: torch.device,
               cap: int = 16) -> tuple[int, int]:  # fmt: skip
    """``(split, steps_per_split)``: the ``n_steps`` steps along the reduced dimension of each of
    ``n_tiles`` output tiles, shared by ``split`` programs (0: enough for ``programs_per_sm``
    programs per SM in all, at most ``cap``), with no empty program."""
    if not split:
        split = max(1, min(cap, round(programs_per_sm * sm_count(device) / max(n_tiles, 1))))
    split = max(1, min(split, n_steps))
    per = -(-n_steps // split)
    return -(-n_steps // per), per


_COUNTERS: dict[tuple, torch.Tensor] = {}
_PLACEHOLDERS: dict[str, torch.Tensor] = {}


def arrival_counters(device: torch.device, n: int) -> torch.Tensor:
    """``n`` int32 arrival counters, zero between launches (the last program of a tile resets its
    own), one buffer per device and stream so that concurrent launches on other streams stay apart."""
    stream = torch.cuda.current_stream(device).stream_id if device.type == "cuda" else 0
    key = (str(device), stream)
    buf = _COUNTERS.get(key)
    if buf is None or buf.numel() < n:
        buf = torch.zeros(max(n, 1024), dtype=torch.int32, device=device)
        _COUNTERS[key] = buf
    return buf


def splitk_workspace(split: int, shape: tuple[int, ...], n_tiles: int, device: torch.device):
    """``(partials, counters)`` of a launch with ``split`` programs per tile: float32 partials
    ``[split, *shape]`` and :func:`arrival_counters` for ``n_tiles`` tiles. With ``split == 1`` the
    kernel reads neither (its split-K branch is compiled out): one 1-element placeholder, kept per
    device so that batch-1 decode allocates nothing here, stands for both."""
    if split <= 1:
        dummy = _PLACEHOLDERS.get(str(device))
        if dummy is None:
            dummy = _PLACEHOLDERS[str(device)] = torch.empty(1, dtype=torch.float32, device=device)
        return dummy, dummy
    return torch.empty(split, *shape, dtype=torch.float32, device=device), arrival_counters(device, n_tiles)
