import pytest

from autojudge.cli import main


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("mine", "train", "generate", "eval", "pipeline", "demo"):
        assert cmd in out


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["eval", "--judge", "/nonexistent/j"], "no judge.json"),
        (["train", "--mined", "/nonexistent/m"], "not found"),
        (["mine", "--num-problems", "0"], "num-problems"),
        (["mine", "--checker", "nope", "--num-problems", "1"], "unknown checker"),
        (["mine", "--data", "/nonexistent.jsonl"], "data file not found"),
    ],
)
def test_user_errors_exit_2_with_one_line(argv, needle, capsys):
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and needle in err[0]


CHAT = "{% for m in messages %}<|bos|>user: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
CHECKER = "def first_two(text, item):\n    return text[:2]\n"


@pytest.fixture(scope="module")
def saved_pair(tmp_path_factory):
    """A random target and draft saved as transformers folders, with a byte-level tokenizer that has a
    chat template, a two-problem JSONL file and a checker module."""
    from papercore.llm import zoo
    from papercore.llm.data import train_tokenizer

    root = tmp_path_factory.mktemp("pair")
    tok = train_tokenizer(["Q: 1+2? A: 3"], vocab_size=260)
    tok.chat_template = CHAT
    for name, seed, width in (("target", 1, 32), ("draft", 2, 16)):
        model = zoo.random_model("llama", seed=seed, vocab_size=260, hidden_size=width, num_layers=1)
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
    (root / "data.jsonl").write_text(
        '{"question": "1+2?", "answer": "3"}\n{"question": "2+2?", "answer": "4"}\n'
    )
    (root / "ajchk.py").write_text(CHECKER)
    return root


def _mine_args(root, out, *more):
    return ["mine", "--target", str(root / "target"), "--draft", str(root / "draft"), "--data",
            str(root / "data.jsonl"), "--checker", "ajchk:first_two", "--max-new-tokens", "6",
            "--min-per-class", "0", "--num-problems", "1", "--out", str(out), *more]  # fmt: skip


def test_mine_resume_checks_models_and_settings(saved_pair, tmp_path, monkeypatch, capsys):
    """A resume into a folder mined with other models or settings is refused with one line (issue
    #18, point 15); more problems, and --config resolved_config.json, resume it."""
    import json

    from autojudge.config import MineConfig, TaskConfig
    from autojudge.miner import load_mined

    monkeypatch.syspath_prepend(str(saved_pair))
    out = tmp_path / "mined"
    assert main(_mine_args(saved_pair, out)) == 0
    assert len(load_mined(out)) == 1
    assert TaskConfig.from_json(out / "resolved_config.json").max_new_tokens == 6
    assert MineConfig.from_json(out / "resolved_config.json").min_per_class == 0
    assert main(_mine_args(saved_pair, out, "--num-problems", "2")) == 0  # more problems: a resume
    assert len(load_mined(out)) == 2
    before = (out / "mined-000-of-001.jsonl").read_text()
    capsys.readouterr()
    for argv, needle in (
        (_mine_args(saved_pair, out, "--max-new-tokens", "7"), "max_new_tokens: 6 != 7"),
        (_mine_args(saved_pair, out, "--follow", "both"), "follow"),
        (_mine_args(saved_pair, out, "--no-chat-template"), "chat_template"),
        (_mine_args(saved_pair, out, "--checker", "gsm8k"), "checker"),
        (_mine_args(saved_pair, out, "--seed", "1"), "seed"),
        (_mine_args(saved_pair, out, "--draft", str(saved_pair / "target")), "another draft model"),
    ):
        assert main(argv) == 2, argv
        err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
        assert len(err) == 1 and needle in err[0], (needle, err)
    assert (out / "mined-000-of-001.jsonl").read_text() == before  # nothing written
    assert main(["mine", "--config", str(out / "resolved_config.json")]) == 0  # the same run: done already
    assert json.loads((out / "resolved_config.json").read_text())["options"]["num_problems"] == 2


def test_chat_template_is_used_and_the_flag_turns_it_off(saved_pair, tmp_path, monkeypatch):
    """Real models get their tokenizer's chat template (issue #18, point 16)."""
    from transformers import AutoTokenizer

    from autojudge.miner import load_mined

    monkeypatch.syspath_prepend(str(saved_pair))
    tok = AutoTokenizer.from_pretrained(saved_pair / "target")
    assert main(_mine_args(saved_pair, tmp_path / "chat")) == 0
    assert main(_mine_args(saved_pair, tmp_path / "plain", "--no-chat-template")) == 0
    chat = load_mined(tmp_path / "chat")[0]["prompt_ids"]
    plain = load_mined(tmp_path / "plain")[0]["prompt_ids"]
    assert chat == tok("<|bos|>user: 1+2?\nassistant:", add_special_tokens=False).input_ids
    assert plain == tok("1+2?").input_ids


def test_chat_template_flag_everywhere_and_generate_takes_spec_config(saved_pair, capsys):
    from autojudge.cli import app

    subs = next(a for a in app.parser()._actions if isinstance(getattr(a, "choices", None), dict)).choices
    for cmd in ("mine", "eval", "pipeline", "generate"):
        assert "--no-chat-template" in subs[cmd].format_help(), cmd
    argv = ["generate", "1+2?", "--target", str(saved_pair / "target"), "--draft", str(saved_pair / "draft"),
            "--window", "3", "--max-new-tokens", "5", "--mode", "accept_all"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "[accept_all, W=3] 5 tokens" in out
    assert main(argv[:-2] + ["--mode", "judge", "--judge", str(saved_pair)]) == 2
    assert "no judge.json" in capsys.readouterr().err
    assert main(argv + ["--threshold-index", "3"]) == 2
    assert "judge only" in capsys.readouterr().err


def test_pipeline_end_to_end_writes_results_and_its_configs(saved_pair, tmp_path, monkeypatch, capsys):
    """mine -> train -> eval through the CLI, the demo's path on two tiny random models."""
    import json

    from autojudge.config import EvalConfig, JudgeConfig, MineConfig, TaskConfig

    monkeypatch.syspath_prepend(str(saved_pair))
    out = tmp_path / "run"
    argv = ["pipeline", "--target", str(saved_pair / "target"), "--draft", str(saved_pair / "draft"),
            "--data", str(saved_pair / "data.jsonl"), "--checker", "ajchk:first_two", "--num-problems", "3",
            "--eval-problems", "2", "--max-new-tokens", "8", "--min-per-class", "3", "--val-fraction", "0.34",
            "--c-grid", "0.1", "1", "--window", "3", "--threshold-indices", "0", "25", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads((out / "results.json").read_text())
    assert {r["mode"] for r in rows} >= {"target", "lossless", "judge", "topk", "accept_all"}
    lossless = next(r for r in rows if r["mode"] == "lossless")
    assert lossless["agreement_with_target"] == 1.0
    path = out / "resolved_config.json"
    assert EvalConfig.from_json(path).threshold_indices == [0, 25] and JudgeConfig.from_json(path).c_grid == (
        0.1,
        1.0,
    )
    assert MineConfig.from_json(path).min_per_class == 3 and TaskConfig.from_json(path).max_new_tokens == 8
    assert (out / "judge" / "judge.json").is_file() and (out / "mined" / "mining.json").is_file()
    png = b"\x89PNG\r\n\x1a\n"
    assert (out / "pareto.png").read_bytes()[:8] == png and (out / "judge" / "train.png").read_bytes()[
        :8
    ] == png
    # --no-plot: the same JSON results, no figures
    common = ["--target", str(saved_pair / "target"), "--draft", str(saved_pair / "draft"), "--no-plot"]
    assert (
        main(["train", "--mined", str(out / "mined"), "--out", str(tmp_path / "j"), "--c-grid", "1", *common])
        == 0
    )
    assert (tmp_path / "j" / "train_report.json").is_file() and not (tmp_path / "j" / "train.png").exists()
    argv = ["eval", "--judge", str(out / "judge"), "--out", str(tmp_path / "e"), "--data", str(saved_pair / "data.jsonl"),
            "--checker", "ajchk:first_two", "--num-problems", "1", "--max-new-tokens", "4", "--window", "3",
            "--threshold-indices", "0", *common]  # fmt: skip
    assert main(argv) == 0
    assert (tmp_path / "e" / "results.json").is_file() and not (tmp_path / "e" / "pareto.png").exists()
