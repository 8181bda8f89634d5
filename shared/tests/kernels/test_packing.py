"""Bit packing: layout, exact sizes, round trips, Triton == torch, errors."""

import sys

import pytest
import torch

from papercore.kernels.packing import SUPPORTED_BITS, pack_bits, packed_numel, unpack_bits
from papercore.testing import triton_or_skip

WORD_BITS = (8, 16, 32, 64)
LENGTHS = (1, 7, 31, 33, 100)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def random_codes(shape, bits, seed=0, dtype=torch.int64, device=DEVICE):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2**bits, shape, generator=g).to(dtype).to(device)


def unsigned(words: torch.Tensor, word_bits: int) -> list[int]:
    return [int(w) & ((1 << word_bits) - 1) for w in words.reshape(-1).cpu()]


# ---------------------------------------------------------------- layout, pinned by hand
def test_hand_checked_layout_3_bits():
    # code i sits at stream bits [3i, 3i+3), LSB first; the last code (7 = 0b111) straddles:
    # its low two bits are bits 30-31 of word 0 (so word 0 is negative as int32), its high bit is
    # bit 0 of word 1.
    codes = torch.tensor([1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 7])
    words = pack_bits(codes, 3, backend="torch")
    assert words.dtype == torch.int32 and words.shape == (2,)
    assert unsigned(words, 32) == [0xD11F58D1, 0x00000001]
    assert int(words[0]) < 0
    # The same stream in bytes: byte 0 = 1 | 2 << 3 | (3 & 0b11) << 6 = 0xD1.
    assert pack_bits(codes, 3, word_bits=8, backend="torch").tolist() == [0xD1, 0x58, 0x1F, 0xD1, 0x01]


@pytest.mark.skipif(sys.byteorder != "little", reason="byte views of words assume a little-endian host")
@pytest.mark.parametrize("bits", SUPPORTED_BITS)
def test_word_sizes_share_one_bitstream(bits):
    # One stream, any word size: on a little-endian host the bytes of the words are identical.
    codes = random_codes((100,), bits, seed=bits)
    ref = pack_bits(codes, bits, word_bits=8, backend="torch")
    for w in WORD_BITS:
        as_bytes = pack_bits(codes, bits, word_bits=w, backend="torch").view(torch.uint8)
        assert torch.equal(as_bytes[: ref.numel()], ref)
        assert not as_bytes[ref.numel() :].any()  # unused high bits are zero


def test_packed_numel():
    assert packed_numel(11, 3) == 2
    assert packed_numel(32, 1) == 1 and packed_numel(33, 1) == 2
    assert packed_numel(0, 4) == 0
    assert packed_numel(5, 3, word_bits=8) == 2


# ---------------------------------------------------------------- torch reference
@pytest.mark.parametrize("word_bits", WORD_BITS)
@pytest.mark.parametrize("bits", SUPPORTED_BITS)
def test_roundtrip_and_exact_size_torch(bits, word_bits):
    for L in LENGTHS:
        for shape in [(L,), (3, L)]:
            codes = random_codes(shape, bits, seed=L)
            words = pack_bits(codes, bits, word_bits=word_bits, backend="torch")
            n_words = -(-L * bits // word_bits)
            assert words.shape == (*shape[:-1], n_words)
            # Exactly ceil(L*k/W) * W/8 bytes per row, nothing more.
            rows = codes.numel() // L
            assert words.numel() * words.element_size() == rows * n_words * word_bits // 8
            back = unpack_bits(words, bits, L, word_bits=word_bits, backend="torch")
            assert back.dtype == torch.int32 and torch.equal(back.long(), codes)


@pytest.mark.parametrize("word_bits", WORD_BITS)
@pytest.mark.parametrize("bits", SUPPORTED_BITS)
def test_max_codes_fill_every_bit(bits, word_bits):
    L = word_bits  # L * bits is a multiple of W: every bit of every word is set, top bit included
    codes = torch.full((2, L), 2**bits - 1)
    words = pack_bits(codes, bits, word_bits=word_bits, backend="torch")
    assert set(unsigned(words, word_bits)) == {(1 << word_bits) - 1}
    assert torch.equal(unpack_bits(words, bits, L, word_bits=word_bits, backend="torch").long(), codes)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64])
def test_any_integer_code_dtype(dtype):
    codes = random_codes((3, 33), 5)
    ref = pack_bits(codes, 5, backend="torch")
    assert torch.equal(pack_bits(codes.to(dtype), 5, backend="torch"), ref)


def test_noncontiguous_rows_and_output_dtype():
    codes = random_codes((40, 6), 4).t()  # [6, 40], last dim strided
    words = pack_bits(codes, 4, backend="torch")
    assert torch.equal(words, pack_bits(codes.contiguous(), 4, backend="torch"))
    back = unpack_bits(words, 4, 40, dtype=torch.uint8, backend="torch")
    assert back.dtype == torch.uint8 and torch.equal(back.long(), codes)


# ---------------------------------------------------------------- Triton kernels
@pytest.fixture
def triton_device():
    pytest.importorskip("triton")
    triton_or_skip(DEVICE)
    return DEVICE


@pytest.mark.parametrize("bits", SUPPORTED_BITS)
def test_triton_bit_identical_to_torch(bits, triton_device):
    code_dtype = torch.int32 if bits == 16 else torch.uint8
    # (4, 64): rows end on word boundaries and go through as one stream; the others row by row.
    for shape in [(1,), (7,), (3, 33), (2, 100), (4, 64)]:
        codes = random_codes(shape, bits, seed=shape[-1], dtype=code_dtype, device=triton_device)
        codes[..., -3:] = 2**bits - 1  # top bits of the last word
        words = pack_bits(codes, bits, backend="triton")
        assert words.dtype == torch.int32 and words.shape[-1] == packed_numel(shape[-1], bits)
        assert torch.equal(words, pack_bits(codes, bits, backend="torch"))
        back = unpack_bits(words, bits, shape[-1], backend="triton")
        assert torch.equal(back, codes.int())


@pytest.mark.parametrize("bits", [1, 3, 8, 16])
def test_triton_max_codes_and_strided_input(bits, triton_device):
    codes = torch.full((32, 3), 2**bits - 1, device=triton_device).t()  # [3, 32], strided rows
    words = pack_bits(codes, bits, backend="triton")
    assert set(unsigned(words, 32)) == {0xFFFFFFFF}
    back = unpack_bits(words, bits, 32, dtype=torch.int64, backend="triton")
    assert torch.equal(back, codes)


@pytest.mark.parametrize("bits", [3, 5, 8])
def test_triton_rows_spanning_several_programs(bits, triton_device):
    # A program owns ~8K codes: these rows take several programs each, the last one partial.
    codes = random_codes((2, 20_001), bits, seed=bits, dtype=torch.uint8, device=triton_device)
    words = pack_bits(codes, bits, backend="triton")
    assert torch.equal(words, pack_bits(codes, bits, backend="torch"))
    assert torch.equal(unpack_bits(words, bits, 20_001, dtype=torch.uint8, backend="triton"), codes)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_empty_inputs(backend):
    if backend == "triton":
        pytest.importorskip("triton")
        triton_or_skip(DEVICE)
    for shape in [(0,), (3, 0), (0, 5)]:
        codes = torch.zeros(shape, dtype=torch.int64, device=DEVICE)
        words = pack_bits(codes, 3, backend=backend)
        assert words.shape == (*shape[:-1], packed_numel(shape[-1], 3))
        assert unpack_bits(words, 3, shape[-1], backend=backend).shape == shape


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("bits", [0, 9, 12, 32])
def test_bad_bits(bits):
    with pytest.raises(ValueError, match="bits must be one of"):
        pack_bits(torch.zeros(4, dtype=torch.int64), bits)
    with pytest.raises(ValueError, match="bits must be one of"):
        packed_numel(4, bits)


@pytest.mark.parametrize("bad", [-1, 8])
def test_out_of_range_codes(bad):
    codes = torch.tensor([0, 1, bad, 2])
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 7\] for bits=3"):
        pack_bits(codes, 3)


def test_bad_dtypes_and_sizes():
    with pytest.raises(ValueError, match="integer dtype"):
        pack_bits(torch.zeros(4), 3)
    with pytest.raises(ValueError, match="word_bits must be one of"):
        pack_bits(torch.zeros(4, dtype=torch.int64), 3, word_bits=24)
    words = pack_bits(torch.zeros(2, 11, dtype=torch.int64), 3)
    with pytest.raises(ValueError, match="take 1 words .* but words has 2"):
        unpack_bits(words, 3, 10)
    with pytest.raises(ValueError, match="must be torch.int32"):
        unpack_bits(words.long(), 3, 11)
    with pytest.raises(ValueError, match="cannot hold 8-bit codes"):
        unpack_bits(pack_bits(torch.zeros(4, dtype=torch.int64), 8), 8, 4, dtype=torch.int8)
    with pytest.raises(ValueError, match="32-bit words only"):
        pack_bits(torch.zeros(4, dtype=torch.int64), 3, word_bits=16, backend="triton")
