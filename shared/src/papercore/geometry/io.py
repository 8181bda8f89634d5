"""Real 3-D data: reading and writing clouds and meshes, sampling meshes, normals, KD-trees, ray casting.

open3d (``pip install open3d-cpu``; on Debian/Ubuntu it needs ``apt-get install libusb-1.0-0``) is
imported only inside the functions that need it; ``.npy`` and ``.xyz`` clouds read and write with
numpy alone, and :class:`KDTree` is scipy's ``cKDTree`` (vectorised queries).

* :func:`read_mesh` / :func:`write_mesh`: PLY, OBJ, STL, OFF (a mesh with no faces is an error);
* :func:`read_cloud` / :func:`write_cloud`: PLY, PCD, XYZ, NPY (``allow_pickle=False``); a mesh file
  read as a cloud is sampled (``n`` points, uniform or Poisson-disk);
* :func:`sample_mesh`: uniform (area-weighted) or Poisson-disk samples of a mesh, with normals;
* :func:`estimate_normals`: PCA normals of a cloud from its ``k`` nearest neighbours;
* :func:`raycast`: first hits of rays on a mesh (open3d's ``RaycastingScene``);
* :func:`load_folder`: every cloud or mesh of a folder as ``[K, n, 3]``, the user-data path.

Writes are atomic (a temporary file beside the target, renamed on success).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "CLOUD_SUFFIXES",
    "MESH_SUFFIXES",
    "KDTree",
    "Mesh",
    "estimate_normals",
    "load_folder",
    "raycast",
    "read_cloud",
    "read_mesh",
    "sample_mesh",
    "write_cloud",
    "write_mesh",
]

MESH_SUFFIXES = (".ply", ".obj", ".stl", ".off")
CLOUD_SUFFIXES = (".ply", ".pcd", ".xyz", ".xyzn", ".pts", ".npy")
INSTALL = "open3d is needed for this file type: pip install open3d-cpu (and on Debian/Ubuntu: apt-get install libusb-1.0-0)"


def _o3d():
    try:
        import open3d as o3d
    except ImportError as e:  # also the OSError of a missing libusb, reported as ImportError by open3d
        raise ImportError(INSTALL) from e
    return o3d


@contextlib.contextmanager
def _atomic(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


@dataclass
class Mesh:
    """A triangle mesh: ``vertices`` ``[V, 3]`` float64, ``faces`` ``[F, 3]`` int64."""

    vertices: np.ndarray
    faces: np.ndarray

    def to_open3d(self):
        o3d = _o3d()
        m = o3d.geometry.TriangleMesh(
            o3d.utility.Vector3dVector(self.vertices), o3d.utility.Vector3iVector(self.faces.astype(np.int32))
        )
        return m

    @property
    def area(self) -> float:
        v = self.vertices[self.faces]
        return float(0.5 * np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=1).sum())


def _exists(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    return path


def read_mesh(path) -> Mesh:
    """A PLY/OBJ/STL/OFF triangle mesh; ``ValueError`` when it has no faces (a point cloud, or unreadable)."""
    path = _exists(path)
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise ValueError(f"{path}: not a mesh file (expected one of {', '.join(MESH_SUFFIXES)})")
    o3d = _o3d()
    m = o3d.io.read_triangle_mesh(str(path))
    faces = np.asarray(m.triangles, dtype=np.int64)
    if len(faces) == 0:
        raise ValueError(
            f"{path}: the mesh has no faces (read it as a point cloud, or export the mesh with its faces)"
        )
    return Mesh(np.asarray(m.vertices, dtype=np.float64), faces)


def write_mesh(path, vertices, faces) -> Path:
    """Write a triangle mesh (format from the suffix: .ply, .obj, .stl, .off), atomically."""
    path = Path(path)
    o3d = _o3d()
    m = Mesh(_np(vertices), np.asarray(faces, dtype=np.int64)).to_open3d()
    if path.suffix.lower() == ".stl":
        m.compute_triangle_normals()
    with _atomic(path) as tmp:
        if not o3d.io.write_triangle_mesh(str(tmp), m):
            raise ValueError(f"open3d could not write {path} (unsupported suffix?)")
    return path


def sample_mesh(mesh: Mesh, n: int, method: str = "uniform", *, normals: bool = False, seed: int = 0):
    """``n`` points on a mesh: ``"uniform"`` (area-weighted) or ``"poisson"`` (Poisson-disk, Yuksel 2015,
    open3d's ``sample_points_poisson_disk``). Returns float32 ``[n, 3]`` (and normals with ``normals=True``)."""
    o3d = _o3d()
    if len(mesh.faces) == 0:
        raise ValueError("the mesh has no faces to sample")
    o3d.utility.random.seed(int(seed))
    m = mesh.to_open3d()
    m.compute_triangle_normals()  # each sample takes its triangle's normal (faceted meshes stay sharp)
    if method == "uniform":
        pc = m.sample_points_uniformly(n, use_triangle_normal=True)
    elif method == "poisson":
        pc = m.sample_points_poisson_disk(n, use_triangle_normal=True)
    else:
        raise ValueError(f"method must be 'uniform' or 'poisson', got {method!r}")
    p = torch.from_numpy(np.asarray(pc.points)).float()
    return (p, torch.from_numpy(np.asarray(pc.normals)).float()) if normals else p


def _has_faces(path: Path) -> bool:
    if path.suffix.lower() in (".obj", ".stl", ".off"):
        return True
    if path.suffix.lower() != ".ply":
        return False
    with open(path, "rb") as f:  # the PLY header names its elements
        for _ in range(64):
            line = f.readline()
            if not line or line.strip() == b"end_header":
                return False
            if line.startswith(b"element face") and int(line.split()[-1]) > 0:
                return True
    return False


def read_cloud(path, n: int | None = None, *, method: str = "uniform", seed: int = 0) -> torch.Tensor:
    """The points ``[N, 3]`` (float32) of a cloud file, or ``n`` samples of a mesh file.

    Clouds: PLY/PCD (open3d), XYZ (``x y z`` per line, extra columns ignored), NPY ``[N, >=3]``.
    With ``n``, a cloud with more points is subsampled without replacement (seeded) and one with
    fewer is an error. NaN or inf coordinates are an error.
    """
    path = _exists(path)
    suf = path.suffix.lower()
    if _has_faces(path):
        if n is None:
            raise ValueError(f"{path} is a mesh: pass the number of points to sample from it")
        p = sample_mesh(read_mesh(path), n, method, seed=seed)
    elif suf == ".npy":
        a = np.load(path, allow_pickle=False)
        if a.ndim != 2 or a.shape[1] < 3:
            raise ValueError(f"{path}: expected an array [N, 3], got shape {a.shape}")
        p = torch.from_numpy(np.ascontiguousarray(a[:, :3], dtype=np.float32))
    elif suf in (".xyz", ".xyzn", ".pts", ".txt"):
        a = np.loadtxt(path, ndmin=2, dtype=np.float64)
        if a.shape[1] < 3:
            raise ValueError(f"{path}: expected at least 3 columns (x y z), got {a.shape[1]}")
        p = torch.from_numpy(a[:, :3]).float()
    elif suf in (".ply", ".pcd"):
        pc = _o3d().io.read_point_cloud(str(path))
        p = torch.from_numpy(np.asarray(pc.points)).float()
    else:
        raise ValueError(
            f"{path}: unknown cloud format (use one of {', '.join(CLOUD_SUFFIXES + MESH_SUFFIXES)})"
        )
    if len(p) == 0:
        raise ValueError(f"{path}: no points")
    if not torch.isfinite(p).all():
        raise ValueError(f"{path}: NaN or inf coordinates; drop or repair those points")
    if n is not None and len(p) != n:
        if len(p) < n:
            raise ValueError(f"{path}: {len(p)} points, fewer than the {n} needed")
        p = p[torch.randperm(len(p), generator=torch.Generator().manual_seed(seed))[:n]]
    return p


def write_cloud(path, points, normals=None) -> Path:
    """Write a cloud (.ply/.pcd through open3d; .xyz/.npy with numpy), atomically."""
    path = Path(path)
    p = _np(points)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"a cloud is [N, 3], got {p.shape}")
    suf = path.suffix.lower()
    with _atomic(path) as tmp:
        if suf == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, p.astype(np.float32), allow_pickle=False)
        elif suf == ".xyz":
            np.savetxt(tmp, p if normals is None else np.hstack([p, _np(normals)]), fmt="%.7g")
        elif suf in (".ply", ".pcd"):
            o3d = _o3d()
            pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(p))
            if normals is not None:
                pc.normals = o3d.utility.Vector3dVector(_np(normals))
            if not o3d.io.write_point_cloud(str(tmp), pc):
                raise ValueError(f"open3d could not write {path}")
        else:
            raise ValueError(f"{path}: write clouds as .ply, .pcd, .xyz or .npy")
    return path


def estimate_normals(points, k: int = 30) -> torch.Tensor:
    """Unit normals ``[N, 3]`` by PCA of each point's ``k`` nearest neighbours (open3d), oriented
    away from the centroid (right for closed, roughly convex shapes; flip per your convention)."""
    o3d = _o3d()
    p = _np(points)
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(p))
    pc.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(k))
    n = np.asarray(pc.normals)
    flip = ((p - p.mean(0)) * n).sum(1) < 0
    n[flip] *= -1
    return torch.from_numpy(n).float()


class KDTree:
    """A KD-tree over ``points`` ``[N, 3]`` (scipy's ``cKDTree``: vectorised, multi-threaded queries)."""

    def __init__(self, points):
        from scipy.spatial import cKDTree

        self.points = _np(points)
        self.tree = cKDTree(self.points)

    def query(self, queries, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Distances (not squared) and indices of the ``k`` nearest points, ``[M, k]`` each."""
        d, i = self.tree.query(_np(queries), k=k, workers=-1)
        d, i = np.asarray(d).reshape(len(d), -1), np.asarray(i).reshape(len(i), -1)
        return torch.from_numpy(d), torch.from_numpy(i.astype(np.int64))

    def radius(self, queries, r: float) -> list[np.ndarray]:
        """Indices of the points within distance ``r`` of each query."""
        return [
            np.asarray(x, dtype=np.int64) for x in self.tree.query_ball_point(_np(queries), r, workers=-1)
        ]


def raycast(mesh: Mesh, origins, directions):
    """First hits of rays on a mesh (open3d ``RaycastingScene``): ``(t, normals, hit)`` with ``t`` in units
    of ``directions`` (inf on a miss) and unit triangle normals."""
    o3d = _o3d()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(mesh.vertices.astype(np.float32)), o3d.core.Tensor(mesh.faces.astype(np.uint32))
    )
    o, d = _np(origins), _np(directions)
    scale = np.linalg.norm(d, axis=1, keepdims=True)
    rays = np.hstack([o, d / scale]).astype(np.float32)
    ans = scene.cast_rays(o3d.core.Tensor(rays))
    t = ans["t_hit"].numpy().astype(np.float64) / scale[:, 0]
    n = ans["primitive_normals"].numpy().astype(np.float64)
    hit = np.isfinite(t)
    return torch.from_numpy(t), torch.from_numpy(n), torch.from_numpy(hit)


def load_folder(
    folder, n: int, *, method: str = "uniform", seed: int = 0, limit: int | None = None
) -> tuple[torch.Tensor, list[str]]:
    """Every cloud or mesh file of ``folder`` (sorted by name) as ``[K, n, 3]``, and the file names.

    Meshes are sampled (``method``), clouds subsampled to ``n`` points; a cloud with fewer points,
    NaN coordinates or a mesh with no faces names the file in a one-line ``ValueError``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {folder}")
    files = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in set(CLOUD_SUFFIXES + MESH_SUFFIXES + (".txt",))
    )
    if limit is not None:
        files = files[:limit]
    if not files:
        raise ValueError(
            f"{folder} holds no cloud or mesh files ({', '.join(CLOUD_SUFFIXES + MESH_SUFFIXES)})"
        )
    clouds = [read_cloud(f, n, method=method, seed=seed + i) for i, f in enumerate(files)]
    return torch.stack(clouds), [f.name for f in files]
