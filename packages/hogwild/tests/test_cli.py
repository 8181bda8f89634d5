import json

import pytest

from hogwild import cli
from hogwild.config import GenerateConfig
from papercore.llm import zoo


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A random Llama with the zoo tokenizer, saved like a real checkpoint (no training needed)."""
    path = tmp_path_factory.mktemp("model")
    tok = zoo.tokenizer()
    model = zoo.random_model("llama", vocab_size=len(tok), hidden_size=64, num_heads=2, num_kv_heads=1)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_solve_streams_plain_text(model_dir, capsys):
    rc = cli.main(["solve", "What is 1 + 1?", "--model", model_dir, "--budget", "6", "--plain", "--workers", "3",
                   "--names", "Ann", "Ben", "Cy", "--device", "cpu"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    assert "3 workers (Ann, Ben, Cy)" in out and "forward passes: 6" in out
    assert "--- Ann\n**Ann [1]:** Hi, I'm Ann." in out


def test_ctrl_c_prints_what_the_workers_had(model_dir, capsys, monkeypatch):
    def interrupt(self, driver):
        if driver.passes >= 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli._Display, "__call__", interrupt)
    rc = cli.main(["solve", "--model", model_dir, "--budget", "50", "--plain", "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 130
    assert "interrupted after 3 forward passes" in out and "--- Bob\n**Bob [1]:**" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (["solve", "--workers", "0"], "workers must be"),
        (["solve", "--budget", "0"], "budget must be"),
        (["solve", "--workers", "65"], "workers must be"),
        (["solve", "--budget", "1000001"], "budget must be"),
        (["eval", "--limit", "0"], "--limit must be"),
        (["eval", "--dataset", "missing.jsonl"], "not found"),
        (["eval", "--dataset", "no-such-org/no-such-set"], "could not load dataset"),
    ],
)
def test_bad_input_is_one_line(args, message, model_dir, capsys, monkeypatch):
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    rc = cli.main([*args, "--model", model_dir, "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1


def test_unsupported_model_is_a_clear_error(tmp_path, capsys):
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=4096)).save_pretrained(tmp_path)
    zoo.tokenizer().save_pretrained(tmp_path)
    rc = cli.main(["solve", "--model", str(tmp_path), "--device", "cpu"])
    assert rc == 2 and "not supported" in capsys.readouterr().err


def test_eval_writes_accuracy_per_budget(model_dir, tmp_path, capsys):
    data = tmp_path / "set.jsonl"
    rows = [
        {"question": "What is 2+2?", "answer": "4"},
        {"problem": "Half of 10?", "solution": "so \\boxed{5}"},
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    rc = cli.main(["eval", "--dataset", str(data), "--model", model_dir, "--budget", "5", "--record-at", "3",
                   "--out", str(tmp_path / "out"), "--device", "cpu", "--temperature", "1.0", "--seed", "7"])  # fmt: skip
    assert rc == 0
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(report["accuracy"]) == {"3", "5"} and len(report["problems"]) == 2
    assert (tmp_path / "out" / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # by default
    assert report["problems"][1]["gold"] == "5" and report["seed"] == 7
    # the resolved config loads back, and repeats the run
    resolved = tmp_path / "out" / "resolved_config.json"
    cfg = GenerateConfig.from_json(resolved)
    assert cfg == GenerateConfig(budget=5, record_at=(3,), temperature=1.0)
    saved = json.loads(resolved.read_text())
    assert saved["options"]["dataset"] == str(data) and saved["common"]["seed"] == 7
    assert cli.main(["eval", "--config", str(resolved), "--out", str(tmp_path / "again"), "--no-plot"]) == 0
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert not (tmp_path / "again" / "results.png").exists()  # --no-plot
    assert again["problems"] == [
        {**p, "seconds": q["seconds"]} for p, q in zip(report["problems"], again["problems"])
    ]


def test_bench_runs_on_cpu(capsys):
    rc = cli.main(["bench", "--workers", "2", "--contexts", "128", "--model", "", "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 0 and "independent" in out and "CPU timings" in out
    err = float(out.strip().splitlines()[-1].split()[-1])
    assert err < 1e-5


def test_solve_without_a_model_runs_the_zoo_model_and_says_so(model_dir, capsys, monkeypatch):
    asked = []

    def fake_load(spec, common):  # stands in for the trained zoo model (built on first use)
        asked.append(spec)
        model, tok, _ = zoo.load_model(model_dir)
        return model, tok

    monkeypatch.setattr(cli, "load_model", fake_load)
    rc = cli.main(["solve", "--budget", "3", "--plain", "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 0 and asked == [cli.DEFAULT_MODEL] and cli.DEFAULT_MODEL.startswith("zoo:")
    assert "collaboration needs a reasoning-capable model" in out
    assert "forward passes: 3" in out


class LossyTokenizer:
    """The zoo tokenizer, except that it cannot write blank lines."""

    def __init__(self, tok):
        self.tok = tok

    def __getattr__(self, name):
        return getattr(self.tok, name)

    def decode(self, ids, **kw):
        return self.tok.decode(ids, **kw).replace("\n\n", "\n")


def test_tokenizer_missing_prompt_text_is_one_line(model_dir, capsys, monkeypatch):
    def fake_load(spec, common):
        model, tok, _ = zoo.load_model(model_dir)
        return model, LossyTokenizer(tok)

    monkeypatch.setattr(cli, "load_model", fake_load)
    rc = cli.main(["solve", "--budget", "3", "--plain", "--device", "cpu"])
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # (transformers' weight-loading bar may come first)
    assert rc == 2 and last.startswith("hogwild: error: the tokenizer cannot represent")
    assert "Traceback" not in err and err.count("hogwild:") == 1


def test_eval_json_file_offline_is_marked_not_reproduced(model_dir, tmp_path, capsys):
    data = tmp_path / "set.json"
    data.write_text(json.dumps({"problems": [{"problem": "What is 3+4?", "expected_answer": "7"}]}))
    rc = cli.main(["eval", "--dataset", str(data), "--model", model_dir, "--budget", "2", "--out",
                   str(tmp_path / "out"), "--device", "cpu"])  # fmt: skip
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert rc == 0 and report["problems"][0]["gold"] == "7" and set(report["accuracy"]) == {"2"}
    assert report["status"].startswith("not reproduced") and "status: not reproduced" in out


def test_reproduction_status():
    from hogwild.evaluate import reproduction_status

    assert reproduction_status("Qwen/QwQ-32B", 32_000_000_000, "limo.jsonl") == "measured"
    assert reproduction_status("/models/qwq", 32_000_000_000, "builtin").startswith("not reproduced")
    assert reproduction_status("zoo:draft", 10**10, "limo.jsonl").startswith("not reproduced")
    assert "0.5M-parameter" in reproduction_status("/tmp/m", 500_000, "aime.json")


def test_view_longer_than_a_sliding_window_is_one_line(capsys, monkeypatch):
    tok = zoo.tokenizer()
    model = zoo.random_model("mistral", vocab_size=len(tok), hidden_size=64, num_heads=2, num_kv_heads=1,
                             sliding_window=16)  # fmt: skip
    monkeypatch.setattr(cli, "load_model", lambda spec, common: (model, tok))
    rc = cli.main(["solve", "--budget", "2", "--plain", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "sliding-window" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_the_seed_is_the_common_option(model_dir, capsys):
    def sampled(*extra):
        argv = [
            "solve",
            "--model",
            model_dir,
            "--budget",
            "6",
            "--plain",
            "--temperature",
            "1.0",
            "--device",
            "cpu",
        ]
        assert cli.main([*argv, *extra]) == 0
        return capsys.readouterr().out.split("--- Alice", 1)[1].rsplit("forward passes", 1)[0]

    assert sampled("--seed", "1") == sampled("--seed", "1") != sampled("--seed", "2")


def test_config_file_presets_and_flags(model_dir, tmp_path, capsys):
    conf = tmp_path / "run.yaml"
    conf.write_text("workers: 3\nbudget: 4\nnames: [Ann, Ben, Cy]\nseed: 5\nplain: true\n")
    rc = cli.main(["solve", "--config", str(conf), "--model", model_dir, "--budget", "3", "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 0 and "3 workers (Ann, Ben, Cy)" in out and "budget 3 passes" in out  # flags beat the file
    _, (cfg,), _, _ = cli.app.resolve(["demo", "--budget", "8"])  # the demo preset, then the flag
    assert cfg == GenerateConfig(**{**cli.PRESETS["demo"], "budget": 8})
    _, parts, common, _ = cli.app.resolve(["solve", "--preset", "demo", "--config", str(conf)])
    assert parts[0].temperature == 0.8 and parts[0].budget == 4 and common.seed == 5  # file beats preset
    assert cli.main(["solve", "--preset", "fast"]) == 2
    assert "unknown preset 'fast'" in capsys.readouterr().err
    assert cli.main(["solve", "--layout", "zigzag"]) == 2  # argparse's choices: one line, exit 2
    assert "invalid choice: 'zigzag'" in capsys.readouterr().err


def test_every_generate_config_field_is_a_flag_of_solve_eval_and_demo():
    parser = cli.app.parser()
    subs = next(a for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict)).choices
    for name in ("solve", "eval", "demo"):
        flags = {s for a in subs[name]._actions for s in a.option_strings}
        assert {"--" + f.replace("_", "-") for f in GenerateConfig.field_names()} <= flags
        assert "--seed" in flags and "--preset" in flags


def test_demo_runs_the_demo_preset(model_dir, capsys, monkeypatch):
    monkeypatch.setattr(cli, "load_model", lambda spec, common: zoo.load_model(model_dir)[:2])
    rc = cli.main(["demo", "--budget", "4", "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 0 and "2 workers (Alice, Bob)" in out and "forward passes: 4" in out


def test_a_small_model_runs_on_one_thread_and_the_count_is_restored(model_dir, capsys, monkeypatch):
    import torch

    from hogwild.driver import Hogwild

    seen = []
    run = Hogwild.run
    monkeypatch.setattr(Hogwild, "run", lambda self: (seen.append(torch.get_num_threads()), run(self))[1])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert cli.main(["solve", "--model", model_dir, "--budget", "2", "--plain", "--device", "cpu"]) == 0
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
