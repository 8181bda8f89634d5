import random

from autojudge import task


def test_problems_are_seeded_and_in_range():
    a, b = task.problems(50, seed=3), task.problems(50, seed=3)
    assert a == b and a != task.problems(50, seed=4)
    for p in a:
        assert 2 <= len(p.steps) <= 4 and all(0 <= v <= 99 for v in p.values())
    p = task.Problem(7, (("*", 3), ("-", 8)))
    assert p.values() == [7, 21, 13] and p.prompt == "Q: a=7; b=a*3; c=b-8. c?\nA:"


def test_every_style_renders_the_same_answer_and_oracle():
    p = task.Problem(7, (("*", 3), ("-", 8)))
    rng = random.Random(0)
    texts = {task.render(p, rng, s) for s in (task.TARGET_STYLE, task.DRAFT_STYLE) for _ in range(20)}
    assert len(texts) > 3
    for t in texts:
        assert t.endswith("#### 13") and task.parse_values(p, t) == [7, 21, 13]
        assert task.consistent_prefix(p, [7, 21, 13], t, ended=True)
    cur = " We have a=7. So b=a*3=21. So c=b-8=13. Answer: 13. #### 13"
    assert task.oracle_important(p, cur, " We have a=7. T") is False  # connective
    assert task.oracle_important(p, cur, " We have a=7. So b=3") is False  # operand order of '*'
    assert task.oracle_important(p, cur, " We have a=7. So b=a*3=2") is False  # prefix of 21
    assert task.oracle_important(p, cur, " We have a=7. So b=a*3=22") is True  # digit
    assert task.oracle_important(p, cur, " We have a=7. So b=a*3=21. So c=8") is True  # '-' does not commute
    assert task.oracle_important(p, cur, " We have a=7. So b=a*3=21. So c=b-8=13.", ended=True) is True
    assert task.oracle_important(p, "garbage", " x") is None
