"""Quantize a transformers decoder block by block with the SpQR engine (:func:`quantize_`).

This release simulates the quantized model: every linear's weight is replaced by its dequantized
SpQR weight (codes, bilevel statistics and outliers applied), which is exactly what the model
computes once quantized, so perplexity and bits are final; the packed storage format and the
kernels come in a later release.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from torch import nn

from papercore.calib import BlockContext, CalibConfig, run_calibration
from spqr.config import SpQRConfig
from spqr.engine import quantize_weight

log = logging.getLogger(__name__)


@dataclass
class LayerReport:
    name: str
    shape: tuple[int, int]
    relative_loss: float | None
    outlier_share: float
    bits_per_parameter: float


@dataclass
class QuantizationReport:
    layers: list[LayerReport] = field(default_factory=list)

    @property
    def bits_per_parameter(self) -> float:
        """Average over all quantized weights (outliers included)."""
        total = sum(r.shape[0] * r.shape[1] for r in self.layers)
        return sum(r.bits_per_parameter * r.shape[0] * r.shape[1] for r in self.layers) / total

    @property
    def outlier_share(self) -> float:
        total = sum(r.shape[0] * r.shape[1] for r in self.layers)
        return sum(r.outlier_share * r.shape[0] * r.shape[1] for r in self.layers) / total


@torch.no_grad()
def quantize_(
    model: nn.Module,
    config: SpQRConfig,
    calibration: torch.Tensor,
    *,
    device=None,
    offload: bool = False,
    progress: bool = True,
) -> QuantizationReport:
    """Replace every decoder linear's weight by its SpQR (or GPTQ/RTN) reconstruction, in place."""
    report = QuantizationReport()

    def callback(ctx: BlockContext) -> None:
        for name, linear in ctx.linears.items():
            full = f"model.layers.{ctx.index}.{name}"
            try:
                res = quantize_weight(linear.weight.detach().float(), ctx.xtx[name], config)
            except ValueError as e:
                raise ValueError(f"{full}: {e}") from e
            linear.weight.copy_(res.weight.to(linear.weight.dtype))
            report.layers.append(
                LayerReport(
                    full,
                    tuple(linear.weight.shape),
                    res.relative_loss,
                    float(res.outlier_share),
                    float(res.bits_per_parameter),
                )
            )

    run_calibration(
        model, calibration, callback, CalibConfig(device=device, offload=offload, progress=progress)
    )
    return report
