#!/usr/bin/env python3
"""Build one member's wheel and prove it works on its own (stdlib only, Python >= 3.11).

    python3 ci/check_wheel.py packages/aqlm [--dist dist] [--keep]

1. build the member's wheel (and papercore's, which every package depends on);
2. create a fresh venv in a temp dir and install that wheel alone, plus the papercore wheel, with
   `-c ci/constraints-cpu.txt` so torch is the CPU build;
3. run every [project.scripts] CLI with `--help`: exit 0 and non-empty output;
4. check that the member's modules (and papercore) are imported from the fresh venv, not the repo.
This catches what an editable dev install hides: files missing from the wheel, undeclared
dependencies, a dependency on papercore that only resolves because the repo is on sys.path.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from members import ROOT, SHARED, Member, load_member  # noqa: E402

CONSTRAINTS = ROOT / "ci" / "constraints-cpu.txt"


class CheckFailed(Exception):
    pass


def clean_env() -> dict[str, str]:
    """The caller's environment without whatever could leak the repo or the dev venv into the check."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env


def run(cmd: list[str], what: str, timeout: float = 900, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), timeout=timeout, **kw)
    if proc.returncode != 0:
        raise CheckFailed(
            f"{what} failed (exit {proc.returncode}): {' '.join(map(str, cmd))}\n"
            f"{proc.stdout[-4000:]}{proc.stderr[-4000:]}"
        )
    return proc


def host_pip_drives_venvs() -> bool:
    """pip >= 22.3 can install into another interpreter (`pip --python`), so the fresh venv can skip
    bootstrapping its own pip (ensurepip costs ~4 s per venv)."""
    try:
        return tuple(map(int, importlib.metadata.version("pip").split(".")[:2])) >= (22, 3)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False


def build_wheel(member: Member, outdir: Path, work: Path) -> Path:
    """Build into an empty dir so the one wheel there is ours. Without isolation when hatchling is
    already installed (fast, offline); otherwise the frontend fetches hatchling itself."""
    have_hatchling = importlib.util.find_spec("hatchling") is not None
    src, tmp = ROOT / member.path, Path(tempfile.mkdtemp(dir=work))
    if importlib.util.find_spec("build") is not None:
        cmd = [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp), str(src)]
        cmd += ["--no-isolation"] if have_hatchling else []
    else:  # pip is always there and is a PEP 517 frontend too
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(tmp), str(src)]
        cmd += ["--no-build-isolation"] if have_hatchling else []
    run(cmd, f"building the {member.name} wheel")
    (wheel,) = tmp.glob("*.whl")
    outdir.mkdir(parents=True, exist_ok=True)
    dest = outdir / wheel.name
    shutil.move(wheel, dest)
    shutil.rmtree(tmp)
    return dest


def check(member: Member, work: Path, dist: Path, python: str, constraints: Path | None) -> dict[str, float]:
    times: dict[str, float] = {}
    tick = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal tick
        now = time.perf_counter()
        times[name], tick = now - tick, now

    if not member.scripts:
        raise CheckFailed(f"{member.path}: no [project.scripts] in pyproject.toml, nothing to run")
    wheels = [build_wheel(member, dist, work)]
    if member.path != SHARED:
        wheels.append(build_wheel(load_member(ROOT, SHARED), dist, work))
    lap("build")

    venv, external_pip = work / "venv", host_pip_drives_venvs()
    run([python, "-m", "venv", str(venv)] + (["--without-pip"] if external_pip else []), "creating the venv")
    bindir = venv / "bin"
    lap("venv")

    # Both wheels are named as files: pip must use our papercore, never a same-named project from
    # an index (a version clash then fails loudly instead of silently installing something else).
    # --find-links covers members depending on other members built into the same dist dir.
    # --no-compile: byte-compiling torch's ~15k files triples the install time and buys nothing here.
    pip = (
        [sys.executable, "-m", "pip", "--python", str(bindir / "python")]
        if external_pip
        else [str(bindir / "python"), "-m", "pip"]
    )
    cmd = pip + ["install", "--quiet", "--no-compile", "--find-links", str(dist)]
    cmd += ["-c", str(constraints)] if constraints else []
    run(cmd + [str(w) for w in wheels], "installing the wheel into the fresh venv", cwd=work)
    lap("install")

    for script in member.scripts:
        exe = bindir / script
        if not exe.is_file():
            raise CheckFailed(f"CLI {script!r} was not installed into {bindir}")
        out = run([str(exe), "--help"], f"`{script} --help`", timeout=300, cwd=work).stdout
        if not out.strip():
            raise CheckFailed(f"`{script} --help` exited 0 but printed nothing on stdout")
    lap("cli")

    # Import from a neutral cwd (never the repo) and demand the files come from the venv.
    modules = {target.split(":")[0].split(".")[0] for target in member.scripts.values()} | {"papercore"}
    probe = "import importlib, sys\nfor m in sys.argv[1:]: print(m, importlib.import_module(m).__file__)"
    out = run([str(bindir / "python"), "-c", probe, *sorted(modules)], "importing the modules", cwd=work)
    for line in out.stdout.splitlines():
        name, file = line.split(" ", 1)
        path = Path(file).resolve()
        if not path.is_relative_to(venv.resolve()):
            raise CheckFailed(f"module {name} was imported from {path}, outside the fresh venv {venv}")
    lap("isolation")
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("member", help="member path relative to the repo root, e.g. shared or packages/aqlm")
    ap.add_argument("--dist", type=Path, help="keep the built wheels here (default: a temp dir)")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the fresh venv")
    ap.add_argument("--constraints", default=str(CONSTRAINTS), help="pip constraints file ('' for none)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (venv, wheels) for debugging")
    args = ap.parse_args(argv)

    target = (ROOT / args.member).resolve()
    if not (target.is_relative_to(ROOT) and (target / "pyproject.toml").is_file()):
        print(
            f"check_wheel: {args.member} is not a workspace member (no pyproject.toml under {ROOT})",
            file=sys.stderr,
        )
        return 2
    rel = target.relative_to(ROOT).as_posix()
    member = load_member(ROOT, rel)
    work = Path(tempfile.mkdtemp(prefix=f"check-wheel-{member.name}-"))
    start = time.perf_counter()
    try:
        dist = args.dist.resolve() if args.dist else work / "dist"
        times = check(member, work, dist, args.python, Path(args.constraints) if args.constraints else None)
    except (CheckFailed, subprocess.TimeoutExpired) as e:
        print(f"check_wheel: FAIL {member.name} ({rel}): {e}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"check_wheel: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    laps = "  ".join(f"{k} {v:.1f}s" for k, v in times.items())
    print(
        f"check_wheel: OK {member.name} {member.version} ({rel}): {laps}  total {time.perf_counter() - start:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
