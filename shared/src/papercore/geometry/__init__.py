"""papercore's 3-D toolkit (``pip install papercore[geometry]``), shared by laplatgan, def3d, depth-sr and vectorize.

* :mod:`papercore.geometry.shapes`: analytic solids with exact ground truth (area-uniform surface
  samples and normals, first ray hits, inside tests, sharp edges), primitives and composites
  (table, chair, lamp, mug), random families and data sets normalised into the unit ball;
* :mod:`papercore.geometry.edges`: exact sharp-edge curves (segments, circles/ellipse arcs,
  polylines on curves without a closed form), sampling by arc length, distances;
* :mod:`papercore.geometry.transforms`: rotations (uniform SO(3), about z), unit-ball normalisation;
* :mod:`papercore.geometry.knn`: batched k nearest neighbours, a Triton kernel and a torch reference;
* :mod:`papercore.geometry.metrics`: Chamfer, exact EMD (scipy/POT), certified auction EMD,
  MMD, COV, 1-NNA, JSD — pure PyTorch, CPU or GPU;
* :mod:`papercore.geometry.io`: real data through open3d (PLY/OBJ/STL/OFF/XYZ/PCD/NPY, mesh sampling,
  normals, ray casting) and scipy KD-trees. open3d is imported only there, inside the functions
  that need it: everything else works without it.
"""

from papercore.geometry.edges import Arc, Polyline, Segment, distance_to_edges, edge_length, sample_edges
from papercore.geometry.knn import knn
from papercore.geometry.metrics import (
    METRICS,
    AuctionResult,
    chamfer,
    chamfer_per_point,
    check_clouds,
    coverage,
    emd,
    emd_auction,
    emd_exact,
    evaluate,
    jsd,
    mmd,
    mmd_cov,
    one_nna,
    pairwise,
)
from papercore.geometry.shapes import (
    CLASSES,
    Box,
    Cone,
    Cylinder,
    Extrusion,
    RayHit,
    Shape,
    Sphere,
    Torus,
    Transformed,
    Tube,
    Union,
    chair,
    lamp,
    mug,
    random_shape,
    regular_polygon,
    sample_shapes,
    star_polygon,
    table,
)
from papercore.geometry.transforms import normalize_unit_ball, random_rotation, rotation_about

__all__ = [
    "CLASSES",
    "METRICS",
    "Arc",
    "AuctionResult",
    "Box",
    "Cone",
    "Cylinder",
    "Extrusion",
    "Polyline",
    "RayHit",
    "Segment",
    "Shape",
    "Sphere",
    "Torus",
    "Transformed",
    "Tube",
    "Union",
    "chair",
    "chamfer",
    "chamfer_per_point",
    "check_clouds",
    "coverage",
    "distance_to_edges",
    "edge_length",
    "emd",
    "emd_auction",
    "emd_exact",
    "evaluate",
    "jsd",
    "knn",
    "lamp",
    "mmd",
    "mmd_cov",
    "mug",
    "normalize_unit_ball",
    "one_nna",
    "pairwise",
    "random_rotation",
    "random_shape",
    "regular_polygon",
    "rotation_about",
    "sample_edges",
    "sample_shapes",
    "star_polygon",
    "table",
]
