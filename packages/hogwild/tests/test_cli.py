import json

import pytest

from hogwild import cli
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
    rc = cli.main(["eval", "--dataset", str(data), "--model", model_dir, "--budgets", "3", "5", "--out",
                   str(tmp_path / "out"), "--device", "cpu"])  # fmt: skip
    assert rc == 0
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(report["accuracy"]) == {"3", "5"} and len(report["problems"]) == 2
    assert report["problems"][1]["gold"] == "5"
    assert (tmp_path / "out" / "resolved_config.json").is_file()


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
    rc = cli.main(["eval", "--dataset", str(data), "--model", model_dir, "--budgets", "2", "--out",
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
