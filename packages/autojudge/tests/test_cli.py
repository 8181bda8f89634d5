import pytest

from autojudge.cli import main


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
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
