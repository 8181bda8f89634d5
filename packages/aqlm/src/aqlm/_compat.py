"""transformers compatibility: upstream checkpoints name the linears to keep dense by parameter.

The authors' ``convert_to_hf.py`` lists ``linear_weights_not_to_quantize`` as parameter names
(``"lm_head.weight"``), which transformers 4.x matched as ``f"{module}.weight"``. transformers 5
matches module names only (``should_convert_module``), so it would swap ``lm_head`` for a
``QuantizedLinear`` that the checkpoint has no codes for, and leave it uninitialised. transformers'
AQLM integration starts by importing ``aqlm.QuantizedLinear``; that import (served by
``aqlm.__getattr__``) calls :func:`patch_transformers`, which makes the integration's check also
accept ``<module>.weight``. Nothing else in transformers is touched.
"""

from __future__ import annotations

import sys


def _accepts_parameter_names(check):
    def should_convert_module(full_name, patterns=None):
        if patterns and f"{full_name}.weight" in patterns:
            return False
        return check(full_name, patterns)

    should_convert_module.aqlm_parameter_names = True
    should_convert_module.__wrapped__ = check
    return should_convert_module


def patch_transformers() -> bool:
    """Teach a loaded ``transformers.integrations.aqlm`` the upstream parameter names (idempotent).
    Returns whether the integration is loaded (and so patched)."""
    module = sys.modules.get("transformers.integrations.aqlm")
    check = getattr(module, "should_convert_module", None)
    if check is None:
        return False
    if not getattr(check, "aqlm_parameter_names", False):
        module.should_convert_module = _accepts_parameter_names(check)
    return True
