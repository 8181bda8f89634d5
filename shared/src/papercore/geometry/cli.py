"""``papercore geometry metrics A_DIR B_DIR``: the point-cloud metrics alone, on two folders of clouds.

The command is a :class:`papercore.cli.Command` (:data:`COMMANDS`), so the ``papercore`` program and
any package CLI can mount it; ``python -m papercore.geometry metrics A B`` runs it standalone.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from papercore.cli import CLI, Command, CommonOptions, UserError

__all__ = ["COMMANDS", "MetricsOptions", "app", "main", "metrics_cmd"]


@dataclass
class MetricsOptions:
    metrics: list[str] = field(
        default_factory=lambda: ["mmd-cd", "cov-cd", "1nna-cd", "jsd"],
        metadata={"help": "any of mmd-cd cov-cd 1nna-cd mmd-emd cov-emd 1nna-emd jsd"},
    )
    points: int = field(
        default=2048, metadata={"help": "points per cloud (clouds subsampled, meshes sampled)"}
    )
    normalize: bool = field(
        default=False,
        metadata={
            "help": "scale every cloud into the ball of radius 0.5 first (else JSD refuses clouds outside it)"
        },
    )
    batch: int = field(default=64, metadata={"help": "pairs of clouds per batch"})
    tol: float = field(default=1e-3, metadata={"help": "certified relative error of the auction EMD"})
    limit: int | None = field(default=None, metadata={"help": "read at most this many files per folder"})
    out: Path | None = field(default=None, metadata={"help": "write the metrics to this JSON file"})


def _positionals(p):
    p.add_argument("samples", type=Path, help="folder of generated clouds or meshes (A)")
    p.add_argument("references", type=Path, help="folder of reference clouds or meshes (B)")


def metrics_cmd(opts: MetricsOptions, common: CommonOptions, samples: Path, references: Path) -> int:
    """Print the metrics of the clouds in ``samples`` against those in ``references``."""
    from papercore.geometry.io import load_folder
    from papercore.geometry.metrics import METRICS, evaluate
    from papercore.geometry.transforms import normalize_unit_ball
    from papercore.io import write_json

    bad = [m for m in opts.metrics if m not in METRICS]
    if bad:
        raise UserError(f"--metrics {' '.join(bad)}: choose from {', '.join(METRICS)}")
    if opts.points < 1 or opts.batch < 1:
        raise UserError("--points and --batch must be >= 1")
    a, _ = load_folder(samples, opts.points, seed=common.seed, limit=opts.limit)
    b, _ = load_folder(references, opts.points, seed=common.seed + 1, limit=opts.limit)
    if opts.normalize:
        a, b = normalize_unit_ball(a)[0], normalize_unit_ball(b)[0]
    res = evaluate(a, b, opts.metrics, batch=opts.batch, device=common.torch_device, tol=opts.tol)
    print(f"{len(a)} samples vs {len(b)} references, {opts.points} points each")
    print("| metric | value |\n|---|---|")
    for k, v in res.items():
        print(f"| {k} | {v:.6g} |")
    if opts.out is not None:
        write_json(opts.out, {"samples": str(samples), "references": str(references), **res})
    else:
        print(json.dumps(res))
    return 0


COMMANDS = [
    Command(
        "geometry metrics",
        metrics_cmd,
        "point-cloud metrics of folder A against folder B",
        options=MetricsOptions,
        add_arguments=_positionals,
    ),  # fmt: skip
]

app = CLI(
    "python -m papercore.geometry",
    "papercore's 3-D toolkit.",
    [Command("metrics", metrics_cmd, COMMANDS[0].help, options=MetricsOptions, add_arguments=_positionals)],
)


def main(argv: list[str] | None = None) -> int:
    return app.main(argv)


if __name__ == "__main__":
    sys.exit(main())
