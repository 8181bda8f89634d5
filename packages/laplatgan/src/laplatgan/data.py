"""Training data: the synthetic ShapeNet stand-in, users' folders of clouds or meshes, and the
nested random subsets that give each pyramid level its clouds.

``synthetic:CLASS`` draws clouds of one :data:`papercore.geometry.CLASSES` class (composites such as
``table``, ``chair``, ``lamp``, ``mug`` need the fine detail a pyramid is for), 2048 points each,
normalised into the ball of radius 0.5, with a random anisotropic scale in [0.6, 1.4]³ and a
rotation about the up axis. The splits are disjoint by seed: shape ``i`` of split ``s`` depends on
``(seed, s, i)`` only, and ``test2`` is a second real test set for the real-vs-real oracle.

A folder of PLY/OBJ/STL/OFF/XYZ/NPY files is the real loading path: meshes are sampled uniformly,
clouds subsampled to the top level's size, every cloud normalised into the same ball, and the files
split 80/10/10 (train/val/test) by a seeded permutation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from papercore.geometry import CLASSES, normalize_unit_ball, sample_shapes
from papercore.geometry.io import load_folder

SPLITS = ("train", "val", "test", "test2")


@dataclass
class Splits:
    """Clouds ``[K, N, 3]`` per split (``test2`` may be None for user data) and where they came from."""

    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    test2: torch.Tensor | None
    source: str


def synthetic(name: str, n_train=400, n_val=50, n_test=100, points=2048, seed=0) -> Splits:
    """The synthetic stand-in for one ShapeNet class (see the module docstring)."""
    if name not in CLASSES:
        raise ValueError(f"unknown synthetic class {name!r}: choose from {', '.join(CLASSES)}")
    sizes = {"train": n_train, "val": n_val, "test": n_test, "test2": n_test}
    out = {s: sample_shapes(name, k, points, seed=seed * 4 + i + 1) for i, (s, k) in enumerate(sizes.items())}
    return Splits(out["train"], out["val"], out["test"], out["test2"], f"synthetic:{name}")


def from_folder(folder, points=2048, seed=0) -> Splits:
    """Every cloud or mesh in ``folder``, normalised, split 80/10/10 by a seeded permutation."""
    clouds, names = load_folder(folder, points, seed=seed)
    if len(clouds) < 10:
        raise ValueError(f"{folder} holds {len(clouds)} clouds: a train/val/test split needs at least 10")
    clouds = normalize_unit_ball(clouds)[0]
    perm = torch.randperm(len(clouds), generator=torch.Generator().manual_seed(seed))
    n_val = n_test = max(1, len(clouds) // 10)
    test, val, train = perm[:n_test], perm[n_test : n_test + n_val], perm[n_test + n_val :]
    return Splits(clouds[train], clouds[val], clouds[test], None, str(folder))


def load_data(spec: str, points=2048, seed=0, n_train=400, n_val=50, n_test=100) -> Splits:
    """``synthetic:CLASS`` or a folder path."""
    if spec.startswith("synthetic:"):
        return synthetic(spec.split(":", 1)[1], n_train, n_val, n_test, points, seed)
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(
            f"--data {spec}: no such folder (or use synthetic:CLASS with CLASS in {', '.join(CLASSES)})"
        )
    return from_folder(path, points, seed)


def pyramid(clouds: torch.Tensor, levels, seed: int = 0) -> dict[int, torch.Tensor]:
    """Nested random subsets without replacement: level ``n`` keeps ``n`` points of each cloud, and a
    lower level's points are a subset of the next one's (the notebook's ``fool_downsampling``)."""
    top = max(levels)
    if clouds.shape[1] < top:
        raise ValueError(f"clouds have {clouds.shape[1]} points, fewer than the top level's {top}")
    g = torch.Generator().manual_seed(seed)
    order = torch.stack([torch.randperm(clouds.shape[1], generator=g) for _ in range(len(clouds))])
    return {n: torch.gather(clouds, 1, order[:, :n, None].expand(-1, -1, 3)) for n in sorted(levels)}
