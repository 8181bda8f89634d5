"""Sharp-feature curves of a mesh from its exact distance field, scored against the mesh's dihedral edges.

Runs in a few seconds on a CPU: python packages/def3d/examples/curves_from_mesh.py
A trained network replaces the exact field with its prediction: see `def3d predict`.
"""

import tempfile
from pathlib import Path

import numpy as np
import torch

from def3d import annotate, curve_metrics, dihedral_edges, extract_curves, random_cad

torch.set_num_threads(1)
shape = random_cad("T", seed=2)  # a T-profile prism, randomly rotated; its curves and patches are exact
r = 0.05
points, normals, surface = shape.sample(int(shape.area / r**2), torch.Generator().manual_seed(0))
d = annotate(points, surface, shape, upper=1.0)  # DEF's same-surface rule, clipped at 1
curves = extract_curves(points.numpy(), d.numpy(), r)
print(f"{len(curves.polylines)} curves, {len(curves.corners)} corners (true: {len(shape.curves)} curves)")

# the same curves against the dihedral-angle edges of a tessellation of the part
out = Path(tempfile.mkdtemp())
curves.to_obj(out / "curves.obj")
m = curve_metrics(curves.polylines, curves.corners, shape.edges, [], r / 2)
print(f"Hausdorff {m['hausdorff'] / r:.2f} r, Chamfer {m['chamfer'] / r:.2f} r to the true curves")

verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)  # a tetrahedron: 6 sharp edges
faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
print("tetrahedron dihedral edges:", len(dihedral_edges(verts, faces)))
