import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

import aqlm
from aqlm import AQLMConfig, DistillConfig, QuantizedLinear
from aqlm.cli import app, main


def test_out_folder_is_the_model(quantized_run, capsys):
    out = quantized_run
    assert (out / "config.json").is_file() and not (out / "model").exists()
    assert not (out / ".blocks").exists()  # per-block checkpoints are removed once the model is saved
    assert (out / "quantize.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the figure, by default
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scheme"] == "1x4g8" and summary["perplexity_after"] > 0
    assert AQLMConfig.from_json(out / "resolved_config.json") == AQLMConfig.from_scheme(
        "1x4g8",
        max_epochs=2,
        steps_per_epoch=5,
        init_max_iter=10,
        finetune_max_epochs=2,
        finetune_batch_size=3,
        val_size=2,
        finetune_lr=1e-3,
    )
    x = torch.randint(0, 100, (1, 12))
    ours, hf = aqlm.load_quantized(out), AutoModelForCausalLM.from_pretrained(out)
    with torch.no_grad():
        assert torch.equal(ours(x).logits, hf(x).logits)
    layer = ours.model.layers[0].mlp.up_proj
    assert isinstance(layer, QuantizedLinear) and layer.codebooks.dtype == torch.float16
    assert main(["eval", "--model", str(out), "--windows", "2", "--seqlen", "32"]) == 0
    assert "bits per parameter" in capsys.readouterr().out


def test_resume_after_an_interrupt(quantized_run, tmp_path, monkeypatch, cli):
    import aqlm.quantize as Q

    run_cli, FAST_CLI = cli
    out = tmp_path / "run"
    real = Q.save_block

    def stop_after_first_block(ckpts, block, i):
        real(ckpts, block, i)
        raise KeyboardInterrupt

    monkeypatch.setattr(Q, "save_block", stop_after_first_block)
    assert run_cli(["quantize", "--out", str(out), *FAST_CLI]) == 130
    monkeypatch.setattr(Q, "save_block", real)
    assert (out / ".blocks" / "block_0000.safetensors").is_file() and not (out / "config.json").exists()
    assert main(["quantize", "--out", str(out), *FAST_CLI]) == 2  # not empty, no --resume
    assert main(["quantize", "--out", str(out), "--resume", *FAST_CLI, "--beam-size", "2"]) == 2
    assert run_cli(["quantize", "--out", str(out), "--resume", "--keep-blocks", "--no-plot", *FAST_CLI]) == 0
    assert (out / ".blocks" / "block_0001.safetensors").is_file()  # kept on request
    assert (out / "summary.json").is_file() and not (out / "quantize.png").exists()  # --no-plot
    resumed, whole = load_file(out / "model.safetensors"), load_file(quantized_run / "model.safetensors")
    assert resumed.keys() == whole.keys()
    for key in whole:
        assert torch.equal(resumed[key], whole[key]), key
    assert main(["quantize", "--out", str(out), "--resume", *FAST_CLI]) == 0  # every block kept: reloaded
    assert not (out / ".blocks").exists()
    assert main(["quantize", "--out", str(out), "--resume", *FAST_CLI]) == 2  # finished: nothing to resume


def test_every_config_field_is_a_flag_and_the_scheme_a_preset(tmp_path):
    argv = ["quantize", "--scheme", "3x6g4", "--out-group-size", "2", "--init-max-iter", "7"]
    argv += [
        "--init-max-points-per-centroid",
        "9",
        "--finetune-batch-size",
        "5",
        "--codebook-dtype",
        "float32",
    ]
    _, (cfg, opts), _, _ = app.resolve(argv + ["--out", str(tmp_path)])
    assert (cfg.num_codebooks, cfg.nbits_per_codebook, cfg.in_group_size, cfg.out_group_size) == (3, 6, 4, 2)
    assert (cfg.init_max_iter, cfg.init_max_points_per_centroid, cfg.finetune_batch_size) == (7, 9, 5)
    assert cfg.codebook_dtype == "float32" and opts.out == tmp_path
    # --in-group-size after the preset overrides it
    _, (cfg, _), _, _ = app.resolve(["quantize", "--scheme", "1x16g8", "--in-group-size", "16"])
    assert cfg.scheme == "1x16g16"
    _, (dcfg, _), _, _ = app.resolve(["finetune", "--code-beam-size", "3", "--code-betas", "0.1", "0.9"])
    assert dcfg == DistillConfig(code_beam_size=3, code_betas=(0.1, 0.9))


def test_finetune_with_code_updates(quantized_run, tmp_path, capsys):
    ft = tmp_path / "ft"
    argv = ["finetune", "--quantized", str(quantized_run), "--out", str(ft), "--nsamples", "4"]
    argv += ["--seqlen", "32", "--batch-size", "2", "--code-update-every", "1", "--eval-windows", "2"]
    assert main([*argv, "--device", "cpu"]) == 0
    assert "codes changed per update" in capsys.readouterr().out
    assert DistillConfig.from_json(ft / "resolved_config.json").code_update_every == 1
    model = aqlm.load_quantized(ft)
    assert model.model.layers[1].self_attn.q_proj.codebooks.dtype == torch.float16
    results = json.loads((ft / "finetune.json").read_text())
    assert results["steps"] == 2 and len(results["train_kl"]) == 2 and len(results["code_changes"]) == 2
    assert (ft / "finetune.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    quiet = tmp_path / "quiet"
    argv = ["finetune", "--quantized", str(quantized_run), "--out", str(quiet), "--nsamples", "2"]
    argv += ["--seqlen", "16", "--batch-size", "2", "--eval-windows", "1", "--no-plot", "--device", "cpu"]
    assert main(argv) == 0
    assert (quiet / "finetune.json").is_file() and not (quiet / "finetune.png").exists()


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["quantize", "--scheme", "two-bit"], "unknown scheme"),
        (["quantize", "--model", "/no/such/model"], "no config.json"),
        (["quantize", "--in-group-size", "7", "FAST"], "does not divide"),
        (["quantize", "--nbits-per-codebook", "17"], "nbits_per_codebook must be in 1..16"),
        (["eval", "--model", "/no/such/model"], "no config.json"),
        (["finetune", "--max-code-change", "2"], "max_code_change"),
        (["quantize", "--nsamples", "many"], "invalid int value"),
    ],
)
def test_user_errors_exit_2_with_one_line(argv, needle, tmp_path, capsys):
    if "FAST" in argv:
        argv = [a for a in argv if a != "FAST"] + ["--nsamples", "8", "--seqlen", "32", "--device", "cpu"]
    assert main([*argv, "--out", str(tmp_path / "o")] if argv[0] != "eval" else argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("aqlm") and "error:" in err[-1] and needle in err[-1]


def test_bench_on_cpu(capsys):
    assert (
        main(["bench", "--scheme", "2x8g8", "--shape", "256", "512", "--repeats", "3", "--device", "cpu"])
        == 0
    )
    out = capsys.readouterr().out
    assert "speed-up" in out and "cpu_lut" in out
