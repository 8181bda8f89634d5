"""Features of mined mismatches and the judge (StandardScaler + LogisticRegression).

Features: the last-layer hidden state (after the final norm) at the draft token's own position,
from the draft and the target (setup ``DD-DT``: ``[draft ; target]``) or the target only (``DT``),
the same states the decoding passes produce. For a mismatch at ``p`` in a mined record, the final
response agrees with the response at labelling time up to ``p`` (later swaps happen after ``p``);
an unimportant mismatch's draft token is in the final response, so one forward over it gives its
states, and an important one's is fed as a one-token what-if step on a cache cropped to ``p``.

The judge is saved as ``judge.safetensors`` (mean, scale, weight, bias, thresholds) plus
``judge.json`` (setup, C, validation ROC-AUC, fingerprints of the two models): no pickles.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from autojudge.config import C_GRID, SETUPS, JudgeConfig
from autojudge.engine import CachedLM
from papercore.io import load_tensors, read_json, save_tensors, write_json

log = logging.getLogger(__name__)

__all__ = ["C_GRID", "SETUPS", "Judge", "extract_features", "select", "split_by_problem", "train_judge"]
JUDGE_VERSION = 1


@torch.no_grad()
def extract_features(records: list[dict], target, draft, progress: bool = True) -> dict[str, torch.Tensor]:
    """``draft`` [N, Hd] and ``target`` [N, Ht] hidden states, ``label`` (1 = important), ``group``
    (problem index), ``oracle`` (-1 unknown) and ``rel_pos`` for every labelled mismatch."""
    from autojudge.miner import reference_failed
    from papercore.runtime import progress as bar

    out = {k: [] for k in ("draft", "target", "label", "group", "oracle", "rel_pos")}
    skipped = 0
    for g, rec in enumerate(bar(records, desc="features") if progress else records):
        ms = rec["mismatches"]
        if ms and reference_failed(rec.get("reference_answer", "")):
            skipped += 1  # mined by an older release against no reference: the labels mean nothing
            continue
        if not ms:
            continue
        P = len(rec["prompt_ids"])
        states = {}  # (path, pos) -> {"draft": h, "target": h}
        for path in {m.get("path", "alternative") for m in ms}:
            # the response each mismatch was found on: the search's final one, or the target's own
            resp = rec["target_response_ids"] if path == "target" else rec["response_ids"]
            seq = rec["prompt_ids"] + resp
            found = [m for m in ms if m.get("path", "alternative") == path]
            for name, model in (("draft", draft), ("target", target)):
                lm = CachedLM(model)
                _, full = lm.feed(seq)
                for m in sorted(found, key=lambda m: -m["pos"]):
                    p = m["pos"]
                    if p < len(seq) and seq[p] == m["draft_tok"]:
                        h = full[p]
                    else:
                        if p >= len(seq) or seq[p] != m["target_tok"]:
                            raise ValueError(
                                f"record {rec['uid']}: mismatch at {p} does not match the response"
                            )
                        lm.crop(p)
                        _, hp = lm.feed([m["draft_tok"]])
                        h = hp[-1]
                    states.setdefault((path, p), {})[name] = h
        for m in ms:
            p = m["pos"]
            st = states[(m.get("path", "alternative"), p)]
            out["draft"].append(st["draft"].float().cpu())
            out["target"].append(st["target"].float().cpu())
            out["label"].append(int(m["important"]))
            out["group"].append(g)
            o = m.get("oracle")
            out["oracle"].append(-1 if o is None else int(o))
            out["rel_pos"].append(p - P)
    if skipped:
        log.warning("skipped %d problems mined without a reference answer (the checker found none)", skipped)
    if not out["label"]:
        raise ValueError("no labelled mismatches in the mined records: mine more problems")
    return {
        "draft": torch.stack(out["draft"]),
        "target": torch.stack(out["target"]),
        **{k: torch.tensor(out[k], dtype=torch.long) for k in ("label", "group", "oracle", "rel_pos")},
    }


def select(features: dict[str, torch.Tensor], setup: str) -> torch.Tensor:
    if setup not in SETUPS:
        raise ValueError(f"setup must be one of {', '.join(SETUPS)}, got {setup!r}")
    return torch.cat([features["draft"], features["target"]], -1) if setup == "DD-DT" else features["target"]


@dataclass
class Judge:
    """A linear judge: ``P(important) = sigmoid(w · (x − mean) / scale + b)``; a mismatch is accepted when
    ``P < threshold``. ``thresholds[i]`` is the ``quantiles[i]`` quantile of validation P."""

    setup: str
    mean: torch.Tensor
    scale: torch.Tensor
    weight: torch.Tensor
    bias: float
    thresholds: list[float]
    quantiles: list[float]
    C: float = 0.0
    val_auc: float = float("nan")
    fingerprints: dict = field(default_factory=dict)
    version: int = JUDGE_VERSION
    _dev: dict = field(default_factory=dict, repr=False, compare=False)

    def prob(self, x: torch.Tensor) -> torch.Tensor:
        """P(important) for feature rows ``x`` [n, F] (any device and dtype; computed in fp32)."""
        key = x.device
        if key not in self._dev:
            w = (self.weight / self.scale).to(key, torch.float32)
            b = self.bias - float((self.mean / self.scale * self.weight).sum())
            self._dev[key] = (w, b)
        w, b = self._dev[key]
        return torch.sigmoid(x.float() @ w + b)

    def threshold(self, index: int) -> float:
        if not 0 <= index < len(self.thresholds):
            raise ValueError(f"threshold index must be in [0, {len(self.thresholds) - 1}], got {index}")
        return self.thresholds[index]

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_tensors(
            path / "judge.safetensors",
            {
                "mean": self.mean,
                "scale": self.scale,
                "weight": self.weight,
                "bias": torch.tensor([self.bias]),
            },
        )
        meta = {
            k: getattr(self, k) for k in ("setup", "thresholds", "quantiles", "C", "val_auc", "fingerprints")
        }
        write_json(
            path / "judge.json", {**meta, "version": self.version, "features": int(self.weight.numel())}
        )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Judge:
        path = Path(path)
        if not (path / "judge.json").is_file():
            raise FileNotFoundError(f"no judge.json in {path}: pass a folder written by `autojudge train`")
        meta = read_json(path / "judge.json")
        if meta.get("version") != JUDGE_VERSION:
            raise ValueError(
                f"judge {path} has format version {meta.get('version')}, expected {JUDGE_VERSION}"
            )
        t = load_tensors(path / "judge.safetensors")
        return cls(
            meta["setup"],
            t["mean"],
            t["scale"],
            t["weight"],
            float(t["bias"][0]),
            meta["thresholds"],
            meta["quantiles"],
            meta["C"],
            meta["val_auc"],
            meta["fingerprints"],
        )

    def check_models(self, target, draft) -> None:
        """Raise when the judge was trained for other models (fingerprint or width mismatch)."""
        from autojudge.models import fingerprint

        want = self.fingerprints
        got = {"target": fingerprint(target), "draft": fingerprint(draft)}
        for k in ("target", "draft"):
            if want.get(k) and want[k] != got[k]:
                raise ValueError(
                    f"this judge was trained for another {k} model (fingerprint {want[k]}, got {got[k]}): "
                    "mine and train a judge for these models"
                )
        width = target.config.hidden_size + (draft.config.hidden_size if self.setup == "DD-DT" else 0)
        if width != self.weight.numel():
            raise ValueError(f"judge expects {self.weight.numel()} features, these models give {width}")


def split_by_problem(
    groups: np.ndarray, val_fraction: float, seed: int, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean train/val masks; whole problems go to one side.

    With ``labels``: when the shuffled validation problems miss a label that two or more training
    problems have, the first of those (in shuffled order) moves to validation, so that both sides
    hold both labels whenever the data allow it (rare important mismatches on a small run)."""
    uniq = np.unique(groups)
    rng = np.random.default_rng(seed)
    rng.shuffle(uniq)
    n_val = max(1, round(val_fraction * len(uniq)))
    val_groups, train_groups = list(uniq[:n_val]), list(uniq[n_val:])
    if labels is not None:
        has = {g: set(np.unique(labels[groups == g]).tolist()) for g in uniq}
        for c in (0, 1):
            if any(c in has[g] for g in val_groups):
                continue
            holders = [g for g in train_groups if c in has[g]]
            if len(holders) >= 2:
                train_groups.remove(holders[0])
                val_groups.append(holders[0])
    val = np.isin(groups, val_groups)
    return ~val, val


def train_judge(
    features: dict[str, torch.Tensor],
    config: JudgeConfig | None = None,
    *,
    fingerprints: dict | None = None,
) -> tuple[Judge, dict]:
    """Fit StandardScaler + LogisticRegression for every C of ``config.c_grid``, keep the best
    validation ROC-AUC; thresholds are quantiles ``linspace(0, 1, n_thresholds)`` of validation
    P(important). Returns the judge and a report (C, ROC-AUC per C, split sizes)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    cfg = config or JudgeConfig()
    X = select(features, cfg.setup).double().numpy()
    y = features["label"].numpy()
    groups = features["group"].numpy()
    if len(np.unique(y)) < 2:
        raise ValueError("the mined labels have one class only: mine more problems")
    tr, va = split_by_problem(groups, cfg.val_fraction, cfg.split_seed, labels=y)
    if len(np.unique(y[va])) < 2 or len(np.unique(y[tr])) < 2:
        raise ValueError(
            f"the train or validation split has one class only ({int(y.sum())} important of {len(y)} "
            f"mismatches in {len(np.unique(groups))} problems): mine more problems"
        )
    scaler = StandardScaler().fit(X[tr])
    Xtr, Xva = scaler.transform(X[tr]), scaler.transform(X[va])
    scores = {}
    best = None
    for C in cfg.c_grid:
        lr = LogisticRegression(C=C, max_iter=2000).fit(Xtr, y[tr])
        auc = roc_auc_score(y[va], lr.predict_proba(Xva)[:, 1])
        scores[C] = auc
        if best is None or auc > best[0]:
            best = (auc, C, lr)
    auc, C, lr = best
    p_val = lr.predict_proba(Xva)[:, 1]
    quantiles = np.linspace(0, 1, cfg.n_thresholds)
    thresholds = np.quantile(p_val, quantiles)
    if cfg.train_on_all:
        scaler = StandardScaler().fit(X)
        lr = LogisticRegression(C=C, max_iter=2000).fit(scaler.transform(X), y)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    judge = Judge(
        cfg.setup,
        torch.tensor(scaler.mean_, dtype=torch.float32),
        torch.tensor(scale, dtype=torch.float32),
        torch.tensor(lr.coef_[0], dtype=torch.float32),
        float(lr.intercept_[0]),
        [float(t) for t in thresholds],
        [float(q) for q in quantiles],
        float(C),
        float(auc),
        fingerprints or {},
    )
    report = {
        "setup": cfg.setup,
        "C": C,
        "val_auc": auc,
        "auc_by_C": {f"{c:.3g}": s for c, s in scores.items()},
        "train_mismatches": int(tr.sum()),
        "val_mismatches": int(va.sum()),
        "important_share": float(y.mean()),
    }
    return judge, report
