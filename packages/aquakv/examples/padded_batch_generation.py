"""Generate for a left-padded batch with a HIGGS-quantized KV cache (no predictors, no calibration)
and check that each row gets exactly what the same prompt gets alone; print the cache's memory.

Runs in seconds on a CPU with the zoo ``tiny`` model.
"""

import torch

from aquakv import AquaKVCache, AquaKVConfig
from papercore.llm import zoo
from papercore.llm.hf_compat import cache_kwarg

model, tok = zoo.load("tiny")
cfg = AquaKVConfig(buffer_size=16)  # chunks of 16 tokens after the 4-token sink
prompts = ["import os\n", "def read_config(path):\n    with open(path) as f:\n"]
batch = tok(prompts, return_tensors="pt", padding=True, padding_side="left")
kw = dict(max_new_tokens=32, do_sample=False, repetition_penalty=1.2, pad_token_id=tok.pad_token_id)
with torch.no_grad():
    cache = AquaKVCache(model, None, cfg)  # predictors=None: HIGGS-only
    out = model.generate(**batch, **kw, **{cache_kwarg(model): cache})
    width = batch.input_ids.shape[1]
    for i, prompt in enumerate(prompts):
        ids = tok(prompt, return_tensors="pt").input_ids
        alone = model.generate(ids, **kw, **{cache_kwarg(model): AquaKVCache(model, None, cfg)})
        assert torch.equal(out[i, width:], alone[0, ids.shape[1] :]), f"row {i} differs from its prompt alone"
        print(repr(prompt + tok.decode(out[i, width:])))
mem = cache.memory()
print(
    f"{mem['quantized_tokens']} of {cache.get_seq_length()} slots quantized per row: {mem['quantized']:,} B of codes and "
    f"scales ({cache.measured_bytes_per_token():.0f} B/token), {mem['fp']:,} B in the model dtype (sinks and buffer)"
)
