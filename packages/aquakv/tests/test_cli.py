import json

import pytest

from aquakv import AquaKVConfig, CalibrationConfig
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
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the figure, by default
    argv = ["eval", "--predictors", str(out), "--windows", "2", "--seqlen", "64", "--buffer-size", "16",
            "--methods", "fp16", "aquakv", "kivi2", "hf-quantized2"]  # fmt: skip
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["aquakv"]["measured_bytes_per_token"] == res["aquakv"]["formula_bytes_per_token"]
    assert res["fp16"]["perplexity"] > 1 and "kivi2" in res
    gen = ["generate", "--predictors", str(out), "--max-new-tokens", "24", "--buffer-size", "16"]
    assert main(gen) == 0
    assert "KV cache" in capsys.readouterr().out

    # resolved_config.json holds the configs whole: it loads back and repeats the run
    resolved = out / "resolved_config.json"
    assert AquaKVConfig.from_json(resolved) == AquaKVConfig(buffer_size=16)
    assert CalibrationConfig.from_json(resolved) == CalibrationConfig(nsamples=4, seqlen=48, valid_nsamples=1)
    from aquakv.cli import app

    cmd, parts, common, _ = app.resolve(
        ["calibrate", "--config", str(resolved), "--out", str(tmp_path / "b")]
    )
    assert cmd.name == "calibrate" and parts[:2] == [
        AquaKVConfig(buffer_size=16),
        CalibrationConfig.from_json(resolved),
    ]
    assert parts[2].model == "zoo:tiny" and common.seed == 0
    # --resume into a folder made with another config: one line naming the field, nothing overwritten
    before = (out / "predictors.safetensors").read_bytes()
    capsys.readouterr()
    assert main(["calibrate", "--out", str(out), "--resume", *FAST, "--percdamp", "0.01"]) == 2
    _one_error_line(capsys, "percdamp")
    assert (out / "predictors.safetensors").read_bytes() == before


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["calibrate", "--group-size", "24"], "power of two"),
        (["calibrate", "--model", "/nonexistent"], "no config.json"),
        (["eval", "--methods", "foo"], "unknown method"),
        (["eval", "--predictors", "/nonexistent"], "predictors.json"),
        (["calibrate", "--nsamples", "2", "--valid-nsamples", "2"], "valid_nsamples"),
        (["generate", "--edenn-n", "24"], "edenn_n must be a power of two"),
    ],
)
def test_user_errors_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and needle in err[0]


def _one_error_line(capsys, needle):
    err = [
        x for x in capsys.readouterr().err.splitlines() if x.startswith("aquakv")
    ]  # not transformers' bars
    assert len(err) == 1 and err[0].startswith("aquakv: error: ") and needle in err[0], err


def test_group_size_not_dividing_the_channels_exits_2(capsys):
    assert main(["calibrate", "--group-size", "128"]) == 2  # zoo tiny has 64 KV channels
    _one_error_line(capsys, "does not divide the 64 KV channels")


@pytest.mark.parametrize(
    "layers,fingerprint,needle", [(3, None, "3 layers"), (2, "0123abcd", "another model")]
)
def test_predictors_for_another_model_exit_2(tmp_path, capsys, layers, fingerprint, needle):
    from aquakv.predictors import Predictors, model_fingerprint
    from papercore.llm import zoo

    m, _ = zoo.load("tiny")
    Predictors.zeros(layers, 64, fingerprint or model_fingerprint(m)).save(tmp_path)
    assert main(["eval", "--predictors", str(tmp_path), "--methods", "aquakv"]) == 2
    _one_error_line(capsys, needle)


def test_unsupported_attention_layout_exits_2(monkeypatch, capsys):
    import papercore.llm.zoo

    load = papercore.llm.zoo.load_model

    def hybrid(spec, **kw):  # a model with a layer type the cache cannot hold
        model, tok, src = load(spec, **kw)
        model.config.layer_types = ["full_attention", "linear_attention"]
        return model, tok, src

    monkeypatch.setattr(papercore.llm.zoo, "load_model", hybrid)
    assert main(["generate", "--method", "higgs", "--max-new-tokens", "2"]) == 2
    _one_error_line(capsys, "linear_attention")


def test_ctrl_c_exits_130_with_one_line_then_resumes(tmp_path, monkeypatch, capsys):
    import sys

    C = sys.modules["aquakv.calibrate"]  # the package re-exports the function under the module's name

    real = C.calibrate

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(C, "calibrate", interrupted)
    out = tmp_path / "pred"
    out.mkdir()
    (out / "partial").write_text("x")  # what an interrupted run leaves behind
    assert main(["calibrate", "--out", str(out), "--resume", *FAST]) == 130
    text = capsys.readouterr().err
    err = [x for x in text.splitlines() if x.startswith("aquakv")]
    assert len(err) == 1 and "interrupted" in err[0] and "Traceback" not in text
    assert main(["calibrate", "--out", str(out), *FAST]) == 2  # not empty: --resume or a new folder
    _one_error_line(capsys, "--resume")
    monkeypatch.setattr(C, "calibrate", real)
    assert main(["calibrate", "--out", str(out), "--resume", "--no-plot", *FAST]) == 0
    assert (out / "predictors.json").is_file() and (out / "resolved_config.json").is_file()
    assert (out / "report.json").is_file() and not (out / "report.png").exists()  # --no-plot


def test_grids_lists_and_generates(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PAPERCORE_CACHE", str(tmp_path))
    assert main(["grids"]) == 0
    text = capsys.readouterr().out
    assert "(6, 4096): 2.00 bits/value  not generated yet" in text and "(8, 65536)" in text
    assert main(["grids", "--d", "1", "--n", "8"]) == 0  # 1-D: exact Lloyd-Max, instant
    assert "MSE 0.03" in capsys.readouterr().out  # the 8-level Lloyd-Max grid: 0.0345
    assert (tmp_path / "aquakv" / "grids" / "edenn_d1_n8_seed0_v1.safetensors").is_file()
    assert main(["grids", "--d", "6"]) == 2
    _one_error_line(capsys, "both --d and --n")


def test_config_file_values_and_bad_files(tmp_path, capsys):
    (tmp_path / "ok.yaml").write_text("edenn_n: 64\nbuffer_size: 16\n")
    from aquakv.cli import app

    cmd, parts, _, _ = app.resolve(["generate", "--config", str(tmp_path / "ok.yaml"), "--edenn-n", "256"])
    assert parts[0] == AquaKVConfig(edenn_n=256, buffer_size=16)  # flags override the file
    (tmp_path / "bad.yaml").write_text("edenn_n: 24\n")
    assert main(["generate", "--config", str(tmp_path / "bad.yaml")]) == 2
    _one_error_line(capsys, "edenn_n")
    assert main(["eval", "--scale-dtype", "int8"]) == 2  # argparse's choices: one line, exit 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("aquakv eval: error: ") and "invalid choice: 'int8'" in err[0]
    (tmp_path / "typo.yaml").write_text("edenn_m: 64\n")
    assert main(["eval", "--config", str(tmp_path / "typo.yaml")]) == 2
    _one_error_line(capsys, "edenn_m")
