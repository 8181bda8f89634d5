#!/usr/bin/env python3
"""One GPU suite: every package's GPU benchmarks in priority order, each under its own timeout.

    python benchmarks/gpu_suite.py [OUT] [--steps a,b,...] [--budget 540] [--dry-run] [--list]

Made for the lent device machine as it comes (Python 3.12, torch, Triton, transformers; no install
step): it puts shared/src and packages/*/src on PYTHONPATH, installs wheels carried in .whl/ (POT
for w2gn) into a private folder first, runs the steps in order, stops starting steps when the
budget (seconds, default 540: the whole call inside 9 minutes) would be exceeded, and writes each
step's JSON entries, its log, and a combined suite.json + suite.md under OUT (default $OUT, else
./gpu-suite-out).

--dry-run (run by the CPU test suite) checks that every step's script exists, that it answers
--help, and that every flag the step passes appears in that help. Each new package adds its steps
to STEPS below.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Step:
    name: str
    script: str  # repo-relative path
    args: list[str]
    timeout: int  # seconds
    json_flag: str | None = "--json"  # where the step writes its entries; None: it writes none


# Priority order: the open goals first. Timeouts are sized so the first steps always fit.
_W2 = "packages/w2gn/benchmarks/bench_w2.py"
_WIN = "packages/wbar/benchmarks/bench_win.py"
STEPS = [
    Step(  # issue #29 on one GPU (--nproc 1); a 2-GPU machine runs --nproc 1 2
        "depth-sr-ddp-1gpu", "packages/depth-sr/benchmarks/bench_ddp.py", "--nproc 1 --steps 100".split(), 300
    ),
    Step(
        "w2gn-speed",
        "packages/w2gn/benchmarks/bench_speed.py",
        "--dim 16 --batch 1024 --steps 900".split(),
        150,
    ),
    Step("spqr-matvec", "packages/spqr/benchmarks/bench_matvec.py", [], 120),
    Step(
        "w2gn-mix",
        _W2,
        (
            "--suite mix3tomix10 --pairs .gpu/Mix3toMix10 --dims 2,4,8,16,32,64,128 "
            "--solvers w2gn,mm,bures --seeds 1 --steps 20000 --time-limit 150"
        ).split(),
        200,
    ),
    Step(
        "wbar-location-scatter",
        _WIN,
        (
            "--suite location-scatter --dims 16,64 --bases gaussian,uniform --seeds 1 "
            "--steps 10 --batch 1024 --time-limit 150"
        ).split(),
        200,
    ),
    Step("aqlm-matvec", "packages/aqlm/benchmarks/bench_matvec.py", [], 120),
    Step(
        "w2gn-gaussians",
        _W2,
        (
            "--suite gaussians --dims 64,256,1024,4096 --solvers w2gn,bures --seeds 1 --steps 5000 "
            "--batch 256 --widths w2gn --time-limit 150"
        ).split(),
        200,
    ),
    Step("aquakv-step", "packages/aquakv/benchmarks/bench_step.py", "--context 8192".split(), 120),
    Step("hogwild-attention", "packages/hogwild/benchmarks/bench_attention.py", ["--quick"], 90),
    Step("aqlm-decode", "packages/aqlm/benchmarks/bench_decode.py", [], 120),
    Step("spqr-decode", "packages/spqr/benchmarks/bench_decode.py", [], 120),
    Step(
        "wbar-ave-synth",
        _WIN,
        "--suite ave-synth --seeds 1 --steps 10 --not-steps 20 --batch 64".split(),
        300,
    ),
    # the new packages' quality runs: long, so last (each may need a suite call of its own)
    Step(
        "laplatgan-emd-knn",
        "packages/laplatgan/benchmarks/bench_metrics.py",
        "--device cuda --points 2048 --pairs 200 --mmd-size 0 --knn-batch 64".split(),
        420,
    ),
    Step(
        "laplatgan-quality",
        "packages/laplatgan/benchmarks/bench_quality.py",
        "--device cuda --levels 512 1024 2048 --encoder 64 128 128 256 --seeds 3".split(),
        600,
    ),
    Step(
        "laplatgan-mmd-emd",
        "packages/laplatgan/benchmarks/bench_metrics.py",
        "--device cuda --points 2048 --pairs 8 --mmd-size 1000 --knn-batch 0".split(),
        660,
    ),
    Step(
        "neural-ot-speed",
        "packages/neural-ot/benchmarks/bench_speed.py",
        "--device cuda --steps 300 --size 32".split(),
        180,
    ),
    Step(
        "neural-ot-glyphs32-unet",
        "packages/neural-ot/benchmarks/bench_neural_ot.py",
        "--suite digits --size 32 --map-net unet --source-domain glyphs-b --seeds 1 --steps 2000 --device cuda".split(),
        420,
    ),
    Step(
        "depth-sr-quality",
        "packages/depth-sr/benchmarks/bench_quality.py",
        (
            "--device cuda --n-train 2000 --n-val 64 --n-test 64 --scales 4 8 --steps 1500 --batch-size 32 "
            "--full-width --seeds 3 --jobs 1 --threads 4 --dip-images 4 --dip-steps 300"
        ).split(),
        480,
    ),
    Step(
        "vectorize-gpu",
        "packages/vectorize/benchmarks/bench_quality.py",
        "--device cuda --threads 8 --train-minutes 8 --pages 50 --seeds 1 --size 512 --speed".split(),
        1500,
    ),
    Step(
        "def3d-points-d6w158",
        "packages/def3d/benchmarks/bench_quality.py",
        (
            "--preset d6w158 --patch-points 4096 --steps 3000 --batch-size 16 --train-patches 4096 "
            "--device cuda --head hist --seed 0 --out /tmp/def3d-gpu"
        ).split(),
        2400,
    ),
]


def env() -> dict[str, str]:
    paths = [str(ROOT / "shared" / "src"), *(str(p) for p in sorted(ROOT.glob("packages/*/src")))]
    e = {**os.environ, "PYTHONUNBUFFERED": "1", "PAPERCORE_PROGRESS": "0", "TRITON_INTERPRET": "0",
         "NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}  # fmt: skip
    site = Path("/tmp/gpu-suite-site")
    if site.is_dir():
        paths.insert(0, str(site))
    e["PYTHONPATH"] = os.pathsep.join([*paths, e.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return e


def install_carried_wheels() -> None:
    wheels = sorted((ROOT / ".whl").glob("*.whl"))
    if wheels:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--no-cache-dir", "--upgrade", "--target", "/tmp/gpu-suite-site", *map(str, wheels)], check=False)  # fmt: skip


def _check(s: Step) -> str | None:
    script = ROOT / s.script
    if not script.is_file():
        return f"{s.name}: no script {s.script}"
    proc = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, env=env(), timeout=180
    )
    if proc.returncode != 0:
        return f"{s.name}: {s.script} --help exited {proc.returncode}: {proc.stderr.strip()[-300:]}"
    flags = [a for a in s.args + ([s.json_flag] if s.json_flag else []) if a.startswith("--")]
    missing = [f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", proc.stdout)]
    return f"{s.name}: {s.script} does not take {', '.join(missing)}" if missing else None


def dry_run(steps: list[Step]) -> int:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        problems = [p for p in pool.map(_check, steps) if p]
    for p in problems:
        print(p)
    print(f"dry run: {len(steps)} steps, {len(problems)} problem(s)")
    return 1 if problems else 0


def run(steps: list[Step], out: Path, budget: float) -> int:
    out.mkdir(parents=True, exist_ok=True)
    install_carried_wheels()
    t0, results = time.perf_counter(), []
    for s in steps:
        left = budget - (time.perf_counter() - t0)
        if left < min(s.timeout, 60):
            results.append({"step": s.name, "status": "not run (budget)", "seconds": 0})
            continue
        jpath = out / f"{s.name}.json"
        cmd = [sys.executable, str(ROOT / s.script), *s.args] + (
            [s.json_flag, str(jpath)] if s.json_flag else []
        )
        start = time.perf_counter()
        with open(out / f"{s.name}.log", "w") as log:
            try:
                rc = subprocess.run(
                    cmd, stdout=log, stderr=subprocess.STDOUT, env=env(), timeout=min(s.timeout, left)
                ).returncode
                status = "ok" if rc == 0 else f"exit {rc}"
            except subprocess.TimeoutExpired:
                status = "timeout"
        results.append({"step": s.name, "status": status, "seconds": round(time.perf_counter() - start, 1)})
        print(f"{s.name:<20} {status:<18} {results[-1]['seconds']:7.1f} s", flush=True)
    entries = []
    for s in steps:
        jpath = out / f"{s.name}.json"
        if jpath.is_file():
            for e in json.loads(jpath.read_text()):
                entries.append({"step": s.name, **e})
    (out / "suite.json").write_text(json.dumps({"steps": results, "entries": entries}, indent=1))
    lines = [
        "| step | name | metric | value | baseline | baseline value | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {e['step']} | {e['name']} | {e['metric']} | {e['value']:.4g} | {e['baseline']} | {e['baseline_value']:.4g} | {e['ratio']:.3g} |"
              for e in entries]  # fmt: skip
    (out / "suite.md").write_text("\n".join(lines) + "\n")
    print("\n".join(f"{r['step']}: {r['status']} ({r['seconds']} s)" for r in results))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", default=os.environ.get("OUT", "gpu-suite-out"))
    ap.add_argument(
        "--steps", default=None, help="comma-separated step names (default: all, in priority order)"
    )
    ap.add_argument("--budget", type=float, default=540.0, help="seconds for the whole run")
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args(argv)
    steps = STEPS
    if args.steps:
        names = args.steps.split(",")
        unknown = sorted(set(names) - {s.name for s in STEPS})
        if unknown:
            print(
                f"unknown step(s) {', '.join(unknown)}; steps: {', '.join(s.name for s in STEPS)}",
                file=sys.stderr,
            )
            return 2
        steps = [s for s in STEPS if s.name in names]
    if args.list:
        for s in steps:
            print(f"{s.name:<20} {s.timeout:4d} s  {s.script} {' '.join(s.args)}")
        return 0
    if args.dry_run:
        return dry_run(steps)
    return run(steps, Path(args.out), args.budget)


if __name__ == "__main__":
    sys.exit(main())
