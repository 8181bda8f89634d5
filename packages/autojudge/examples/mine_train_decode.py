"""AutoJudge end to end in seconds: mine labels, train a judge, decode with it, compare to lossless.

The models are two tiny random Llamas (``papercore.llm.zoo``) with a byte-level tokenizer, and the
"task" is scripted: the answer of a response is its first two characters, so a swapped-in draft
token there changes the answer (important) and one later does not (unimportant). With the trained
built-in pair the same calls run on the arithmetic task (``autojudge demo``).
"""

import torch

from autojudge import (
    EvalConfig,
    JudgeConfig,
    MineConfig,
    SpecConfig,
    SpeculativeDecoder,
    TaskConfig,
    builtin_items,
    encode_prompt,
    extract_features,
    format_table,
    greedy,
    label_stats,
    load_mined,
    mine,
    run_eval,
    train_judge,
)
from papercore.llm import zoo
from papercore.llm.data import train_tokenizer

torch.set_num_threads(1)  # tiny models: one thread is fastest
tok = train_tokenizer(["Q: a=7, b*B3. A: 21"], vocab_size=260)  # bytes only
target = zoo.random_model("llama", seed=1, vocab_size=260, hidden_size=64, num_layers=2)
draft = zoo.random_model("llama", seed=2, vocab_size=260, hidden_size=32, num_layers=1)


def first_two(text, item):
    """The scripted answer: the response's first two characters."""
    return text[:2]


task = TaskConfig(max_new_tokens=12)
path = mine(builtin_items(40), target, draft, tok, first_two, "ex-mined", MineConfig(min_per_class=10), task,
            num_problems=4, progress=False)  # fmt: skip
records = load_mined(path)
stats = label_stats(records)
print(
    f"mined {stats['mismatches']} mismatches in {stats['problems']} problems, {stats['important']} important"
)

judge, report = train_judge(
    extract_features(records, target, draft, progress=False), JudgeConfig(val_fraction=0.25)
)
print(f"judge: validation ROC-AUC {report['val_auc']:.2f}")

item = builtin_items(1, split="eval")[0]
prompt = encode_prompt(tok, item)
dec = SpeculativeDecoder(target, draft, tok, judge=judge)
lossless = dec.generate(prompt, SpecConfig(window=4, max_new_tokens=12))
assert lossless.tokens == greedy(
    target, prompt, 12, dec.eos
)  # lossless is exactly the target's greedy output
judged = dec.generate(
    prompt, SpecConfig(window=4, mode="judge", threshold=judge.threshold(20), max_new_tokens=12)
)
print(f"tokens per cycle: lossless {lossless.accepted_per_cycle:.2f}, judge {judged.accepted_per_cycle:.2f}")

rows = run_eval(builtin_items(4, split="eval"), target, draft, tok, first_two, judge,
                EvalConfig(window=4, threshold_indices=[0, 13, 25], top_ks=(2,)), task, progress=False)  # fmt: skip
print(format_table(rows))
