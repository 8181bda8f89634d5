"""PRODIGE benchmarks on a CPU (2 cores): quality at equal size, collaborative filtering, speed.

    python benchmarks/bench_prodige.py --part compression --data digits   # writes results/<part>.json
    python benchmarks/bench_prodige.py --part compression --data swissroll
    python benchmarks/bench_prodige.py --part cf
    python benchmarks/bench_prodige.py --part glove
    python benchmarks/bench_prodige.py --part speed
    python benchmarks/bench_prodige.py --part speed-cpu                    # CPU seconds per step
    python benchmarks/bench_prodige.py --combine                           # docs/benchmarks/prodige.{json,md}

Every learned method runs 3 seeds (mean ± std); baselines run in the same process on the same
targets. Fixed budgets, no selection on test data.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("PAPERCORE_PROGRESS", "0")
import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
ROOT = HERE.parents[2]
CMD = "python packages/prodige/benchmarks/bench_prodige.py"


def compression(data: str, seeds: int, steps: int, finetune: int, n: int) -> dict:
    from prodige.bench import baseline_scores, fit_compression, make_target
    from prodige.config import ProdigeConfig, ProdigeTrainConfig

    metric = "euclidean" if data == "digits" else "geodesic"
    points, D = make_target(data, n, metric, seed=0)
    cfg = ProdigeConfig(virtual_vertices=32 if data == "digits" else 0, params_per_vertex=4.0,
                        sparsity_ramp=steps // 2)  # fmt: skip
    train = ProdigeTrainConfig(steps=steps, finetune_steps=finetune, log_every=100)
    runs = []
    for s in range(seeds):
        _, _, m = fit_compression(points, D, cfg, train, seed=s)
        print(
            data, "seed", s, {k: round(v, 4) if isinstance(v, float) else v for k, v in m.items()}, flush=True
        )
        runs.append(m)
    base = baseline_scores(points, D, 4.0, seed=0)
    print(data, "baselines", json.dumps(base), flush=True)
    return {"data": data, "metric": metric, "n": len(D), "steps": steps, "finetune_steps": finetune,
            "config": cfg.to_dict(), "prodige": runs, "baselines": base}  # fmt: skip


def cf(seeds: int, steps: int, finetune: int, ppv: float) -> dict:
    from prodige.config import ProdigeConfig, ProdigeTrainConfig
    from prodige.recsys import (
        MatrixFactorization,
        RecommendationTask,
        graph_scores,
        hierarchical_feedback,
        init_cf_graph,  # fmt: skip
        rank_metrics,
    )
    from prodige.train import fit_graph

    fb = hierarchical_feedback(seed=0)
    task = RecommendationTask(fb)
    cfg = ProdigeConfig(knn=16, params_per_vertex=ppv, sparsity_ramp=steps // 2)
    train = ProdigeTrainConfig(steps=steps, finetune_steps=finetune, batch_size=32, log_every=100)
    out = {"prodige": [], "mf": [], "ppv": ppv, "users": fb.n_users, "items": fb.n_items}
    for s in range(seeds):
        t0 = time.perf_counter()
        g = init_cf_graph(fb, cfg)
        torch.manual_seed(s)
        fit_graph(g, task, cfg, train, seed=s)
        m = rank_metrics(*graph_scores(g, fb)) | {"params_per_vertex": g.params_per_vertex(),
                                                  "seconds": time.perf_counter() - t0}  # fmt: skip
        out["prodige"].append(m)
        mf = MatrixFactorization(fb.n_users, fb.n_items, int(ppv), seed=s).fit(
            task, steps=steps + finetune, batch=32, seed=s
        )
        out["mf"].append(rank_metrics(*mf.scores(fb)) | {"params_per_vertex": float(int(ppv))})
        print("cf seed", s, m, out["mf"][-1], flush=True)
    return out


def glove(seeds: int, steps: int, finetune: int, ppv: float = 4.0, words: int = 400) -> dict:
    """The GloVe objective on the stdlib-docstring co-occurrences: PRODIGE (budget ``ppv`` + a bias
    per word) against tied GloVe vectors with the same numbers per word, 3 seeds each."""
    from prodige.config import ProdigeConfig, ProdigeTrainConfig
    from prodige.glove import GloveTask, GloveVectors, init_glove_graph, load_cooccurrence, nearest_words
    from prodige.train import fit_graph

    cooc = load_cooccurrence("stdlib", words, 5)
    task = GloveTask(cooc)
    cfg = ProdigeConfig(
        knn=16, random_edges=8, params_per_vertex=ppv, sparsity_ramp=steps // 2, prune_every=50
    )
    train = ProdigeTrainConfig(steps=steps, finetune_steps=finetune, batch_size=16, log_every=100)
    out = {"words": cooc.n_words, "nonzeros": int(cooc.X.nnz), "ppv": ppv, "steps": steps,
           "finetune_steps": finetune, "config": cfg.to_dict(), "prodige": [], "vectors": []}  # fmt: skip
    dim = round(ppv)
    for s in range(seeds):
        t0 = time.perf_counter()
        torch.manual_seed(s)
        g = init_glove_graph(cooc, cfg, seed=s)
        task.init_dense(g)
        init_loss = task.objective(g)
        fit_graph(g, task, cfg, train, seed=s)
        m = {"loss": task.objective(g), "init_loss": init_loss, "params_per_word": g.params_per_vertex() + 1,
             "seconds": time.perf_counter() - t0,
             "neighbours": {w: [x for x, _ in nearest_words(g, cooc, w, 5)] for w in ("file", "thread", "list")}}  # fmt: skip
        v = GloveVectors(cooc.n_words, dim, seed=s).fit(task, 3000)
        out["prodige"].append(m)
        out["vectors"].append({"loss": v.objective(task), "params_per_word": dim + 1})
        print("glove seed", s, m, out["vectors"][-1], flush=True)
    return out


def speed(min_steps: int = 5, min_seconds: float = 3.0, method: str = "auto") -> dict:
    """Steps/s and a profile of one step's parts, on digits and on a 10k-vertex graph (one warm-up
    step, then at least ``min_steps`` steps and ``min_seconds`` seconds)."""
    from prodige.config import ProdigeConfig
    from prodige.init import init_graph
    from prodige.paths import find_paths, path_distances, search_graph
    from prodige.tasks import DistanceTask

    out = {}
    rng = np.random.default_rng(0)
    from sklearn.datasets import load_digits

    setups = {
        "digits (1797 vertices, 16 kNN + 8 random)": (load_digits().data.astype(float), 16, 8),
        "10k vertices (64 kNN + 32 random)": (rng.normal(size=(10000, 32)), 64, 32),
    }
    for name, (X, knn, rnd) in setups.items():
        task = DistanceTask(points=X)
        cfg = ProdigeConfig(knn=knn, random_edges=rnd)
        g = init_graph(X, config=cfg, scale=task.scale, default_distance=task.max_target())
        opt = torch.optim.SparseAdam(list(g.edges.parameters()), lr=0.05)
        for label, S, T in (("256 random pairs", 256, 1), ("16 sources x all targets", 16, 0)):
            parts = {
                "sample": 0.0,
                "graph build": 0.0,
                "search+backtrack": 0.0,
                "recompute+backward+step": 0.0,
            }
            gen = torch.Generator().manual_seed(0)
            steps, t_all = -1, 0.0
            while steps < min_steps or t_all < min_seconds:
                t0 = time.perf_counter()
                kept = g.sample_kept(gen)
                b = task.sample(rng, S, T)
                t1 = time.perf_counter()
                search_graph(g, kept, True)  # timed apart: find_paths builds it again
                t2 = time.perf_counter()
                paths = find_paths(g, b.src, b.dst, kept, soft=True, method=method)
                t3 = time.perf_counter()
                d, logp = path_distances(g, paths)
                loss, _ = task.loss(d, b)
                (loss - logp.mean()).backward()
                opt.step()
                opt.zero_grad()
                t4 = time.perf_counter()
                steps += 1
                if steps == 0:  # warm-up (structure cache, allocations)
                    continue
                build = t2 - t1
                for k, v in zip(parts, (t1 - t0, build, t3 - t2 - build, t4 - t3)):
                    parts[k] += v
                t_all += t4 - t0 - build
            sec = t_all / steps
            out[f"{name}, {label}"] = {"steps_per_s": 1 / sec, "edges": g.n_edges, "steps": steps, "method": method,
                                       "profile_s": {k: v / steps for k, v in parts.items()},
                                       "pairs": len(b.src), "mean_hops": float(paths.hops.mean())}  # fmt: skip
            print(name, label, out[f"{name}, {label}"], flush=True)
        # the whole training step (papercore Trainer, prior, logging) on a fresh graph
        from prodige.config import ProdigeTrainConfig
        from prodige.train import fit_graph

        g = init_graph(X, config=cfg, scale=task.scale, default_distance=task.max_target())
        tc = ProdigeTrainConfig(steps=30, batch_size=256, targets_per_source=1, log_every=1000)
        res = fit_graph(g, task, ProdigeConfig(knn=knn, random_edges=rnd, search=method), tc)
        out[f"{name}, fit_graph (Trainer), 256 random pairs"] = {
            "steps_per_s": res.steps / res.seconds, "edges": g.n_edges, "steps": res.steps, "method": method,
            "pairs": 256, "profile_s": {}}  # fmt: skip
        print(name, "fit_graph", res.steps / res.seconds, flush=True)
    return out


def speed_cpu(steps: int = 4) -> dict:
    """CPU seconds per step (``time.process_time``: the time this process ran, less sensitive to a
    shared machine's load than wall time) of the 10k graph with 256 random pairs, per search method,
    and of a sparser (mid-pruning) 10k graph."""
    from prodige.config import ProdigeConfig
    from prodige.init import init_graph
    from prodige.paths import find_paths, path_distances
    from prodige.tasks import DistanceTask

    rng = np.random.default_rng(0)
    X = rng.normal(size=(10000, 32))
    task = DistanceTask(points=X)
    out = {}
    for knn, rnd, methods in ((64, 32, ("full", "meet", "bidirectional")), (8, 4, ("bidirectional",))):
        g = init_graph(X, config=ProdigeConfig(knn=knn, random_edges=rnd), scale=task.scale,
                       default_distance=task.max_target())  # fmt: skip
        opt = torch.optim.SparseAdam(list(g.edges.parameters()), lr=0.05)
        gen = torch.Generator().manual_seed(0)
        for method in methods:
            cpu, wall = [], []
            for _ in range(steps):  # the first is a warm-up
                t0, c0 = time.perf_counter(), time.process_time()
                kept = g.sample_kept(gen)
                b = task.sample(rng, 256, 1)
                p = find_paths(g, b.src, b.dst, kept, soft=True, method=method)
                d, logp = path_distances(g, p)
                loss, _ = task.loss(d, b)
                (loss - logp.mean()).backward()
                opt.step()
                opt.zero_grad()
                cpu.append(time.process_time() - c0)
                wall.append(time.perf_counter() - t0)
            key = f"10k, {knn} kNN + {rnd} random ({g.n_edges} edges), 256 random pairs, {method}"
            out[key] = {"cpu_s_per_step": float(np.mean(cpu[1:])), "wall_s_per_step": float(np.mean(wall[1:])),
                        "load": os.getloadavg()[0]}  # fmt: skip
            print(key, out[key], flush=True)
    return out


def combine() -> None:
    from papercore.bench import Entry, hardware, today, write_results

    hw = f"2-core CPU, shared with other jobs ({hardware()})"
    entries = []

    def ms(v):
        return float(np.mean(v)), float(np.std(v))

    for data in ("digits", "swissroll"):
        f = RESULTS / f"compression_{data}.json"
        if not f.is_file():
            continue
        r = json.loads(f.read_text())
        mean, std = ms([x["rel_mse"] for x in r["prodige"]])
        ppv = max(x["params_per_vertex"] for x in r["prodige"])
        ns = len(r["prodige"])
        for b, m in r["baselines"].items():
            entries.append(Entry(
                f"{data} {r['metric']} n={r['n']}: PRODIGE ({ppv:.2f} params/vertex, {ns} seeds, {mean:.4g} ± {std:.2g}) vs {b} at 4",
                "relative MSE", mean, b, m["rel_mse"], m["rel_mse"] / mean, hw, today(),
                f"{CMD} --part compression --data {data} --steps {r['steps']} --finetune {r['finetune_steps']}"))  # fmt: skip
    f = RESULTS / "cf.json"
    if f.is_file():
        r = json.loads(f.read_text())
        for k in ("HR@10", "NDCG@10", "HR@5"):
            a, sa = ms([x[k] for x in r["prodige"]])
            b, _ = ms([x[k] for x in r["mf"]])
            entries.append(Entry(
                f"synthetic hierarchical feedback ({r['users']} users, {r['items']} items), {r['ppv']} params/vertex, "
                f"3 seeds ({a:.3f} ± {sa:.3f})", k, a, f"MF dim {int(r['ppv'])}", b, a / b, hw, today(),
                f"{CMD} --part cf"))  # fmt: skip
    f = RESULTS / "glove.json"
    if f.is_file():
        r = json.loads(f.read_text())
        a, sa = ms([x["loss"] for x in r["prodige"]])
        b, sb = ms([x["loss"] for x in r["vectors"]])
        ppw = max(x["params_per_word"] for x in r["prodige"])
        entries.append(Entry(
            f"GloVe objective, stdlib docstrings ({r['words']} words), PRODIGE {ppw:.2f} numbers/word, 3 seeds "
            f"({a:.4f} ± {sa:.4f}) vs GloVe vectors dim {round(r['ppv'])} + bias ({b:.4f} ± {sb:.4f})",
            "weighted MSE of log X (lower is better)", a, f"GloVe vectors dim {round(r['ppv'])}", b, a / b, hw,
            today(), f"{CMD} --part glove --steps {r['steps']} --finetune {r['finetune_steps']}"))  # fmt: skip
    f = RESULTS / "speed.json"
    before = RESULTS / "speed_before.json"
    before = json.loads(before.read_text()) if before.is_file() else {}
    if f.is_file():
        r = json.loads(f.read_text())
        for name, m in r.items():
            meth = m.get("method", "auto")
            entries.append(Entry(f"train step, {name} ({m['pairs']} pairs, search {meth})", "steps/s",
                                 m["steps_per_s"], "goal", 20.0, m["steps_per_s"] / 20.0, hw, today(),
                                 f"{CMD} --part speed"))  # fmt: skip
            if name in before:
                b = before[name]["steps_per_s"]
                entries.append(Entry(f"train step, {name}: search {meth} vs the previous version (full Dijkstra "
                                     "per source, rebuilt CSR), same command and machine", "steps/s",
                                     m["steps_per_s"], "previous version", b, m["steps_per_s"] / b, hw, today(),
                                     f"{CMD} --part speed"))  # fmt: skip
    f = RESULTS / "speed_cpu_time.json"
    if f.is_file():
        r = json.loads(f.read_text())
        full = next((m["cpu_s_per_step"] for k, m in r.items() if k.endswith(", full")), None)
        for name, m in r.items():
            if full and not name.endswith(", full"):
                entries.append(Entry(f"CPU seconds per train step (process time; load {m['load']:.0f}), {name}",
                                     "CPU s/step (lower is better)", m["cpu_s_per_step"],
                                     "full Dijkstra per source, unpruned 10k graph", full, m["cpu_s_per_step"] / full,
                                     hw, today(), f"{CMD} --part speed-cpu"))  # fmt: skip
    write_results(entries, ROOT / "docs" / "benchmarks" / "prodige.json", "prodige")
    notes = RESULTS / "notes.md"  # the prose read with the table
    if notes.is_file():
        md = ROOT / "docs" / "benchmarks" / "prodige.md"
        md.write_text(md.read_text() + "\n" + notes.read_text())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=["compression", "cf", "glove", "speed", "speed-cpu"])
    ap.add_argument("--data", default="digits")
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--finetune", type=int, default=400)
    ap.add_argument("--method", default="auto", choices=["auto", "full", "meet"], help="speed: path search")
    ap.add_argument("--combine", action="store_true")
    a = ap.parse_args()
    RESULTS.mkdir(exist_ok=True)
    if a.combine:
        return combine()
    if a.part == "compression":
        res, name = compression(a.data, a.seeds, a.steps, a.finetune, a.n), f"compression_{a.data}"
    elif a.part == "cf":
        res, name = cf(a.seeds, a.steps, a.finetune, 8.0), "cf"
    elif a.part == "speed-cpu":
        res, name = speed_cpu(), "speed_cpu_time"
    elif a.part == "glove":
        res, name = glove(a.seeds, a.steps, a.finetune), "glove"
    else:
        res, name = speed(method=a.method), "speed" if a.method == "auto" else f"speed_{a.method}"
    (RESULTS / f"{name}.json").write_text(json.dumps(res, indent=1, default=float))


if __name__ == "__main__":
    main()
