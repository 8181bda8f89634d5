import json

import pytest
import torch

from papercore.cli import CommonOptions
from spqr import SpQRConfig
from spqr.cli import BLOCKS, QuantizeOptions, app, main

FAST = ["--nsamples", "4", "--seqlen", "32", "--eval-windows", "4"]
W3 = ["--preset", "w3", "--qq-groupsize", "8"]


def test_info_prints_version_and_presets(capsys):
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert "spqr 0.1.0" in text and "w4" in text and "4.625 bits" in text and "rtn3" in text


def test_quantize_takes_the_config_whole_with_a_preset():
    """--preset, then a config file, then flags; the run options are apart; --config of a resolved
    config gives the same SpQRConfig back."""
    cmd, parts, common, _ = app.resolve(["quantize", "--preset", "gptq4", "--groupsize", "64", "--out", "x"])
    cfg, opts = parts
    assert cmd.name == "quantize" and isinstance(cfg, SpQRConfig) and isinstance(opts, QuantizeOptions)
    assert cfg == SpQRConfig(method="gptq", wbits=4, groupsize=64, percdamp=0.01)
    assert str(opts.out) == "x" and isinstance(common, CommonOptions)
    _, (default, _), _, _ = app.resolve(["quantize"])
    assert default == SpQRConfig.from_preset("w4")  # quantize's default preset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A small local corpus for calibration and evaluation (tokenizing all of stdlib takes ~10 s)."""
    from papercore.llm.data.corpora import stdlib_corpus

    path = tmp_path_factory.mktemp("data") / "text.txt"
    path.write_text("\n".join(stdlib_corpus("test")[:40]))
    return ["--dataset", str(path), "--eval-dataset", str(path), *FAST]


@pytest.fixture(scope="module")
def run(tmp_path_factory, data):
    """One quantization of the zoo tiny model with per-block checkpoints kept."""
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["quantize", "--out", str(out), *W3, *data, "--keep-blocks"]) == 0
    return out


def test_the_output_folder_is_the_model(run, capsys):
    """`--out DIR` writes the model at the root of DIR: load_quantized, from_pretrained and `spqr eval`
    all take DIR as it is."""
    from transformers import AutoModelForCausalLM

    import spqr

    summary = json.loads((run / "summary.json").read_text())
    assert summary["config"]["qq_groupsize"] == 8 and summary["config"]["wbits"] == 3
    assert summary["perplexity_after"] > 0 and summary["formula_bits_per_parameter"] > 3.625
    assert (run / "config.json").is_file() and (run / "resolved_config.json").is_file()
    assert (run / "quantize.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the figure, by default
    assert SpQRConfig.from_json(run / "resolved_config.json") == SpQRConfig.from_preset("w3", qq_groupsize=8)
    model = spqr.load_quantized(run)
    hf = AutoModelForCausalLM.from_pretrained(run).eval()
    ids = torch.randint(0, 100, (1, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, hf(ids).logits)
    capsys.readouterr()
    text = summary["eval"]["dataset"]
    assert main(["eval", "--model", str(run), "--dataset", text, "--windows", "4", "--seqlen", "32"]) == 0
    ev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ev["perplexity"] == pytest.approx(summary["perplexity_after"], rel=1e-5)


def test_resume_reuses_the_blocks_then_removes_them(run, data, capsys):
    assert (run / BLOCKS).is_dir() and list((run / BLOCKS).glob("block_*.safetensors"))  # --keep-blocks
    before = json.loads((run / "summary.json").read_text())["perplexity_after"]
    (run / "quantize.png").unlink()
    assert main(["quantize", "--out", str(run), *W3, *data, "--resume", "--no-keep-blocks", "--no-plot"]) == 0
    assert not (run / "quantize.png").exists()  # --no-plot
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resumed_blocks"] == [0, 1] and summary["perplexity_after"] == pytest.approx(
        before, rel=1e-6
    )
    assert not (run / BLOCKS).exists()  # removed once the run completed
    capsys.readouterr()
    assert main(["quantize", "--out", str(run), *W3, *FAST, "--resume"]) == 2
    assert "that run finished" in capsys.readouterr().err


def test_resume_with_another_config_is_refused(run, capsys):
    assert main(["quantize", "--out", str(run), "--preset", "w4", *FAST, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "another SpQRConfig" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["quantize", "--preset", "w5"], "unknown preset 'w5'"),
        (["quantize", "--wbits", "9"], "wbits"),
        (["quantize", "--groupsize", "7", *FAST], "groupsize 7 does not divide"),
        (["quantize", "--model", "/nonexistent"], "no config.json"),
        (["quantize", "--method", "foo"], "invalid choice"),
        (["eval", "--model", "/nonexistent"], "no config.json"),
        (["bench", "--tokens", "0"], "--tokens"),
    ],
)
def test_user_errors_exit_2_with_one_line(argv, needle, capsys):
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse
        rc = e.code
    assert rc == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and needle in err[0]  # one line (transformers' loading bar aside)


def test_existing_out_is_refused(tmp_path, capsys):
    (tmp_path / "x").write_text("")
    assert main(["quantize", "--out", str(tmp_path), *FAST]) == 2
    assert "not empty" in capsys.readouterr().err


@pytest.mark.parametrize("preset", ["w3", "gptq4"])
def test_bench_times_the_layer_against_dense(preset, capsys):
    argv = ["bench", "--preset", preset, "--shape", "128", "64", "--tokens", "2", "--repeats", "2"]
    assert main([*argv, "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    record = json.loads(out.strip().splitlines()[-1])
    assert "speed-up" in out and record["shape"] == [128, 64] and record["tokens"] == 2
    assert record["spqr_ms"] > 0 and record["dense_ms"] > 0 and record["path"] == "dequant"  # CPU: torch
    assert record["spqr_bytes"] < record["dense_bytes"] / 4
