"""Fit a small graph to 80 random points, export it, and read its anchor-distance features."""

import os

os.environ.setdefault("PAPERCORE_PROGRESS", "0")
import numpy as np  # noqa: E402
import torch  # noqa: E402

from prodige import GraphEmbedding  # noqa: E402

torch.set_num_threads(1)
X = np.random.default_rng(0).normal(size=(80, 5))
emb = GraphEmbedding(params_per_vertex=4, n_components=4, steps=40, finetune_steps=20, random_state=0).fit(X)
print("kept edges:", emb.graph_.n_kept(), "params/vertex:", round(emb.graph_.params_per_vertex(), 2))
print("features:", emb.transform(X[:2]).round(2))
emb.graph_.write_graphml("graph.graphml")
emb.graph_.write_edge_csv("edges.csv")
