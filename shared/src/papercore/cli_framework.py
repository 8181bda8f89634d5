"""The CLI pattern every package follows.

A command is a function plus (optionally) a config dataclass. Each dataclass field becomes a
flag (``--field-name``), values resolve as: dataclass defaults ← ``--config FILE`` (YAML or
JSON) ← explicit flags. Every command gets the common options ``--config``, ``--device``,
``--dtype``, ``--seed`` and ``--log-level``. User errors (:class:`UserError`, a missing file,
an invalid value) print one line and exit with code 2; Ctrl-C exits 130 with one line.

Example::

    @dataclass
    class TrainConfig:
        steps: int = field(default=100, metadata={"help": "optimizer steps"})

    def train(cfg: TrainConfig, common: CommonOptions) -> int: ...

    app = CLI("mytool", "What it does.", [Command("train", train, "train a model", TrainConfig)])
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from papercore.io import write_json
from papercore.runtime import resolve_device, resolve_dtype, seed_everything

log = logging.getLogger(__name__)


class UserError(Exception):
    """Bad input from the user: the CLI prints the message on one line and exits with code 2."""


@dataclass
class CommonOptions:
    """Options every command accepts."""

    config: Path | None = None
    device: str = "auto"
    dtype: str = "auto"
    seed: int = 0
    log_level: str = "info"

    @property
    def torch_device(self) -> torch.device:
        return resolve_device(self.device)

    @property
    def torch_dtype(self) -> torch.dtype:
        return resolve_dtype(self.dtype, self.torch_device)


@dataclass
class Command:
    """One subcommand. ``name`` may have two words ("zoo train") for a command group."""

    name: str
    run: Callable[..., int | None]
    help: str = ""
    config: type | None = None  # a dataclass whose fields become flags
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None  # extra positional args etc.


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init or f.metadata.get("cli") is False:
            continue
        tp = hints[f.name]
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        )
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
            kwargs["nargs"] = "+"
            kwargs["type"] = args[0] if args else str
        elif tp in (int, float, str, Path):
            kwargs["type"] = tp
        else:
            kwargs["type"] = str
        parser.add_argument(_flag(f.name), **kwargs)


def _add_common_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("common options")
    g.add_argument(
        "--config", type=Path, default=None, help="YAML or JSON file of option values; flags override it"
    )
    g.add_argument("--device", default="auto", help="'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:N'")
    g.add_argument("--dtype", default="auto", help="'auto', float32, float16, bfloat16")
    g.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    g.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="logging verbosity"
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
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def build_config(cls: type, file_values: dict[str, Any], flag_values: dict[str, Any]) -> Any:
    """Dataclass defaults ← config file ← flags; unknown keys and invalid values are user errors."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(file_values) - names)
    if unknown:
        raise UserError(
            f"unknown option(s) in config file: {', '.join(unknown)}; valid: {', '.join(sorted(names))}"
        )
    values = {**file_values, **{k: v for k, v in flag_values.items() if k in names}}
    hints = typing.get_type_hints(cls)
    for k, v in values.items():
        if hints.get(k) is Path and isinstance(v, str):
            values[k] = Path(v)
        elif typing.get_origin(hints.get(k)) is tuple and isinstance(v, list):
            values[k] = tuple(v)
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise UserError(str(e)) from e


def write_resolved_config(
    out_dir: str | Path, cfg: Any, common: CommonOptions | None = None, name: str = "resolved_config.json"
) -> Path:
    """Write the fully resolved options next to a command's outputs (so a run can be repeated)."""
    record: dict[str, Any] = {}
    if dataclasses.is_dataclass(cfg):
        record.update(dataclasses.asdict(cfg))
    if common is not None:
        record["_common"] = dataclasses.asdict(common)
    path = Path(out_dir) / name
    write_json(path, record)
    return path


class CLI:
    """A program made of :class:`Command` s, with the shared options and error handling."""

    def __init__(self, prog: str, description: str, commands: Sequence[Command], version: str = ""):
        self.prog, self.description, self.commands, self.version = prog, description, list(commands), version

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
            if cmd.config is not None:
                _add_dataclass_arguments(p.add_argument_group("options"), cmd.config)
            _add_common_arguments(p)
        return root

    def main(self, argv: Sequence[str] | None = None) -> int:
        args = vars(self.parser().parse_args(argv))
        cmd: Command = args.pop("_cmd")
        common = CommonOptions(**{f.name: args.pop(f.name) for f in dataclasses.fields(CommonOptions)})
        args.pop("_command", None)
        args.pop("_sub", None)
        logging.basicConfig(level=common.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
        try:
            seed_everything(common.seed)
            resolve_dtype(
                common.dtype, resolve_device(common.device)
            )  # a bad --device/--dtype is a user error
            if cmd.config is not None:
                file_values = load_config_file(common.config) if common.config else {}
                cfg = build_config(cmd.config, file_values, args)
                extra = {
                    k: v
                    for k, v in args.items()
                    if not any(f.name == k for f in dataclasses.fields(cmd.config))
                }
                rc = cmd.run(cfg, common, **extra)
            else:
                rc = cmd.run(common, **args)
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
            # Invalid values reaching library code from the command line are user errors too, and so
            # is a model the method does not support (hf_compat.decoder_layers, unsupported layouts).
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
    if isinstance(e, FileNotFoundError) and e.filename and str(e.filename) not in text:
        text = f"{text}: {e.filename}"
    return " ".join(text.split())
