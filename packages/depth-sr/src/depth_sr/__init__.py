"""depth-sr: perceptual depth super-resolution (Voynov et al., ICCV 2019).

MSG-Net trained with the visual loss MSE_v (MSG-V), DIP-V (a Deep Image Prior fitted per image with
the visual loss), depth geometry (kinds, lifting, normals, masks, renders), synthetic scenes with
exact ground truth, classical baselines and the evaluation metrics.
"""

from depth_sr.baselines import BASELINES, bicubic, guided_filter, joint_bilateral
from depth_sr.camera import (
    Intrinsics,
    depth_to_disparity,
    discontinuities,
    disparity_to_depth,
    normals,
    points,
    to_z_depth,
    valid_mask,
)
from depth_sr.config import DIPConfig, DSRTrainConfig, MSGConfig, SceneConfig
from depth_sr.dip import dip_v
from depth_sr.io import read_depth, read_rgb, write_depth
from depth_sr.metrics import METRICS, evaluate, mean_metrics, ssim
from depth_sr.msg import MSGNet
from depth_sr.scenes import Scene, area_downsample, make_lr, mesh_scene, synthetic_scene, synthetic_scenes
from depth_sr.train import fit, load_model, losses, pretrained, save_model, scene_splits
from depth_sr.visual import LIGHTS3, LIGHTS4, mse_v, render, render_depth, rmse_v

__version__ = "0.1.0"

__all__ = [
    "BASELINES",
    "DIPConfig",
    "DSRTrainConfig",
    "Intrinsics",
    "LIGHTS3",
    "LIGHTS4",
    "METRICS",
    "MSGConfig",
    "MSGNet",
    "Scene",
    "SceneConfig",
    "area_downsample",
    "bicubic",
    "depth_to_disparity",
    "dip_v",
    "discontinuities",
    "disparity_to_depth",
    "evaluate",
    "fit",
    "guided_filter",
    "joint_bilateral",
    "load_model",
    "losses",
    "make_lr",
    "mean_metrics",
    "mesh_scene",
    "mse_v",
    "normals",
    "points",
    "pretrained",
    "read_depth",
    "read_rgb",
    "render",
    "render_depth",
    "rmse_v",
    "save_model",
    "scene_splits",
    "ssim",
    "synthetic_scene",
    "synthetic_scenes",
    "to_z_depth",
    "valid_mask",
    "write_depth",
]
