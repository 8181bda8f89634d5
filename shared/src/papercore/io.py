"""Atomic file writing and the safetensors + JSON formats every package saves with.

Nothing here unpickles: tensors go through safetensors, metadata through JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    A crash or Ctrl-C inside the block leaves the previous file (if any) untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success it replaces ``path`` (a folder) whole.

    A crash or Ctrl-C inside the block leaves the previous folder (if any) untouched.
    """
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def save_tensors(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
):
    """Save tensors with safetensors, atomically (contiguous copies; shared storage is fine)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_tensors(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path), device=str(device))


def safetensors_headers(folder: str | os.PathLike) -> dict[str, tuple[tuple[int, ...], str]]:
    """``name -> (shape, safetensors dtype such as "F16" or "I8")`` for every tensor of the ``*.safetensors``
    files in ``folder``, read from the headers only (no tensor data is loaded)."""
    from safetensors import safe_open

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no .safetensors weights in {folder}")
    found = {}
    for f in files:
        with safe_open(str(f), framework="pt") as st:
            for key in st.keys():  # noqa: SIM118 (safe_open is not iterable)
                sl = st.get_slice(key)
                found[key] = (tuple(sl.get_shape()), sl.get_dtype())
    return found


def cache_dir(*parts: str) -> Path:
    """``$PAPERCORE_CACHE`` (else ``$XDG_CACHE_HOME/papercore``, else ``~/.cache/papercore``), joined with ``parts``.

    Generated models and data sets live here, keyed by a hash of what made them.
    """
    if os.environ.get("PAPERCORE_CACHE"):
        root = Path(os.environ["PAPERCORE_CACHE"]).expanduser()
    else:
        root = (
            Path(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"))
            / "papercore"
        )
    return root.joinpath(*parts)


ARRAY_SUFFIXES = (".npy", ".csv", ".txt", ".safetensors")


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
            raise ValueError(f"{path}: unknown file type {suffix!r}; use one of {', '.join(ARRAY_SUFFIXES)}")
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
    """Write an array as ``.npy``, ``.csv``/``.txt`` or ``.safetensors`` (tensor ``data``), atomically."""
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
            raise ValueError(f"{path}: unknown file type; use one of {', '.join(ARRAY_SUFFIXES)}")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.dtype):
        return str(obj).removeprefix("torch.")
    if isinstance(obj, torch.device):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"cannot serialize {type(obj).__name__} to JSON")
