"""Two workers over one shared KV cache, on the built-in zoo model (CPU, a few seconds).

1. The mechanism, checked: worker B writes a few tokens seeing only the prompt; worker A then feeds
   its tokens with the view [prompt, B, A]. A's keys/values were never copied or re-rotated, yet its
   logits equal a plain forward pass over the concatenated tokens.
2. The driver: ``hogwild.generate`` with two workers in the combined layout for a small budget (the
   zoo model was trained on Python source, so the text shows the mechanics, not collaboration).

Run: python packages/hogwild/examples/shared_cache.py
"""

import torch

import hogwild
from hogwild import Engine, GenerateConfig, Row
from papercore.llm import zoo

torch.manual_seed(0)
torch.set_num_threads(1)  # a tiny model: one thread beats a thread pool's hand-offs
model, tok = zoo.load("tiny")  # trained once on the standard library's source, then cached

# 1. one forward pass of two rows whose views differ
engine = Engine(model, backend="torch")
for block in ("prompt", "A", "B"):
    engine.cache.create(block)
prompt, b_tokens, a_tokens = tok.encode("def add(a, b):"), tok.encode("    return"), tok.encode(" a +")
engine.step([Row("prompt", ["prompt"], prompt)])
engine.step([Row("B", ["prompt", "B"], b_tokens)])  # B sees only the prompt
logits = engine.step([Row("A", ["prompt", "B", "A"], a_tokens)])  # A sees the prompt and B
with torch.no_grad():
    plain = model(torch.tensor([prompt + b_tokens + a_tokens])).logits[0, -1]
err = (logits[0] - plain).abs().max().item()
print(f"A's next-token logits vs a plain forward over prompt+B+A: max abs difference {err:.1e}")
assert err < 1e-4
print("cache blocks:", engine.cache.lengths())

# 2. the driver: two workers, combined layout, 24 forward passes, sampled with a seed
cfg = GenerateConfig(workers=2, budget=24, temperature=0.8, few_shot=False, check_every=16)
res = hogwild.generate(model, tok, "What is 17 * 23?", config=cfg, seed=1)
for name, text in res.workers.items():
    print(f"--- {name}\n{text.strip()[:200]}")
print(
    f"answer: {res.answer} (by {res.finished_by}), forward passes: {res.forward_passes}, tokens: {res.tokens}"
)
