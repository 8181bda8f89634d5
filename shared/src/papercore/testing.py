"""Test helpers shared by every package (also a pytest plugin, registered by papercore's entry point).

* markers: ``gpu`` (skipped with a reason when CUDA is absent) and ``slow``;
* fixture ``seed``: seeds Python, NumPy and torch (and makes torch deterministic) for a test;
* tolerance helpers: :func:`rel_error`, :func:`assert_close_rel`;
* :func:`triton_or_skip`: skip unless a Triton kernel can run here (GPU or interpreter);
* :func:`torchrun`: a console script under several processes (gloo on a CPU);
* runnable docs: :func:`markdown_blocks`, :func:`run_markdown` and :func:`run_example` execute the
  code blocks of a README and the ``examples/`` scripts (the repository's ``tests/test_docs.py``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from papercore.kernels.triton_guard import triton_mode
from papercore.runtime import seed_everything

DEFAULT_SEED = 1234

gpu = pytest.mark.gpu
slow = pytest.mark.slow


def rel_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """‖actual − expected‖ / ‖expected‖ computed in float64 (0 when both are zero; inf on NaN)."""
    a = actual.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    if a.shape != e.shape:
        raise AssertionError(f"shape mismatch: {tuple(a.shape)} vs {tuple(e.shape)}")
    if not torch.isfinite(a).all():
        return float("inf")
    num = torch.linalg.vector_norm(a - e).item()
    den = torch.linalg.vector_norm(e).item()
    return num / den if den > 0 else num


def assert_close_rel(actual: torch.Tensor, expected: torch.Tensor, tol: float, what: str = "") -> None:
    """Assert the relative error of ``actual`` against ``expected`` is at most ``tol``."""
    err = rel_error(actual, expected)
    assert err <= tol, f"{what + ': ' if what else ''}relative error {err:.3e} > {tol:.1e}"


# Relative tolerances by compute dtype (see docs/conventions.md).
TOLERANCES = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}


def tolerance(dtype: torch.dtype) -> float:
    """Default relative tolerance for results computed in ``dtype``."""
    return TOLERANCES[dtype]


def triton_or_skip(device: str = "cpu") -> None:
    """Skip the calling test unless a Triton kernel can run for ``device`` tensors."""
    if triton_mode(device) == "unavailable":
        pytest.skip("Triton cannot run here: no CUDA device and TRITON_INTERPRET is not 1")


# ---------------------------------------------------------------- pytest plugin hooks
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "gpu: needs a CUDA device (skipped with a reason when none is present)"
    )
    config.addinivalue_line("markers", "slow: long-running test (deselect with -m 'not slow')")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device; none is available")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture
def seed() -> int:
    """Seed everything with a fixed value and return it."""
    seed_everything(DEFAULT_SEED)
    return DEFAULT_SEED


# ---------------------------------------------------------------- runnable docs
# Every ```python and ```bash/```sh/```console block of a README runs in the test suite. A block may
# carry a marker on the line just above its fence:
#   <!-- docs: gpu -->              needs a CUDA device (listed as skipped on a CPU)
#   <!-- docs: slow REASON -->       takes minutes (listed as skipped; run by hand)
#   <!-- docs: skip REASON -->       not runnable here (an install step, a network download)
#   <!-- docs: file NAME -->         not run: its text is written to NAME in the working folder
# Python blocks of one file share a namespace, like a notebook; shell blocks run in bash (set -e)
# in the same working folder, one per file.
DOCS_MARKERS = ("gpu", "slow", "skip", "file")
_LANGS = {"python": "python", "py": "python", "pycon": "python", "bash": "shell", "sh": "shell",
          "shell": "shell", "console": "shell"}  # fmt: skip


@dataclasses.dataclass
class CodeBlock:
    """One fenced block of a Markdown file."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str  # "python" or "shell"
    code: str
    marker: str | None = None  # one of DOCS_MARKERS
    note: str = ""  # the marker's reason, or the file name for "file"

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"


def markdown_blocks(path: str | os.PathLike) -> list[CodeBlock]:
    """The runnable blocks of a Markdown file (python and shell; ``<!-- docs: file -->`` blocks of any language)."""
    path = Path(path)
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    fence = re.compile(r"^(\s*)(```+)\s*([\w+-]*)")
    marker_re = re.compile(r"^\s*<!--\s*docs:\s*(\w+)\s*(.*?)\s*-->\s*$")
    while i < len(lines):
        m = fence.match(lines[i])
        if not m:
            i += 1
            continue
        indent, ticks, lang = m.group(1), m.group(2), m.group(3).lower()
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(ticks):
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1
        marker, note = None, ""
        prev = start - 1
        if prev >= 0 and (mm := marker_re.match(lines[prev])):
            marker, note = mm.group(1), mm.group(2)
            if marker not in DOCS_MARKERS:
                raise ValueError(
                    f"{path.name}:{prev + 1}: unknown docs marker {marker!r}; use one of {DOCS_MARKERS}"
                )
        kind = _LANGS.get(lang)
        if kind is None and marker != "file":
            continue
        code = "\n".join(body)
        if lang == "console":
            code = "\n".join(line[2:] for line in body if line.startswith("$ "))
        if lang == "pycon":
            code = "\n".join(line[4:] for line in body if line.startswith((">>> ", "... ")))
        blocks.append(CodeBlock(path, start + 1, kind or lang, code, marker, note))
    return blocks


class DocsBlockError(AssertionError):
    """A README block failed; the message names the file, the line and the output."""


def run_markdown(
    path: str | os.PathLike, workdir: str | os.PathLike, timeout: float = 600
) -> list[CodeBlock]:
    """Run the unmarked blocks of ``path`` in order in ``workdir``; return the marked (not run) ones.

    Raises :class:`DocsBlockError` at the first failing block, with its line and output.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    import types

    module = types.ModuleType(f"docs_{abs(hash(str(path)))}")
    sys.modules[module.__name__] = module  # dataclasses and pickling look their module up there
    namespace = module.__dict__
    listed = []
    env = {**os.environ, "PAPERCORE_PROGRESS": "0"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for block in markdown_blocks(path):
        if block.marker == "file":
            (workdir / block.note).write_text(block.code + "\n")
            continue
        if block.marker is not None:
            listed.append(block)
            continue
        if block.lang == "shell":
            proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code], cwd=workdir, env=env,
                                  capture_output=True, text=True, timeout=timeout)  # fmt: skip
            if proc.returncode != 0:
                raise DocsBlockError(
                    f"{block.where}: shell block exited {proc.returncode}\n{block.code}\n--- output\n"
                    f"{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
                )
        else:
            old = Path.cwd()
            os.chdir(workdir)
            try:
                exec(compile(block.code, f"{block.path}:{block.line}", "exec"), namespace)
            except Exception as e:
                raise DocsBlockError(
                    f"{block.where}: python block raised {type(e).__name__}: {e}\n{block.code}"
                ) from e
            finally:
                os.chdir(old)
    return listed


def example_marker(path: str | os.PathLike) -> tuple[str | None, str]:
    """An example script's ``# docs: gpu|slow|skip REASON`` line (in its first 20 lines), if any."""
    for line in Path(path).read_text().splitlines()[:20]:
        if m := re.match(r"^#\s*docs:\s*(\w+)\s*(.*)$", line):
            return m.group(1), m.group(2)
    return None, ""


def run_example(path: str | os.PathLike, workdir: str | os.PathLike, timeout: float = 600) -> str:
    """Run an ``examples/*.py`` script in ``workdir``; its output, or :class:`DocsBlockError`."""
    env = {**os.environ, "PAPERCORE_PROGRESS": "0"}
    proc = subprocess.run([sys.executable, str(Path(path).resolve())], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip
    if proc.returncode != 0:
        raise DocsBlockError(
            f"{Path(path).name} exited {proc.returncode}\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
        )
    return proc.stdout


# ---------------------------------------------------------------------------------------------------
# Several processes
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a rendezvous)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(
    command: list[str],
    nproc: int = 2,
    *,
    cwd: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """Run ``command`` (a console script and its arguments, e.g. ``["depth-sr", "train", ...]``) under
    ``torchrun --nproc-per-node nproc`` on this machine (CPU: the gloo backend), one torch thread
    per process and no progress bars; fail the test with the tail of its output if it fails.

    The console script is looked up next to this Python first, so the test runs the installed package.
    """
    exe = Path(sys.executable).parent / command[0]
    program = str(exe) if exe.exists() else command[0]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PAPERCORE_PROGRESS": "0", **(env or {})}
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}",
           f"--master-port={free_port()}", "--no-python", program, *command[1:]]  # fmt: skip
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(
            f"torchrun {' '.join(command)} exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-4000:]}"
        )
    return proc
