"""The training loop: one sampled graph per step, in :class:`papercore.train.Trainer`.

A step: sample the graph (Bernoulli, from the trainer's per-step generator), draw the task's
pairs, search the paths (:func:`prodige.paths.find_paths`), recompute their lengths in torch,
and minimise task loss + path term + lambda(t) * prior with SparseAdam (edges) and Adam (dense
parameters). Pruning every ``prune_every`` steps clears dead edges in place, so checkpoints keep
their shapes and ``resume=True`` continues bit-identically.

After ``steps`` steps the graph is cut to the size budget (``params_per_vertex``: the most
probable eval-mode edges), and ``finetune_steps`` more steps train the weights of the kept edges
on the deterministic graph.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from papercore.train import Trainer
from prodige.config import ProdigeConfig, ProdigeTrainConfig
from prodige.graph import Graph
from prodige.objective import path_term, prior_penalty, sparsity_weight
from prodige.paths import find_paths, path_distances

log = logging.getLogger(__name__)

__all__ = ["FitResult", "fit_graph"]


@dataclass
class FitResult:
    graph: Graph
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0
    long_paths: int = 0  # pairs whose path exceeded max_length (flagged or rejected)


def _set_lr(opt, factor: float) -> None:
    for g in opt.param_groups:
        g["lr"] *= factor


def fit_graph(
    graph: Graph,
    task,
    config: ProdigeConfig | None = None,
    train: ProdigeTrainConfig | None = None,
    *,
    out: str | os.PathLike | None = None,
    seed: int = 0,
    resume: bool = False,
    plot: bool = False,
) -> FitResult:
    """Train ``graph`` (in place) on ``task``; returns it with the metrics history.

    ``task`` has ``n_data``, ``sample(rng, n_sources, targets_per_source) -> Batch`` and
    ``loss(d, batch) -> (loss, per_pair_loss)``; it may add dense parameters through
    ``init_dense(graph)`` (e.g. GloVe biases).
    """
    cfg = config or ProdigeConfig()
    tcfg = train or ProdigeTrainConfig()
    if not cfg.soft:
        _check_connected(graph)
    if hasattr(task, "init_dense"):  # before the trainer: a resumed fit restores the values
        task.init_dense(graph)
    main_steps = tcfg.steps
    total = dataclasses.replace(tcfg, steps=tcfg.steps + tcfg.finetune_steps)
    opts = {
        "edges": torch.optim.SparseAdam(list(graph.edges.parameters()), lr=cfg.lr),
        "dense": torch.optim.Adam(list(graph.dense.parameters()), lr=cfg.lr_dense),
    }
    trainer = Trainer({"edges": graph.edges, "dense": graph.dense}, opts, total, out=out, seed=seed,
                      resume=resume, device="cpu")  # fmt: skip
    budget = (
        Graph.edges_for_budget(graph.n_data, graph.n_vertices, cfg.params_per_vertex)
        if cfg.params_per_vertex
        else None
    )
    stats = {"long": 0}

    def step(t: Trainer, _):
        s = t.step  # steps done before this one
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=t.generator)))
        finetune = s >= main_steps
        if finetune and s == main_steps:
            _cut_to_budget(graph, cfg, budget)
        if finetune:  # linear decay to a tenth over the fine-tuning steps
            f = 1 - 0.9 * (s - main_steps) / max(1, tcfg.finetune_steps)
            for o, base in ((opts["edges"], cfg.lr), (opts["dense"], cfg.lr_dense)):
                for grp in o.param_groups:
                    grp["lr"] = base * f
        kept = graph.eval_kept() if finetune else graph.sample_kept(t.generator)
        batch = task.sample(rng, tcfg.batch_size, tcfg.targets_per_source)
        paths = find_paths(graph, batch.src, batch.dst, kept, soft=cfg.soft and not finetune,
                           max_length=cfg.max_length, long_paths=cfg.long_paths, method=cfg.search)  # fmt: skip
        stats["long"] += int(paths.too_long.sum())
        d, logp = path_distances(graph, paths)
        task_loss, per_pair = task.loss(d, batch)
        loss = task_loss
        metrics = {"task_loss": task_loss.detach()}
        if not finetune:
            lam = sparsity_weight(cfg, s, graph)
            term = path_term(cfg, logp, per_pair, paths.reachable, graph)
            loss = loss + term
            if lam > 0:
                loss = loss + lam * prior_penalty(graph, cfg, rng)
            metrics["lambda"] = lam
        metrics["loss"] = t.optimize(("edges", "dense"), loss)
        if not finetune and cfg.prune_every and (s + 1) % cfg.prune_every == 0 and s + 1 < main_steps:
            graph.prune_(cfg.prune_threshold)
            if budget is not None and cfg.prune_to_budget:
                graph.keep_top_(_scheduled_edges(graph, budget, s + 1, main_steps, cfg.prune_every), "alive")
            for o in opts.values():
                _set_lr(o, cfg.prune_lr_decay)
        if (s + 1) % tcfg.log_every == 0 or s + 1 == total.steps:
            metrics["kept_edges"] = graph.n_kept()
            metrics["alive_edges"] = int(graph.edges.alive.sum())
            metrics["params_per_vertex"] = graph.params_per_vertex()
            metrics["missing_per_path"] = float(paths.missing.mean())
        return metrics

    t0 = time.perf_counter()
    result = trainer.fit(step, None, desc="prodige", plot=plot)
    if tcfg.finetune_steps == 0:
        _cut_to_budget(graph, cfg, budget)
    if out is not None:
        graph.save(out)
    return FitResult(graph, result.history, time.perf_counter() - t0, result.step, stats["long"])


def _check_connected(graph: Graph) -> None:
    from scipy.sparse.csgraph import connected_components

    from prodige.paths import search_graph

    A, _, _ = search_graph(graph, graph.alive, soft=False)
    n_comp = connected_components(A, directed=graph.directed, connection="weak")[0]
    if n_comp > 1:
        raise ValueError(
            f"the initial graph has {n_comp} components and soft=False leaves pairs between them without a "
            "path: raise knn/random_edges or use soft mode"
        )


def _scheduled_edges(graph: Graph, budget: int, step: int, main_steps: int, every: int) -> int:
    """Gradual pruning (Zhu & Gupta 2017): ``budget + (E0 - budget)(1 - step/last)^3`` alive
    edges, reaching the budget at the last pruning before ``main_steps``."""
    last = ((main_steps - 1) // every) * every
    frac = min(1.0, step / max(last, 1))
    return int(budget + (graph.n_initial_edges - budget) * (1 - frac) ** 3)


def _cut_to_budget(graph: Graph, cfg: ProdigeConfig, budget: int | None) -> None:
    """Drop dead and p <= 1/2 edges, then keep the most probable ``budget`` of them."""
    graph.keep_top_(budget if budget is not None else graph.n_edges)
