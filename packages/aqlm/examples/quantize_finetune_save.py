"""AQLM end to end in seconds: quantize, fine-tune with code updates, save, load back.

The model is the papercore zoo ``tiny`` Llama (trained on the standard-library corpus on first
use, then cached); the calibration and fine-tuning data are windows of that corpus. The settings
are small so the script runs in seconds on a CPU; see the README for realistic ones.
"""

import tempfile

import torch
from transformers import AutoModelForCausalLM

import aqlm
from papercore.llm import zoo
from papercore.llm.data import eval_windows, get_calibration_data, get_eval_stream
from papercore.llm.metrics import perplexity

torch.manual_seed(0)
teacher, tok = zoo.load("tiny")
model, _ = zoo.load("tiny")
calib = get_calibration_data("stdlib", tok, nsamples=16, seqlen=64, max_chars=200_000)
test = eval_windows(get_eval_stream("stdlib", tok), 128, max_windows=16)

# 1x8g4: one codebook of 256 vectors of 4 weights: 2 bits of codes per weight (plus codebooks).
config = aqlm.AQLMConfig.from_scheme(
    "1x8g4", max_epochs=2, steps_per_epoch=10, init_max_iter=10, finetune_max_epochs=1, finetune_batch_size=4
)
report = aqlm.quantize_(model, config, calib, progress=False)
bits = aqlm.model_bits(model)["quantized_linears_bits_per_parameter"]
print(
    f"quantized {len(report.layers)} linears: {bits:.2f} bits per weight (fp16 codebooks and scales counted)"
)
print(
    f"perplexity {perplexity(teacher, test, progress=False):.2f} -> {perplexity(model, test, progress=False):.2f}"
)

# End-to-end fine-tuning: KL to the original model; every 2 steps at most 1% of the codes move.
tune = aqlm.DistillConfig(epochs=1, lr=1e-4, batch_size=4, code_update_every=2, max_code_change=0.01)
res = aqlm.distill_(model, teacher, calib, tune, progress=False)
print(f"fine-tuned {res.steps} steps; perplexity {perplexity(model, test, progress=False):.2f}")

with tempfile.TemporaryDirectory() as folder:
    aqlm.save_quantized(model, folder, tokenizer=tok)  # the upstream AQLM format
    for loaded in (aqlm.load_quantized(folder), AutoModelForCausalLM.from_pretrained(folder)):
        with torch.no_grad():
            assert torch.equal(loaded(test[:2]).logits, model(test[:2]).logits)
print("saved, and loaded back by aqlm.load_quantized and transformers: same logits")
