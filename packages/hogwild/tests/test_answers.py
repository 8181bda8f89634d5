import pytest

from hogwild.answers import complete_braces, extract_boxed, is_correct, normalize


def test_extract_boxed():
    assert extract_boxed("so \\boxed{\\frac{1}{2}} and then \\boxed{3}") == "3"
    assert extract_boxed("nested \\boxed{x^{2}+1}") == "x^{2}+1"
    assert extract_boxed("unfinished \\boxed{12") is None
    assert extract_boxed("first \\boxed{7} then \\boxed{8") == "7"
    assert extract_boxed("\\boxed{}") is None
    assert complete_braces("42} because") == "42"
    assert complete_braces("{a}b} x") == "{a}b"
    assert complete_braces("no end") is None


@pytest.mark.parametrize(
    "pred,gold,ok",
    [
        ("42", "42", True),
        ("$42$", "42", True),
        ("\\frac{1}{2}", "0.5", True),
        ("\\dfrac{3}{4}", "\\frac{3}{4}", True),
        ("1,024", "1024", True),
        ("\\text{5}", "5", True),
        ("41", "42", False),
        (None, "1", False),
        ("x+1", "x + 1", True),
    ],
)
def test_is_correct(pred, gold, ok):
    assert is_correct(pred, gold) is ok


def test_normalize_is_stable():
    assert normalize(" 12. ") == "12"
