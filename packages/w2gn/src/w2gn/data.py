"""Inputs of the command line: arrays from files (:func:`papercore.io.load_array`), or built-in samplers by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from papercore.io import ARRAY_SUFFIXES, load_array
from papercore.ot.samplers import TOYS, Gaussian, Sampler, random_gaussian, random_mixture


def builtin_names() -> list[str]:
    return ["normal", "gaussian[:SEED]", "mixture[:SEED]", *TOYS]


def resolve(spec: str, dim: int) -> np.ndarray | Sampler:
    """A file path (an array), or a built-in sampler ``NAME[:SEED]`` in ``dim`` dimensions."""
    if Path(spec).suffix.lower() in ARRAY_SUFFIXES or Path(spec).exists():
        return load_array(spec)
    name, _, seed_text = spec.partition(":")
    try:
        seed = int(seed_text) if seed_text else 0
    except ValueError:
        raise ValueError(f"{spec!r}: the seed after ':' must be an integer") from None
    if name in TOYS:
        if dim != 2:
            raise ValueError(f"{name!r} is a 2-D toy: pass --dim 2 (got --dim {dim})")
        return TOYS[name]()
    if name == "normal":
        return Gaussian(torch.zeros(dim), torch.eye(dim))
    if name == "gaussian":
        return random_gaussian(dim, seed)
    if name == "mixture":
        return random_mixture(dim, 3, seed=seed)
    raise ValueError(
        f"unknown sampler {spec!r}: pass a .npy/.csv/.safetensors file or one of {', '.join(builtin_names())}"
    )
