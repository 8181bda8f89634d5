"""def3d: distance-to-sharp-feature fields and feature curves for point clouds and meshes (DEF, SIGGRAPH 2022)."""

__version__ = "0.1.0"

from def3d.annotate import annotate, def_scale
from def3d.baselines import PCABaseline, dihedral_edges, dihedral_field, surface_variation
from def3d.cad import FAMILIES, CADShape, Curve, Part, box, cylinder, prism, random_cad
from def3d.config import PRESETS, CurveConfig, DataConfig, DEF3DTrainConfig, ModelConfig
from def3d.curves import Curves, extract_curves
from def3d.data import (
    farthest_point_sampling,
    make_images,
    make_patches,
    render_view,
    scaled_shape,
    shape_cloud,
)
from def3d.fusion import COMBINERS, combine, fuse_patches, fuse_views
from def3d.heads import HistHead, L1Head, MSEHead, make_head
from def3d.metrics import curve_metrics, field_metrics, true_corners
from def3d.models import DGCNN, UNet, build_model
from def3d.pipeline import Prediction, load_input, predict_cloud, write_prediction
from def3d.train import DEFModel, load_model, predict_batch, save_model, train
from def3d.zoo import builtin_model

__all__ = [
    "COMBINERS", "DGCNN", "FAMILIES", "PRESETS", "CADShape", "Curve", "CurveConfig", "Curves", "DEF3DTrainConfig",
    "DEFModel", "DataConfig", "HistHead", "L1Head", "MSEHead", "ModelConfig", "PCABaseline", "Part", "Prediction",
    "UNet", "annotate", "box", "build_model", "builtin_model", "combine", "curve_metrics", "cylinder", "def_scale",
    "dihedral_edges", "dihedral_field", "extract_curves", "farthest_point_sampling", "field_metrics", "fuse_patches",
    "fuse_views", "load_input", "load_model", "make_head", "make_images", "make_patches", "predict_batch",
    "predict_cloud", "prism", "random_cad", "render_view", "save_model", "scaled_shape", "shape_cloud",
    "surface_variation", "train", "true_corners", "write_prediction",
]  # fmt: skip
