r"""HIGGS vector quantization of rows (one row per token: all KV heads concatenated).

Per row and Hadamard group :math:`x_g \in \mathbb R^G`: :math:`s = \|x_g\|_2`,
:math:`y = H_G x_g / s` (unnormalized FWHT, so entries have unit mean square), the ``d``-dim
pieces of :math:`y` snap to the nearest point of a Gaussian-optimal grid, and

.. math:: \hat x_g = \frac{s}{G} H_G\, \mathrm{grid}[\mathrm{codes}]  \qquad (H_G H_G = G I).

Codes are bit-packed per row (``papercore.kernels.packing``, 32-bit words; widths above 8 bits
are split into an 8-bit and a remainder stream) and scales are stored in ``scale_dtype``.
The relative MSE on any row is the grid's per-dimension distortion (for Gaussian-like rotated
data), independent of the row's scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from aquakv.grids import code_bits, get_grid
from aquakv.kernels.hadamard import fwht
from papercore.kernels.packing import pack_bits, packed_numel, unpack_bits

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def _split_bits(bits: int) -> list[int]:
    """Packing streams for a code width: as is when papercore packs it, else 8 + remainder."""
    if bits <= 8 or bits == 16:
        return [bits]
    return [8, bits - 8]


@dataclass
class QRows:
    """Quantized rows: ``codes`` ``[..., W]`` (int32 words; floats for the identity quantizer), ``scales`` ``[..., S]``."""

    codes: torch.Tensor
    scales: torch.Tensor

    @property
    def nbytes(self) -> int:
        return (
            self.codes.numel() * self.codes.element_size() + self.scales.numel() * self.scales.element_size()
        )

    @staticmethod
    def cat(parts: list[QRows], dim: int) -> QRows:
        return QRows(torch.cat([p.codes for p in parts], dim), torch.cat([p.scales for p in parts], dim))

    def map(self, fn) -> QRows:
        return QRows(fn(self.codes), fn(self.scales))


class HiggsQuantizer:
    """Hadamard + Gaussian-grid vector quantizer for rows of ``channels`` values.

    Parameters
    ----------
    channels : int
        Row width C (a multiple of ``group``).
    d, n : int
        Grid dimension and size (``log2(n)/d`` bits per value). When ``d`` does not divide the row
        (``d = 6``), the last piece is zero-padded: ``ceil(C/d)`` codes per row.
    group : int, optional
        Hadamard group, a power of two dividing ``channels`` (default: ``channels``).
    scale_dtype : str
        ``float16`` (default), ``bfloat16`` or ``float32``.
    grid : Tensor, optional
        ``[n, d]`` grid (default: the generated one, :func:`aquakv.grids.get_grid`).
    """

    def __init__(self, channels: int, d: int = 2, n: int = 16, group: int | None = None,
                 scale_dtype: str = "float16", grid: torch.Tensor | None = None):  # fmt: skip
        group = group or channels
        if group < 2 or group & (group - 1):
            raise ValueError(f"group size must be a power of two >= 2, got {group}")
        if channels % group:
            raise ValueError(f"group size {group} does not divide the {channels} channels")
        if scale_dtype not in _DTYPES:
            raise ValueError(f"scale_dtype must be one of {', '.join(_DTYPES)}, got {scale_dtype!r}")
        self.channels, self.d, self.n, self.group = channels, d, n, group
        self.bits = code_bits(n)
        self.scale_dtype = _DTYPES[scale_dtype]
        self.grid = (get_grid(d, n) if grid is None else grid).float()
        if tuple(self.grid.shape) != (n, d):
            raise ValueError(f"grid must have shape ({n}, {d}), got {tuple(self.grid.shape)}")
        # d-dim pieces run over the row's rotated values; when d does not divide C (d = 6) the last
        # piece is zero-padded and its padding dropped on decode: ceil(C/d) codes per row.
        self.num_codes = -(-channels // d)
        self.pad = self.num_codes * d - channels
        self.streams = _split_bits(self.bits)
        self.words = sum(packed_numel(self.num_codes, b) for b in self.streams)

    @property
    def bits_per_value(self) -> float:
        return (32 * self.words + self.channels // self.group * 8 * self.scale_dtype.itemsize) / self.channels

    def row_bytes(self) -> int:
        return 4 * self.words + self.channels // self.group * self.scale_dtype.itemsize

    def _grid(self, device) -> torch.Tensor:
        if self.grid.device != torch.device(device):
            self.grid = self.grid.to(device)
        return self.grid

    # ------------------------------------------------------------------ codes
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unpacked codes ``[..., C/d]`` (int64) and float32 scales ``[..., C/G]`` (before the dtype cast)."""
        from aquakv.grids import nearest

        if x.shape[-1] != self.channels:
            raise ValueError(f"rows must have {self.channels} channels, got {x.shape[-1]}")
        lead = x.shape[:-1]
        xg = x.reshape(-1, self.channels // self.group, self.group).float()
        scale = torch.linalg.vector_norm(xg, dim=-1).to(self.scale_dtype).float()
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        y = (fwht(xg, backend="torch") / safe[..., None]).reshape(-1, self.channels)
        if self.pad:
            y = torch.nn.functional.pad(y, (0, self.pad))
        codes = nearest(y.reshape(-1, self.d), self._grid(x.device))
        return codes.view(*lead, self.num_codes), scale.view(*lead, -1)

    def pack(self, codes: torch.Tensor) -> torch.Tensor:
        parts, shift = [], 0
        for b in self.streams:
            parts.append(pack_bits((codes >> shift) & ((1 << b) - 1), b, validate=False))
            shift += b
        return torch.cat(parts, -1) if len(parts) > 1 else parts[0]

    def unpack(self, words: torch.Tensor) -> torch.Tensor:
        out, start, shift = None, 0, 0
        for b in self.streams:
            w = packed_numel(self.num_codes, b)
            part = unpack_bits(words[..., start : start + w].contiguous(), b, self.num_codes).long() << shift
            out = part if out is None else out | part
            start, shift = start + w, shift + b
        return out

    def quantize(self, x: torch.Tensor) -> QRows:
        """Rows ``[..., C]`` -> packed codes ``[..., W]`` and scales ``[..., C/G]``."""
        codes, scale = self.encode(x)
        return QRows(self.pack(codes), scale.to(self.scale_dtype))

    def dequantize(self, q: QRows, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The reconstruction ``[..., C]`` (torch reference; the fused kernel is in :mod:`aquakv.kernels`)."""
        lead = q.codes.shape[:-1]
        codes = self.unpack(q.codes)
        y = self._grid(codes.device)[codes].reshape(-1, self.num_codes * self.d)[:, : self.channels]
        y = y.reshape(-1, self.channels // self.group, self.group)
        s = q.scales.float().reshape(-1, self.channels // self.group, 1)
        x = fwht(y, backend="torch") * (s / self.group)
        return x.reshape(*lead, self.channels).to(dtype)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Quantize then dequantize (float32)."""
        return self.dequantize(self.quantize(x))


class IdentityQuantizer:
    """Stores rows exactly (in ``dtype``): the plumbing-exactness reference, and the fp16 layer 0."""

    def __init__(self, channels: int, dtype: torch.dtype | None = None):
        self.channels, self.dtype = channels, dtype
        self.bits = 16 if dtype in (torch.float16, torch.bfloat16) else 32

    @property
    def bits_per_value(self) -> float:
        return float(8 * (self.dtype.itemsize if self.dtype else 4))

    def row_bytes(self) -> int:
        return self.channels * (self.dtype.itemsize if self.dtype else 4)

    def quantize(self, x: torch.Tensor) -> QRows:
        if x.shape[-1] != self.channels:
            raise ValueError(f"rows must have {self.channels} channels, got {x.shape[-1]}")
        return QRows(x.to(self.dtype or x.dtype).clone(), x.new_zeros(*x.shape[:-1], 0))

    def dequantize(self, q: QRows, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return q.codes.to(dtype)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()


def relative_mse(x: torch.Tensor, xhat: torch.Tensor) -> float:
    """:math:`\\|\\hat x - x\\|^2 / \\|x\\|^2` in float64."""
    x, xhat = x.double(), xhat.double()
    return float(((xhat - x) ** 2).sum() / (x * x).sum().clamp_min(1e-300))


def equivalent_bits(rel_mse: float) -> float:
    """``-log4(relMSE)``: the bits of an ideal scalar quantizer with that error."""
    return -math.log(max(rel_mse, 1e-300)) / math.log(4)
