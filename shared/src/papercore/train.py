"""The training loop of every package that trains networks, on Hugging Face Accelerate.

Accelerate places models on the device, runs mixed precision and spreads the work over several
processes (``accelerate launch`` or ``torchrun``: DDP, with NCCL on GPUs and gloo on CPUs). On top of
it, :class:`Trainer` adds what this project needs:

* several models and optimizers per step (a GAN's critic and generator, a max-min OT solver's map
  and potential with n inner steps): the step function calls :meth:`Trainer.optimize` once per update;
* data by step, not by iterator: step ``s`` reads the global batch ``s`` of a seeded per-epoch
  permutation (a map-style dataset), or draws it from a sampler with a generator seeded by
  ``(seed, s)``; each process takes its slice. A resumed run, or a run on more processes with the
  same global batch, sees the same data;
* a progress bar with the running loss, metrics appended to ``metrics.jsonl``, a PNG of the curves;
* atomic checkpoints (safetensors + JSON: models, optimizers, schedulers, step, RNG states) every
  ``checkpoint_every`` steps, on Ctrl-C and on SIGTERM; ``resume=True`` continues bit-identically
  on a CPU;
* validation every ``eval_every`` steps with keep-best and early stopping (on a validation split
  the caller provides, never the test data).

Example: a max-min loop (the potential takes ``k`` steps per map step)::

    trainer = Trainer({"map": T, "potential": f}, {"map": opt_T, "potential": opt_f}, TrainConfig(steps=1000),
                      out="run", seed=0)

    def step(t: Trainer, batch):
        x, y = batch
        for _ in range(k):
            with torch.no_grad():
                tx = t.models["map"](x)
            t.optimize("potential", f(tx).mean() - f(y).mean())
        loss = cost(x, t.models["map"](x)) - f(t.models["map"](x)).mean()
        t.optimize("map", loss)
        return {"loss": loss}

    result = trainer.fit(step, data=sampler)      # sampler(n, generator) -> (x, y)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import shutil
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

from papercore.config import Config, ConfigError, config_diff
from papercore.io import atomic_dir, load_tensors, read_json, save_tensors, write_json

log = logging.getLogger(__name__)

__all__ = ["Sampler", "TrainConfig", "TrainResult", "Trainer", "load_optimizer", "save_optimizer"]

CHECKPOINT = "checkpoint"
BEST = "best"
METRICS = "metrics.jsonl"


@dataclass
class TrainConfig(Config):
    """How a network is trained: budget, batch, precision, checkpoints, validation.

    Packages subclass it to change the defaults (``steps``, ``batch_size``) for their method.
    """

    steps: int = field(
        default=1000, metadata={"help": "optimisation steps (outer iterations)", "resume": "free"}
    )
    batch_size: int = field(default=64, metadata={"help": "global batch per step, split over the processes"})
    grad_accum: int = field(
        default=1, metadata={"help": "micro-batches per update (each process's batch is split in as many)"}
    )
    mixed_precision: Literal["no", "fp16", "bf16"] = field(
        default="no", metadata={"help": "autocast precision on GPUs: no, fp16 or bf16"}
    )
    max_grad_norm: float = field(default=0.0, metadata={"help": "clip gradients to this norm (0: off)"})
    checkpoint_every: int = field(
        default=500, metadata={"help": "steps between checkpoints (0: only at the end)", "resume": "free"}
    )
    eval_every: int = field(
        default=0, metadata={"help": "steps between validations (0: never)", "resume": "free"}
    )
    patience: int = field(
        default=0, metadata={"help": "validations without improvement before stopping (0: never stop)"}
    )
    keep_best: bool = field(
        default=True, metadata={"help": "end with the weights of the best validation (when validating)"}
    )
    log_every: int = field(default=10, metadata={"help": "steps per metrics.jsonl record", "resume": "free"})

    def validate(self):
        for name in ("steps", "batch_size", "grad_accum", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("checkpoint_every", "eval_every", "patience"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not (math.isfinite(self.max_grad_norm) and self.max_grad_norm >= 0):
            raise ValueError(f"max_grad_norm must be a finite number >= 0, got {self.max_grad_norm}")

    def fingerprint(self) -> dict[str, Any]:
        """The fields a resume must match (``resume: free`` fields such as ``steps`` may change)."""
        free = {f.name for f in dataclasses.fields(self) if f.metadata.get("resume") == "free"}
        return {k: v for k, v in self.to_dict().items() if k not in free}


class Sampler(Protocol):
    """Data drawn fresh every step: ``sampler(n, generator)`` returns ``n`` samples (a tensor or a tuple)."""

    def __call__(self, n: int, generator: torch.Generator) -> Any: ...


@dataclass
class TrainResult:
    step: int  # steps done
    stopped_early: bool
    best_step: int | None
    best_value: float | None
    history: list[dict[str, Any]]  # the records of metrics.jsonl (also kept without an output folder)
    seconds: float


class Trainer:
    """Runs ``step_fn`` for ``config.steps`` steps over models and optimizers named by the caller.

    Parameters
    ----------
    models, optimizers : dict
        Named ``nn.Module`` s and their optimizers (same names; a model with no optimizer is allowed,
        e.g. a frozen feature net). Models are moved to the device and wrapped for DDP by Accelerate;
        ``trainer.models[name]`` is the wrapped one, :meth:`unwrap` gives the plain module.
    config : TrainConfig
    out : path, optional
        Folder for ``checkpoint/``, ``best/``, ``metrics.jsonl`` and ``curves.png``. None: nothing is written.
    seed : int
        Seeds the models' RNG use (dropout, noise) and the data order.
    resume : bool
        Continue from ``out/checkpoint``. Without it an existing checkpoint is an error (nothing is
        overwritten); with it, a checkpoint made with another config or seed is an error.
    schedulers : dict, optional
        Learning-rate schedulers by optimizer name; each steps with its optimizer.
    device : str
        ``"auto"`` (Accelerate's choice: the process's GPU when there is one), or ``"cpu"``.
    """

    def __init__(
        self,
        models: Mapping[str, torch.nn.Module],
        optimizers: Mapping[str, torch.optim.Optimizer],
        config: TrainConfig | None = None,
        *,
        out: str | os.PathLike | None = None,
        seed: int = 0,
        resume: bool = False,
        schedulers: Mapping[str, Any] | None = None,
        device: str | torch.device = "auto",
        find_unused_parameters: bool = False,
    ):
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        self.config = config or TrainConfig()
        unknown = set(optimizers) - set(models)
        if unknown:
            raise ValueError(f"optimizers {sorted(unknown)} have no model of the same name")
        self.out = Path(out) if out is not None else None
        self.seed = seed
        cpu = str(device) == "cpu"
        self.accelerator = Accelerator(
            cpu=cpu,
            mixed_precision=self.config.mixed_precision if not cpu else "no",
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)],
            step_scheduler_with_optimizer=False,
        )
        acc = self.accelerator
        if self.config.batch_size % (acc.num_processes * self.config.grad_accum):
            raise ValueError(
                f"batch_size {self.config.batch_size} must be divisible by processes x grad_accum "
                f"({acc.num_processes} x {self.config.grad_accum})"
            )
        self._plain = dict(models)
        # Models with an optimizer are prepared (device, DDP, autocast); the others (frozen feature
        # nets, targets) are only moved: DDP refuses a module with nothing to train.
        trained = [n for n in models if n in optimizers]
        prepared = acc.prepare(*[models[n] for n in trained]) if trained else ()
        prepared = prepared if isinstance(prepared, tuple) else (prepared,)
        self.models: dict[str, torch.nn.Module] = {n: models[n].to(acc.device) for n in models}
        self.models.update(zip(trained, prepared))
        opt_names = list(optimizers)
        popt = acc.prepare(*[optimizers[n] for n in opt_names]) if opt_names else ()
        popt = popt if isinstance(popt, tuple) else (popt,)
        self.optimizers: dict[str, Any] = dict(zip(opt_names, popt))
        self._raw_optimizers = dict(optimizers)
        self.schedulers = dict(schedulers or {})
        self.step = 0  # steps completed
        self.generator: torch.Generator | None = None  # per-step generator, same on every process
        self.best_value: float | None = None
        self.best_step: int | None = None
        self._bad_evals = 0
        self.history: list[dict[str, Any]] = []
        self._running: dict[str, list] = {}
        if self.out is not None:
            ck = self.out / CHECKPOINT
            if resume and ck.is_dir():
                self.load_checkpoint(ck)
            elif not resume and ck.is_dir():
                raise ConfigError(
                    f"{self.out} already holds a training checkpoint: pass --resume to continue it, "
                    "or choose a new output folder"
                )

    # ------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def world_size(self) -> int:
        return self.accelerator.num_processes

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def unwrap(self, name: str) -> torch.nn.Module:
        """The plain module behind ``models[name]`` (no DDP wrapper)."""
        return self.accelerator.unwrap_model(self.models[name])

    # ------------------------------------------------------------------ inside a step
    def shard(self, batch: Any) -> Any:
        """This process's slice of a global batch (a tensor, or a tuple/list/dict of them, split on dim 0)."""
        if self.world_size == 1:
            return batch
        if isinstance(batch, torch.Tensor):
            n = batch.shape[0]
            if n % self.world_size:
                raise ValueError(f"a global batch of {n} cannot be split over {self.world_size} processes")
            k = n // self.world_size
            return batch[self.rank * k : (self.rank + 1) * k]
        if isinstance(batch, tuple | list):
            return type(batch)(self.shard(b) for b in batch)
        if isinstance(batch, dict):
            return {k: self.shard(v) for k, v in batch.items()}
        return batch

    def optimize(
        self,
        name: str | Sequence[str],
        loss: torch.Tensor | Callable[[Any], torch.Tensor],
        batch: Any = None,
    ) -> torch.Tensor:
        """One update: zero the gradients of optimizer ``name`` (or of several names sharing one loss),
        backward, clip, step (and the schedulers).

        ``loss`` is a scalar tensor, or a function of a batch; with a function and
        ``config.grad_accum = k`` the batch is split in ``k`` micro-batches whose gradients add up
        to the gradient of the whole batch's mean loss. Returns the detached loss (no device sync).
        """
        names = [name] if isinstance(name, str) else list(name)
        for n in names:
            self.optimizers[n].zero_grad(set_to_none=True)
        if callable(loss) and not isinstance(loss, torch.Tensor):
            k = self.config.grad_accum
            chunks = _split(batch, k) if k > 1 else [batch]
            total = 0.0
            for i, chunk in enumerate(chunks):
                with contextlib.ExitStack() as stack:
                    if i < len(chunks) - 1:  # no gradient all-reduce until the last micro-batch
                        for n in names:
                            if hasattr(self.models[n], "no_sync"):
                                stack.enter_context(self.models[n].no_sync())
                    value = loss(chunk) / len(chunks)
                    self.accelerator.backward(value)
                total = total + value.detach()
            out = total
        else:
            self.accelerator.backward(loss)
            out = loss.detach()
        for n in names:
            if self.config.max_grad_norm > 0:
                self.accelerator.clip_grad_norm_(self._plain[n].parameters(), self.config.max_grad_norm)
            self.optimizers[n].step()
            self.optimizers[n].zero_grad(set_to_none=True)
            if n in self.schedulers:
                self.schedulers[n].step()
        return out

    def _mean_over_processes(self, running: dict[str, list]) -> dict[str, float]:
        """Each metric's mean over the logged steps and over the processes (each process's value is
        its shard's; the mean of equal shards is the global batch's for per-sample means)."""
        means = {k: _mean(v) for k, v in running.items()}
        if self.world_size == 1 or not means:
            return means
        t = torch.tensor(list(means.values()), dtype=torch.float64, device=self.device)
        t = self.accelerator.reduce(t, reduction="mean")
        return dict(zip(means, t.tolist(), strict=True))

    # ------------------------------------------------------------------ data
    def _batches(self, data: Any) -> Iterator[Any] | None:
        """The batch of each step from ``self.step`` on (None when the step function draws its own)."""
        if data is None:
            return None
        B = self.config.batch_size
        if hasattr(data, "__len__") and hasattr(data, "__getitem__") and not callable(data):
            n = len(data)
            if n < B:
                raise ValueError(
                    f"the training data has {n} samples, fewer than one batch ({B}): lower --batch-size"
                )
            return _dataset_batches(data, B, self.seed, self.step, self.rank, self.world_size)
        if callable(data):
            return None
        raise TypeError("data must be a map-style dataset (len and [i]) or a sampler(n, generator)")

    def _step_generator(self, step: int) -> torch.Generator:
        g = torch.Generator(device=self.device if self.device.type == "cuda" else "cpu")
        g.manual_seed((self.seed * 1_000_003 + step) % (2**63))
        return g

    # ------------------------------------------------------------------ the loop
    def fit(
        self,
        step_fn: Callable[[Trainer, Any], Mapping[str, Any] | None],
        data: Any = None,
        *,
        val_fn: Callable[[Trainer], Mapping[str, float]] | None = None,
        monitor: str = "loss",
        mode: Literal["min", "max"] = "min",
        desc: str = "train",
        plot: bool = True,
    ) -> TrainResult:
        """Train from ``self.step`` to ``config.steps``.

        ``step_fn(trainer, batch)`` does one step and returns metrics (numbers or 0-d tensors).
        ``data``: a map-style dataset (batches of ``batch_size``, collated, this process's slice), a
        sampler ``data(n, generator)`` (drawn for the whole batch, then sliced) or None (the step
        draws its own data, with ``trainer.generator`` for determinism). ``val_fn(trainer)`` returns
        validation metrics; ``monitor`` (one of them) selects the best weights and stops early.
        """
        from papercore.runtime import progress

        cfg = self.config
        t0 = time.perf_counter()
        batches = self._batches(data)
        sampler = data if (data is not None and batches is None) else None
        running = self._running  # values since the last record (kept in checkpoints)
        stopped = False
        if self.is_main and self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
        bar = progress(range(self.step, cfg.steps), desc=desc, total=cfg.steps, initial=self.step,
                       disable=not self.is_main)  # fmt: skip
        stop = _StopAfterStep()
        try:
            with stop:
                for _ in bar:
                    self.generator = self._step_generator(self.step)
                    if batches is not None:
                        batch = _to_device(next(batches), self.device)
                    elif sampler is not None:
                        batch = self.shard(_to_device(sampler(cfg.batch_size, self.generator), self.device))
                    else:
                        batch = None
                    for m in self.models.values():
                        m.train()
                    metrics = step_fn(self, batch) or {}
                    self.step += 1
                    for k, v in metrics.items():
                        running.setdefault(k, []).append(
                            v.detach().float() if torch.is_tensor(v) else float(v)
                        )
                    if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                        record = {"step": self.step, "split": "train"}
                        record.update(self._mean_over_processes(running))
                        record["seconds"] = round(time.perf_counter() - t0, 3)
                        self._record(record)
                        running.clear()
                        bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k not in _NOT_SHOWN})
                    due = cfg.eval_every and (self.step % cfg.eval_every == 0 or self.step == cfg.steps)
                    if val_fn is not None and due and self._validate(val_fn, monitor, mode):
                        stopped = True
                    if (
                        self.out is not None
                        and cfg.checkpoint_every
                        and self.step % cfg.checkpoint_every == 0
                    ):
                        self.save_checkpoint()
                    if stop.requested:  # Ctrl-C or SIGTERM: leave after a whole step, checkpointed
                        if self.out is not None:
                            self.save_checkpoint()
                            log.warning(
                                "stopped at step %d: checkpoint saved in %s", self.step, self.out / CHECKPOINT
                            )
                        raise KeyboardInterrupt
                    if stopped:
                        break
        finally:
            bar.close()
        if self.out is not None:
            self.save_checkpoint()
        if cfg.keep_best and self.best_step is not None and self.best_step != self.step:
            self._load_best()
        if plot and self.is_main and self.out is not None and self.history:
            self._plot()
        return TrainResult(self.step, stopped, self.best_step, self.best_value, list(self.history),
                           time.perf_counter() - t0)  # fmt: skip

    def _validate(self, val_fn, monitor: str, mode: str) -> bool:
        """Run validation, track the best; True when patience is exhausted."""
        for m in self.models.values():
            m.eval()
        with torch.no_grad():
            metrics = {k: float(v) for k, v in val_fn(self).items()}
        self._record({"step": self.step, "split": "val", **metrics})
        if monitor not in metrics:
            raise KeyError(f"validation returned {sorted(metrics)}, no {monitor!r} to monitor")
        value = metrics[monitor]
        better = self.best_value is None or (
            value < self.best_value if mode == "min" else value > self.best_value
        )
        if better:
            self.best_value, self.best_step, self._bad_evals = value, self.step, 0
            if self.config.keep_best:
                self._best_state = {n: _cpu_state(self.unwrap(n)) for n in self.models}
                if self.out is not None and self.is_main:
                    with atomic_dir(self.out / BEST) as tmp:
                        for n, sd in self._best_state.items():
                            save_tensors(tmp / f"{n}.safetensors", sd)
                        write_json(tmp / "best.json", {"step": self.step, monitor: value})
        else:
            self._bad_evals += 1
        return bool(self.config.patience) and self._bad_evals >= self.config.patience

    def _load_best(self) -> None:
        state = getattr(self, "_best_state", None)
        if state is None and self.out is not None and (self.out / BEST).is_dir():
            state = {n: load_tensors(self.out / BEST / f"{n}.safetensors") for n in self.models}
        if state:
            for n, sd in state.items():
                self.unwrap(n).load_state_dict(sd)
            log.info("restored the best validation weights (step %s, %s)", self.best_step, self.best_value)

    def _record(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if self.out is not None and self.is_main:
            with open(self.out / METRICS, "a") as f:
                f.write(json.dumps(record) + "\n")

    def _plot(self) -> None:
        try:
            from papercore.plot import curves
        except ImportError:
            log.info("matplotlib is not installed: no curves.png (pip install 'papercore[plot]')")
            return
        curves(self.history, self.out / "curves.png", title=str(self.out.name))

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: str | os.PathLike | None = None) -> Path:
        """Write models, optimizers, schedulers, step and RNG states atomically (main process writes)."""
        path = Path(path) if path is not None else self.out / CHECKPOINT
        rng = _rng_state()
        if self.world_size > 1:
            from accelerate.utils import gather_object

            states = gather_object([rng])
        else:
            states = [rng]
        if self.is_main:
            with atomic_dir(path) as tmp:
                for n in self.models:
                    save_tensors(tmp / f"model-{n}.safetensors", _cpu_state(self.unwrap(n)))
                for n, opt in self._raw_optimizers.items():
                    save_optimizer(opt, tmp / f"optimizer-{n}")
                for r, state in enumerate(states):
                    tensors, meta = state
                    save_tensors(tmp / f"rng-{r}.safetensors", tensors)
                    write_json(tmp / f"rng-{r}.json", meta)
                write_json(
                    tmp / "trainer.json",
                    {
                        "step": self.step,
                        "seed": self.seed,
                        "world_size": self.world_size,
                        "config": self.config.to_dict(),
                        "best_value": self.best_value,
                        "best_step": self.best_step,
                        "bad_evals": self._bad_evals,
                        "schedulers": {n: s.state_dict() for n, s in self.schedulers.items()},
                        "history": len(self.history),
                        "running": {k: [float(v) for v in vs] for k, vs in self._running.items()},
                    },
                )
        self.accelerator.wait_for_everyone()
        return path

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint` (same models, config and seed)."""
        path = Path(path)
        meta = read_json(path / "trainer.json")
        before = type(self.config).from_dict(meta["config"]).fingerprint()
        diff = config_diff(before, self.config.fingerprint())
        if diff:
            raise ConfigError(
                f"--resume {path.parent}: the checkpoint was made with another training config ({diff}, "
                "saved != now); pass the same values or use a new output folder"
            )
        if meta["seed"] != self.seed:
            raise ConfigError(
                f"--resume {path.parent}: the checkpoint was made with --seed {meta['seed']}, not {self.seed}"
            )
        for n in self.models:
            f = path / f"model-{n}.safetensors"
            if not f.is_file():
                raise ConfigError(f"--resume {path.parent}: the checkpoint has no model {n!r}")
            self.unwrap(n).load_state_dict(load_tensors(f))
        for n, opt in self._raw_optimizers.items():
            load_optimizer(opt, path / f"optimizer-{n}")
        for n, s in self.schedulers.items():
            s.load_state_dict(meta["schedulers"][n])
        self.step = meta["step"]
        self.best_value, self.best_step, self._bad_evals = (
            meta["best_value"],
            meta["best_step"],
            meta["bad_evals"],
        )
        self._running = {k: list(v) for k, v in meta["running"].items()}
        rank_file = path / f"rng-{self.rank}.safetensors"
        if meta["world_size"] == self.world_size and rank_file.is_file():
            _set_rng_state(load_tensors(rank_file), read_json(path / f"rng-{self.rank}.json"))
        else:  # another process count: the data order is by step and still exact; model RNG is reseeded
            _seed_all(self.seed * 7919 + self.step * 31 + self.rank)
        if self.out is not None and (self.out / METRICS).is_file():
            lines = (self.out / METRICS).read_text().splitlines()[: meta["history"]]
            self.history = [json.loads(line) for line in lines]
            if self.is_main:
                (self.out / METRICS).write_text("".join(line + "\n" for line in lines))
        log.info("resumed from %s at step %d", path, self.step)


# ---------------------------------------------------------------------------------------- helpers
def save_optimizer(opt: torch.optim.Optimizer, prefix: str | os.PathLike) -> None:
    """An optimizer's state as ``prefix.safetensors`` (tensors) + ``prefix.json`` (the rest); no pickle."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{idx}.{k}"] = v
            else:
                scalars[f"{idx}.{k}"] = v
    prefix = Path(prefix)
    save_tensors(prefix.with_suffix(".safetensors"), tensors)
    groups = [
        {k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in g.items()}
        for g in sd["param_groups"]
    ]
    write_json(prefix.with_suffix(".json"), {"param_groups": groups, "scalars": scalars})


def load_optimizer(opt: torch.optim.Optimizer, prefix: str | os.PathLike) -> None:
    """Inverse of :func:`save_optimizer`."""
    prefix = Path(prefix)
    tensors = load_tensors(prefix.with_suffix(".safetensors"))
    meta = read_json(prefix.with_suffix(".json"))
    state: dict[int, dict[str, Any]] = {}
    for key, v in list(tensors.items()) + list(meta["scalars"].items()):
        idx, k = key.split(".", 1)
        state.setdefault(int(idx), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _dataset_batches(data, batch: int, seed: int, start: int, rank: int, world: int) -> Iterator[Any]:
    """Global batch ``s`` = slice ``s mod E`` of the permutation of epoch ``s // E`` (E batches per epoch)."""
    from torch.utils.data import default_collate

    n = len(data)
    per_epoch = n // batch
    local = batch // world
    step = start
    while True:
        epoch, b = divmod(step, per_epoch)
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        idx = perm[b * batch : (b + 1) * batch][rank * local : (rank + 1) * local]
        yield default_collate([data[int(i)] for i in idx])
        step += 1


def _split(batch: Any, k: int) -> list[Any]:
    if isinstance(batch, torch.Tensor):
        if batch.shape[0] % k:
            raise ValueError(f"a batch of {batch.shape[0]} cannot be split in {k} micro-batches")
        return list(batch.chunk(k))
    if isinstance(batch, tuple | list):
        parts = [_split(b, k) for b in batch]
        return [type(batch)(p[i] for p in parts) for i in range(k)]
    if isinstance(batch, dict):
        parts = {key: _split(v, k) for key, v in batch.items()}
        return [{key: v[i] for key, v in parts.items()} for i in range(k)]
    raise TypeError(f"cannot split a {type(batch).__name__} into micro-batches")


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple | list):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def _mean(values: list) -> float:
    return float(sum(values) / len(values))


_NOT_SHOWN = ("step", "split", "seconds")


class _StopAfterStep:
    """Within the block, the first Ctrl-C or SIGTERM only sets ``requested`` (the loop checkpoints
    after the step in progress and leaves); a second one interrupts at once."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("stopping after the current step (press Ctrl-C again to leave at once)")

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    np_state = np.random.get_state()
    tensors = {"torch": torch.get_rng_state(), "numpy": torch.from_numpy(np_state[1].astype(np.int64))}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = s
    py = random.getstate()
    meta = {"python": [py[0], list(py[1]), py[2]], "numpy": [np_state[0], *np_state[2:]]}
    return tensors, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("cuda")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    name, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, tensors["numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    py = meta["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def _seed_all(seed: int) -> None:
    from papercore.runtime import seed_everything

    seed_everything(seed)


def remove_checkpoint(out: str | os.PathLike) -> None:
    """Delete ``out/checkpoint`` (a finished run that should not be resumed)."""
    shutil.rmtree(Path(out) / CHECKPOINT, ignore_errors=True)
