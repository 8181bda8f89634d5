"""Every member's CLI takes its library configs whole, and every config round-trips through JSON.

For each command of each member's CLI (found from ``[project.scripts]``): every field of its config
dataclasses and run options is a flag, and its configs derive from ``papercore.config.Config``. For
each ``Config`` subclass in a member's ``config`` module: defaults round-trip through JSON, and an
unknown key, a wrong type and a newer version are refused with ``ConfigError``.
"""

import dataclasses
import importlib
import inspect
import json
import tomllib
import typing
from pathlib import Path

import pytest

from papercore.cli import CLI, cli_fields
from papercore.config import Config, ConfigError

ROOT = Path(__file__).resolve().parent.parent
MEMBERS = [ROOT / "shared", *sorted(p.parent for p in ROOT.glob("packages/*/pyproject.toml"))]


def _project(member: Path) -> dict:
    return tomllib.loads((member / "pyproject.toml").read_text())["project"]


def _apps() -> list[tuple[str, CLI]]:
    apps = []
    for member in MEMBERS:
        for name, target in _project(member).get("scripts", {}).items():
            module = importlib.import_module(target.split(":")[0])
            apps.append((name, module.app))
    return apps


def _commands():
    return [(f"{name} {cmd.name}", app, cmd) for name, app in _apps() for cmd in app.commands]


def _configs():
    found = {}
    for member in MEMBERS[1:]:
        pkg = _project(member)["name"].replace("-", "_")
        try:
            module = importlib.import_module(f"{pkg}.config")
        except ModuleNotFoundError:
            continue
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, Config)
                and obj is not Config
                and obj.__module__.startswith(pkg)
            ):
                found[f"{obj.__module__}.{obj.__name__}"] = obj
    return sorted(found.items())


COMMANDS = _commands()


@pytest.mark.parametrize("label,app,cmd", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_every_config_field_is_a_flag(label, app, cmd):
    parser = app.parser()
    sub = parser
    for word in cmd.name.split():
        sub = next(a for a in sub._actions if hasattr(a, "choices") and isinstance(a.choices, dict)).choices[
            word
        ]
    flags = {s for a in sub._actions for s in a.option_strings}
    for cls in cmd.configs:
        assert issubclass(cls, Config), (
            f"{label}: {cls.__name__} is a method config, so it derives from Config"
        )
    for cls in cmd.parts:
        missing = [f.name for f in cli_fields(cls) if "--" + f.name.replace("_", "-") not in flags]
        assert not missing, f"{label}: fields of {cls.__name__} without a flag: {missing}"


CONFIGS = _configs()


def _required_values(cls):
    hints = typing.get_type_hints(cls)
    sample = {int: 1, float: 1.0, str: "x", bool: False}
    return {f.name: sample.get(hints[f.name]) for f in dataclasses.fields(cls)
            if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}  # fmt: skip


@pytest.mark.parametrize("name,cls", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_config_round_trips_and_refuses_bad_input(name, cls):
    cfg = cls(**_required_values(cls))
    d = json.loads(json.dumps(cfg.to_dict()))
    assert cls.from_dict(d) == cfg and d["version"] == cls.VERSION
    with pytest.raises(ConfigError, match="unknown key"):
        cls.from_dict({**d, "no_such_option": 1})
    with pytest.raises(ConfigError, match="newer than this release"):
        cls.from_dict({**d, "version": cls.VERSION + 1})
    first = next(f for f in dataclasses.fields(cls) if f.init and f.name != "version")
    with pytest.raises(ConfigError, match=f"{first.name}"):
        cls.from_dict({**d, first.name: object()})
