"""Deep vectorization of technical drawings: raster to SVG or DXF (cleaning, primitive transformer,
closed-form energy refinement, merging across patches)."""

__version__ = "0.1.0"

from vectorize import synth
from vectorize.baselines import skeleton_baseline
from vectorize.config import (
    CleanConfig,
    MergeConfig,
    NetConfig,
    PipelineConfig,
    RefineConfig,
    VectorizeTrainConfig,  # fmt: skip
)
from vectorize.drawing import Drawing
from vectorize.energy import unit_energy
from vectorize.evaluate import score
from vectorize.export import read_dxf, read_svg, write_drawing, write_dxf, write_overlay, write_svg
from vectorize.merge import assemble, merge, split
from vectorize.model import CleanNet, PrimitiveNet, slot_loss
from vectorize.pipeline import Vectorizer, read_image
from vectorize.raster import iou, render
from vectorize.refine import refine

__all__ = [
    "CleanConfig", "CleanNet", "Drawing", "MergeConfig", "NetConfig", "PipelineConfig", "PrimitiveNet",
    "RefineConfig", "VectorizeTrainConfig", "Vectorizer", "assemble", "iou", "merge", "read_dxf", "read_image",
    "read_svg", "refine", "render", "score", "skeleton_baseline", "slot_loss", "split", "synth", "unit_energy",
    "write_drawing", "write_dxf", "write_overlay", "write_svg",
]  # fmt: skip
