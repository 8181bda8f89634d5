import pytest
import torch

from hogwild.cache import SharedCache
from hogwild.config import GenerateConfig
from hogwild.driver import Hogwild, generate, step_ended
from hogwild.model import Engine
from hogwild.prompts import CHECK_QUESTION, HISTORY_HEADER, SEPARATOR
from hogwild.rope import RopeSpec

BOS, EOS, VOCAB = 256, 257, 258


class CharTokenizer:
    """One token per character (code points < 256), plus BOS and EOS."""

    bos_token_id, eos_token_id, pad_token_id = BOS, EOS, EOS
    chat_template = None

    def encode(self, text, add_special_tokens=True):
        return ([BOS] if add_special_tokens else []) + [ord(c) for c in text]

    def decode(self, ids):
        return "".join(chr(i) for i in ids if i < 256)


class ScriptedEngine(Engine):
    """No model: each worker 'writes' a fixed script, one character per forward pass. The real
    SharedCache does the bookkeeping (with zero layers there are no tensors to fill)."""

    def __init__(self, scripts, runner_up=None, finisher_text="42}"):
        spec = RopeSpec(torch.ones(1))
        super().__init__(None, SharedCache(0, 1, 2, spec), backend="torch")
        self.scripts, self.runner_up, self.finisher_text = scripts, runner_up, finisher_text
        self.plans, self.completions = [], []

    def _forward(self, plan, all_logits):
        self.plans.append(plan)
        logits = torch.zeros(len(plan.rows), 1, VOCAB)
        for i, row in enumerate(plan.rows):
            kind, _, name = row.write_to.partition(":")
            name = name if kind in ("step", "ws") else None
            if name in self.scripts:
                script = self.scripts[name]
                k = self._written(name)
                logits[i, 0, ord(script[k % len(script)])] = 10.0
                if self.runner_up:
                    logits[i, 0, ord(self.runner_up)] = 5.0
        return logits

    def _written(self, name):
        return sum(1 for p in self.plans[:-1] for r in p.rows if r.write_to in (f"step:{name}", f"ws:{name}"))

    def complete(self, tokens, max_new_tokens, suppress=()):
        self.completions.append(list(tokens))
        return [ord(c) for c in self.finisher_text][:max_new_tokens]


def run(scripts, **kw):
    engine = ScriptedEngine(scripts, **{k: kw.pop(k) for k in ("runner_up", "finisher_text") if k in kw})
    cfg = GenerateConfig(workers=len(scripts), names=tuple(scripts), few_shot=False, **kw)
    driver = Hogwild(engine, CharTokenizer(), "What is 6 * 7?", cfg)
    return driver, driver.run(), engine


def test_step_detection():
    assert step_ended("We add them.\n\n")
    assert step_ended("So $x = 2$.)\n\n")  # closing marks are allowed after the period
    assert step_ended("It is **done.**\n\n")
    assert not step_ended("Let x be\n\n")
    assert not step_ended("Done.\n")


def test_steps_move_into_history_with_exact_lengths():
    driver, res, engine = run(
        {"Alice": "Ab.\n\nCd.\n\n", "Bob": "xyz"}, budget=20, finisher=False, check_every=0
    )
    prompt_len = len(driver.prompt_text) + 1  # + BOS
    alice = [s for s in res.history if s.worker == "Alice"]
    assert [s.index for s in alice] == [1, 2, 3, 4]
    prefix1 = "**Alice [1]:** Hi, I'm Alice. Here is how we can split the work: "
    assert alice[0].text == prefix1 + "Ab.\n\n"
    assert alice[1].text == "**Alice [2]:** Cd.\n\n"
    assert [s.finished_at for s in alice] == [5, 10, 15, 20]
    assert [s.text for s in alice[2:]] == ["**Alice [3]:** Ab.\n\n", "**Alice [4]:** Cd.\n\n"]
    cache = engine.cache
    # history = prompt + finished steps (the latest step moves after the pass that writes its last token)
    moved = sum(len(s.text) for s in alice if s.finished_at < res.forward_passes)
    assert cache.length("common") == prompt_len + moved
    assert driver.prompt_text.endswith(HISTORY_HEADER)
    # Bob never finished a step: his block holds his whole text except the last sampled token
    assert cache.length("step:Bob") == len(res.workers["Bob"]) - 1
    assert res.finished_by == "budget" and res.answer is None and res.forward_passes == 20
    # the views: own block last, the other's block and separator before the own header
    assert engine.plans[-1].rows[0].view == [
        "common",
        "others_header",
        "step:Bob",
        "sep:Bob",
        "own_header",
        "step:Alice",
    ]


def test_positions_are_local_to_the_write_block():
    driver, res, engine = run({"A": "a.\n\n", "B": "b"}, budget=8, finisher=False, check_every=0)
    first = engine.plans[2]  # plans 0/1: prompt and headers; 2: the workers' opening lines
    n_a = len(first.rows[0].tokens)
    assert first.position_ids[0, -n_a:].tolist() == list(range(n_a))
    nxt = engine.plans[3]
    assert nxt.position_ids[:, -1].tolist() == [n_a, len(first.rows[1].tokens)]


def test_answer_stops_generation():
    driver, res, engine = run({"Alice": "So it is \\boxed{42}. More text.", "Bob": "hmm"}, budget=100)
    assert res.answer == "42" and res.finished_by == "answer"
    assert res.forward_passes == len("So it is \\boxed{42}")
    assert engine.completions == []  # no finisher needed


def test_finisher_runs_when_budget_is_exhausted():
    driver, res, engine = run(
        {"Alice": "Think.\n\n", "Bob": "Hmm.\n\n"}, budget=12, finisher_text="42} and more"
    )
    assert res.finished_by == "finisher" and res.answer == "42"
    text = CharTokenizer().decode(engine.completions[0])
    assert text.startswith(driver.prompt_text) and text.endswith("the final answer is \\boxed{")
    assert "**Alice [1]:**" in text and SEPARATOR in text


def test_suppressed_tokens_are_never_sampled():
    driver, res, engine = run({"Alice": "#", "Bob": "b"}, budget=6, runner_up="x", finisher=False)
    assert "#" not in res.workers["Alice"].split("work: ")[1]
    assert res.workers["Alice"].endswith("xxxxxx") and res.workers["Bob"].endswith("bbbbbb")


def test_redundancy_check_and_budget_records():
    driver, res, engine = run(
        {"Alice": "One two.\n\n", "Bob": "z"},
        budget=40,
        check_every=12,
        record_at=(10, 30),
        finisher_text="7}",
    )
    checks = [s.index for s in res.history if s.text.startswith(f"**Alice [{s.index}]:** " + CHECK_QUESTION)]
    assert checks and checks[0] == 3  # 20 tokens written by the end of step 2 (>= 12): step 3 opens with it
    assert res.records == {10: "7", 30: "7"}
    assert len(engine.completions) == 3 and res.finished_by == "finisher"  # at 10, 30 and the end (40)
    assert engine.forward_passes == 40 + 2  # + prompt and header prefill passes
    driver, res, engine = run({"Alice": "Hm", "Bob": "z"}, budget=20, record_at=(20,), finisher_text="5}")
    assert len(engine.completions) == 1 and res.answer == "5"  # the record at the budget is reused


@pytest.mark.parametrize("layout", ["contiguous", "interleaved"])
def test_other_layouts_and_names(layout):
    names = {"Ann": "a.\n\n", "Ben": "b.\n\n", "Cy": "c"}
    driver, res, engine = run(names, budget=9, layout=layout, finisher=False, check_every=0)
    view = engine.plans[-1].rows[0].view
    if layout == "contiguous":
        assert view == ["common", "ws:Ben", "sep:Ben", "ws:Cy", "sep:Cy", "ws:Ann"]
        assert engine.cache.length("common") == len(driver.prompt_text) + 1  # nothing moves
    else:
        assert view == ["common", "step:Ann"]
        assert engine.cache.length("common") > len(driver.prompt_text) + 1
    assert set(res.workers) == set(names)


def test_bad_options_are_clear():
    with pytest.raises(ValueError, match="workers"):
        GenerateConfig(workers=0)
    with pytest.raises(ValueError, match="budget"):
        GenerateConfig(budget=0)
    with pytest.raises(ValueError, match="names"):
        GenerateConfig(workers=2, names=("A",))
    with pytest.raises(ValueError, match="layout"):
        GenerateConfig(layout="zigzag")

    class Lossy(CharTokenizer):
        def decode(self, ids):
            return super().decode(ids).replace("\n", " ")

    with pytest.raises(ValueError, match="cannot represent"):
        generate(ScriptedEngine({"Alice": "a"}), Lossy(), "q", workers=1, budget=2)


def test_the_seed_is_a_keyword_and_options_are_config_fields():
    def sampled(seed):
        engine = ScriptedEngine({"Alice": "ab", "Bob": "cd"}, runner_up="z")  # two likely tokens
        res = generate(engine, CharTokenizer(), "q", workers=2, budget=12, temperature=3.0, finisher=False,
                       few_shot=False, seed=seed)  # fmt: skip
        return res.workers

    assert sampled(1) == sampled(1) != sampled(2)
    with pytest.raises(TypeError, match="unknown option.*budgett"):
        generate(ScriptedEngine({"Alice": "a"}), CharTokenizer(), "q", budgett=3)
    # a config with names for 2 workers, asked for 3: the default names
    cfg = GenerateConfig(workers=2, names=("Ann", "Ben"), few_shot=False, budget=2)
    res = generate(ScriptedEngine({"Alice": "a"}), CharTokenizer(), "q", config=cfg, workers=3)
    assert list(res.workers) == ["Alice", "Bob", "Carol"]
