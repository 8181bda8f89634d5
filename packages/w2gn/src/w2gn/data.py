"""Inputs of the command line: arrays from files, or built-in samplers by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from papercore.ot.samplers import TOYS, Gaussian, Sampler, random_gaussian, random_mixture

SUFFIXES = (".npy", ".csv", ".txt", ".safetensors")


def builtin_names() -> list[str]:
    return ["normal", "gaussian[:SEED]", "mixture[:SEED]", *TOYS]


def load_array(path: str | Path) -> np.ndarray:
    """An ``[n, d]`` float array from ``.npy``, ``.csv``/``.txt`` (comma or whitespace separated, an
    optional header line) or ``.safetensors`` (its only tensor, or the one named ``data``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix in (".csv", ".txt"):
            delim = "," if suffix == ".csv" else None
            try:
                arr = np.loadtxt(path, delimiter=delim, ndmin=2)
            except ValueError:
                arr = np.loadtxt(path, delimiter=delim, ndmin=2, skiprows=1)  # a header line
        elif suffix == ".safetensors":
            from safetensors.numpy import load_file

            tensors = load_file(str(path))
            if "data" in tensors:
                arr = tensors["data"]
            elif len(tensors) == 1:
                arr = next(iter(tensors.values()))
            else:
                raise ValueError(
                    f"{path} holds {len(tensors)} tensors ({', '.join(tensors)}): name the data one 'data'"
                )
        else:
            raise ValueError(f"{path}: unknown file type {suffix!r}; use one of {', '.join(SUFFIXES)}")
    except (OSError, ValueError) as e:
        if isinstance(e, ValueError) and str(e).startswith(str(path)):
            raise
        raise ValueError(f"cannot read {path} as a numeric array: {str(e).splitlines()[0]}") from None
    arr = np.asarray(arr)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{path} holds {arr.dtype} values, not numbers")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{path} must hold an [n, d] array of points, got shape {arr.shape}")
    return arr.astype(np.float32)


def save_array(path: str | Path, arr: np.ndarray) -> None:
    from papercore.io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, arr)
        elif path.suffix.lower() in (".csv", ".txt"):
            np.savetxt(tmp, arr, delimiter="," if path.suffix.lower() == ".csv" else " ")
        elif path.suffix.lower() == ".safetensors":
            from safetensors.numpy import save_file

            save_file({"data": np.ascontiguousarray(arr)}, str(tmp))
        else:
            raise ValueError(f"--out {path}: unknown file type; use one of {', '.join(SUFFIXES)}")


def resolve(spec: str, dim: int) -> np.ndarray | Sampler:
    """A file path (an array), or a built-in sampler ``NAME[:SEED]`` in ``dim`` dimensions."""
    if Path(spec).suffix.lower() in SUFFIXES or Path(spec).exists():
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
