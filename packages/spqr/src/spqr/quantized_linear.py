"""``QuantizedLinear``: one SpQR layer in its compact storage format, with a torch reference forward.

Stored tensors (buffers; ``O = out_features``, ``I = in_features``, ``G = I / beta1`` groups):

* ``codes`` int32 ``[O, packed_numel(I, wbits)]``: the ``wbits``-bit weight codes, each row packed on
  its own with :func:`papercore.kernels.packing.pack_bits`, in the **permuted** column order (so
  the ``beta1`` columns of a group are contiguous);
* ``perm`` int16 (``I < 32768``) or int32 ``[I]``: permuted column ``k`` is original column ``perm[k]``;
* each first-level statistic (``scale``, ``zero``):

  - quantized (``qq_*_bits`` < 16): ``<stat>_codes`` int32, the ``[O, G]`` second-level codes packed
    as one stream (``packed_numel(O * G, bits)`` words, row-major), plus ``<stat>_qq_scale`` and
    ``<stat>_qq_zero`` fp16 ``[O / beta2, G]``: ``stat[o, g] = qq_scale[o // beta2, g] *
    (code[o, g] - qq_zero[o // beta2, g])`` computed in float32;
  - kept in fp16 (``qq_*_bits == 16``): ``<stat>`` fp16 ``[O, G]``;
  - with ``sym`` there is no zero tensor: the zero is the constant ``2^wbits / 2``;

* outliers in CSR: ``outlier_row_offsets`` int32 ``[O + 1]``, ``outlier_col_indices`` int16 when
  ``I < 32768`` else int32 ``[nnz]`` (**original** column indices), ``outlier_values`` fp16 ``[nnz]``;
* ``bias`` (a parameter in the layer's dtype) or None.

**Outlier semantic: an outlier value REPLACES the dense value** at its position (it is the
weight itself, not a residual). This matches the engine (:mod:`spqr.engine`): at an outlier the
code is the code of 0 (``round(zero)``), which dequantizes to about 0 but is never used.

Precision: the engine rounds the second-level scales and zeros and the outlier values to fp16
before using them (:func:`spqr.engine.fp16_grid`), so for the SpQR presets
:meth:`dequantize` is bit-exact with ``SpQRResult.weight``. First-level statistics kept in fp16
(``qq_*_bits = 16``: the GPTQ and RTN presets) are used in float32 by the engine and rounded to
fp16 here, so the stored layer differs from the engine's weight by that rounding.

Floating buffers stay fp16 whatever ``module.to(dtype)`` asks (only the bias follows the dtype).

**In memory**, a layer whose configuration has a kernel layout (:func:`spqr.kernels.layout.fast_supported`:
2-4-bit codes, groups of a multiple of 16 columns, asymmetric statistics of at most 4 bits or fp16;
every preset) holds that layout *instead of* the stored buffers once :meth:`QuantizedLinear.to_kernel_layout_`
ran, which :meth:`QuantizedLinear.from_result`, :func:`spqr.load_quantized`, ``from_pretrained`` and
the resume of :func:`spqr.quantize_` do. ``state_dict()`` always gives the stored format (converted
back on the fly), so checkpoints do not depend on the layout in memory; :attr:`QuantizedLinear.layout`
says which one a layer holds.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from papercore.kernels.packing import pack_bits, packed_numel, unpack_bits
from spqr.config import FP16_STATS, SpQRConfig, bits_per_parameter
from spqr.kernels import layout as kernel_layout
from spqr.kernels import spqr_linear

INDEX16_LIMIT = 32768  # int16 column indices / permutation when in_features < this


def index_dtype(in_features: int) -> torch.dtype:
    """int16 for ``in_features < 32768`` (every index fits), else int32."""
    return torch.int16 if in_features < INDEX16_LIMIT else torch.int32


def build_csr(
    mask: torch.Tensor, values: torch.Tensor, index_dtype: torch.dtype = torch.int16
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CSR of a ``[rows, cols]`` boolean mask with ``values`` in row-major order of the mask.

    Returns ``row_offsets`` int32 ``[rows + 1]``, ``col_indices`` (``index_dtype``) and fp16 values.
    Raises ValueError when a column index does not fit ``index_dtype``.
    """
    rows, cols = mask.shape
    if values.numel() != int(mask.sum()):
        raise ValueError(f"{values.numel()} outlier values for {int(mask.sum())} outlier positions")
    limit = torch.iinfo(index_dtype).max
    idx = mask.nonzero()
    if idx.numel() and int(idx[:, 1].max()) > limit:
        raise ValueError(
            f"outlier column index {int(idx[:, 1].max())} does not fit {index_dtype} (max {limit}); "
            f"in_features={cols} needs int32 column indices"
        )
    counts = mask.sum(1, dtype=torch.int64)
    offsets = torch.zeros(rows + 1, dtype=torch.int64, device=mask.device)
    offsets[1:] = counts.cumsum(0)
    return offsets.to(torch.int32), idx[:, 1].to(index_dtype), values.to(torch.float16)


def csr_to_dense(
    row_offsets: torch.Tensor, col_indices: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`build_csr`: the boolean mask and a dense tensor holding the values (0 elsewhere)."""
    rows = torch.repeat_interleave(
        torch.arange(shape[0], device=row_offsets.device), (row_offsets[1:] - row_offsets[:-1]).long()
    )
    cols = col_indices.long()
    mask = torch.zeros(shape, dtype=torch.bool, device=values.device)
    dense = torch.zeros(shape, dtype=values.dtype, device=values.device)
    mask[rows, cols] = True
    dense[rows, cols] = values
    return mask, dense


class QuantizedLinear(nn.Module):
    """``y = x Ŵᵀ + b`` with ``Ŵ`` stored as SpQR codes, bilevel statistics and CSR outliers (see the module doc)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        wbits: int,
        groupsize: int,
        qq_scale_bits: int,
        qq_zero_bits: int,
        qq_groupsize: int,
        sym: bool = False,
        nnz: int = 0,
        bias: bool = True,
        device=None,
        dtype=None,
    ):
        super().__init__()
        if in_features % groupsize:
            raise ValueError(f"groupsize {groupsize} does not divide in_features {in_features}")
        self.in_features, self.out_features = in_features, out_features
        self.wbits, self.groupsize, self.qq_groupsize, self.sym = wbits, groupsize, qq_groupsize, sym
        self.qq_scale_bits, self.qq_zero_bits = qq_scale_bits, qq_zero_bits
        self.nnz = nnz
        self.layout = "stored"  # or "kernel": see to_kernel_layout_
        for name, (shape, dt) in self.stored_spec().items():
            self.register_buffer(name, torch.zeros(shape, device=device, dtype=dt))
        self.bias = nn.Parameter(torch.zeros(out_features, device=device, dtype=dtype)) if bias else None

    def stored_spec(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """Name -> (shape, dtype) of every stored tensor but the bias (the checkpoint format)."""
        o, i, groups = self.out_features, self.in_features, self.in_features // self.groupsize
        idx = index_dtype(i)
        spec = {"codes": ((o, packed_numel(i, self.wbits)), torch.int32), "perm": ((i,), idx)}
        for stat, bits in self._stats():
            if bits < FP16_STATS:
                if o % self.qq_groupsize:
                    raise ValueError(f"qq_groupsize {self.qq_groupsize} does not divide out_features {o}")
                spec[f"{stat}_codes"] = ((packed_numel(o * groups, bits),), torch.int32)
                spec[f"{stat}_qq_scale"] = ((o // self.qq_groupsize, groups), torch.float16)
                spec[f"{stat}_qq_zero"] = ((o // self.qq_groupsize, groups), torch.float16)
            else:
                spec[stat] = ((o, groups), torch.float16)
        spec["outlier_row_offsets"] = ((o + 1,), torch.int32)
        spec["outlier_col_indices"] = ((self.nnz,), idx)
        spec["outlier_values"] = ((self.nnz,), torch.float16)
        return spec

    # ------------------------------------------------------------------ the layout in memory
    @property
    def has_kernel_layout(self) -> bool:
        """Whether this configuration has a kernel layout (:func:`spqr.kernels.layout.fast_supported`)."""
        return kernel_layout.fast_supported(self)

    @torch.no_grad()
    def to_kernel_layout_(self) -> QuantizedLinear:
        """Replace the stored buffers by the kernel layout (:mod:`spqr.kernels.layout`), in place.

        A no-op for a layer already converted or whose configuration has no kernel layout (those
        keep the stored buffers, which the generic kernels read). Returns the layer.
        """
        if self.layout == "kernel" or not self.has_kernel_layout:
            return self
        new = kernel_layout.to_kernel(self)
        for name in kernel_layout.STORED_ONLY:
            self._buffers.pop(name, None)
        for name, t in new.items():
            self.register_buffer(name, t)
        self.layout = "kernel"
        return self

    @torch.no_grad()
    def to_stored_layout_(self) -> QuantizedLinear:
        """Inverse of :meth:`to_kernel_layout_` (bit-exact); returns the layer."""
        if self.layout == "stored":
            return self
        stored = self.stored_tensors()
        for name in kernel_layout.KERNEL_ONLY:
            self._buffers.pop(name, None)
        for name in self.stored_spec():
            self.register_buffer(name, stored[name])
        self.layout = "stored"
        return self

    def stored_tensors(self) -> dict[str, torch.Tensor]:
        """The stored-format tensors (every one but the bias), converted from the kernel layout if the
        layer holds it (new tensors; the layer is unchanged)."""
        if self.layout == "stored":
            return {name: self._buffers[name] for name in self.stored_spec()}
        converted = kernel_layout.to_stored(self)
        return {name: converted.get(name, self._buffers.get(name)) for name in self.stored_spec()}

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        if self.layout == "stored":
            return super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.bias is not None:
            destination[prefix + "bias"] = self.bias if keep_vars else self.bias.detach()
        for name, t in self.stored_tensors().items():
            destination[prefix + name] = t

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        converted = self.layout == "kernel"
        if converted:  # load into stored buffers of the recorded shapes, then convert again
            dev = self.perm.device
            for name in kernel_layout.KERNEL_ONLY:
                self._buffers.pop(name, None)
            for name, (shape, dt) in self.stored_spec().items():
                if name not in self._buffers:
                    self.register_buffer(name, torch.zeros(shape, device=dev, dtype=dt))
            self.layout = "stored"
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)
        if converted:
            self.to_kernel_layout_()

    def _stats(self) -> list[tuple[str, int]]:
        return [("scale", self.qq_scale_bits)] + ([] if self.sym else [("zero", self.qq_zero_bits)])

    @classmethod
    def from_config(
        cls, config: SpQRConfig, in_features: int, out_features: int, **kwargs
    ) -> QuantizedLinear:
        return cls(
            in_features,
            out_features,
            wbits=config.wbits,
            groupsize=config.groupsize,
            qq_scale_bits=config.qq_scale_bits,
            qq_zero_bits=config.qq_zero_bits,
            qq_groupsize=config.qq_groupsize,
            sym=config.sym,
            **kwargs,
        )

    @classmethod
    @torch.no_grad()
    def from_result(
        cls,
        result,
        bias: torch.Tensor | None = None,
        dtype: torch.dtype | None = None,
        *,
        kernel_layout: bool = True,
    ):
        """Store an :class:`spqr.engine.SpQRResult` (and the layer's bias); with ``kernel_layout``, then
        convert it to the kernel layout (:meth:`to_kernel_layout_`)."""
        cfg = result.config
        out_f, in_f = result.codes.shape
        dev = result.codes.device
        layer = cls.from_config(
            cfg,
            in_f,
            out_f,
            nnz=int(result.outlier_mask.sum()),
            bias=bias is not None,
            device=dev,
            dtype=dtype or (bias.dtype if bias is not None else torch.float32),
        )
        perm = result.perm.to(dev)
        layer.codes.copy_(pack_bits(result.codes[:, perm].to(torch.int32), cfg.wbits))
        layer.perm.copy_(perm.to(layer.perm.dtype))
        for stat, bits in layer._stats():
            if bits < FP16_STATS:
                qq = getattr(result, f"{stat}_qq")
                getattr(layer, f"{stat}_codes").copy_(pack_bits(qq.codes.reshape(-1).to(torch.int32), bits))
                parts = ((f"{stat}_qq_scale", qq.scale), (f"{stat}_qq_zero", qq.zero))
            else:
                parts = ((stat, getattr(result, stat)),)
            for name, value in parts:
                stored = value.to(torch.float16)
                if not torch.isfinite(stored).all():
                    raise ValueError(
                        f"{name} does not fit fp16 (values up to {value.abs().max().item():.3g})"
                    )
                getattr(layer, name).copy_(stored)
        offsets, cols, values = build_csr(
            result.outlier_mask, result.outlier_values, layer.outlier_col_indices.dtype
        )
        layer.outlier_row_offsets.copy_(offsets)
        layer.outlier_col_indices.copy_(cols)
        layer.outlier_values.copy_(values)
        if bias is not None:
            layer.bias.copy_(bias)
        return layer.to_kernel_layout_() if kernel_layout else layer

    @classmethod
    @torch.no_grad()
    def random(
        cls,
        config: SpQRConfig,
        in_features: int,
        out_features: int,
        *,
        outlier_share: float = 0.01,
        bias: bool = False,
        seed: int = 0,
        device=None,
        dtype: torch.dtype = torch.float32,
    ) -> QuantizedLinear:
        """A layer of ``config``'s format with random codes, statistics and outliers (for timing; the
        weight means nothing). Statistics are drawn so that the weights are of order 0.1."""
        gen = torch.Generator().manual_seed(seed)
        mask = torch.rand(out_features, in_features, generator=gen) < outlier_share
        layer = cls.from_config(
            config, in_features, out_features, nnz=int(mask.sum()), bias=bias, dtype=dtype
        )
        groups = in_features // config.groupsize
        codes = torch.randint(
            0, 2**config.wbits, (out_features, in_features), generator=gen, dtype=torch.int32
        )
        layer.codes.copy_(pack_bits(codes, config.wbits))
        layer.perm.copy_(torch.randperm(in_features, generator=gen).to(layer.perm.dtype))
        for stat, bits in layer._stats():
            if bits < FP16_STATS:
                c = torch.randint(0, 2**bits, (out_features * groups,), generator=gen, dtype=torch.int32)
                getattr(layer, f"{stat}_codes").copy_(pack_bits(c, bits))
                shape = (out_features // config.qq_groupsize, groups)
                qq = torch.rand(shape, generator=gen)
                top = 0.1 / 2**config.wbits if stat == "scale" else 2.0**config.wbits / 2**bits
                getattr(layer, f"{stat}_qq_scale").copy_(((0.5 + qq) * top).half())
                getattr(layer, f"{stat}_qq_zero").copy_(torch.zeros(shape).half())
            else:
                top = 0.1 / 2**config.wbits if stat == "scale" else 2.0**config.wbits
                getattr(layer, stat).copy_((torch.rand(out_features, groups, generator=gen) * top).half())
        offsets, cols, values = build_csr(mask, torch.randn(int(mask.sum()), generator=gen), layer.perm.dtype)
        layer.outlier_row_offsets.copy_(offsets)
        layer.outlier_col_indices.copy_(cols)
        layer.outlier_values.copy_(values)
        if bias:
            layer.bias.copy_(torch.randn(out_features, generator=gen) * 0.1)
        layer.requires_grad_(False)
        return layer.to_kernel_layout_().to(device)

    # ------------------------------------------------------------------ dequantization
    def statistic(self, stat: str) -> torch.Tensor:
        """First-level ``scale`` or ``zero`` as float32 ``[out, groups]``."""
        groups = self.in_features // self.groupsize
        if stat == "zero" and self.sym:
            return torch.full((self.out_features, groups), 2.0 ** (self.wbits - 1), device=self.perm.device)
        if self.layout == "kernel":
            return kernel_layout.kernel_statistic(self, stat)
        bits = self.qq_scale_bits if stat == "scale" else self.qq_zero_bits
        if bits >= FP16_STATS:
            return getattr(self, stat).float()
        q = unpack_bits(getattr(self, f"{stat}_codes"), bits, self.out_features * groups).float()
        q = q.view(-1, self.qq_groupsize, groups)  # [out / beta2, beta2, groups]
        s = getattr(self, f"{stat}_qq_scale").float()[:, None, :]
        z = getattr(self, f"{stat}_qq_zero").float()[:, None, :]
        return (s * (q - z)).reshape(self.out_features, groups)

    def dequantize(self) -> torch.Tensor:
        """The dense float32 ``[out, in]`` weight: codes and statistics (permuted order), un-permuted, outliers replaced."""
        if self.layout == "kernel":
            q = kernel_layout.kernel_codes(self).float()
        else:
            q = unpack_bits(self.codes, self.wbits, self.in_features).float()
        scale = self.statistic("scale").repeat_interleave(self.groupsize, 1)
        zero = self.statistic("zero").repeat_interleave(self.groupsize, 1)
        w_perm = scale * (q - zero)
        if self.layout == "kernel":  # outliers at their permuted columns
            mask, dense = csr_to_dense(
                self.outlier_row_offsets, self.outlier_perm_cols, self.outlier_values.float(), tuple(q.shape)
            )
            w_perm = torch.where(mask, dense, w_perm)
        w = torch.empty_like(w_perm)
        w[:, self.perm.long()] = w_perm
        if self.layout == "kernel":
            return w
        mask, dense = csr_to_dense(
            self.outlier_row_offsets, self.outlier_col_indices, self.outlier_values.float(), tuple(w.shape)
        )
        return torch.where(mask, dense, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return spqr_linear(x, self, self.bias)  # Triton kernels on CUDA, else the reference

    # ------------------------------------------------------------------ size
    @property
    def stored_bits(self) -> int:
        """Bits of every stored tensor but the bias (the checkpoint format, whatever the layout in memory)."""
        return sum(
            math.prod(shape) * torch.tensor([], dtype=dt).element_size() * 8
            for shape, dt in self.stored_spec().values()
        )

    @property
    def nbytes(self) -> int:
        """Bytes this layer holds in memory: its buffers (in the layout it holds) and the bias."""
        tensors = [*self._buffers.values(), *self._parameters.values()]
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)

    @property
    def bits_per_parameter(self) -> float:
        """Actual storage per weight (every stored tensor but the bias)."""
        return self.stored_bits / (self.in_features * self.out_features)

    @property
    def formula_bits_per_parameter(self) -> float:
        """The paper's size formula (:func:`spqr.config.bits_per_parameter`) at this layer's outlier share."""
        share = self.nnz / (self.in_features * self.out_features)
        return bits_per_parameter(
            self.wbits,
            self.groupsize,
            self.qq_scale_bits,
            self.qq_zero_bits,
            self.qq_groupsize,
            outlier_share=share,
            sym=self.sym,
        )

    @property
    def overhead_bits(self) -> int:
        """Stored bits the formula does not count: the permutation, the CSR row offsets, padding of the last
        word of each packed row / stream, and 16 extra bits per outlier column index when those are int32."""
        n, o, groups = self.in_features, self.out_features, self.in_features // self.groupsize
        spec = self.stored_spec()
        index_bits = torch.tensor([], dtype=spec["perm"][1]).element_size() * 8
        bits = n * index_bits + 32 * (o + 1)
        bits += o * (spec["codes"][0][1] * 32 - n * self.wbits)
        for stat, b in self._stats():
            if b < FP16_STATS:
                bits += spec[f"{stat}_codes"][0][0] * 32 - o * groups * b
        bits += self.nnz * (index_bits - 16)
        return bits

    # ------------------------------------------------------------------ fp16 buffers keep their dtype
    def _apply(self, fn, recurse=True):
        halves = [k for k, b in self._buffers.items() if b is not None and b.dtype == torch.float16]
        for k in halves:  # integer views are moved between devices but never cast
            self._buffers[k] = self._buffers[k].view(torch.int16)
        try:
            return super()._apply(fn, recurse)
        finally:
            for k in halves:
                self._buffers[k] = self._buffers[k].view(torch.float16)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, wbits={self.wbits}, "
            f"groupsize={self.groupsize}, qq_bits=({self.qq_scale_bits}, {self.qq_zero_bits}), "
            f"qq_groupsize={self.qq_groupsize}, nnz={self.nnz}, bias={self.bias is not None}, layout={self.layout}"
        )
