import json

import pytest

from hogwild import cli
from papercore import zoo


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
    assert rc == 0 and "independent" in out
    err = float(out.strip().splitlines()[-1].split()[-1])
    assert err < 1e-5
