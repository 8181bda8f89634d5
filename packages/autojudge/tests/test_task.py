import random

from autojudge import task


def test_problems_are_seeded_and_in_range():
    a, b = task.problems(50, seed=3), task.problems(50, seed=3)
    assert a == b and a != task.problems(50, seed=4)
    for p in a:
        assert 2 <= len(p.steps) <= 4 and all(0 <= v <= 99 for v in p.values())
    p = task.Problem(7, (("*", 3), ("-", 8)))
    assert p.values() == [7, 21, 13] and p.prompt == "Q: a=7, b*B3, c-C8.\nA:"
    # every step label occurs exactly once in the prompt (the format's one-token lookup)
    for q in a:
        assert all(q.prompt.count(v) == 1 for v in task.VARS[: len(q.steps) + 1])
        assert all(q.prompt.count(v.upper()) == 1 for v in task.VARS[1 : len(q.steps) + 1])


def test_every_style_renders_the_same_answer_and_oracle():
    p = task.Problem(7, (("*", 3), ("-", 8)))
    rng = random.Random(0)
    texts = {task.render(p, rng, s) for s in (task.TARGET_STYLE, task.DRAFT_STYLE) for _ in range(20)}
    assert len(texts) > 3 and any(" = " in t for t in texts) and any("*B3=21" in t for t in texts)
    for t in texts:
        assert t.endswith("#### 13") and task.parse_values(p, t) == [7, 21, 13]
        assert task.consistent_prefix(p, [7, 21, 13], t, ended=True)
    cur = " We have a=7. So b*B3=21. So c-C8=13. Answer: 13. #### 13"
    assert task.parse_values(p, cur) == [7, 21, 13]
    assert task.oracle_important(p, cur, " We have a=7. T") is False  # connective
    assert task.oracle_important(p, cur, " We have a=7. So b*B3 ") is False  # spacing around '='
    assert task.oracle_important(p, cur, " We have a=7. So b*B3=2") is False  # prefix of 21
    assert task.oracle_important(p, cur, " We have a=7. So b*B3=22") is True  # digit
    assert task.oracle_important(p, cur, " We have a=7. So b+") is True  # operator
    assert task.oracle_important(p, cur, " We have a=7. So b*B3=21. So c-C9") is True  # operand
    assert task.oracle_important(p, cur, " We have a=7. So b*B3=21. #") is True  # skipped step
    assert task.oracle_important(p, cur, " We have a=7. So b*B3=21. So c-C8=13.", ended=True) is True
    assert task.oracle_important(p, cur, " We have a=7. So b*B3=21. So c-C8=13. #") is False  # no Answer line
    assert task.oracle_important(p, "garbage", " x") is None


def test_oracle_takes_the_written_history_as_given():
    """Segments before the mismatch are not re-judged: after an earlier accepted swap left a wrong
    operator in the text, a style swap later is still unimportant and a digit swap still important."""
    p = task.Problem(7, (("*", 3), ("-", 8)))
    cur = " Then b+B3=21. So c-C8=13. Answer: 13. #### 13"  # 'b+' deviates from the prompt's 'b*'
    assert task.oracle_important(p, cur, " Then b+B3=21. T") is False  # connective
    assert task.oracle_important(p, cur, " Then b+B3=21. So c-C8 ") is False  # spacing
    assert task.oracle_important(p, cur, " Then b+B3=21. So c-C8=14") is True  # digit
    assert task.oracle_important(p, cur, " Then b+B3=21. So c-C8=13. #") is False  # no Answer line
    assert task.oracle_important(p, cur, " Then b+B3=21. So c-C8=1.") is True  # early '.': value 1, not 13
    assert task.oracle_important(p, cur, " Then b+B3=21. So c-C8=13. Answer: 1.") is True


def test_small_variant_and_unchanged_default():
    """``builtin-small`` (the demo's): one step, values up to 19, its own uids; the default task's
    problems are what they were (the same generator seeds and uids)."""
    import pytest

    small = task.problems(30, seed=0, split="mine", variant="builtin-small")
    assert all(len(p.steps) == 1 and all(0 <= v <= 19 for v in p.values()) for p in small)
    assert small[0].uid == "mine-builtin-small-0-0"
    full = task.problems(3, seed=0, split="mine")
    assert full[0].uid == "mine-0-0" and full == [
        task.make_problem(random.Random(f"mine-0-{i}"), f"mine-0-{i}") for i in range(3)
    ]
    docs = task.corpus(task.TARGET_STYLE, 5, 0, variant="builtin-small")
    assert all(d.count("#### ") == 1 and d.startswith("Q: a=") for d in docs)
    with pytest.raises(ValueError, match="variant"):
        task.problems(1, variant="huge")
