import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from papercore.cli_framework import CLI, Command, UserError, write_resolved_config


@dataclass
class Cfg:
    steps: int = field(default=10, metadata={"help": "steps"})
    rate: float = 0.5
    name: str = "x"
    fast: bool = False
    out: Path | None = None

    def __post_init__(self):
        if self.steps < 0:
            raise ValueError("steps must be >= 0")


def make_app(record):
    def run(cfg, common):
        record["cfg"], record["common"] = cfg, common
        if cfg.name == "boom":
            raise UserError("the name 'boom' is not allowed: pick another")
        if cfg.name == "ctrlc":
            raise KeyboardInterrupt
        if cfg.name == "unsupported":
            raise NotImplementedError("GPT2LMHeadModel is not supported: use a Llama-style decoder")
        if cfg.out:
            write_resolved_config(cfg.out, cfg, common)
        return 0

    return CLI(
        "tool", "test tool", [Command("go", run, "go", Cfg), Command("grp sub", lambda common: 0, "sub")]
    )


def test_defaults_file_and_flag_precedence(tmp_path):
    rec = {}
    conf = tmp_path / "c.yaml"
    conf.write_text("steps: 7\nrate: 0.25\n")
    assert make_app(rec).main(["go", "--config", str(conf), "--steps", "3", "--fast", "--seed", "5"]) == 0
    assert (rec["cfg"].steps, rec["cfg"].rate, rec["cfg"].fast, rec["common"].seed) == (3, 0.25, True, 5)
    jconf = tmp_path / "c.json"
    jconf.write_text(json.dumps({"name": "y"}))
    make_app(rec).main(["go", "--config", str(jconf)])
    assert rec["cfg"].name == "y" and rec["cfg"].steps == 10


def test_resolved_config_written_next_to_outputs(tmp_path):
    make_app({}).main(["go", "--out", str(tmp_path), "--rate", "2"])
    written = json.loads((tmp_path / "resolved_config.json").read_text())
    assert written["rate"] == 2.0 and written["_common"]["device"] == "auto"


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
        (["grp"], "required"),
    ],
)
def test_user_errors_exit_2_with_one_line(argv, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        rc = make_app({}).main(argv)
        raise SystemExit(rc)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and err.startswith("tool")


def test_bad_config_file_contents(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stepz: 3\n")
    assert make_app({}).main(["go", "--config", str(bad)]) == 2
    assert "unknown option(s) in config file: stepz" in capsys.readouterr().err


def test_ctrl_c_exits_130_with_one_line(capsys):
    assert make_app({}).main(["go", "--name", "ctrlc"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_papercore_cli_subprocess():
    ok = subprocess.run([sys.executable, "-m", "papercore.cli", "info"], capture_output=True, text=True)
    assert ok.returncode == 0 and "torch" in ok.stdout and "triton mode" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "papercore.cli", "zoo", "train", "--recipe", "nope"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "unknown zoo recipe" in bad.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "papercore.cli", "zoo", "train", "--config", "missing.yml"],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "config file not found: missing.yml" in missing.stderr
