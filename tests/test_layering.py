"""papercore's layers: the generic core imports no domain toolkit; a package imports the core, the
toolkits its pyproject asks for (``papercore[llm]`` -> ``papercore.llm``) and no other package
(its benchmarks may import another package as an optional baseline)."""

import ast
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAPERCORE = ROOT / "shared" / "src" / "papercore"
TOOLKITS = sorted(
    p.name
    for p in PAPERCORE.iterdir()
    if p.is_dir() and (p / "__init__.py").is_file() and p.name != "kernels"
)
PACKAGES = sorted(p.parent for p in ROOT.glob("packages/*/pyproject.toml"))


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def papercore_toolkits(names: set[str]) -> set[str]:
    return {n.split(".")[1] for n in names if n.startswith("papercore.") and n.split(".")[1] in TOOLKITS}


def test_toolkits_exist():
    assert "llm" in TOOLKITS


def test_core_imports_no_toolkit():
    program = {"app.py", "__main__.py"}  # the `papercore` program itself offers the zoo commands
    for path in (p for p in PAPERCORE.glob("*.py") if p.name not in program):
        assert not papercore_toolkits(imports(path)), f"{path.name} (core) imports a domain toolkit"
    for path in (PAPERCORE / "kernels").glob("*.py"):
        assert not papercore_toolkits(imports(path)), f"kernels/{path.name} imports a domain toolkit"


@pytest.mark.parametrize("pkg", PACKAGES, ids=lambda p: p.name)
def test_package_imports_core_and_its_own_toolkits(pkg):
    meta = tomllib.loads((pkg / "pyproject.toml").read_text())["project"]
    deps = " ".join(meta.get("dependencies", []) + sum(meta.get("optional-dependencies", {}).values(), []))
    declared = set()
    for extras in re.findall(r"papercore\[([^\]]*)\]", deps):
        declared |= {e.strip() for e in extras.split(",")}
    own = meta["name"].replace("-", "_")
    others = {p.name.replace("-", "_") for p in PACKAGES} | {"neural_ot", "depth_sr"}
    for path in sorted((pkg / "src").rglob("*.py")) + sorted(pkg.glob("benchmarks/*.py")):
        names = imports(path)
        used = papercore_toolkits(names)
        assert used <= declared, (
            f"{path.relative_to(ROOT)} imports papercore.{used - declared} not in its pyproject extras"
        )
        foreign = {n.split(".")[0] for n in names} & (others - {own})
        assert path.parent.name == "benchmarks" or not foreign, (
            f"{path.relative_to(ROOT)} imports another package: {foreign}"
        )
