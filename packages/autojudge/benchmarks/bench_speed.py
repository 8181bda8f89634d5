"""AutoJudge speed/quality benchmark: mine -> train -> the Pareto curve of accuracy against accepted
tokens per cycle and wall-clock, next to lossless speculative decoding (best W), top-K, random
acceptance at the judge's acceptance rates and target-only greedy; plus the judge's overhead
against one target verification forward.

    PYTHONPATH=$PWD/shared/src:$PWD/packages/autojudge/src python packages/autojudge/benchmarks/bench_speed.py --out $OUT/aj

Mining is resumable: a ``--out`` folder that already holds the mined records of the same models
(same zoo cache, ``PAPERCORE_CACHE``) skips straight to the judge and the timed runs.
    ... --quick   # tiny CPU run (end-to-end check)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import torch


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="tiny CPU run")
    ap.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    ap.add_argument(
        "--target", default="builtin:target", help="e.g. builtin:target-large (see autojudge.models)"
    )
    ap.add_argument("--draft", default="builtin:draft")
    ap.add_argument(
        "--data", default="builtin", help="builtin, or builtin-small for the demo pair (builtin:demo-*)"
    )
    ap.add_argument("--json", default="docs/benchmarks/autojudge.json")
    ap.add_argument("--out", default=None, help="folder for mined data, judge and rows")
    ap.add_argument("--mine-problems", type=int, default=None)
    ap.add_argument("--eval-problems", type=int, default=None)
    ap.add_argument("--follow", default="alternative", help="miner: alternative (the paper), target or both")
    ap.add_argument(
        "--pareto-window",
        type=int,
        default=None,
        help="window of the judge/top-K/random runs (default: best lossless)",
    )
    ap.add_argument("--every", type=int, default=1, help="time every k-th judge threshold (26 by default)")
    ap.add_argument(
        "--windows", default="2,4,8,16", help="lossless windows to sweep (the Pareto runs use the best)"
    )
    args = ap.parse_args()

    from autojudge.checkers import consistent_answer as gsm8k_answer  # the built-in task's checker
    from autojudge.config import JudgeConfig, MineConfig, TaskConfig
    from autojudge.data import builtin_items, encode_prompt
    from autojudge.engine import CachedLM, SpecConfig, SpeculativeDecoder, greedy
    from autojudge.evaluate import Method, format_table, random_controls, run_methods
    from autojudge.judge import extract_features, train_judge
    from autojudge.miner import label_stats, load_mined, mine
    from autojudge.models import fingerprint, load_pair
    from papercore.bench import Entry, command_line, cuda_time_ms, hardware, today, write_results

    dev = args.device or ("cuda" if torch.cuda.is_available() and not args.quick else "cpu")
    if dev == "cpu" and not (args.quick or args.device):
        print("bench_speed: no CUDA device (use --quick for a CPU check, or --device cpu for a full CPU run)")
        return 0
    n_mine = args.mine_problems or (12 if args.quick else 400)
    n_eval = args.eval_problems or (4 if args.quick else 100)
    out = Path(args.out or ("/tmp/autojudge-bench-quick" if args.quick else "autojudge-bench"))
    hw, date, cmd = hardware(), today(), command_line()
    entries: list[Entry] = []

    t, d, tok = load_pair(args.target, args.draft, device=dev, dtype=torch.float32)
    # correctness first: lossless == target greedy for every W (abort on failure)
    dec = SpeculativeDecoder(t, d, tok)
    for it in builtin_items(3, 0, "check", args.data):
        p = encode_prompt(tok, it)
        ref = greedy(t, p, 96, dec.eos)
        for w in (1, 4, 16):
            got = dec.generate(p, window=w, max_new_tokens=96).tokens
            if got != ref:
                print(f"ABORT: lossless W={w} differs from target greedy on {it.uid}")
                return 1
    print("check: lossless == target greedy (W = 1, 4, 16)")

    t0 = time.perf_counter()
    path = mine(
        builtin_items(n_mine, 0, "mine", args.data),
        t,
        d,
        tok,
        gsm8k_answer,
        out / "mined",
        MineConfig(follow=args.follow, min_per_class=0),
        TaskConfig(max_new_tokens=128),
    )
    mine_s = time.perf_counter() - t0
    recs = load_mined(path)
    stats = label_stats(recs)
    print("mining:", json.dumps(stats), f"{mine_s:.1f} s")
    feats = extract_features(recs, t, d, progress=False)
    judge, rep = train_judge(
        feats, JudgeConfig(), fingerprints={"target": fingerprint(t), "draft": fingerprint(d)}
    )
    judge.save(out / "judge")
    print(f"judge: val ROC-AUC {rep['val_auc']:.3f}, C {rep['C']:.3g}")
    for name, value, base in (
        ("mined labels: agreement with known importance", stats["oracle_agreement"], 0.9),
        ("judge validation ROC-AUC (DD-DT)", rep["val_auc"], 0.8),
    ):
        entries.append(Entry(name, "fraction", value, "acceptance goal", base, value / base, hw, date, cmd))

    items = builtin_items(n_eval, 0, "eval", args.data)
    rows_all = []
    # lossless at several W: pick the best wall-clock
    best_w, best_row = None, None
    windows = [int(w) for w in args.windows.split(",")]
    for w in windows:
        try:
            r = run_methods(
                items,
                t,
                d,
                tok,
                gsm8k_answer,
                [Method(f"lossless W={w}", SpecConfig(w, "lossless", max_new_tokens=128))],
                progress=False,
            )[0]
            rows_all.append(r)
            if best_row is None or r["seconds_per_problem"] < best_row["seconds_per_problem"]:
                best_w, best_row = w, r
        except Exception:
            traceback.print_exc()
    print(f"lossless: best W = {best_w}")
    for w in [args.pareto_window or best_w]:
        try:
            methods = [
                Method("target greedy", None),
                Method(f"lossless W={w}", SpecConfig(w, "lossless", max_new_tokens=128)),
            ]
            methods += [
                Method(f"judge q={q:.2f} W={w}", SpecConfig(w, "judge", threshold=th, max_new_tokens=128))
                for q, th in list(zip(judge.quantiles, judge.thresholds))[:: args.every]
            ]
            methods += [
                Method(f"top-{k} W={w}", SpecConfig(w, "topk", top_k=k, max_new_tokens=128))
                for k in (2, 4, 8)
            ]
            rows = run_methods(items, t, d, tok, gsm8k_answer, methods, judge=judge, progress=False)
            rnd = run_methods(
                items, t, d, tok, gsm8k_answer, random_controls(rows, w, 128)[::3], progress=False
            )
            base = next(r for r in rows if r["mode"] == "lossless")
            for r in rnd:
                r["method"] += f" W={w}"
                r["apc_vs_lossless"] = r["accepted_per_cycle"] / base["accepted_per_cycle"]
                r["speedup_vs_lossless"] = base["seconds_per_problem"] / r["seconds_per_problem"]
            rows += rnd
            rows_all += rows
            for r in rows:
                if r["mode"] in ("target", "lossless"):
                    continue
                entries.append(
                    Entry(
                        f"{r['method']} accepted tokens/cycle (acc {r['accuracy']:.3f} vs {base['accuracy']:.3f})",
                        "tokens/cycle",
                        r["accepted_per_cycle"],
                        f"lossless W={w}",
                        base["accepted_per_cycle"],
                        r["accepted_per_cycle"] / base["accepted_per_cycle"],
                        hw,
                        date,
                        cmd,
                    )
                )
                entries.append(
                    Entry(
                        f"{r['method']} tokens/s (acc {r['accuracy']:.3f})",
                        "tokens/s",
                        r["tokens_per_second"],
                        f"lossless W={w}",
                        base["tokens_per_second"],
                        r["tokens_per_second"] / base["tokens_per_second"],
                        hw,
                        date,
                        cmd,
                    )
                )
            tg = next(r for r in rows if r["mode"] == "target")
            entries.append(
                Entry(
                    f"lossless W={w} tokens/s",
                    "tokens/s",
                    base["tokens_per_second"],
                    "target greedy",
                    tg["tokens_per_second"],
                    base["tokens_per_second"] / tg["tokens_per_second"],
                    hw,
                    date,
                    cmd,
                )
            )
        except Exception:
            traceback.print_exc()

    # judge overhead against one target verification forward of W+1 tokens
    try:
        w = args.pareto_window or best_w or 8
        seq = encode_prompt(tok, items[0]) + [tok.eos_token_id] * 40
        lm = CachedLM(t)
        lm.feed(seq)
        n0 = len(lm.tokens)
        x = torch.randn(w, judge.weight.numel(), device=dev)

        def verify(i):
            lm.feed(seq[-w - 1 :])
            lm.crop(n0)

        if dev == "cuda":
            t_ms = cuda_time_ms(verify, warmup=5, rep=50)
            j_ms = cuda_time_ms(lambda i: judge.prob(x), warmup=5, rep=200)
        else:
            t1 = time.perf_counter()
            [verify(i) for i in range(10)]
            t_ms = (time.perf_counter() - t1) * 100
            t1 = time.perf_counter()
            [judge.prob(x) for _ in range(100)]
            j_ms = (time.perf_counter() - t1) * 10
        entries.append(
            Entry(
                f"judge overhead W={w} (scaler+dot+sigmoid)",
                "time_ms",
                j_ms,
                "target verification forward",
                t_ms,
                t_ms / j_ms,
                hw,
                date,
                cmd,
            )
        )
        print(f"judge {j_ms:.4f} ms vs target forward {t_ms:.4f} ms ({100 * j_ms / t_ms:.1f}%)")
    except Exception:
        traceback.print_exc()

    out.mkdir(parents=True, exist_ok=True)
    (out / "rows.json").write_text(json.dumps(rows_all, indent=1))
    print(format_table(rows_all))
    write_results(entries, None if args.quick else args.json, md_title="autojudge")
    return 0


if __name__ == "__main__":
    sys.exit(main())
