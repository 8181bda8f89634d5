"""One base for every method config: a versioned dataclass that round-trips through JSON.

A package's options are a dataclass deriving from :class:`Config`::

    @dataclass
    class AQLMConfig(Config):
        VERSION = 2                                  # bump when a saved config changes meaning
        MIGRATIONS = {1: lambda d: {**d, "out_group_size": 1}}   # from version 1 to 2

        num_codebooks: int = field(default=2, metadata={"help": "codebooks per group (M)"})

        def validate(self):                          # value checks, after types are checked
            if self.num_codebooks < 1:
                raise ValueError(f"num_codebooks must be >= 1, got {self.num_codebooks}")

    cfg = AQLMConfig.from_dict(json.load(f))        # unknown keys, bad types, newer versions: ConfigError
    d = cfg.to_dict()                               # plain JSON types, with "version"

What the base does, in ``__post_init__`` (subclasses put their checks in :meth:`Config.validate`):

* ``version`` is a keyword-only field that defaults to the class's ``VERSION``; a config built
  directly must carry the current version (older ones go through :meth:`Config.from_dict`, which
  applies ``MIGRATIONS`` one version at a time);
* every field is checked against its annotation (``int``, ``float``, ``bool``, ``str``, ``Path``,
  ``Literal``, ``X | None``, ``tuple[X, ...]``, ``list[X]``, ``dict[str, X]`` and nested configs)
  and converted where the conversion is lossless (a list to a tuple, a string to a ``Path``, an
  integer to a float, ``"inf"`` to ``math.inf``).

Errors are :class:`ConfigError` (a ``ValueError``, so a CLI reports it on one line with exit code 2)
and name the class, the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

__all__ = ["Config", "ConfigError", "config_diff", "load_config"]


class ConfigError(ValueError):
    """A config value, key or version is wrong; the message names it and the fix."""


@dataclass
class Config:
    """Base of the method configs: versioned, type-checked, JSON round-trip."""

    VERSION: ClassVar[int] = 1
    #: ``{old_version: function(dict) -> dict}`` upgrading a saved dict from ``old_version`` to ``old_version + 1``
    MIGRATIONS: ClassVar[dict[int, Callable[[dict], dict]]] = {}

    version: int | None = field(
        default=None,
        kw_only=True,
        metadata={"cli": False, "help": "format version of this config (set by the code)"},
    )

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__post_init__" in cls.__dict__:
            raise TypeError(
                f"{cls.__name__} defines __post_init__: put its checks in validate() (the base's "
                "__post_init__ checks the version and the types first)"
            )

    def __post_init__(self):
        cls = type(self)
        if self.version is None:
            self.version = cls.VERSION
        elif self.version != cls.VERSION:
            if isinstance(self.version, int) and self.version > cls.VERSION:
                raise ConfigError(_newer(cls, self.version))
            raise ConfigError(
                f"{cls.__name__}: version {self.version!r} given, this release writes version "
                f"{cls.VERSION}; load older configs with {cls.__name__}.from_dict, which migrates them"
            )
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(self):
            if f.name != "version":
                value = getattr(self, f.name)
                object.__setattr__(self, f.name, _coerce(value, hints[f.name], f"{cls.__name__}.{f.name}"))
        try:
            self.validate()
        except ConfigError:
            raise
        except ValueError as e:
            raise ConfigError(f"{cls.__name__}: {e}") from e

    def validate(self) -> None:
        """Value checks of a subclass (raise ``ValueError`` naming the field and what is allowed)."""

    # ------------------------------------------------------------------ dict / JSON
    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON types (tuples as lists, paths as strings), ``version`` included."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> typing.Self:
        """Build from a dict written by :meth:`to_dict` (or by hand), migrating older versions.

        Keys may use ``-`` or ``_``. An unknown key, a missing required key, a value of the wrong
        type, a version newer than this code or an old version with no migration raise
        :class:`ConfigError` naming it.
        """
        if not isinstance(d, dict):
            raise ConfigError(
                f"{cls.__name__}: expected a mapping of option names to values, got {type(d).__name__}"
            )
        d = cls.migrate(d)
        d.pop("version")
        names = cls.field_names()
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ConfigError(
                f"{cls.__name__}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(names)}"
            )
        missing = [
            f.name
            for f in dataclasses.fields(cls)
            if f.init
            and f.name not in d
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise ConfigError(f"{cls.__name__}: missing required key(s) {', '.join(map(repr, missing))}")
        hints = typing.get_type_hints(cls)
        values = {k: _coerce(v, hints[k], f"{cls.__name__}.{k}", nested=True) for k, v in d.items()}
        try:
            return cls(**values)
        except ConfigError:
            raise
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{cls.__name__}: {e}") from e

    @classmethod
    def migrate(cls, d: dict[str, Any]) -> dict[str, Any]:
        """``d`` (keys with ``-`` or ``_``) brought to this release's version through ``MIGRATIONS``.

        A missing ``version`` means the current one. Keys the migrations do not touch pass through,
        so a flat file mixing config keys with other options can be migrated whole.
        """
        d = {str(k).replace("-", "_"): v for k, v in d.items()}
        version = d.pop("version", None)
        if version is None:
            version = cls.VERSION
        if not isinstance(version, int) or isinstance(version, bool):
            raise ConfigError(f"{cls.__name__}.version: expected an integer, got {version!r}")
        if version > cls.VERSION:
            raise ConfigError(_newer(cls, version))
        while version < cls.VERSION:
            step = cls.MIGRATIONS.get(version)
            if step is None:
                raise ConfigError(
                    f"{cls.__name__}: version {version} is older than this release's {cls.VERSION} and has no "
                    f"migration; recreate the config with this release (its fields: {', '.join(cls.field_names())})"
                )
            d = step(dict(d))
            version += 1
        return {**d, "version": version}

    def to_json(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_dict` as JSON, atomically."""
        from papercore.io import write_json

        write_json(path, self.to_dict())

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> typing.Self:
        """Read a config from JSON: a plain dict of fields, or a ``resolved_config.json`` a command wrote."""
        return load_config(path, cls)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.init and f.name != "version"]

    def replace(self, **changes) -> typing.Self:
        """A copy with some fields changed (checked like a new config)."""
        return dataclasses.replace(self, **changes)


def load_config(path: str | os.PathLike, cls: type[Config]) -> Config:
    """Load ``cls`` from a JSON file: a plain field dict, or the ``config`` section of a resolved config."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read {path} as JSON: {str(e).splitlines()[0]}") from e
    if isinstance(data, dict) and isinstance(data.get("config"), dict) and cls.__name__ in data["config"]:
        data = data["config"][cls.__name__]
    return cls.from_dict(data)


def config_diff(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """The first key whose value differs between two ``to_dict`` outputs, as ``"key: a != b"`` (None if equal)."""
    for key in sorted(set(a) | set(b)):
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            return f"{key}: {a.get(key, '<absent>')!r} != {b.get(key, '<absent>')!r}"
    return None


# ---------------------------------------------------------------------------------------- helpers
def _newer(cls: type, version: int) -> str:
    return (
        f"{cls.__name__}: version {version} is newer than this release understands (up to {cls.VERSION}); "
        "upgrade the package that wrote it"
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin in (tuple, list):
        return f"a list of {_describe(args[0])}" if args else "a list"
    if origin is dict:
        return "a mapping"
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", Path: "a path"}
    if tp is type(None):
        return "null"
    if isinstance(tp, type) and issubclass(tp, Config):
        return f"a {tp.__name__} mapping"
    return names.get(tp, getattr(tp, "__name__", str(tp)))


class _Mismatch(Exception):
    pass


def _coerce(value: Any, tp: Any, where: str, nested: bool = False) -> Any:
    """``value`` checked against annotation ``tp`` and converted losslessly, or ConfigError."""
    try:
        return _convert(value, tp, nested)
    except _Mismatch:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise ConfigError(
            f"{where}: expected {_describe(tp)}, got {shown} ({type(value).__name__})"
        ) from None


def _convert(value: Any, tp: Any, nested: bool) -> Any:
    if tp is Any:
        return value
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, nested)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is typing.Literal:
        if value in args and not (isinstance(value, bool) and not any(isinstance(a, bool) for a in args)):
            return value
        raise _Mismatch
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise _Mismatch
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(args) != len(value):
                raise _Mismatch
            items = [_convert(v, a, nested) for v, a in zip(value, args)]
        else:
            item_tp = args[0] if args else Any
            items = [_convert(v, item_tp, nested) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        vt = args[1] if args else Any
        return {k: _convert(v, vt, nested) for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, Config):
        if isinstance(value, tp):
            return value
        if isinstance(value, dict):
            return tp.from_dict(value)
        raise _Mismatch
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer() and nested:
            return int(value)
        raise _Mismatch
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and value.strip().lower() in (
            "inf",
            "+inf",
            "infinity",
            "-inf",
            "-infinity",
        ):
            return -math.inf if value.strip().startswith("-") else math.inf
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if tp is Path:
        if isinstance(value, str | os.PathLike):
            return Path(value)
        raise _Mismatch
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise _Mismatch
    return value
