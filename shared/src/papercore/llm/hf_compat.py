"""Small shims over transformers versions (the project supports transformers >= 4.56, 5.x included).

transformers 5.2x renamed the forward keyword ``past_key_values`` to ``cache`` (the old name is
deprecated) and the output attribute likewise; these helpers pick whichever the model accepts.
"""

from __future__ import annotations

import functools
import inspect


@functools.cache
def _forward_params(cls) -> frozenset[str]:
    return frozenset(inspect.signature(cls.forward).parameters)


def cache_kwarg(model) -> str:
    """The forward keyword that takes a KV cache: ``"cache"`` or ``"past_key_values"``."""
    params = _forward_params(type(model))
    return "cache" if "cache" in params and "past_key_values" not in params else "past_key_values"


def output_cache(output):
    """The cache object returned in a model output, whatever its attribute is called."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else getattr(output, "past_key_values", None)


def decoder_layers(model):
    """The decoder blocks of a transformers causal LM (``model.model.layers``), or a clear error."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None or not hasattr(layers, "__len__"):
        raise NotImplementedError(
            f"{type(model).__name__} is not supported: the layer-by-layer tools need a transformers decoder "
            "whose blocks are `model.model.layers` (Llama, Mistral, Qwen2/3, Gemma families)"
        )
    return layers
