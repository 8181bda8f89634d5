"""Running a transformers decoder over a :class:`~hogwild.cache.SharedCache`.

The hook is an attention function registered in transformers' ``AttentionInterface`` under the
name ``"hogwild"``; while :meth:`Engine.step` runs, the model's ``config._attn_implementation`` is
switched to it (and restored afterwards, so the same model still generates normally). The model
itself is untouched: it projects q/k/v, applies q/k norms (Qwen3) and rotates q and k at the
*local* positions of the new tokens in their write block (``position_ids``); the hook then writes
the new keys/values of every row into the shared cache and runs query-rotation attention, with
each query rotated further by (its block's start − the attended block's start) in its row's view.
No ``DynamicCache`` is involved (``use_cache=False``).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Sequence

import torch

from hogwild.cache import Row, SharedCache, StepPlan

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")
ATTN_NAME = "hogwild"
_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("hogwild_active", default=None)


def _hogwild_attention_forward(
    module, query, key, value, attention_mask=None, scaling=None, dropout=0.0, **kwargs
):
    state = _ACTIVE.get()
    if state is None:
        raise RuntimeError(
            "the 'hogwild' attention implementation only runs inside hogwild.Engine.step(); "
            "restore the model's previous attn_implementation to use it on its own"
        )
    cache, plan, backend = state
    window = kwargs.get("sliding_window", getattr(module, "sliding_window", None))
    if window is not None and plan.max_view > window:
        raise NotImplementedError(
            f"this model uses sliding-window attention (window {window}) and a view is longer than it; "
            "hogwild attends over whole views"
        )
    layer = module.layer_idx
    cache.write(plan, layer, key, value)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    out = cache.attend(plan, layer, query, scale, backend)
    return out.transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTN_NAME, _hogwild_attention_forward)


def check_model(model) -> None:
    """Raise ``NotImplementedError`` naming the problem if the hook does not support ``model``."""
    cfg = getattr(model, "config", None)
    model_type = getattr(cfg, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise NotImplementedError(
            f"{type(model).__name__} (model_type {model_type!r}) is not supported by the hogwild attention hook; "
            f"supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None or not all(hasattr(layer.self_attn, "layer_idx") for layer in layers):
        raise NotImplementedError(
            f"{type(model).__name__}: expected `model.model.layers[i].self_attn.layer_idx`"
        )
    from hogwild.rope import RopeSpec

    RopeSpec.from_model(model)  # unsupported RoPE types raise here


@contextlib.contextmanager
def hogwild_attention(model, cache: SharedCache, plan: StepPlan, backend: str = "auto"):
    """Route ``model``'s attention through the shared cache for one forward pass of ``plan``."""
    _register()
    cfg = model.config
    old = cfg._attn_implementation
    token = _ACTIVE.set((cache, plan, backend))
    cfg._attn_implementation = ATTN_NAME
    try:
        yield
    finally:
        cfg._attn_implementation = old
        _ACTIVE.reset(token)


class Engine:
    """A model plus its shared cache: :meth:`step` runs one forward pass of several rows.

    Parameters
    ----------
    model : a transformers causal LM (Llama, Mistral, Qwen2, Qwen3).
    cache : a :class:`SharedCache` (default: one shaped for the model, on its device and dtype).
    backend : attention backend, ``"auto"`` (Triton on CUDA), ``"triton"`` or ``"torch"``.
    """

    def __init__(self, model, cache: SharedCache | None = None, *, backend: str = "auto", pad_id: int = 0):
        if model is not None:
            check_model(model)
        elif cache is None:
            raise ValueError("an Engine without a model needs a cache")
        self.model = model
        self.cache = cache if cache is not None else SharedCache.for_model(model)
        self.backend = backend
        self.pad_id = pad_id
        self.forward_passes = 0

    @torch.no_grad()
    def step(self, rows: Sequence[Row], *, all_logits: bool = False) -> torch.Tensor:
        """Feed every row's tokens; return float32 logits ``[R, V]`` at each row's last token
        (``[R, S, V]`` for every position with ``all_logits``; rows are left-padded to ``S``)."""
        plan = self.cache.plan(rows, self.pad_id)
        logits = self._forward(plan, all_logits)
        self.cache.commit(plan)
        self.forward_passes += 1
        return logits if all_logits else logits[:, -1]

    def _forward(self, plan: StepPlan, all_logits: bool) -> torch.Tensor:
        with hogwild_attention(self.model, self.cache, plan, self.backend):
            out = self.model(
                input_ids=plan.input_ids,
                position_ids=plan.position_ids,
                use_cache=False,
                logits_to_keep=0 if all_logits else 1,
            )
        return out.logits.float()

    @torch.no_grad()
    def complete(self, tokens: Sequence[int], max_new_tokens: int, suppress: Sequence[int] = ()) -> list[int]:
        """Greedy continuation of ``tokens`` with an ordinary (unshared) cache: the finisher's decode."""
        device = next(self.model.parameters()).device
        ids = torch.tensor([list(tokens)], device=device)
        kwargs = {}
        if suppress:
            kwargs["suppress_tokens"] = list(suppress)
        out = self.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=self.pad_id,
            **kwargs,
        )
        return out[0, ids.shape[1] :].tolist()

    def prefill(
        self, block: str, tokens: Sequence[int], view: Sequence[str] | None = None, chunk: int = 1024
    ) -> torch.Tensor:
        """Append ``tokens`` to ``block`` as seen from ``view`` (default: the block alone), ``chunk``
        tokens per forward pass; returns the last logits."""
        if block not in self.cache:
            self.cache.create(block, capacity=max(64, len(tokens)))
        tokens = list(tokens)
        if not tokens:
            raise ValueError(f"nothing to prefill into block {block!r}")
        view = list(view) if view else [block]
        for i in range(0, len(tokens), chunk):
            logits = self.step([Row(block, view, tokens[i : i + chunk])])
        return logits[0]
