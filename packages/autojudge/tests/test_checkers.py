import logging

from autojudge.checkers import FAILED, CodeChecker, gsm8k_answer, is_correct, load_checker, safe_answer
from autojudge.data import Item


def test_gsm8k_answer():
    assert gsm8k_answer("so 3+4=7 #### 7") == "7"
    assert gsm8k_answer("#### 1,234.50") == "1234.5"
    assert gsm8k_answer(r"thus \boxed{12} or \boxed{-3}") == "-3"
    assert gsm8k_answer("no answer") is None


def test_code_checker_pass_fail_timeout_memory():
    chk = CodeChecker(timeout=2.0, memory_mb=256)
    item = Item("c", "", gold="assert f(2) == 4")
    assert chk("```python\ndef f(x):\n    return 2 * x\n```", item) is True
    assert chk("def f(x):\n    return x + 3", item) is False
    assert chk("import time\ntime.sleep(30)\ndef f(x): return 4", item) is False
    assert chk("x = bytearray(10**9)\ndef f(x): return 4", item) is False


def test_crashing_checker_counts_as_failure(caplog):
    def bad(text, item):
        raise RuntimeError("boom")

    with caplog.at_level(logging.WARNING):
        assert safe_answer(bad, "x", Item("u", "")) == FAILED
    assert "boom" in caplog.text
    assert not is_correct(FAILED, Item("u", "", gold=FAILED))
    assert load_checker("gsm8k") is gsm8k_answer
    assert load_checker("autojudge.checkers:gsm8k_answer") is gsm8k_answer


def test_consistent_answer_rejects_contradictory_restatements():
    from autojudge.checkers import consistent_answer, gsm8k_answer, load_checker

    assert consistent_answer(" So c=42. Answer: 42. #### 42") == "42"
    assert consistent_answer(" So c=42. #### 42") == "42"
    bad = " So c=42. Answer: 12. #### 42"
    assert gsm8k_answer(bad) == "42" and consistent_answer(bad) is None
    assert consistent_answer(" no number") is None
    assert load_checker("auto", "builtin") is consistent_answer
    assert load_checker("auto", "gsm8k") is gsm8k_answer
