"""Bit packing of k-bit unsigned codes into dense integer words.

Every quantizer stores its codes through :func:`pack_bits`, so the memory it reports is the
memory a real deployment would use: ``n`` codes of ``k`` bits take exactly
``ceil(n * k / W)`` words of ``W`` bits, with no per-word padding.

Layout (pinned by the tests)
----------------------------
The codes of one row form a little-endian bitstream:

* code ``i`` occupies stream bits ``[i * k, (i + 1) * k)``, its least significant bit first;
* word ``j`` holds stream bits ``[j * W, (j + 1) * W)``; stream bit ``b`` is bit ``b % W``
  (``1 << (b % W)``) of word ``b // W``;
* a code may straddle two words when ``k`` does not divide ``W`` (``k = 3, 5, 6, 7``): its low
  bits end word ``j`` and its high bits start word ``j + 1``;
* the unused high bits of the last word are zero.

Words are stored in the signed torch dtype of their width (``torch.int32`` for ``W = 32``,
``int16`` for 16, ``int64`` for 64) holding the unsigned word's bit pattern, and ``torch.uint8``
for ``W = 8``. So a 32-bit word with bit 31 set reads as a negative ``int32``; reinterpret it
with ``words.view(torch.uint32)`` (or ``& 0xFFFFFFFF`` in int64) to see the unsigned value.

Packing runs along the last dimension, each row on its own, so a kernel can address row ``r``
of a ``[rows, L]`` code matrix as row ``r`` of the ``[rows, packed_numel(L, k)]`` word matrix.
Pack a whole tensor as one stream with ``pack_bits(codes.reshape(-1), k)``.

Backends: ``"torch"`` (vectorized reference, any device, ``W`` in {8, 16, 32, 64}), ``"triton"``
(``W = 32`` only) and ``"auto"`` (Triton for CUDA tensors with ``W = 32``, torch elsewhere).
"""

from __future__ import annotations

import functools
import math

import torch

from papercore.kernels.triton_guard import resolve_backend

SUPPORTED_BITS = (1, 2, 3, 4, 5, 6, 7, 8, 16)
WORD_DTYPES = {8: torch.uint8, 16: torch.int16, 32: torch.int32, 64: torch.int64}


# ---------------------------------------------------------------- validation and sizes
def _check_bits(bits: int) -> None:
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"bits must be one of {SUPPORTED_BITS}, got {bits!r}")


def _check_word_bits(word_bits: int) -> None:
    if word_bits not in WORD_DTYPES:
        raise ValueError(f"word_bits must be one of {tuple(WORD_DTYPES)}, got {word_bits!r}")


def packed_numel(n: int, bits: int, word_bits: int = 32) -> int:
    """Number of ``word_bits``-bit words that hold ``n`` codes of ``bits`` bits.

    Parameters
    ----------
    n : int
        Number of codes (one row).
    bits : int
        Code width ``k``, one of 1..8 or 16.
    word_bits : int, default 32
        Word width ``W``, one of 8, 16, 32, 64.

    Returns
    -------
    int
        ``ceil(n * bits / word_bits)``; the packed size is that times ``word_bits / 8`` bytes.
    """
    _check_bits(bits)
    _check_word_bits(word_bits)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return -(-n * bits // word_bits)


def _check_codes(codes: torch.Tensor, bits: int) -> None:
    if codes.dtype == torch.bool or codes.is_floating_point() or codes.is_complex():
        raise ValueError(f"codes must have an integer dtype, got {codes.dtype}")
    if codes.dim() == 0:
        raise ValueError("codes must have at least one dimension (packing runs along the last one)")
    if codes.numel() == 0:
        return
    lo, hi = torch.aminmax(codes)
    lo, hi = int(lo), int(hi)  # one host sync for both
    if lo < 0 or hi >= 1 << bits:
        raise ValueError(
            f"codes must lie in [0, {(1 << bits) - 1}] for bits={bits}, got values in [{lo}, {hi}]"
        )


def _to_words(x: torch.Tensor, word_bits: int) -> torch.Tensor:
    """int64 holding unsigned W-bit values -> the W-bit word dtype (same bit pattern)."""
    dtype = WORD_DTYPES[word_bits]
    if word_bits in (16, 32):
        # Explicit wrap to the signed range: int64 -> int32 casts need not wrap on every device.
        x = torch.where(x >= 1 << (word_bits - 1), x - (1 << word_bits), x)
    return x.to(dtype)


def _from_words(words: torch.Tensor, word_bits: int) -> torch.Tensor:
    """Word dtype -> int64; unsigned W-bit values for W < 64 (W = 64 keeps the sign bit)."""
    x = words.to(torch.int64)
    return x & ((1 << word_bits) - 1) if word_bits < 64 else x


# ---------------------------------------------------------------- torch reference
# The layout repeats every lcm(k, W) bits: a group of C = lcm/k codes fills M = lcm/W words
# exactly. Static per-(k, W) tables say which codes overlap each word of a group and by how much
# to shift them, so the reference is a few gathers and shifts, no Python loop over the data.
@functools.cache
def _pack_tables(bits: int, word_bits: int) -> tuple[int, int, list[list[int]], list[list[int]]]:
    period = math.lcm(bits, word_bits)
    C, M = period // bits, period // word_bits
    T = -(-word_bits // bits) + (word_bits % bits != 0)  # most codes overlapping one word
    idx, shift = [], []
    for m in range(M):
        first = m * word_bits // bits
        row_i, row_s = [], []
        for t in range(T):
            i = first + t
            if i < C and i * bits < (m + 1) * word_bits:
                row_i.append(i)
                row_s.append(i * bits - m * word_bits)  # < 0: only the code's high bits land here
            else:
                row_i.append(0)
                row_s.append(word_bits)  # shifted out by the W-bit mask (or by the padding row)
        idx.append(row_i)
        shift.append(row_s)
    return C, M, idx, shift


def _pack_torch(codes: torch.Tensor, bits: int, word_bits: int) -> torch.Tensor:
    *batch, L = codes.shape
    C, M, idx, shift = _pack_tables(bits, word_bits)
    G = -(-L // C)
    x = torch.nn.functional.pad(codes.to(torch.int64), (0, G * C - L)).view(*batch, G, C)
    idx_t = torch.tensor(idx, device=codes.device)  # [M, T]
    sh = torch.tensor(shift, device=codes.device)
    x = x[..., idx_t]  # [..., G, M, T]
    # Left shifts place a code's low bits; right shifts keep the high bits of a straddling code.
    # Shifts of >= 64 give 0 in torch; W = 64 has no padding slot with shift 64 that matters.
    x = torch.where(sh >= 0, x << sh.clamp(min=0), x >> (-sh).clamp(min=0))
    if word_bits < 64:
        x = x & ((1 << word_bits) - 1)
    else:
        x = torch.where(sh < 64, x, 0)
    words = x.sum(-1).view(*batch, G * M)  # disjoint bits: sum == bitwise or, no carries
    return _to_words(words[..., : packed_numel(L, bits, word_bits)], word_bits)


def _unpack_torch(words: torch.Tensor, bits: int, length: int, word_bits: int, dtype: torch.dtype):
    *batch, n_words = words.shape
    C, M, _, _ = _pack_tables(bits, word_bits)
    G = -(-length // C)
    w = torch.nn.functional.pad(_from_words(words, word_bits), (0, G * M + 1 - n_words))
    start = torch.arange(C, device=words.device) * bits  # stream bit of each code in a group
    lo_word, s = start // word_bits, start % word_bits
    # Word g*M + lo_word holds the code's low bits; the next word its high bits if it straddles.
    lo_idx = (torch.arange(G, device=words.device)[:, None] * M + lo_word).view(-1)
    lo = w[..., lo_idx]
    hi = w[..., lo_idx + 1]
    # Mask after the right shift: for W = 64 the shift is arithmetic and drags the sign bit in.
    lo_bits = (word_bits - s).clamp(max=bits).repeat(G)
    s = s.repeat(G)
    code = (lo >> s) & ((1 << lo_bits) - 1)
    code = code | ((hi << lo_bits) & ((1 << bits) - 1))
    return code[..., :length].to(dtype)


# ---------------------------------------------------------------- Triton kernels (W = 32)
# Both kernels work on whole periods: C = lcm(k, 32) / k codes fill M = lcm(k, 32) / 32 words
# exactly, so a program owns BG periods of a row and reads and writes contiguous tiles (masked
# loads and stores only; no address comes from loaded data). Inside a period, codes go through
# "chunks" of S codes (S * k <= 32 bits, S | C): packing S codes into one uint32 is a plain
# shift-and-sum, and each word then combines the few chunks overlapping it. Coalesced tiles
# matter: storing each word of a period with a stride of M words ran at a third of the speed.
@functools.cache
def _triton_layout(bits: int) -> tuple[int, int, int]:
    """(C, M, S): codes and words per period, codes per chunk."""
    C, M = math.lcm(bits, 32) // bits, math.lcm(bits, 32) // 32
    S = 1
    while S * 2 * bits <= 32 and C % (S * 2) == 0:
        S *= 2
    return C, M, S


@functools.cache
def _kernels():
    import triton
    import triton.language as tl

    @triton.jit
    def pack_kernel(
        codes_ptr,
        words_ptr,
        L,
        NW,
        n_blocks,
        stride_c,
        BITS: tl.constexpr,
        C: tl.constexpr,
        M: tl.constexpr,
        MP: tl.constexpr,
        S: tl.constexpr,
        BG: tl.constexpr,
    ):
        Q: tl.constexpr = C // S  # chunks per period
        CB: tl.constexpr = S * BITS  # bits per chunk
        pid = tl.program_id(0)
        row, blk = pid // n_blocks, pid % n_blocks
        i = blk.to(tl.int64) * (BG * C) + tl.arange(0, BG * C)  # int64: rows can pass 2**31 bits
        c = tl.load(codes_ptr + row.to(tl.int64) * stride_c + i, mask=i < L, other=0).to(tl.uint32)
        c = tl.reshape(c, (BG, Q, S)) << (tl.arange(0, S) * BITS).to(tl.uint32)[None, None, :]
        chunk = tl.sum(c, axis=2)  # [BG, Q]; disjoint bits, so sum == or (no carries)
        q = tl.arange(0, Q)
        mm = tl.arange(0, MP)  # M padded to a power of two
        out = tl.zeros((BG, MP), dtype=tl.uint32)
        for m in tl.static_range(M):
            rel = q * CB - m * 32  # chunk start relative to word m; < 0: only its high bits land
            ok = (rel > -CB) & (rel < 32)
            # uint32 gives logical shifts; clamp below 32 (a larger amount is undefined in LLVM).
            lsh = tl.minimum(tl.maximum(rel, 0), 31).to(tl.uint32)
            rsh = tl.minimum(tl.maximum(-rel, 0), 31).to(tl.uint32)
            w = tl.sum(tl.where(ok[None, :], (chunk << lsh[None, :]) >> rsh[None, :], 0), axis=1)
            out = tl.where((mm == m)[None, :], w[:, None], out)
        j = (blk.to(tl.int64) * BG + tl.arange(0, BG))[:, None] * M + mm[None, :]
        mask = (j < NW) & (mm < M)[None, :]
        tl.store(words_ptr + row.to(tl.int64) * NW + j, out.to(tl.int32, bitcast=True), mask=mask)

    @triton.jit
    def unpack_kernel(
        words_ptr,
        out_ptr,
        L,
        NW,
        n_blocks,
        BITS: tl.constexpr,
        C: tl.constexpr,
        M: tl.constexpr,
        MP: tl.constexpr,
        S: tl.constexpr,
        BG: tl.constexpr,
    ):
        Q: tl.constexpr = C // S
        CB: tl.constexpr = S * BITS
        pid = tl.program_id(0)
        row, blk = pid // n_blocks, pid % n_blocks
        mm = tl.arange(0, MP)
        j = (blk.to(tl.int64) * BG + tl.arange(0, BG))[:, None] * M + mm[None, :]
        w = tl.load(words_ptr + row.to(tl.int64) * NW + j, mask=(j < NW) & (mm < M)[None, :], other=0)
        w = w.to(tl.uint32, bitcast=True)  # logical shifts: bit 31 comes back as bit 31, not a sign
        rel = tl.arange(0, Q)[:, None] * CB - mm[None, :] * 32  # [Q, MP] chunk start vs word start
        ok = (rel > -CB) & (rel < 32)
        rsh = tl.minimum(tl.maximum(rel, 0), 31).to(tl.uint32)
        lsh = tl.minimum(tl.maximum(-rel, 0), 31).to(tl.uint32)
        # Chunk = its words, each shifted into place (bits above CB are dropped by the code mask).
        part = (w[:, None, :] >> rsh[None, :, :]) << lsh[None, :, :]
        chunk = tl.sum(tl.where(ok[None, :, :], part, 0), axis=2)  # [BG, Q]
        sh = (tl.arange(0, S) * BITS).to(tl.uint32)
        code = (chunk[:, :, None] >> sh[None, None, :]) & ((1 << BITS) - 1)  # [BG, Q, S]
        code = tl.reshape(code, (BG * C,))
        i = blk.to(tl.int64) * (BG * C) + tl.arange(0, BG * C)
        tl.store(out_ptr + row.to(tl.int64) * L + i, code.to(out_ptr.dtype.element_ty), mask=i < L)

    return pack_kernel, unpack_kernel


def _launch_params(bits: int, length: int) -> dict:
    import triton

    C, M, S = _triton_layout(bits)
    # ~8K codes per program (measured best on an H200), fewer for short rows.
    BG = min(8192 // C, triton.next_power_of_2(triton.cdiv(length, C)))
    num_warps = 4 if BG * C >= 2048 else 1
    return dict(BITS=bits, C=C, M=M, MP=triton.next_power_of_2(M), S=S, BG=BG, num_warps=num_warps)


def _pack_triton(codes: torch.Tensor, bits: int) -> torch.Tensor:
    *batch, L = codes.shape
    x = codes.reshape(math.prod(batch), L)
    if x.stride(-1) != 1:
        x = x.contiguous()
    NW = packed_numel(L, bits, 32)
    if L * bits % 32 == 0 and x.is_contiguous() and x.numel():
        # Rows end on word boundaries: the rows are one stream. One launch over all of it keeps
        # many short rows (e.g. 128-code groups) from costing a tiny program each.
        x = x.reshape(1, -1)
    R, L1 = x.shape
    words = torch.empty(R, packed_numel(L1, bits, 32), dtype=torch.int32, device=codes.device)
    if words.numel():
        p = _launch_params(bits, L1)
        n_blocks = -(-L1 // (p["BG"] * p["C"]))
        _kernels()[0][(R * n_blocks,)](x, words, L1, words.shape[1], n_blocks, x.stride(0), **p)
    return words.view(*batch, NW)


def _unpack_triton(words: torch.Tensor, bits: int, length: int, dtype: torch.dtype) -> torch.Tensor:
    *batch, NW = words.shape
    w = words.reshape(math.prod(batch), NW).contiguous()
    L1 = length
    if length * bits % 32 == 0 and w.numel():
        w, L1 = w.reshape(1, -1), w.shape[0] * length  # rows end on word boundaries: one stream
    R, NW1 = w.shape
    out = torch.empty(R, L1, dtype=dtype, device=words.device)
    if out.numel():
        p = _launch_params(bits, L1)
        n_blocks = -(-L1 // (p["BG"] * p["C"]))
        _kernels()[1][(R * n_blocks,)](w, out, L1, NW1, n_blocks, **p)
    return out.view(*batch, length)


def _backend(backend: str, device: torch.device, word_bits: int) -> str:
    if backend == "triton" and word_bits != 32:
        raise ValueError(f"the Triton backend packs into 32-bit words only, got word_bits={word_bits}")
    resolved = resolve_backend(backend, device)
    return "torch" if word_bits != 32 else resolved


# ---------------------------------------------------------------- public API
def pack_bits(
    codes: torch.Tensor,
    bits: int,
    *,
    word_bits: int = 32,
    backend: str = "auto",
    validate: bool = True,
) -> torch.Tensor:
    """Pack ``bits``-bit codes along the last dimension into dense words.

    Each row (all leading indices fixed) is packed on its own into a little-endian bitstream:
    code ``i`` occupies stream bits ``[i * bits, (i + 1) * bits)`` and word ``j`` holds stream
    bits ``[j * word_bits, (j + 1) * word_bits)``, bit ``b % word_bits`` of the word being
    stream bit ``b``. Codes straddle word boundaries when ``bits`` does not divide
    ``word_bits``; the unused high bits of a row's last word are zero.

    Parameters
    ----------
    codes : torch.Tensor
        ``[..., L]`` tensor of any integer dtype with values in ``[0, 2**bits)``.
    bits : int
        Code width, one of 1..8 or 16.
    word_bits : int, default 32
        Word width ``W``: 8, 16, 32 or 64 (the Triton backend supports 32 only).
    backend : {"auto", "triton", "torch"}
        ``"auto"``: Triton on CUDA tensors when ``word_bits == 32``, else the torch reference.
    validate : bool, default True
        Check the dtype and the value range. The range check is one ``aminmax`` over the codes
        plus one host sync; turn it off in hot loops where the codes are known to be in range
        (out-of-range codes would then corrupt their neighbours).

    Returns
    -------
    torch.Tensor
        ``[..., packed_numel(L, bits, word_bits)]`` words: ``torch.int32`` for ``W = 32``
        (the unsigned word's bit pattern), ``int16`` for 16, ``int64`` for 64, ``uint8`` for 8.

    Raises
    ------
    ValueError
        Unsupported ``bits`` or ``word_bits``, non-integer dtype, codes out of range.
    """
    _check_bits(bits)
    _check_word_bits(word_bits)
    if validate:
        _check_codes(codes, bits)
    elif codes.dim() == 0:
        raise ValueError("codes must have at least one dimension (packing runs along the last one)")
    if _backend(backend, codes.device, word_bits) == "triton":
        return _pack_triton(codes, bits)
    return _pack_torch(codes, bits, word_bits)


def unpack_bits(
    words: torch.Tensor,
    bits: int,
    length: int,
    *,
    word_bits: int = 32,
    dtype: torch.dtype = torch.int32,
    backend: str = "auto",
) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: ``[..., packed_numel(length)]`` words -> ``[..., length]`` codes.

    Parameters
    ----------
    words : torch.Tensor
        Words as returned by :func:`pack_bits` with the same ``bits`` and ``word_bits``; the
        dtype must be that of ``word_bits`` (``int32`` for 32, ``int16``, ``uint8``, ``int64``).
    bits : int
        Code width, one of 1..8 or 16.
    length : int
        Number of codes per row (``L`` at packing time).
    word_bits : int, default 32
        Word width: 8, 16, 32 or 64 (the Triton backend supports 32 only).
    dtype : torch.dtype, default torch.int32
        Dtype of the returned codes. ``int32`` holds every width and indexes tensors directly;
        pass ``torch.uint8`` for ``bits <= 8`` to save memory.
    backend : {"auto", "triton", "torch"}
        As in :func:`pack_bits`.

    Returns
    -------
    torch.Tensor
        ``[..., length]`` codes in ``[0, 2**bits)``.

    Raises
    ------
    ValueError
        Unsupported ``bits``/``word_bits``, wrong word dtype, or a last dimension that is not
        ``packed_numel(length, bits, word_bits)``.
    """
    _check_bits(bits)
    _check_word_bits(word_bits)
    if words.dtype != WORD_DTYPES[word_bits]:
        raise ValueError(
            f"words for word_bits={word_bits} must be {WORD_DTYPES[word_bits]}, got {words.dtype}"
        )
    if words.dim() == 0:
        raise ValueError("words must have at least one dimension")
    expected = packed_numel(length, bits, word_bits)
    if words.shape[-1] != expected:
        raise ValueError(
            f"{length} codes of {bits} bits take {expected} words of {word_bits} bits per row, "
            f"but words has {words.shape[-1]} in its last dimension (shape {tuple(words.shape)})"
        )
    if dtype.is_floating_point or dtype.is_complex or dtype == torch.bool:
        raise ValueError(f"dtype must be an integer dtype, got {dtype}")
    if torch.iinfo(dtype).max < (1 << bits) - 1:
        raise ValueError(f"dtype {dtype} cannot hold {bits}-bit codes (up to {(1 << bits) - 1})")
    if _backend(backend, words.device, word_bits) == "triton":
        return _unpack_triton(words, bits, length, dtype)
    return _unpack_torch(words, bits, length, word_bits, dtype)
