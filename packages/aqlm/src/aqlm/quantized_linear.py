"""``QuantizedLinear``: an AQLM-quantized ``nn.Linear``, parameter-compatible with the upstream package.

transformers' built-in AQLM support builds ``aqlm.QuantizedLinear(in_features, out_features,
in_group_size, out_group_size, num_codebooks, nbits_per_codebook, bias)`` and loads ``codes``,
``codebooks``, ``scales`` and ``bias`` into it; checkpoints are interchangeable with upstream ones.
"""

from __future__ import annotations

import torch
from torch import nn

from aqlm.config import bits_per_parameter
from aqlm.kernels import aqlm_linear, dequantize, signed_codes, storage_dtype, unsigned_codes


class QuantizedLinear(nn.Module):
    """``y = x Ŵᵀ + b`` with ``Ŵ`` stored as additive codes.

    Parameters (names, shapes and dtypes of the upstream format):
    ``codes [out/out_g, in/in_g, M]`` (int8 for B <= 8, else int16; unsigned codes stored signed),
    ``codebooks [M, 2^B, out_g, in_g]``, ``scales [out/out_g, 1, 1, 1]``, ``bias [out]`` or None.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        in_group_size: int,
        out_group_size: int,
        num_codebooks: int,
        nbits_per_codebook: int,
        bias: bool = True,
        device=None,
        dtype=None,
    ):
        super().__init__()
        if in_features % in_group_size:
            raise ValueError(f"in_group_size {in_group_size} does not divide in_features {in_features}")
        if out_features % out_group_size:
            raise ValueError(f"out_group_size {out_group_size} does not divide out_features {out_features}")
        factory = {"device": device, "dtype": dtype}
        self.in_features, self.out_features = in_features, out_features
        self.in_group_size, self.out_group_size = in_group_size, out_group_size
        self.num_codebooks, self.nbits_per_codebook = num_codebooks, nbits_per_codebook
        num_out_groups, num_in_groups = out_features // out_group_size, in_features // in_group_size
        self.codebooks = nn.Parameter(
            torch.empty(num_codebooks, 2**nbits_per_codebook, out_group_size, in_group_size, **factory)
        )
        self.codes = nn.Parameter(
            torch.empty(
                num_out_groups,
                num_in_groups,
                num_codebooks,
                device=device,
                dtype=storage_dtype(nbits_per_codebook),
            ),
            requires_grad=False,
        )
        self.scales = nn.Parameter(torch.empty(num_out_groups, 1, 1, 1, **factory))
        self.bias = nn.Parameter(torch.empty(out_features, **factory)) if bias else None

    @classmethod
    def from_parts(
        cls,
        codes_unsigned: torch.Tensor,
        codebooks: torch.Tensor,
        scales: torch.Tensor,
        bias: torch.Tensor | None = None,
    ) -> QuantizedLinear:
        """Build from an engine's result: unsigned int codes ``[O, I, M]``, codebooks, scales."""
        m, size, out_g, in_g = codebooks.shape
        o, i, _ = codes_unsigned.shape
        layer = cls(
            i * in_g,
            o * out_g,
            in_g,
            out_g,
            m,
            size.bit_length() - 1,
            bias=bias is not None,
            device=codebooks.device,
            dtype=codebooks.dtype,
        )
        with torch.no_grad():
            layer.codes.copy_(signed_codes(codes_unsigned, layer.nbits_per_codebook))
            layer.codebooks.copy_(codebooks)
            layer.scales.copy_(scales.reshape(o, 1, 1, 1))
            if bias is not None:
                layer.bias.copy_(bias)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return aqlm_linear(x, self.codes, self.codebooks, self.scales, self.bias)

    def dequantize(self) -> torch.Tensor:
        """The dense ``[out, in]`` weight."""
        return dequantize(self.codes, self.codebooks, self.scales)

    def unsigned_codes(self) -> torch.Tensor:
        return unsigned_codes(self.codes, self.nbits_per_codebook)

    @property
    def bits_per_parameter(self) -> float:
        """Bits per weight of what the layer holds: codes, codebooks and scales at their dtypes' widths
        (int8/int16 codes, fp16 codebooks and scales in the upstream format; the bias is not counted)."""
        return bits_per_parameter(
            self.out_features,
            self.in_features,
            self.num_codebooks,
            self.nbits_per_codebook,
            self.in_group_size,
            self.out_group_size,
            code_bits=self.codes.element_size() * 8,
            codebook_bits=self.codebooks.element_size() * 8,
            scale_bits=self.scales.element_size() * 8,
        )

    def store_as_(self, dtype: torch.dtype) -> QuantizedLinear:
        """Round codebooks and scales to ``dtype`` in place (the storage dtype; the forward computes in
        the activations' dtype whatever it is)."""
        with torch.no_grad():
            for name in ("codebooks", "scales"):
                p = getattr(self, name)
                if p.dtype != dtype:
                    setattr(self, name, nn.Parameter(p.detach().to(dtype), requires_grad=p.requires_grad))
        return self

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"scheme={self.num_codebooks}x{self.nbits_per_codebook}g{self.in_group_size}"
            f"{'' if self.out_group_size == 1 else f'o{self.out_group_size}'}, bias={self.bias is not None}"
        )
