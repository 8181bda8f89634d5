"""Triton kernel of query-rotation attention (split-K flash-decoding with a log-sum-exp reduce).

Importing this package does not import Triton; :func:`triton_attention` does, through
``papercore.kernels.triton_guard``.
"""

from hogwild.kernels.chunks import TILE, chunk_capacity, chunk_table, make_chunks


def triton_attention(*args, **kwargs):
    """See :func:`hogwild.kernels.triton_ops.triton_attention`."""
    from hogwild.kernels.triton_ops import triton_attention as impl

    return impl(*args, **kwargs)


__all__ = ["TILE", "chunk_capacity", "chunk_table", "make_chunks", "triton_attention"]
