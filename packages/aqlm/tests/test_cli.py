import json
import subprocess
import sys

import pytest

from aqlm.cli import main

FAST = [
    "--scheme",
    "1x4g8",
    "--nsamples",
    "8",
    "--seqlen",
    "32",
    "--max-epochs",
    "2",
    "--steps-per-epoch",
    "5",
    "--eval-windows",
    "4",
]


def test_quantize_eval_finetune_round_trip(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["quantize", "--out", str(out), *FAST]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scheme"] == "1x4g8" and summary["perplexity_after"] > 0
    assert (out / "model" / "config.json").is_file() and (out / "resolved_config.json").is_file()
    assert main(["eval", "--model", str(out / "model"), "--windows", "4"]) == 0
    assert "bits per parameter" in capsys.readouterr().out
    ft = tmp_path / "ft"
    assert (
        main(
            [
                "finetune",
                "--quantized",
                str(out),
                "--out",
                str(ft),
                "--nsamples",
                "8",
                "--seqlen",
                "32",
                "--batch-size",
                "4",
                "--eval-windows",
                "4",
            ]
        )
        == 0
    )
    assert (ft / "config.json").is_file()
    # An existing non-empty output folder is refused unless resuming.
    assert main(["quantize", "--out", str(ft), *FAST]) == 2


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["quantize", "--scheme", "two-bit"], "unknown scheme"),
        (["quantize", "--model", "/no/such/model"], "no config.json"),
        (["quantize", "--in-group-size", "7", *FAST[2:]], "does not divide"),
        (["eval", "--model", "/no/such/model"], "no config.json"),
        (["quantize", "--nsamples", "many"], "invalid int value"),
    ],
)
def test_user_errors_exit_2_with_one_line(argv, needle):
    r = subprocess.run([sys.executable, "-m", "aqlm.cli", *argv], capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()  # progress bars and info logs may come first
    assert (
        "Traceback" not in r.stderr
        and lines[-1].startswith("aqlm")
        and "error:" in lines[-1]
        and needle in lines[-1]
    )


def test_bench_on_cpu(capsys):
    assert (
        main(["bench", "--scheme", "2x8g8", "--shape", "256", "512", "--repeats", "3", "--device", "cpu"])
        == 0
    )
    out = capsys.readouterr().out
    assert "speed-up" in out and "cpu_lut" in out
