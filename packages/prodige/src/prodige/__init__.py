"""PRODIGE: data as differentiable weighted graphs (Mazur et al., NeurIPS 2019), in pure Python on
scipy and torch.

Each edge has a learned weight ``softplus(theta_w)`` and keep-probability ``sigmoid(theta_p)``;
distances are shortest paths on a sampled graph (scipy's Dijkstra), recomputed in torch along
the paths so they are differentiable; an L0 prior and pruning make the graph small.
"""

from prodige.config import ProdigeConfig, ProdigeTrainConfig
from prodige.estimator import GraphEmbedding, max_params_per_vertex
from prodige.glove import GloveTask, GloveVectors, cooccurrence, init_glove_graph, load_cooccurrence
from prodige.graph import Graph
from prodige.init import init_graph
from prodige.paths import Paths, find_paths, pairwise_distances, path_distances
from prodige.recsys import RecommendationTask, hierarchical_feedback, init_cf_graph, rank_metrics
from prodige.tasks import DistanceTask
from prodige.train import FitResult, fit_graph

__version__ = "0.1.0"

__all__ = [
    "DistanceTask",
    "FitResult",
    "GloveTask",
    "GloveVectors",
    "Graph",
    "GraphEmbedding",
    "Paths",
    "ProdigeConfig",
    "ProdigeTrainConfig",
    "RecommendationTask",
    "cooccurrence",
    "find_paths",
    "fit_graph",
    "hierarchical_feedback",
    "init_cf_graph",
    "init_glove_graph",
    "init_graph",
    "load_cooccurrence",
    "max_params_per_vertex",
    "pairwise_distances",
    "path_distances",
    "rank_metrics",
]
