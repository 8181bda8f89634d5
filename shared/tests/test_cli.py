import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from papercore.cli import CLI, Command, Preset, UserError, check_resume, cli_fields, write_resolved_config
from papercore.config import Config


def _rename_learning_rate(d):
    d["rate"] = d.pop("learning_rate", 0.5)
    return d


@dataclass
class Cfg(Config):
    VERSION = 2
    MIGRATIONS = {1: _rename_learning_rate}

    steps: int = field(default=10, metadata={"help": "steps"})
    rate: float = 0.5
    name: str = "x"
    fast: bool = False
    mode: Literal["a", "b"] = "a"
    sizes: tuple[int, ...] = (1, 2)

    def validate(self):
        if self.steps < 0:
            raise ValueError("steps must be >= 0")


@dataclass
class Opts:
    out: Path | None = field(default=None, metadata={"help": "output folder"})
    resume: bool = False


PRESETS = {"quick": {"steps": 2, "rate": 0.1}, "long": {"steps": 1000}}


def make_app(record):
    def run(cfg, opts, common):
        record["cfg"], record["opts"], record["common"] = cfg, opts, common
        if cfg.name == "boom":
            raise UserError("the name 'boom' is not allowed: pick another")
        if cfg.name == "ctrlc":
            raise KeyboardInterrupt
        if cfg.name == "unsupported":
            raise NotImplementedError("GPT2LMHeadModel is not supported: use a Llama-style decoder")
        if opts.out:
            if opts.resume:
                check_resume(opts.out, cfg)
            write_resolved_config(opts.out, cfg, opts, common=common)
        return 0

    def preset(name):
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}: choose from {', '.join(PRESETS)}")
        return PRESETS[name]

    return CLI(
        "tool",
        "test tool",
        [
            Command("go", run, "go", Cfg, options=Opts, preset=Preset("preset", preset, "named settings")),
            Command("grp sub", lambda common: 0, "sub"),
        ],
    )


def test_defaults_file_and_flag_precedence(tmp_path):
    rec = {}
    conf = tmp_path / "c.yaml"
    conf.write_text("steps: 7\nrate: 0.25\nseed: 3\n")
    assert make_app(rec).main(["go", "--config", str(conf), "--steps", "3", "--fast", "--seed", "5"]) == 0
    assert (rec["cfg"].steps, rec["cfg"].rate, rec["cfg"].fast, rec["common"].seed) == (3, 0.25, True, 5)
    jconf = tmp_path / "c.json"
    jconf.write_text(json.dumps({"name": "y", "out": str(tmp_path / "o"), "seed": 4}))
    make_app(rec).main(["go", "--config", str(jconf)])
    assert rec["cfg"].name == "y" and rec["cfg"].steps == 10 and rec["opts"].out == tmp_path / "o"
    assert rec["common"].seed == 4


def test_preset_then_file_then_flags(tmp_path):
    rec = {}
    make_app(rec).main(["go", "--preset", "quick"])
    assert (rec["cfg"].steps, rec["cfg"].rate) == (2, 0.1)
    conf = tmp_path / "c.yaml"
    conf.write_text("preset: long\nrate: 0.3\n")
    make_app(rec).main(["go", "--config", str(conf), "--steps", "5"])
    assert (rec["cfg"].steps, rec["cfg"].rate) == (5, 0.3)
    make_app(rec).main(["go", "--config", str(conf), "--preset", "quick"])  # the flag wins over the file
    assert (rec["cfg"].steps, rec["cfg"].rate) == (2, 0.3)


def test_every_config_field_is_a_flag():
    parser = make_app({}).parser()
    go = parser._subparsers._group_actions[0].choices["go"]
    flags = {s for a in go._actions for s in a.option_strings}
    for cls in (Cfg, Opts):
        for f in cli_fields(cls):
            assert "--" + f.name.replace("_", "-") in flags
    assert "--version" not in flags  # the config's format version is not an option


def test_resolved_config_round_trips_and_reproduces(tmp_path):
    rec = {}
    out = tmp_path / "run"
    make_app(rec).main(["go", "--out", str(out), "--rate", "2", "--sizes", "3", "4", "--seed", "9"])
    path = out / "resolved_config.json"
    written = json.loads(path.read_text())
    assert written["command"] == "tool go" and written["common"]["seed"] == 9
    assert Cfg.from_dict(written["config"]["Cfg"]) == rec["cfg"] == Cfg.from_json(path)
    assert written["config"]["Cfg"]["version"] == 2 and written["options"]["out"] == str(out)
    again = {}
    make_app(again).main(["go", "--config", str(path), "--out", str(tmp_path / "again")])
    assert (
        again["cfg"] == rec["cfg"] and again["common"].seed == 9 and again["opts"].out == tmp_path / "again"
    )


def test_resume_with_another_config_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert make_app({}).main(["go", "--out", str(out), "--steps", "4"]) == 0
    before = (out / "resolved_config.json").read_text()
    assert make_app({}).main(["go", "--out", str(out), "--steps", "5", "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "steps: 4 != 5" in err and "--steps" in err
    assert (out / "resolved_config.json").read_text() == before  # nothing overwritten
    assert make_app({}).main(["go", "--out", str(out), "--steps", "4", "--resume"]) == 0


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["go", "--stepz", "3"], "unrecognized arguments"),
        (["go", "--steps", "many"], "invalid int value"),
        (["go", "--steps", "-1"], "steps must be >= 0"),
        (["go", "--config", "/no/such/file.yaml"], "config file not found"),
        (["go", "--name", "boom"], "not allowed"),
        (["go", "--name", "unsupported"], "is not supported"),
        (["go", "--device", "cuda:7"], "CUDA is not available"),
        (["go", "--dtype", "int3"], "unknown dtype"),
        (["go", "--preset", "huge"], "unknown preset 'huge'"),
        (["grp"], "required"),
    ],
)
def test_user_errors_exit_2_with_one_line(argv, needle, capsys):
    assert make_app({}).main(argv) == 2  # usage errors too: main returns, it does not raise SystemExit
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and err.startswith("tool")


@pytest.mark.parametrize(
    "text,needle",
    [
        ("stepz: 3\n", "unknown option 'stepz'"),
        ("steps: three\n", "Cfg.steps: expected an integer, got 'three'"),
        ("mode: c\n", "Cfg.mode: expected one of 'a', 'b'"),
        ("fast: 1\n", "Cfg.fast: expected true or false"),
        ("version: 3\n", "version 3 is newer than this release"),
        ("version: 0\n", "version 0 is older than this release's 2 and has no migration"),
        ("resume: yes please\n", "Opts.resume: expected true or false"),
        ("- a\n- b\n", "must hold a mapping"),
    ],
)
def test_bad_config_file_contents(tmp_path, capsys, text, needle):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert make_app({}).main(["go", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


def test_old_config_file_is_migrated(tmp_path):
    rec = {}
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"version": 1, "learning_rate": 0.05, "steps": 3}))
    assert make_app(rec).main(["go", "--config", str(old)]) == 0
    assert (rec["cfg"].rate, rec["cfg"].steps, rec["cfg"].version) == (0.05, 3, 2)


def test_an_option_declared_twice_is_a_programming_error():
    @dataclass
    class Clash:
        steps: int = 1

    with pytest.raises(TypeError, match="'steps' of Clash is also in Cfg"):
        CLI("t", "", [Command("go", lambda *a: 0, "", Cfg, options=Clash)])

    @dataclass
    class SeedClash:
        seed: int = 0

    with pytest.raises(TypeError, match="also in the common options"):
        CLI("t", "", [Command("go", lambda *a: 0, "", options=SeedClash)])


def test_ctrl_c_exits_130_with_one_line(capsys):
    assert make_app({}).main(["go", "--name", "ctrlc"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_papercore_cli_subprocess():
    ok = subprocess.run([sys.executable, "-m", "papercore", "info"], capture_output=True, text=True)
    assert ok.returncode == 0 and "torch" in ok.stdout and "triton mode" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "papercore", "zoo", "train", "--recipe", "nope"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "unknown zoo recipe" in bad.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "papercore", "zoo", "train", "--config", "missing.yml"],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "config file not found: missing.yml" in missing.stderr
