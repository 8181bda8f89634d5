"""The CLI pattern every package follows: a command takes the library's config whole.

A command is a function plus the dataclasses its options come from:

* ``config``: the method's :class:`papercore.config.Config` (or a tuple of them), exactly the
  object the Python API takes. Every field is a flag (``--field-name``) and a ``--config`` file key;
  no CLI re-declares one;
* ``options``: the run options (``--out``, ``--resume``, data and model paths, ...), a plain
  dataclass kept apart from the method's config;
* ``preset``: optionally a named set of config values (``--preset w3``, ``--scheme 2x8g8``).

Values resolve as: dataclass defaults ← preset ← ``--config FILE`` (YAML or JSON; flat keys, or a
``resolved_config.json`` an earlier run wrote) ← explicit flags. Every command also gets the common
options ``--config``, ``--device``, ``--dtype``, ``--seed`` and ``--log-level``. The command function is
called as ``run(*configs, options, common, **extra)`` (each part only when declared).

User errors (:class:`UserError`, a ``ValueError`` such as :class:`papercore.config.ConfigError`, a
missing file) print one line and exit with code 2; Ctrl-C exits 130 with one line.

Example::

    @dataclass
    class FitOptions:
        out: Path = field(default=Path("run"), metadata={"help": "output folder"})
        resume: bool = False

    def fit(cfg: W2GNConfig, opts: FitOptions, common: CommonOptions) -> int:
        check_resume(opts.out, cfg) if opts.resume else None
        ...
        write_resolved_config(opts.out, cfg, opts, common=common)

    app = CLI("w2gn", "What it does.", [Command("fit", fit, "fit a map", config=W2GNConfig, options=FitOptions)])
    main = app.main
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from papercore.config import Config, ConfigError, _coerce, config_diff
from papercore.io import read_json, write_json
from papercore.runtime import resolve_device, resolve_dtype, seed_everything

log = logging.getLogger(__name__)

__all__ = [
    "CLI",
    "Command",
    "CommonOptions",
    "Preset",
    "UserError",
    "check_resume",
    "write_resolved_config",
]

RESOLVED = "resolved_config.json"


class UserError(Exception):
    """Bad input from the user: the CLI prints the message on one line and exits with code 2."""


@dataclass
class CommonOptions:
    """Options every command accepts."""

    config: Path | None = field(default=None, metadata={"help": "YAML or JSON file of option values"})
    device: str = field(
        default="auto", metadata={"help": "'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:N'"}
    )
    dtype: str = field(default="auto", metadata={"help": "'auto', float32, float16, bfloat16"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    log_level: typing.Literal["debug", "info", "warning", "error"] = field(
        default="info", metadata={"help": "logging verbosity"}
    )

    @property
    def torch_device(self) -> torch.device:
        return resolve_device(self.device)

    @property
    def torch_dtype(self) -> torch.dtype:
        return resolve_dtype(self.dtype, self.torch_device)


COMMON = tuple(f.name for f in dataclasses.fields(CommonOptions))


@dataclass
class Preset:
    """A named set of config values: ``--<flag> NAME`` applies ``resolve(NAME)`` before file and flags."""

    flag: str  # "preset", "scheme"
    resolve: Callable[[str], dict[str, Any]]  # name -> field values; ValueError for an unknown name
    help: str = ""
    default: str | None = None


@dataclass
class Command:
    """One subcommand. ``name`` may have two words ("zoo train") for a command group."""

    name: str
    run: Callable[..., int | None]
    help: str = ""
    config: type | tuple[type, ...] | None = None  # the method's Config class(es): each field a flag
    _: dataclasses.KW_ONLY
    options: type | None = None  # run options (a dataclass), kept apart from the method's config
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None  # extra positional args etc.
    preset: Preset | None = None

    @property
    def configs(self) -> tuple[type, ...]:
        if self.config is None:
            return ()
        return self.config if isinstance(self.config, tuple) else (self.config,)

    @property
    def parts(self) -> tuple[type, ...]:
        """Every dataclass whose fields are flags: the configs, then the run options."""
        return self.configs + ((self.options,) if self.options is not None else ())


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def cli_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of ``cls`` that are command-line flags (all init fields except ``version``)."""
    return [f for f in dataclasses.fields(cls) if f.init and f.metadata.get("cli", True) is not False]


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    hints = typing.get_type_hints(cls)
    for f in cli_fields(cls):
        tp = hints[f.name]
        default = _default(f)
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
        help_text = f.metadata.get("help", "")
        kwargs["help"] = f"{help_text} (default: {default!r})" if help_text else f"(default: {default!r})"
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):  # Optional[X]
            non_none = [a for a in args if a is not type(None)]
            tp = non_none[0] if len(non_none) == 1 else str
            origin, args = typing.get_origin(tp), typing.get_args(tp)
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is typing.Literal:
            kwargs["choices"] = list(args)
            kwargs["type"] = type(args[0])
        elif origin in (list, tuple):
            kwargs["nargs"] = (
                "+" if not (origin is tuple and args and args[-1] is not Ellipsis) else len(args)
            )
            kwargs["type"] = args[0] if args and args[0] in (int, float, str, Path) else str
        elif tp in (int, float, str, Path):
            kwargs["type"] = tp
        else:
            kwargs["type"] = str
        names = [_flag(f.name)] + (["-" + f.name] if len(f.name) == 1 else [])  # one-letter fields: -n too
        parser.add_argument(*names, **kwargs)


def _add_common_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("common options")
    g.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        help="YAML or JSON file of option values (or a resolved_config.json); flags override it",
    )
    g.add_argument(
        "--device", default=argparse.SUPPRESS, help="'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:N'"
    )
    g.add_argument("--dtype", default=argparse.SUPPRESS, help="'auto', float32, float16, bfloat16")
    g.add_argument("--seed", type=int, default=argparse.SUPPRESS, help="random seed (default: 0)")
    g.add_argument(
        "--log-level",
        default=argparse.SUPPRESS,
        choices=["debug", "info", "warning", "error"],
        help="logging verbosity (default: info)",
    )


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML or JSON mapping of option values (keys may use '-' or '_')."""
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as e:  # json.JSONDecodeError, yaml.YAMLError
        raise UserError(f"cannot parse config file {path}: {str(e).splitlines()[0]}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of option names to values")
    return data


def _split_file_values(cmd: Command, data: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    """File values per part (configs, options) plus the common options, checked for unknown keys.

    A ``resolved_config.json`` (keys ``config``/``options``/``common``) is read by section; any other
    mapping is flat, each key going to the part that owns it.
    """
    parts = cmd.parts
    buckets: list[dict[str, Any]] = [{} for _ in parts] + [{}]
    if "config" in data and isinstance(data["config"], dict) and "common" in data:  # a resolved config
        for i, cls in enumerate(cmd.configs):
            section = data["config"].get(cls.__name__)
            if section is None:
                raise UserError(
                    f"config file {path} was written for another command: it has no {cls.__name__} section"
                )
            buckets[i] = {k.replace("-", "_"): v for k, v in section.items()}
        if cmd.options is not None:
            names = {f.name for f in cli_fields(cmd.options)}
            buckets[len(cmd.configs)] = {k: v for k, v in data.get("options", {}).items() if k in names}
        buckets[-1] = {k: v for k, v in data.get("common", {}).items() if k in COMMON and k != "config"}
        return buckets
    configs = cmd.configs
    if "version" in data and len(configs) == 1:  # an older flat file: migrate it whole, then split
        data = configs[0].migrate(data)
    owners: dict[str, int] = {}
    for i, cls in enumerate(parts):
        for f in cli_fields(cls):
            owners[f.name] = i
        if issubclass(cls, Config):
            owners["version"] = i
    for key, value in data.items():
        key = str(key).replace("-", "_")
        if key in owners:
            buckets[owners[key]][key] = value
        elif key in COMMON and key != "config":
            buckets[-1][key] = value
        else:
            allowed = sorted(set(owners) - {"version"}) + [c for c in COMMON if c != "config"]
            raise UserError(f"unknown option {key!r} in config file {path}; allowed: {', '.join(allowed)}")
    return buckets


def _build(cls: type, values: dict[str, Any]) -> Any:
    """A config (through ``from_dict``: migrations, types) or a plain options dataclass, checked."""
    if issubclass(cls, Config):
        return cls.from_dict(values)
    hints = typing.get_type_hints(cls)
    checked = {k: _coerce(v, hints[k], f"{cls.__name__}.{k}", nested=True) for k, v in values.items()}
    try:
        return cls(**checked)
    except (TypeError, ValueError) as e:
        raise UserError(str(e)) from e


def _resolved_record(*parts: Any, common: CommonOptions | None = None, command: str = "") -> dict[str, Any]:
    from papercore import __version__

    record: dict[str, Any] = {"command": command, "papercore": __version__, "config": {}, "options": {}}
    for p in parts:
        if isinstance(p, CommonOptions):
            common = p
        elif isinstance(p, Config):
            record["config"][type(p).__name__] = p.to_dict()
        elif dataclasses.is_dataclass(p):
            record["options"].update(
                {f.name: _json_value(getattr(p, f.name)) for f in dataclasses.fields(p) if f.init}
            )
        else:
            raise TypeError(
                f"write_resolved_config takes configs and option dataclasses, got {type(p).__name__}"
            )
    if common is not None:
        record["common"] = {k: _json_value(v) for k, v in dataclasses.asdict(common).items()}
    return record


def _json_value(v: Any) -> Any:
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, tuple | list):
        return [_json_value(x) for x in v]
    return v


def write_resolved_config(
    out_dir: str | Path, *parts: Any, common: CommonOptions | None = None, name: str = RESOLVED
) -> Path:
    """Write the fully resolved configs, run options and common options next to a command's outputs.

    The file holds ``{"config": {ClassName: cfg.to_dict()}, "options": {...}, "common": {...}}``:
    ``ClassName.from_json(path)`` loads the config back, and ``<cli> <command> --config path``
    repeats the run.
    """
    path = Path(out_dir) / name
    write_json(path, _resolved_record(*parts, common=common, command=_current_command))
    return path


def check_resume(out_dir: str | Path, *configs: Config, name: str = RESOLVED) -> None:
    """Refuse to resume into ``out_dir`` when it was made with other configs (one line, exit 2).

    Compares each config with the one recorded in ``out_dir/resolved_config.json`` (when present)
    and names the first field that differs. Nothing is written.
    """
    path = Path(out_dir) / name
    if not path.is_file():
        return
    try:
        saved = read_json(path).get("config", {})
    except ValueError as e:
        raise UserError(f"cannot read {path} to check the resume: {e}") from e
    for cfg in configs:
        before = saved.get(type(cfg).__name__)
        if before is None:
            continue
        now = (
            cfg.fingerprint() if hasattr(cfg, "fingerprint") else cfg.to_dict()
        )  # e.g. TrainConfig.steps may grow
        diff = config_diff({k: v for k, v in before.items() if k in now}, now)
        if diff:
            key = diff.split(":")[0]
            raise UserError(
                f"--resume {out_dir}: it was made with another {type(cfg).__name__} ({diff}, saved != now); "
                f"pass the same --{key.replace('_', '-')} or use a new output folder"
            )


_current_command = ""


class CLI:
    """A program made of :class:`Command` s, with the shared options and error handling."""

    def __init__(self, prog: str, description: str, commands: Sequence[Command], version: str = ""):
        self.prog, self.description, self.commands, self.version = prog, description, list(commands), version
        for cmd in self.commands:
            self._check_names(cmd)

    def _check_names(self, cmd: Command) -> None:
        seen: dict[str, str] = {c: "the common options" for c in COMMON}
        if cmd.preset is not None:
            seen[cmd.preset.flag] = "the preset"
        for cls in cmd.parts:
            if not dataclasses.is_dataclass(cls):
                raise TypeError(f"{self.prog} {cmd.name}: {cls!r} is not a dataclass")
            for f in cli_fields(cls):
                if f.name in seen:
                    raise TypeError(
                        f"{self.prog} {cmd.name}: option {f.name!r} of {cls.__name__} is also in {seen[f.name]}; "
                        "a command must not declare an option twice"
                    )
                seen[f.name] = cls.__name__

    def parser(self) -> argparse.ArgumentParser:
        root = _Parser(prog=self.prog, description=self.description)
        if self.version:
            root.add_argument("--version", action="version", version=f"{self.prog} {self.version}")
        subs = root.add_subparsers(dest="_command", metavar="COMMAND", parser_class=_Parser)
        subs.required = True
        groups: dict[str, argparse._SubParsersAction] = {}
        for cmd in self.commands:
            words = cmd.name.split()
            target = subs
            if len(words) == 2:
                if words[0] not in groups:
                    gp = subs.add_parser(words[0], help=f"{words[0]} commands")
                    groups[words[0]] = gp.add_subparsers(
                        dest="_sub", metavar="SUBCOMMAND", parser_class=_Parser
                    )
                    groups[words[0]].required = True
                target = groups[words[0]]
            p = target.add_parser(words[-1], help=cmd.help, description=cmd.help)
            p.set_defaults(_cmd=cmd)
            if cmd.add_arguments:
                cmd.add_arguments(p)
            if cmd.preset is not None:
                p.add_argument(
                    _flag(cmd.preset.flag),
                    dest="_preset",
                    metavar=cmd.preset.flag.upper(),
                    default=argparse.SUPPRESS,
                    help=f"{cmd.preset.help} (default: {cmd.preset.default!r})",
                )
            for cls in cmd.configs:
                doc = (cls.__doc__ or "").strip().splitlines()
                _add_dataclass_arguments(
                    p.add_argument_group(f"{cls.__name__} (the method's config)", doc[0] if doc else None),
                    cls,
                )
            if cmd.options is not None:
                _add_dataclass_arguments(p.add_argument_group("run options"), cmd.options)
            _add_common_arguments(p)
        return root

    def resolve(self, argv: Sequence[str] | None = None) -> tuple[Command, list[Any], CommonOptions, dict]:
        """Parse ``argv`` into (command, [configs..., options], common options, extra arguments)."""
        args = vars(self.parser().parse_args(argv))
        cmd: Command = args.pop("_cmd")
        args.pop("_command", None)
        args.pop("_sub", None)
        preset_flagged = "_preset" in args
        preset_name = args.pop("_preset", cmd.preset.default if cmd.preset else None)
        common_flags = {k: args.pop(k) for k in COMMON if k in args}
        config_path = common_flags.pop("config", None)
        parts = cmd.parts
        file_buckets: list[dict[str, Any]] = [{} for _ in parts] + [{}]
        if config_path is not None:
            data = load_config_file(config_path)
            if cmd.preset is not None and cmd.preset.flag in data:
                from_file = data.pop(cmd.preset.flag)
                preset_name = preset_name if preset_flagged else from_file
            file_buckets = _split_file_values(cmd, data, config_path)
        common = CommonOptions(**{**file_buckets[-1], **common_flags, "config": config_path})
        preset_values: dict[str, Any] = {}
        if preset_name is not None:
            try:
                preset_values = dict(cmd.preset.resolve(preset_name))
            except (KeyError, ValueError) as e:
                raise UserError(f"--{cmd.preset.flag} {preset_name}: {_one_line(e)}") from e
        built = []
        for i, cls in enumerate(parts):
            names = {f.name for f in cli_fields(cls)}
            values = {k: v for k, v in preset_values.items() if k in names} if i < len(cmd.configs) else {}
            values.update(file_buckets[i])
            values.update({k: v for k, v in args.items() if k in names})
            built.append(_build(cls, values))
        taken = {f.name for cls in parts for f in cli_fields(cls)}
        extra = {k: v for k, v in args.items() if k not in taken}
        return cmd, built, common, extra

    def main(self, argv: Sequence[str] | None = None) -> int:
        global _current_command
        try:
            cmd, parts, common, extra = self.resolve(argv)
        except SystemExit as e:  # argparse: --help/--version (0) or a usage error (2, one line printed)
            return e.code if isinstance(e.code, int) else 2
        except (UserError, ConfigError, ValueError) as e:
            print(f"{self.prog}: error: {_one_line(e)}", file=sys.stderr)
            return 2
        _current_command = f"{self.prog} {cmd.name}"
        logging.basicConfig(level=common.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
        try:
            seed_everything(common.seed)
            resolve_dtype(
                common.dtype, resolve_device(common.device)
            )  # a bad --device/--dtype is a user error
            rc = cmd.run(*parts, common, **extra)
            return int(rc or 0)
        except KeyboardInterrupt:
            print(
                f"{self.prog}: interrupted (finished work was saved; rerun to resume where supported)",
                file=sys.stderr,
            )
            return 130
        except (UserError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as e:
            print(f"{self.prog}: error: {_one_line(e)}", file=sys.stderr)
            return 2
        except (ValueError, NotImplementedError) as e:
            # Invalid values reaching library code from the command line are user errors too (ConfigError
            # included), and so is a model the method does not support (unsupported layouts).
            log.debug("value error", exc_info=True)
            print(f"{self.prog}: error: {_one_line(e)}", file=sys.stderr)
            return 2
        except Exception as e:
            from papercore.kernels.triton_guard import TritonUnavailableError

            if isinstance(e, TritonUnavailableError):
                print(f"{self.prog}: error: {_one_line(e)}", file=sys.stderr)
                return 2
            raise

    def __call__(self, argv: Sequence[str] | None = None) -> int:
        return self.main(argv)


def _one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    if isinstance(e, KeyError) and e.args:
        text = str(e.args[0])
    if isinstance(e, FileNotFoundError) and e.filename and str(e.filename) not in text:
        text = f"{text}: {e.filename}"
    return " ".join(text.split())
