r"""The learned graph: an edge table with two trainable scalars per edge.

Edge :math:`e = (u, v)` has a weight :math:`w_e = \operatorname{softplus}(\theta^w_e)` and a
keep-probability :math:`p_e = \sigma(\theta^p_e)`. A training step samples one graph
:math:`G \sim \prod_e \mathrm{Bernoulli}(p_e)`; evaluation keeps the edges with :math:`p_e > 1/2`.
The parameters live in one ``[E + 1, 2]`` table (row 0 is a padding row) read through
``F.embedding(..., sparse=True)``, so a step touches only the rows of the edges it used and
``torch.optim.SparseAdam`` updates only those.

Pruning during training only clears ``alive`` (a buffer): the table keeps its shape, so checkpoints
and optimizer states stay valid; :meth:`Graph.pruned` builds a compact copy.

Model size (the paper's accounting): one CSR slice offset per vertex, then a target id and a
weight per kept edge, plus the default distance: :math:`V + 2E + 1` numbers, :math:`32(V + 2E)`
bits.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from papercore.io import atomic_path, load_tensors, read_json, save_tensors, write_json

__all__ = ["Graph", "inverse_softplus"]


def inverse_softplus(w: np.ndarray | float) -> np.ndarray:
    """``theta`` with ``softplus(theta) = w`` (``w > 0``), stable for large and tiny ``w``."""
    w = np.maximum(np.asarray(w, dtype=np.float64), 1e-12)
    return np.where(w > 20, w, np.log(np.expm1(np.minimum(w, 20))))


class EdgeParams(nn.Module):
    """``weight[1 + e] = (theta_w, theta_p)`` of edge ``e``; ``alive[e]`` is False once pruned."""

    def __init__(self, n_edges: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_edges + 1, 2))
        self.register_buffer("alive", torch.ones(n_edges, dtype=torch.bool))

    def lookup(self, edge_ids: torch.Tensor) -> torch.Tensor:
        """``[K, 2]`` rows of the edges ``edge_ids`` (sparse gradient)."""
        return F.embedding(edge_ids + 1, self.weight, padding_idx=0, sparse=True)


class DenseParams(nn.Module):
    """Dense parameters (Adam): the default distance of unreachable pairs, a REINFORCE baseline,
    and task parameters (e.g. GloVe biases)."""

    def __init__(self, default_distance: float = 1.0, extra: dict[str, torch.Tensor] | None = None):
        super().__init__()
        self.default_distance = nn.Parameter(torch.tensor(float(default_distance)))
        self.register_buffer("baseline", torch.zeros((), dtype=torch.float64))
        self.register_buffer("baseline_count", torch.zeros((), dtype=torch.int64))
        self.extra = nn.ParameterDict({k: nn.Parameter(v) for k, v in (extra or {}).items()})


class Graph(nn.Module):
    """A directed or undirected graph on ``n_vertices`` vertices with learned edges.

    Parameters
    ----------
    n_vertices : int
        All vertices; the first ``n_data`` are data points, the rest virtual (Steiner) vertices.
    src, dst : int arrays ``[E]``
        Endpoints. Undirected graphs store each edge once (``src < dst``); self-loops and
        duplicates are dropped.
    weights : float array ``[E]``
        Initial weights (``> 0``).
    init_p : float
        Initial keep-probability.
    """

    def __init__(
        self,
        n_vertices: int,
        src,
        dst,
        weights,
        *,
        directed: bool = False,
        init_p: float = 0.9,
        default_distance: float = 1.0,
        n_data: int | None = None,
        probs=None,
        n_initial_edges: int | None = None,
    ):
        super().__init__()
        src, dst = np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)
        w = np.asarray(weights, dtype=np.float64)
        p = np.full(len(src), init_p) if probs is None else np.asarray(probs, dtype=np.float64)
        if not (src.shape == dst.shape == w.shape == p.shape) or src.ndim != 1:
            raise ValueError("src, dst, weights (and probs) must be 1-D arrays of one length")
        if len(src) and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= n_vertices):
            raise ValueError(f"edge endpoints must be in [0, {n_vertices})")
        if not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise ValueError("edge weights must be finite and > 0")
        if not directed:
            src, dst = np.minimum(src, dst), np.maximum(src, dst)
        keep = src != dst
        key = src[keep] * n_vertices + dst[keep]
        _, first = np.unique(key, return_index=True)  # sorted by key, first occurrence of duplicates
        idx = np.flatnonzero(keep)[first]
        self.n_vertices = int(n_vertices)
        self.n_data = int(n_vertices if n_data is None else n_data)
        self.directed = bool(directed)
        self.src, self.dst = src[idx], dst[idx]
        self.n_initial_edges = int(n_initial_edges or len(idx))
        self.edges = EdgeParams(len(idx))
        with torch.no_grad():
            self.edges.weight[1:, 0] = torch.from_numpy(inverse_softplus(w[idx]))
            pe = np.clip(p[idx], 1e-6, 1 - 1e-6)
            self.edges.weight[1:, 1] = torch.from_numpy(np.log(pe / (1 - pe)))
        self.dense = DenseParams(default_distance)
        self._build_directed()

    # ------------------------------------------------------------------ structure
    def _build_directed(self) -> None:
        """Directed arc arrays sorted by ``tail * V + head`` (both directions of undirected edges)."""
        e = np.arange(len(self.src))
        if self.directed:
            tail, head, eid = self.src, self.dst, e
        else:
            tail, head, eid = np.r_[self.src, self.dst], np.r_[self.dst, self.src], np.r_[e, e]
        key = tail * self.n_vertices + head
        order = np.argsort(key, kind="stable")
        self.arc_tail, self.arc_head, self.arc_eid, self.arc_key = (
            tail[order],
            head[order],
            eid[order],
            key[order],
        )

    @property
    def n_edges(self) -> int:
        """Edges in the table (alive or not)."""
        return len(self.src)

    @property
    def theta(self) -> torch.Tensor:
        """``[E, 2]`` view of ``(theta_w, theta_p)`` per edge."""
        return self.edges.weight[1:]

    def weights(self) -> torch.Tensor:
        """``softplus(theta_w)``, ``[E]``."""
        return F.softplus(self.theta[:, 0])

    def probs(self) -> torch.Tensor:
        """``sigmoid(theta_p)``, ``[E]``."""
        return torch.sigmoid(self.theta[:, 1])

    @property
    def alive(self) -> np.ndarray:
        return self.edges.alive.numpy()

    @property
    def default_distance(self) -> torch.Tensor:
        return self.dense.default_distance

    # ------------------------------------------------------------------ which edges exist
    @torch.no_grad()
    def sample_kept(self, generator: torch.Generator | None = None) -> np.ndarray:
        """One graph: alive edges kept with probability ``p`` (``[E]`` bool)."""
        u = torch.rand(self.n_edges, generator=generator, dtype=torch.float32)
        return (self.edges.alive & (u < self.probs())).numpy()

    @torch.no_grad()
    def eval_kept(self) -> np.ndarray:
        """The deterministic graph: alive edges with ``p > 1/2``."""
        return (self.edges.alive & (self.theta[:, 1] > 0)).numpy()

    def n_kept(self) -> int:
        """Edges of the eval-mode graph."""
        return int(self.eval_kept().sum())

    # ------------------------------------------------------------------ pruning
    @torch.no_grad()
    def prune_(self, threshold: float = 0.5) -> int:
        """Mark edges with ``p < threshold`` as dead (in place); returns the alive count."""
        self.edges.alive &= self.probs() >= threshold
        return int(self.edges.alive.sum())

    @torch.no_grad()
    def keep_top_(self, n_edges: int, among: str = "eval") -> int:
        """Keep only the ``n_edges`` most probable edges (ties broken by edge id) among the
        eval-mode edges (``among="eval"``, which also drops alive edges with p <= 1/2) or among
        all alive edges (``"alive"``)."""
        kept = np.flatnonzero(self.eval_kept() if among == "eval" else self.alive)
        if len(kept) > n_edges:
            p = self.theta[:, 1].numpy()[kept]
            order = np.lexsort((kept, -p))  # most probable first, then lowest id
            alive = np.zeros(self.n_edges, dtype=bool)
            alive[kept[order[:n_edges]]] = True
            self.edges.alive.copy_(torch.from_numpy(alive))
        elif among == "eval":
            self.edges.alive.copy_(torch.from_numpy(self.eval_kept()))
        return int(self.edges.alive.sum())

    @torch.no_grad()
    def pruned(self, threshold: float = 0.5) -> Graph:
        """A compact copy holding only the alive edges with ``p >= threshold``."""
        keep = self.alive & (self.probs().numpy() >= threshold)
        g = Graph(
            self.n_vertices,
            self.src[keep],
            self.dst[keep],
            np.ones(int(keep.sum())),
            directed=self.directed,
            n_data=self.n_data,
            n_initial_edges=self.n_initial_edges,
        )
        g.edges.weight[1:] = self.theta[torch.from_numpy(keep)]
        g.dense.load_state_dict(self.dense.state_dict())
        return g

    # ------------------------------------------------------------------ size
    def num_parameters(self) -> int:
        """``V + 2E + 1``: a slice offset per vertex, a target id and a weight per kept edge, the
        default distance (eval-mode edges)."""
        return self.n_vertices + 2 * self.n_kept() + 1

    def params_per_vertex(self) -> float:
        """Parameters per data vertex."""
        return self.num_parameters() / self.n_data

    def bits_per_vertex(self) -> float:
        """``32 (V + 2E) / n_data``: 32-bit offsets, ids and weights."""
        return 32 * (self.n_vertices + 2 * self.n_kept()) / self.n_data

    @staticmethod
    def edges_for_budget(n_data: int, n_vertices: int, params_per_vertex: float) -> int:
        """Most edges with ``V + 2E + 1 <= params_per_vertex * n_data``."""
        return max(0, math.floor((params_per_vertex * n_data - n_vertices - 1) / 2))

    # ------------------------------------------------------------------ export
    @torch.no_grad()
    def edge_table(self, mode: str = "eval") -> dict[str, np.ndarray]:
        """Edges of the ``eval`` graph (p > 1/2) or of every ``alive`` edge, with weight and p."""
        keep = self.eval_kept() if mode == "eval" else self.alive
        return {
            "source": self.src[keep],
            "target": self.dst[keep],
            "weight": self.weights().double().numpy()[keep],
            "probability": self.probs().double().numpy()[keep],
        }

    def to_networkx(self, mode: str = "eval"):
        """A ``networkx`` (Di)Graph with ``weight`` and ``probability`` edge attributes."""
        import networkx as nx

        G = nx.DiGraph() if self.directed else nx.Graph()
        G.add_nodes_from((i, {"virtual": i >= self.n_data}) for i in range(self.n_vertices))
        t = self.edge_table(mode)
        G.add_edges_from(
            (int(a), int(b), {"weight": float(w), "probability": float(p)})
            for a, b, w, p in zip(t["source"], t["target"], t["weight"], t["probability"])
        )
        return G

    def write_graphml(self, path, mode: str = "eval") -> Path:
        """GraphML (read by Gephi, Cytoscape, igraph, networkx), written atomically."""
        import networkx as nx

        with atomic_path(path) as tmp:
            nx.write_graphml(self.to_networkx(mode), tmp)
        return Path(path)

    def write_edge_csv(self, path, mode: str = "eval") -> Path:
        """``source,target,weight,probability`` rows, written atomically."""
        t = self.edge_table(mode)
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            wr = csv.writer(f)
            wr.writerow(["source", "target", "weight", "probability"])
            for row in zip(t["source"], t["target"], t["weight"], t["probability"]):
                wr.writerow([int(row[0]), int(row[1]), repr(float(row[2])), repr(float(row[3]))])
        return Path(path)

    # ------------------------------------------------------------------ files
    def save(self, folder) -> Path:
        """``graph.safetensors`` (edges, parameters) + ``graph.json`` (sizes) in ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {
            "src": torch.from_numpy(self.src),
            "dst": torch.from_numpy(self.dst),
            "theta": self.theta.detach().clone(),
            "alive": self.edges.alive.clone(),
            "default_distance": self.default_distance.detach().reshape(1).clone(),
        }
        tensors.update({f"extra.{k}": v.detach().clone() for k, v in self.dense.extra.items()})
        save_tensors(folder / "graph.safetensors", tensors)
        write_json(folder / "graph.json", {
            "n_vertices": self.n_vertices, "n_data": self.n_data, "directed": self.directed,
            "n_edges": self.n_edges, "n_initial_edges": self.n_initial_edges,
            "kept_edges": self.n_kept(), "parameters": self.num_parameters(),
        })  # fmt: skip
        return folder

    @classmethod
    def load(cls, folder) -> Graph:
        folder = Path(folder)
        if not (folder / "graph.json").is_file():
            raise FileNotFoundError(f"no graph.json in {folder}: pass a folder written by `prodige fit`")
        meta = read_json(folder / "graph.json")
        t = load_tensors(folder / "graph.safetensors")
        g = cls(meta["n_vertices"], t["src"].numpy(), t["dst"].numpy(), np.ones(len(t["src"])),
                directed=meta["directed"], n_data=meta["n_data"],
                n_initial_edges=meta["n_initial_edges"])  # fmt: skip
        if g.n_edges != len(t["src"]):
            raise ValueError(f"{folder}: the stored edge list has duplicates or self-loops")
        with torch.no_grad():
            g.edges.weight[1:] = t["theta"]
            g.edges.alive.copy_(t["alive"])
            g.dense.default_distance.fill_(float(t["default_distance"][0]))
            for k, v in t.items():
                if k.startswith("extra."):
                    g.dense.extra[k[6:]] = nn.Parameter(v)
        return g
