"""Hogwild! Inference (Rodionov et al., arXiv 2504.06261): parallel LLM workers over one shared KV cache.

* :class:`SharedCache`: blocks of keys stored once at local positions, per-worker views, merges
  with one re-rotation;
* :func:`hogwild_attention`: query-rotation attention (torch reference and a Triton split-K kernel);
* :class:`Engine`: a transformers decoder (Llama, Mistral, Qwen2, Qwen3) over a shared cache, hooked
  through transformers' attention-function interface;
* :func:`generate`: the driver (layouts, steps, redundancy checks, budget, finisher), configured by
  :class:`GenerateConfig` (the sampling seed is the ``seed=`` keyword, not a config field);
* :func:`evaluate`: accuracy against the budget on math problems (:func:`load_problems`).
"""

__version__ = "0.1.0"

from hogwild.answers import extract_boxed, is_correct
from hogwild.attention import hogwild_attention, reference_attention
from hogwild.cache import Row, SharedCache, StepPlan
from hogwild.config import GenerateConfig
from hogwild.driver import Hogwild, HogwildResult, StepRecord, generate
from hogwild.evaluate import Problem, evaluate, load_problems
from hogwild.model import Engine
from hogwild.rope import RopeSpec, apply_rope, rotate

__all__ = [
    "Engine",
    "GenerateConfig",
    "Hogwild",
    "HogwildResult",
    "Problem",
    "RopeSpec",
    "Row",
    "SharedCache",
    "StepPlan",
    "StepRecord",
    "apply_rope",
    "evaluate",
    "extract_boxed",
    "generate",
    "hogwild_attention",
    "is_correct",
    "load_problems",
    "reference_attention",
    "rotate",
]
