"""``prodige`` command line: fit a graph to data, evaluate it, benchmark it, demo.

With no data arguments every command runs on scikit-learn's bundled digits.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from papercore.cli import CLI, Command, CommonOptions, UserError, check_resume, write_resolved_config
from papercore.io import read_json, write_json
from prodige import __version__
from prodige.config import ProdigeConfig, ProdigeTrainConfig

log = logging.getLogger(__name__)


@dataclass
class FitOptions:
    data: str = field(
        default="digits", metadata={"help": "digits, swissroll, or a .npy/.csv file of [n, d] points"}
    )
    n: int = field(default=0, metadata={"help": "use the first n points (0: all; swissroll: how many)"})
    distances: str = field(
        default="", metadata={"help": "a .npy/.csv [n, n] target distance matrix (instead of --metric)"}
    )
    metric: str = field(default="euclidean", metadata={"help": "euclidean or geodesic (kNN shortest paths)"})
    n_neighbors: int = field(default=10, metadata={"help": "kNN of the geodesic metric"})
    out: Path = field(default=Path("prodige-run"), metadata={"help": "output folder"})
    resume: bool = field(default=False, metadata={"help": "continue an interrupted fit in --out"})
    plot: bool = field(default=True, metadata={"help": "write graph.png and curves.png"})


def _labels(opts) -> object:
    if opts.data == "digits" and not opts.distances:
        from sklearn.datasets import load_digits

        y = load_digits().target
        return y[: opts.n] if opts.n else y
    return None


def fit_cmd(cfg: ProdigeConfig, train: ProdigeTrainConfig, opts: FitOptions, common: CommonOptions) -> int:
    """Fit a graph to the data's distances; write the graph, GraphML, edge CSV, metrics and plots."""
    from prodige.bench import fit_compression, make_target

    if opts.resume:
        check_resume(opts.out, cfg, train)
    elif (opts.out / "graph.json").exists() or (opts.out / "checkpoint").exists():
        raise UserError(
            f"--out {opts.out} already holds a fit: pass --resume to continue it, or a new folder"
        )
    points, D = make_target(
        opts.data, opts.n, opts.metric, opts.distances or None, opts.n_neighbors, common.seed
    )
    if cfg.params_per_vertex:
        from prodige.estimator import max_params_per_vertex

        limit = max_params_per_vertex(len(D), cfg.virtual_vertices if points is not None else 0, cfg.directed)
        if cfg.params_per_vertex > limit:
            raise UserError(
                f"--params-per-vertex {cfg.params_per_vertex} is more than the complete graph on {len(D)} "
                f"points holds ({limit:.3g}): lower it"
            )
    write_resolved_config(opts.out, cfg, train, opts, common=common)
    graph, task, metrics = fit_compression(points, D, cfg, train, seed=common.seed, out=opts.out,
                                           resume=opts.resume, plot=opts.plot)  # fmt: skip
    metrics["scale"] = task.scale
    write_json(opts.out / "results.json", metrics)
    write_json(opts.out / "task.json", {"data": opts.data, "n": opts.n, "metric": opts.metric,
               "distances": str(Path(opts.distances).resolve()) if opts.distances else "",
               "n_neighbors": opts.n_neighbors, "seed": common.seed, "scale": task.scale})  # fmt: skip
    graph.write_graphml(opts.out / "graph.graphml")
    graph.write_edge_csv(opts.out / "edges.csv")
    if opts.plot:
        from prodige.plot import plot_graph

        plot_graph(graph, opts.out / "graph.png", labels=_labels(opts))
    print(f"fitted {len(D)} points: relative MSE {metrics['rel_mse']:.4g}, {metrics['kept_edges']} edges, "
          f"{metrics['params_per_vertex']:.2f} params/vertex, {metrics['seconds']} s; saved to {opts.out}")  # fmt: skip
    return 0


@dataclass
class EvalOptions:
    model: Path = field(default=Path("prodige-run"), metadata={"help": "folder written by `prodige fit`"})
    plot: bool = field(default=True, metadata={"help": "write eval.png (graph against target distances)"})


def eval_cmd(opts: EvalOptions, common: CommonOptions) -> int:
    """Score a fitted graph against its target distances."""
    from prodige.bench import make_target, score
    from prodige.graph import Graph
    from prodige.paths import pairwise_distances

    if not (opts.model / "task.json").is_file():
        raise UserError(f"--model {opts.model}: no task.json; pass a folder written by `prodige fit`")
    t = read_json(opts.model / "task.json")
    graph = Graph.load(opts.model)
    _, D = make_target(t["data"], t["n"], t["metric"], t["distances"] or None, t["n_neighbors"], t["seed"])
    if len(D) != graph.n_data:
        raise UserError(
            f"the data now has {len(D)} points but the graph {graph.n_data}: was the file changed?"
        )
    pred = pairwise_distances(graph) * t["scale"]
    m = score(pred, D)
    m.update(kept_edges=graph.n_kept(), parameters=graph.num_parameters(),
             params_per_vertex=graph.params_per_vertex(), bits_per_vertex=graph.bits_per_vertex())  # fmt: skip
    print("| metric | value |\n|---|---|")
    for k, v in m.items():
        print(f"| {k} | {v:.4g} |")
    write_json(opts.model / "eval.json", m)
    if opts.plot:
        import numpy as np

        from papercore.plot import samples_2d

        iu = np.triu_indices(len(D), 1)
        pairs = np.stack([np.asarray(D)[iu], np.asarray(pred)[iu]], 1)
        samples_2d(opts.model / "eval.png", pairs, pairs[:, [0, 0]], labels=["pairs", "exact"],
                   title="graph distance (y) against target distance (x)")  # fmt: skip
    return 0


@dataclass
class BenchOptions:
    data: str = field(default="digits", metadata={"help": "digits or swissroll (or a points file)"})
    n: int = field(default=300, metadata={"help": "points (0: all)"})
    metric: str = field(default="euclidean", metadata={"help": "euclidean or geodesic"})
    seeds: int = field(default=1, metadata={"help": "seeds (mean ± std)"})
    baselines: list[str] = field(
        default_factory=lambda: ["pca", "mds", "knn_graph", "mst_graph"],
        metadata={"help": "pca, mds, isomap, poincare, knn_graph, mst_graph"},
    )
    out: Path | None = field(default=None, metadata={"help": "write results.json here"})


def bench_cmd(
    cfg: ProdigeConfig, train: ProdigeTrainConfig, opts: BenchOptions, common: CommonOptions
) -> int:
    """PRODIGE against equal-size baselines on one data set: relative MSE table."""
    import numpy as np

    from prodige.bench import BASELINES, baseline_scores, fit_compression, make_target

    bad = sorted(set(opts.baselines) - set(BASELINES))
    if bad:
        raise UserError(f"unknown baseline(s) {', '.join(bad)}: choose from {', '.join(BASELINES)}")
    if opts.seeds < 1:
        raise UserError("--seeds must be >= 1")
    ppv = cfg.params_per_vertex or 4.0
    if not cfg.params_per_vertex:
        from dataclasses import replace

        cfg = replace(cfg, params_per_vertex=ppv)
    points, D = make_target(opts.data, opts.n, opts.metric, None, 10, common.seed)
    runs = [fit_compression(points, D, cfg, train, seed=common.seed + s)[2] for s in range(opts.seeds)]
    rows = {
        "prodige": {
            k: [r[k] for r in runs] for k in ("rel_mse", "spearman", "recall@10", "params_per_vertex")
        }
    }
    base = baseline_scores(points, D, ppv, opts.baselines, seed=common.seed)
    print(
        f"{opts.data} ({len(D)} points, {opts.metric}), {ppv} params/vertex, {train.steps}+{train.finetune_steps} steps:"
    )
    print("| method | relative MSE | Spearman | recall@10 |\n|---|---|---|---|")
    r = rows["prodige"]
    print(f"| prodige | {np.mean(r['rel_mse']):.4g} ± {np.std(r['rel_mse']):.2g} | {np.mean(r['spearman']):.3f} "
          f"| {np.mean(r['recall@10']):.3f} |")  # fmt: skip
    for name, m in base.items():
        print(f"| {name} | {m['rel_mse']:.4g} | {m['spearman']:.3f} | {m['recall@10']:.3f} |")
    if opts.out:
        write_json(opts.out / "results.json", {"prodige": runs, "baselines": base})
        write_resolved_config(opts.out, cfg, train, opts, common=common)
    return 0


@dataclass
class GloveOptions:
    text: str = field(
        default="stdlib",
        metadata={"help": "stdlib (docstrings of Python's standard library), synthetic, a .txt file, "
                  "or a square .npy co-occurrence matrix"},
    )  # fmt: skip
    words: int = field(default=400, metadata={"help": "vocabulary: the most frequent words"})
    window: int = field(default=5, metadata={"help": "co-occurrence window (each pair weighted 1/offset)"})
    baseline_steps: int = field(
        default=1500, metadata={"help": "Adam steps of the GloVe-vector baseline (0: skip)"}
    )
    show: list[str] = field(default_factory=list, metadata={"help": "words whose graph neighbours to print"})
    out: Path = field(default=Path("prodige-glove"), metadata={"help": "output folder"})


def glove_cmd(
    cfg: ProdigeConfig, train: ProdigeTrainConfig, opts: GloveOptions, common: CommonOptions
) -> int:
    """The GloVe objective b_i + b_j - d_G(i,j)^2 ~ log X_ij on a co-occurrence matrix, against
    GloVe vectors of the same size; writes the graph, results.json and the words' neighbours."""
    import time
    from dataclasses import replace

    import torch

    from prodige.glove import GloveTask, GloveVectors, init_glove_graph, load_cooccurrence, nearest_words
    from prodige.train import fit_graph

    if opts.words < 2 or opts.window < 1:
        raise UserError("--words must be >= 2 and --window >= 1")
    if not cfg.params_per_vertex:
        cfg = replace(cfg, params_per_vertex=4.0)
    cooc = load_cooccurrence(opts.text, opts.words, opts.window, seed=common.seed)
    task = GloveTask(cooc)
    torch.manual_seed(common.seed)
    graph = init_glove_graph(cooc, cfg, seed=common.seed)
    write_resolved_config(opts.out, cfg, train, opts, common=common)
    t0 = time.perf_counter()
    fit_graph(graph, task, cfg, train, out=opts.out, seed=common.seed, plot=False)
    ppw = graph.params_per_vertex() + 1  # + the word's bias
    res = {"words": cooc.n_words, "nonzeros": int(cooc.X.nnz), "prodige_loss": task.objective(graph),
           "params_per_word": ppw, "kept_edges": graph.n_kept(), "seconds": round(time.perf_counter() - t0, 2)}  # fmt: skip
    dim = max(1, round(cfg.params_per_vertex))  # + a bias: the same numbers per word as the budget + bias
    if opts.baseline_steps:
        vec = GloveVectors(cooc.n_words, dim, seed=common.seed).fit(task, opts.baseline_steps)
        res[f"glove_vectors_dim{dim}_loss"] = vec.objective(task)
    show = opts.show or [w for w in cooc.words[20:23]]
    res["neighbours"] = {w: nearest_words(graph, cooc, w, 5) for w in show}
    print(
        f"GloVe objective on {opts.text} ({cooc.n_words} words, {cooc.X.nnz} nonzeros), weighted MSE of log X:"
    )
    print("| model | numbers per word | loss |\n|---|---|---|")
    print(f"| PRODIGE graph + bias | {ppw:.2f} | {res['prodige_loss']:.4f} |")
    if opts.baseline_steps:
        print(f"| GloVe vectors (dim {dim}) + bias | {dim + 1} | {res[f'glove_vectors_dim{dim}_loss']:.4f} |")
    for w, nb in res["neighbours"].items():
        print(f"{w}: " + ", ".join(x for x, _ in nb))
    write_json(opts.out / "results.json", res)
    write_json(opts.out / "vocab.json", cooc.words)
    graph.write_edge_csv(opts.out / "edges.csv")
    return 0


def demo(common: CommonOptions) -> int:
    """Digits (500 points): fit at 4 params/vertex, print the MSE table against the baselines, write graph.png."""
    from sklearn.datasets import load_digits

    from prodige.bench import baseline_scores, fit_compression, make_target
    from prodige.plot import plot_graph

    logging.getLogger("papercore").setLevel(logging.WARNING)
    out = Path(tempfile.mkdtemp(prefix="prodige-demo-"))
    n = 500
    points, D = make_target("digits", n)
    cfg = ProdigeConfig(virtual_vertices=20, params_per_vertex=4.0, sparsity_ramp=300)
    train = ProdigeTrainConfig(steps=400, finetune_steps=300, log_every=100)
    graph, task, m = fit_compression(points, D, cfg, train, seed=common.seed)
    base = baseline_scores(points, D, 4.0, ("pca", "mds", "knn_graph", "mst_graph"), seed=common.seed)
    print(f"digits, {n} points, Euclidean distances, 4 parameters per vertex ({m['seconds']} s of training):")
    print("| method | size (params/vertex) | relative MSE | Spearman | recall@10 |\n|---|---|---|---|---|")
    print(
        f"| PRODIGE | {m['params_per_vertex']:.2f} | {m['rel_mse']:.4f} | {m['spearman']:.3f} | {m['recall@10']:.3f} |"
    )
    names = {
        "pca": "PCA(4)",
        "mds": "MDS(4)",
        "knn_graph": "kNN graph, fixed weights",
        "mst_graph": "MST + edges, fixed weights",
    }
    for k, v in base.items():
        print(f"| {names[k]} | 4 | {v['rel_mse']:.4f} | {v['spearman']:.3f} | {v['recall@10']:.3f} |")
    plot_graph(graph, out / "graph.png", labels=load_digits().target[:n],
               title=f"PRODIGE on digits: {graph.n_kept()} edges, rel. MSE {m['rel_mse']:.4f}")  # fmt: skip
    graph.save(out / "graph")
    write_json(out / "metrics.json", {"prodige": m, "baselines": base})
    print(f"graph.png, metrics.json and the graph in {out}")
    return 0


app = CLI(
    "prodige",
    "PRODIGE: data as differentiable weighted graphs (learned edges, shortest-path distances).",
    [
        Command(
            "fit",
            fit_cmd,
            "fit a graph to the data's distances",
            config=(ProdigeConfig, ProdigeTrainConfig),
            options=FitOptions,
        ),  # fmt: skip
        Command("eval", eval_cmd, "score a fitted graph against its target distances", options=EvalOptions),
        Command(
            "bench",
            bench_cmd,
            "PRODIGE against equal-size baselines (relative MSE table)",
            config=(ProdigeConfig, ProdigeTrainConfig),
            options=BenchOptions,
        ),  # fmt: skip
        Command(
            "glove",
            glove_cmd,
            "the GloVe co-occurrence objective on a graph (stdlib docstrings by default)",
            config=(ProdigeConfig, ProdigeTrainConfig),
            options=GloveOptions,
        ),  # fmt: skip
        Command("demo", demo, "digits: fit, table against baselines, graph.png"),
    ],
    version=__version__,
)


def main(argv: list[str] | None = None) -> int:
    return app.main(argv)


if __name__ == "__main__":
    sys.exit(main())
