#!/usr/bin/env python3
"""Discover the workspace members and say which ones a change touches (stdlib only, Python >= 3.11).

Members are found on disk, never listed by hand: `shared/` (papercore) plus every `packages/<name>/`
holding a pyproject.toml. A new package is picked up by CI the moment its folder exists.

    python3 ci/members.py --list                    # one member path per line
    python3 ci/members.py --matrix                  # GitHub Actions include-matrix (JSON, one line)
    python3 ci/members.py --changed origin/main     # members touched by BASE...HEAD
    python3 ci/members.py --changed HEAD~1 --matrix # the matrix restricted to those

What `--changed` counts as touching a member (path by path, the union wins):
  * docs/**, and *.md / *.rst outside any member  -> nothing (prose cannot break a build or a test);
  * a file inside a member                         -> that member; a Markdown file there only that
    member (its README is the wheel's long description, so the build must still be checked);
  * anything else under shared/                    -> ALL members (they all depend on papercore);
  * anything else (root files, ci/, tests/, .ci/, .github/, files directly in packages/) -> ALL
    (build config, CI scripts and cross-member tests can break any member);
  * packages/<x>/... where <x> is no longer a member (deleted package) -> nothing to test.
If git cannot compute the diff (unknown ref, shallow clone, first commit) we warn and return ALL:
testing too much is cheap next to silently testing nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = "shared"
PYTHONS = ["3.11", "3.12"]
DOC_SUFFIXES = (".md", ".rst")


@dataclass
class Member:
    path: str  # relative to the repo root, POSIX style: "shared", "packages/aqlm"
    name: str  # distribution name from [project].name
    version: str  # "dynamic" when the version is computed at build time
    scripts: dict[str, str] = field(default_factory=dict)  # [project.scripts]: CLI name -> "module:func"


def load_member(root: Path, rel: str) -> Member:
    with open(root / rel / "pyproject.toml", "rb") as f:
        project = tomllib.load(f).get("project", {})
    if "name" not in project:
        raise SystemExit(f"members.py: {rel}/pyproject.toml has no [project].name")
    version = project.get("version") or ("dynamic" if "version" in project.get("dynamic", []) else "")
    return Member(rel, project["name"], version, dict(project.get("scripts", {})))


def discover(root: Path = ROOT) -> list[Member]:
    """shared first (everything depends on it), then packages/* in name order."""
    rels = [SHARED] if (root / SHARED / "pyproject.toml").is_file() else []
    rels += sorted(p.parent.relative_to(root).as_posix() for p in root.glob("packages/*/pyproject.toml"))
    return [load_member(root, rel) for rel in rels]


def affected(paths: list[str], members: list[Member]) -> list[Member]:
    """Members touched by the changed `paths` (repo-relative), by the rules in the module docstring."""
    by_path = {m.path: m for m in members}
    hit: set[str] = set()
    for path in paths:
        owner = next((m for m in by_path if path.startswith(m + "/")), None)
        is_doc = path.endswith(DOC_SUFFIXES)
        if owner is not None:
            if owner == SHARED and not is_doc:
                return members
            hit.add(owner)
        elif path.startswith("docs/") or is_doc:
            continue
        elif path.startswith("packages/") and path.count("/") >= 2:
            continue  # inside a folder that is not (or no longer) a member
        else:
            return members
    return [m for m in members if m.path in hit]


def changed_paths(base: str, root: Path = ROOT) -> list[str] | None:
    """`git diff --name-only BASE...HEAD` (changes since the merge base), or None when git fails."""
    proc = subprocess.run(
        ["git", "diff", "--name-only", f"{base}...HEAD"], cwd=root, capture_output=True, text=True
    )
    if proc.returncode != 0:
        print(
            f"members.py: git diff {base}...HEAD failed, selecting ALL members:\n{proc.stderr.strip()}",
            file=sys.stderr,
        )
        return None
    return [line for line in proc.stdout.splitlines() if line]


def matrix(members: list[Member]) -> dict:
    include = [
        {"member": m.path, "dist": m.name, "version": m.version, "cli": " ".join(m.scripts), "python": py}
        for m in members
        for py in PYTHONS
    ]
    return {"include": include}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--list", action="store_true", help="print member paths, one per line (default)")
    ap.add_argument("--matrix", action="store_true", help="print a GitHub Actions include-matrix as JSON")
    ap.add_argument("--changed", metavar="BASE_REF", help="only members touched by BASE_REF...HEAD")
    args = ap.parse_args(argv)

    members = discover()
    if args.changed:
        paths = changed_paths(args.changed)
        if paths is not None:
            members = affected(paths, members)
    if args.matrix:
        # One line: the workflow writes it to $GITHUB_OUTPUT as `matrix=<json>`.
        print(json.dumps(matrix(members), separators=(",", ":")))
    else:
        for m in members:
            print(m.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
