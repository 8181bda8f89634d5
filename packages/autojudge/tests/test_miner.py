import json

from autojudge.data import Item
from autojudge.miner import _read_done, label_stats, mine_one

EOS = 1


class Scripted:
    """A lookup-table LM: the next token is ``table[last token]``."""

    def __init__(self, table):
        self.table, self.generations = table, 0

    def predictions(self, seq):
        return [-1] + [self.table.get(t, EOS) for t in seq]

    def continue_greedy(self, seq, max_new, eos):
        self.generations += 1
        out = []
        while len(out) < max_new:
            out.append(self.table[(out or seq)[-1]])
            if out[-1] in eos:
                break
        return out


TARGET = {10: 20, 20: 21, 21: 22, 22: 23, 23: EOS, 30: 22, 24: EOS}
decode = lambda ids: " ".join(map(str, ids))
checker = lambda text, item: [t for t in text.split() if t != str(EOS)][-1]  # last token before EOS


def _run(draft_table, max_new=10):
    t = Scripted(TARGET)
    rec = mine_one(t, Scripted(draft_table), [10], decode, checker, Item("x", ""), max_new, {EOS})
    return rec, t


def test_unimportant_swap_takes_the_alternative_then_important_keeps_y():
    # y = 10 | 20 21 22 23 EOS. Draft: 20->30 (target continues 30 22 23: same answer) then 22->24 (answer 24).
    rec, t = _run({10: 20, 20: 30, 30: 22, 22: 24, 23: EOS, 21: 22, 24: EOS})
    ms = [(m["pos"], m["important"], m["target_tok"], m["draft_tok"]) for m in rec["mismatches"]]
    assert ms == [(2, False, 21, 30), (4, True, 23, 24)]
    assert rec["response_ids"] == [20, 30, 22, 23, EOS]  # the unimportant alternative, not the 24 one
    assert rec["target_response_ids"] == [20, 21, 22, 23, EOS]
    assert rec["reference_answer"] == "23"
    assert rec["target_generations"] == 3 == t.generations  # reference + one per examined mismatch


def test_eos_swap_is_labelled_without_a_target_call_and_stops():
    # Draft ends early at position 4 (EOS instead of 23): answer 22 != 23 -> important; the search stops.
    rec, t = _run({10: 20, 20: 30, 30: 22, 22: EOS, 23: 24, 21: 22})
    ms = [(m["pos"], m["important"], m["draft_tok"]) for m in rec["mismatches"]]
    assert ms == [(2, False, 30), (4, True, EOS)]
    assert rec["target_generations"] == 2 == t.generations
    assert rec["response_ids"] == [20, 30, 22, 23, EOS]


def test_no_mismatch_when_models_agree_and_budget_cut():
    rec, _ = _run(dict(TARGET))
    assert rec["mismatches"] == [] and rec["target_generations"] == 1
    rec, _ = _run(dict(TARGET), max_new=2)
    assert rec["response_ids"] == [20, 21]


def test_torn_line_is_dropped_on_resume(tmp_path):
    f = tmp_path / "mined-000-of-001.jsonl"
    good = {"uid": "a", "mismatches": [{"important": True, "oracle": True}], "target_generations": 2}
    f.write_text(json.dumps(good) + "\n" + '{"uid": "b", "mism')
    done = _read_done(f)
    assert list(done) == ["a"] and f.read_text().count("\n") == 1
    stats = label_stats(list(done.values()))
    assert stats["oracle_agreement"] == 1.0 and stats["important"] == 1


def _run_follow(draft_table, follow):
    t = Scripted(TARGET)
    rec = mine_one(t, Scripted(draft_table), [10], decode, checker, Item("x", ""), 10, {EOS}, follow)
    return (
        [(m["pos"], m["important"], m["draft_tok"], m.get("path", "alternative")) for m in rec["mismatches"]],
        rec,
        t,
    )


def test_follow_target_labels_along_the_targets_own_response():
    # Along y0 = 10 | 20 21 22 23 EOS: 2 (30: unimportant), then 4 (EOS: important, no call), then 5
    # (24: important). The paper's search stops after the swapped-in EOS; this one goes on.
    draft = {10: 20, 20: 30, 30: 22, 22: EOS, 23: 24, 21: 22}
    ms, rec, t = _run_follow(draft, "target")
    assert ms == [(2, False, 30, "target"), (4, True, EOS, "target"), (5, True, 24, "target")]
    assert rec["response_ids"] == rec["target_response_ids"] == [20, 21, 22, 23, EOS]
    assert rec["target_generations"] == 3 == t.generations


def test_follow_both_keeps_the_union_once_per_context():
    # The alternative search finds 2 (same context as on y0: kept once) and 4 after "30 22" (a
    # different context from y0's "21 22", so the target-path mismatch at 4 is kept too).
    draft = {10: 20, 20: 30, 30: 22, 22: 24, 23: EOS, 21: 22, 24: EOS}
    ms, rec, _ = _run_follow(draft, "both")
    assert ms == [(2, False, 30, "alternative"), (4, True, 24, "alternative"), (4, True, 24, "target")]
    assert rec["response_ids"] == [20, 30, 22, 23, EOS] and rec["target_response_ids"] == [
        20,
        21,
        22,
        23,
        EOS,
    ]
    import pytest

    with pytest.raises(ValueError, match="follow"):
        _run_follow(draft, "sideways")


def test_a_failing_checker_on_the_targets_answer_skips_the_problem():
    """No reference answer is no label: the problem is skipped and counted, never mined as 'every
    alternative unimportant' (issue #18, point 12)."""
    draft = {10: 20, 20: 30, 30: 22, 22: 24, 23: EOS, 21: 22, 24: EOS}
    for bad in (lambda text, item: None, lambda text, item: 1 / 0):
        t = Scripted(TARGET)
        rec = mine_one(t, Scripted(draft), [10], decode, bad, Item("x", ""), 10, {EOS}, "both")
        assert rec["mismatches"] == [] and rec["reference_failed"]
        assert rec["target_generations"] == 1 == t.generations  # the target's own response only
    assert label_stats([rec])["reference_failed"] == 1


def _items(n):
    return [Item(str(i), " ".join(str(3 + (7 * i + j) % 50) for j in range(4))) for i in range(n)]


def test_mine_fails_when_too_many_reference_answers_are_missing(random_pair, list_tokenizer, tmp_path):
    import pytest

    from autojudge.config import MineConfig, TaskConfig
    from autojudge.miner import load_mined, mine

    target, draft = random_pair
    first_two = lambda text, item: text.split()[:2] if item.uid not in ("0", "1") else None
    task = TaskConfig(max_new_tokens=6)
    with pytest.raises(ValueError, match=r"no answer .* on 2 of 4 problems \(50%"):
        mine(_items(4), target, draft, list_tokenizer(64, eos=0), first_two, tmp_path / "a",
             MineConfig(min_per_class=0), task, progress=False)  # fmt: skip
    mine(_items(4), target, draft, list_tokenizer(64, eos=0), first_two, tmp_path / "b",
         MineConfig(min_per_class=0, max_failed_share=0.5), task, progress=False)  # fmt: skip
    recs = load_mined(tmp_path / "b")
    stats = label_stats(recs)
    assert stats["problems"] == 4 and stats["reference_failed"] == 2
    assert all(bool(r["mismatches"]) != bool(r.get("reference_failed")) for r in recs)


def test_mine_goes_on_until_both_labels_have_enough_mismatches(random_pair, list_tokenizer, tmp_path):
    """The demo on a fresh machine stopped with 'one class only'; mining now continues past
    --num-problems until both labels have min_per_class mismatches, or fails clearly at the cap
    (issue #18, point 11)."""
    import pytest

    from autojudge.config import MineConfig, TaskConfig
    from autojudge.miner import load_mined, mine

    target, draft = random_pair
    first_two = lambda text, item: tuple(text.split()[:2])  # a swap in the first two tokens matters
    tok, task = list_tokenizer(64, eos=0), TaskConfig(max_new_tokens=8)
    cfg = MineConfig(min_per_class=6, max_problems=30)
    mine(_items(30), target, draft, tok, first_two, tmp_path / "m", cfg, task, num_problems=1, progress=False)
    stats = label_stats(load_mined(tmp_path / "m"))
    assert 1 < stats["problems"] < 30
    assert min(stats["important"], stats["mismatches"] - stats["important"]) >= 6
    with pytest.raises(ValueError, match="max_problems 2"):
        mine(_items(30), target, draft, tok, first_two, tmp_path / "n", cfg.replace(max_problems=2), task,
             num_problems=1, progress=False)  # fmt: skip
    assert label_stats(load_mined(tmp_path / "n"))["problems"] == 2  # what was mined is kept
