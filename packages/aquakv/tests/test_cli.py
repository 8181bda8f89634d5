import json

import pytest

from aquakv.cli import main

FAST = ["--nsamples", "4", "--seqlen", "48", "--valid-nsamples", "1", "--buffer-size", "16"]


def test_info(capsys):
    assert main(["info"]) == 0
    assert "14960 B/token" in capsys.readouterr().out


def test_calibrate_eval_generate(tmp_path, capsys):
    out = tmp_path / "pred"
    assert main(["calibrate", "--out", str(out), *FAST]) == 0
    text = capsys.readouterr().out
    assert "relMSE" in text and (out / "predictors.safetensors").is_file() and (out / "report.json").is_file()
    assert (out / "resolved_config.json").is_file()
    argv = ["eval", "--predictors", str(out), "--windows", "2", "--seqlen", "64", "--buffer-size", "16",
            "--methods", "fp16", "aquakv", "kivi2", "hf-quantized2"]  # fmt: skip
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["aquakv"]["measured_bytes_per_token"] == res["aquakv"]["formula_bytes_per_token"]
    assert res["fp16"]["perplexity"] > 1 and "kivi2" in res
    gen = ["generate", "--predictors", str(out), "--max-new-tokens", "24", "--buffer-size", "16"]
    assert main(gen) == 0
    assert "KV cache" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["calibrate", "--group-size", "24"], "power of two"),
        (["calibrate", "--model", "/nonexistent"], "no config.json"),
        (["eval", "--methods", "foo"], "unknown method"),
        (["eval", "--predictors", "/nonexistent"], "predictors.json"),
        (["calibrate", "--nsamples", "2", "--valid-nsamples", "2"], "valid-nsamples"),
    ],
)
def test_user_errors_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and needle in err[0]
