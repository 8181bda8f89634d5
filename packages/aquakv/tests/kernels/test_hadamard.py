import pytest
import torch

from aquakv.kernels.hadamard import MAX_LOG2, fwht, hadamard_matrix
from papercore.kernels import TritonUnavailableError
from papercore.testing import assert_close_rel, tolerance, triton_or_skip

SIZES = [2**k for k in range(1, MAX_LOG2 + 1)]


def dense_columns(n: int, cols: torch.Tensor) -> torch.Tensor:
    """Columns ``cols`` of H_n in float64, from the definition H_ij = (-1)^popcount(i & j)."""
    bits = torch.arange(n)[:, None] & cols[None, :]
    parity = torch.zeros_like(bits)
    while bool(bits.any()):
        parity ^= bits & 1
        bits >>= 1
    return (1 - 2 * parity).to(torch.float64)


def dense_hadamard_apply(x: torch.Tensor, max_cols: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """(x @ H_n[:, cols], cols) in float64; all columns up to ``max_cols``, else a random sample."""
    n = x.shape[-1]
    cols = (
        torch.arange(n)
        if n <= max_cols
        else torch.randperm(n, generator=torch.Generator().manual_seed(n))[:512]
    )
    return x.to(torch.float64) @ dense_columns(n, cols), cols


def assert_matches_dense(y: torch.Tensor, x: torch.Tensor, tol: float, what: str = "") -> None:
    ref, cols = dense_hadamard_apply(x)
    assert_close_rel(y[..., cols], ref, tol, what)


def test_hadamard_matrix_is_sylvester():
    h2 = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    h8 = torch.kron(torch.kron(h2, h2), h2)
    assert torch.equal(hadamard_matrix(8), h8)
    assert torch.equal(hadamard_matrix(16) @ hadamard_matrix(16), 16 * torch.eye(16))


@pytest.mark.parametrize("n", SIZES)
def test_torch_matches_dense_and_inverts(n):
    x = torch.randn(2, n, generator=torch.Generator().manual_seed(n))
    y = fwht(x, backend="torch")
    assert_matches_dense(y, x, 1e-6, f"n={n}")
    assert_close_rel(fwht(y, backend="torch"), n * x, 1e-6, "H(Hx) = n x")
    assert_close_rel(
        fwht(fwht(x, True, backend="torch"), True, backend="torch"), x, 1e-6, "orthonormal inverse"
    )


@pytest.mark.parametrize("n", SIZES)
def test_triton_matches_dense(n):
    triton_or_skip()
    x = torch.randn(3, n, generator=torch.Generator().manual_seed(n + 1))
    y = fwht(x, backend="triton")
    assert_matches_dense(y, x, 1e-6, f"n={n}")
    assert_close_rel(fwht(y, backend="triton"), n * x, 1e-6, f"H(Hx) = n x, n={n}")


@pytest.mark.parametrize("n", [8, 64, 512, 4096, 16384])
def test_triton_normalized_and_batch_shapes(n):
    triton_or_skip()
    x = torch.randn(2, 3, n)
    y = fwht(x, normalize=True, backend="triton")
    assert y.shape == x.shape and y.dtype == x.dtype
    assert_close_rel(y, fwht(x, normalize=True, backend="torch"), 1e-6)
    assert_close_rel(
        torch.linalg.vector_norm(y, dim=-1), torch.linalg.vector_norm(x, dim=-1), 1e-6, "isometry"
    )


@pytest.mark.parametrize("n", [16, 1024, 16384])
def test_triton_fp16_rounded_like_reference(n):
    triton_or_skip()
    x = torch.randn(5, n).to(torch.float16)
    y = fwht(x, normalize=True, backend="triton")
    assert y.dtype == torch.float16
    assert_close_rel(y, fwht(x, normalize=True, backend="torch"), tolerance(torch.float16))


def test_rows_not_a_multiple_of_the_tile_and_non_contiguous():
    triton_or_skip()
    x = torch.randn(37, 32)[:, :16]  # non-contiguous, 37 rows: not a multiple of the row tile
    assert_matches_dense(fwht(x, backend="triton"), x, 1e-6)
    empty = torch.empty(0, 64)
    assert fwht(empty, backend="triton").shape == (0, 64)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_torch_backend_dtypes(dtype):
    x = torch.randn(4, 256, dtype=torch.float64)
    y = fwht(x.to(dtype), normalize=True, backend="torch")
    assert y.dtype == dtype
    assert_matches_dense(y * 16, x.to(dtype), tolerance(dtype))


@pytest.mark.parametrize("n", [0, 1, 3, 12, 2**16])
def test_bad_sizes_are_rejected(n):
    with pytest.raises(ValueError, match="power of two"):
        fwht(torch.randn(2, n), backend="torch")


def test_integer_input_rejected():
    with pytest.raises(TypeError, match="floating-point"):
        fwht(torch.ones(2, 4, dtype=torch.int32))


def test_triton_without_gpu_or_interpreter_says_what_to_do(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(TritonUnavailableError, match="TRITON_INTERPRET=1|not installed"):
        fwht(torch.randn(2, 8), backend="triton")
    # "auto" falls back to the torch reference on CPU.
    assert_close_rel(fwht(torch.ones(1, 4), backend="auto"), torch.tensor([[4.0, 0, 0, 0]]), 0)
