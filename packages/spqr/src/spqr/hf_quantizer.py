"""Loading SpQR checkpoints through ``transformers.AutoModelForCausalLM.from_pretrained``.

Importing :mod:`spqr` registers a quantization config and a quantizer under the name
``"spqr_papers"`` (``quant_method`` of :func:`spqr.checkpoint.save_quantized` folders). The built-in
name ``"spqr"`` belongs to the authors' ``spqr_quant`` package and its own layout. The quantizer
loads pre-quantized checkpoints only (``requires_calibration``). Before the weights load, it swaps
each linear named in ``quantization_config["layers"]`` for a :class:`~spqr.QuantizedLinear` of the
recorded shape, and the checkpoint's tensors then fill its buffers; after loading, each layer is
converted to the kernel layout (:meth:`spqr.QuantizedLinear.to_kernel_layout_`).
"""

from __future__ import annotations

import math

from spqr.checkpoint import QUANT_METHOD, swap_quantized_layers, to_kernel_layout_

try:
    from transformers.quantizers import HfQuantizer
    from transformers.quantizers.auto import (
        AUTO_QUANTIZATION_CONFIG_MAPPING,
        AUTO_QUANTIZER_MAPPING,
        register_quantization_config,
        register_quantizer,
    )
    from transformers.utils.quantization_config import QuantizationConfigMixin
except ImportError:  # an old transformers: loading goes through spqr.load_quantized only
    HfQuantizer = None


if HfQuantizer is not None and QUANT_METHOD not in AUTO_QUANTIZER_MAPPING:

    @register_quantization_config(QUANT_METHOD)
    class SpQRPapersConfig(QuantizationConfigMixin):
        """The ``quantization_config`` of a :func:`spqr.checkpoint.save_quantized` folder."""

        def __init__(self, layers: dict | None = None, config: dict | None = None, **kwargs):
            self.quant_method = QUANT_METHOD
            self.layers = layers or {}
            self.config = config or {}
            for k, v in kwargs.items():
                setattr(self, k, v)

        def to_dict(self) -> dict:
            d = dict(self.__dict__)
            d["quant_method"] = QUANT_METHOD
            tau = d.get("outlier_threshold")
            if isinstance(tau, float) and not math.isfinite(tau):
                d["outlier_threshold"] = None
            return d

    @register_quantizer(QUANT_METHOD)
    class SpQRPapersQuantizer(HfQuantizer):
        """Loads ``spqr_papers`` checkpoints (pre-quantized only)."""

        requires_calibration = True

        def validate_environment(self, *args, **kwargs):
            pass

        def _process_model_before_weight_loading(self, model, **kwargs):
            swap_quantized_layers(model, self.quantization_config.to_dict())

        def _process_model_after_weight_loading(self, model, **kwargs):
            return to_kernel_layout_(model)  # the kernel layout replaces the loaded stored buffers

        @property
        def is_trainable(self) -> bool:
            return False

        def is_serializable(self, *args, **kwargs) -> bool:
            return True

    assert AUTO_QUANTIZATION_CONFIG_MAPPING[QUANT_METHOD] is SpQRPapersConfig
