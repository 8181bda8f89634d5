import json

import pytest

from spqr.cli import main

FAST = ["--nsamples", "4", "--seqlen", "32", "--eval-windows", "4"]


def test_info_prints_version_and_presets(capsys):
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert "spqr 0.1.0" in text and "w4" in text and "4.625 bits" in text and "rtn3" in text


def test_quantize_eval_round_trip(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["quantize", "--out", str(out), "--preset", "w3", "--qq-groupsize", "8", *FAST]) == 0
    text = capsys.readouterr().out
    assert "perplexity" in text and "bits per parameter" in text and "outliers" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["preset"] == "w3" and summary["config"]["qq_groupsize"] == 8
    assert summary["perplexity_after"] > 0 and summary["formula_bits_per_parameter"] > 3.625
    assert (out / "model" / "config.json").is_file() and (out / "resolved_config.json").is_file()
    assert main(["eval", "--model", str(out), "--windows", "4", "--seqlen", "32"]) == 0
    ev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ev["perplexity"] == pytest.approx(summary["perplexity_after"], rel=1e-5)
    # Resuming a finished run re-uses every block.
    assert (
        main(["quantize", "--out", str(out), "--preset", "w3", "--qq-groupsize", "8", "--resume", *FAST]) == 0
    )
    assert json.loads((out / "summary.json").read_text())["resumed_blocks"]


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["quantize", "--preset", "w5"], "unknown preset"),
        (["quantize", "--wbits", "9"], "wbits"),
        (["quantize", "--groupsize", "7", *FAST], "groupsize 7 does not divide"),
        (["quantize", "--model", "/nonexistent"], "no config.json"),
        (["quantize", "--method", "foo"], "invalid choice"),
        (["eval", "--model", "/nonexistent"], "no config.json"),
    ],
)
def test_user_errors_exit_2_with_one_line(argv, needle, capsys):
    with pytest.raises(SystemExit) if "invalid choice" in needle else _nullcontext() as exc:
        rc = main(argv)
    if exc is not None and hasattr(exc, "value"):
        rc = exc.value.code
    assert rc == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and needle in err[0]  # one line (transformers' loading bar aside)


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


def test_existing_out_is_refused(tmp_path, capsys):
    (tmp_path / "x").write_text("")
    assert main(["quantize", "--out", str(tmp_path), *FAST]) == 2
    assert "not empty" in capsys.readouterr().err
