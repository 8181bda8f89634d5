r"""CPU lookup-table matmul for codebooks of at most 256 entries (Kx8 schemes: 2x8g8, 4x8g8, ...).

Per token, a table of every group of ``x`` against every codebook entry,

.. math:: L[t, i, m, c] = x_{t, ig:(i+1)g} \cdot C_m[c],

is one batched matmul (``T * in/g`` rows times ``M * 2^B`` columns); the output is then a sum of
table entries picked by the codes,

.. math:: y_{t,o} = s_o \sum_{i,m} L[t, i, m, b_{o,i,m}] + \text{bias}_o,

done as one ``embedding_bag`` (each output row is a bag of ``in/g * M`` table rows, each row
holding all tokens). ``M / g`` lookups per weight instead of a dequantized weight and a dense
matmul; pure torch, so no threads race on the output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MAX_CODEBOOK_SIZE = 256
# The table grows with the tokens; at 4096x11008 2x8g8 on 2 cores the lookups took 67 ms for 1
# token and 430 ms for 64, dequantize + matmul 660-800 ms.
MAX_TOKENS = 64


def lut_supported(codebooks: torch.Tensor) -> bool:
    """Codebooks of at most 256 entries and ``out_group_size == 1``."""
    return codebooks.shape[1] <= MAX_CODEBOOK_SIZE and codebooks.shape[2] == 1


def lut_linear(
    x: torch.Tensor,
    codes: torch.Tensor,
    codebooks: torch.Tensor,
    scales: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """``F.linear(x, dequantize(codes, codebooks, scales), bias)`` for ``x [T, in]``."""
    m, nc, out_g, g = codebooks.shape
    if nc > MAX_CODEBOOK_SIZE or out_g != 1:
        raise ValueError("lut_linear needs codebooks of at most 256 entries and out_group_size == 1")
    o, i, _ = codes.shape
    t = x.shape[0]
    # 16-bit CPU math is slow and inexact; the table and the sums run in float32 (float64 stays).
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    table = x.to(compute).reshape(t * i, g) @ codebooks.to(compute).reshape(m * nc, g).T
    # Row (i, m, c) holds all tokens. Copied into fresh [rows, T] storage: with T = 1 a
    # transposed view keeps odd strides, and embedding_bag then leaves its fast path (30x).
    rows_t = torch.empty(i * m * nc, t, dtype=compute, device=x.device)
    rows_t.copy_(table.reshape(t, i * m * nc).T)
    # Unsigned codes: reading int8 storage as uint8 undoes the signed storage of 8-bit codes.
    unsigned = codes.view(torch.uint8) if codes.dtype == torch.int8 else codes
    if nc < 256 or codes.dtype != torch.int8:
        unsigned = unsigned & (nc - 1)
    base = torch.arange(0, i * m * nc, nc, dtype=torch.int32, device=codes.device)
    rows = unsigned.reshape(o, i * m).to(torch.int32).add_(base)
    y = F.embedding_bag(rows, rows_t, mode="sum")  # [O, T]
    y = y * scales.reshape(o, 1).to(compute)
    if bias is not None:
        y = y + bias.reshape(o, 1).to(compute)
    return y.T.contiguous().to(x.dtype)
