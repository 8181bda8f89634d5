"""Calibrate AQUA-KV predictors for the zoo ``tiny`` model on a few windows of the stdlib corpus,
then compare the chunked-feeding perplexity of fp16, HIGGS-only and AQUA-KV caches at the same bits.

Seconds on a CPU (small calibration set; ``aquakv calibrate`` uses 32 x 256 tokens for zoo models).
"""

import tempfile

from aquakv import AquaKVConfig, CalibrationConfig, calibrate, calibration_windows
from aquakv.evaluate import cache_factory, chunked_perplexity, storage_report
from papercore.llm import zoo
from papercore.llm.data import eval_windows, get_eval_stream

model, tok = zoo.load("tiny")
cfg = AquaKVConfig(buffer_size=32)
calib = CalibrationConfig(nsamples=8, seqlen=128, valid_nsamples=2)
windows = calibration_windows(tok, calib, max_chars=200_000)  # a seeded ~200k-character subset of the corpus
res = calibrate(
    model, windows, cfg, calib, out_dir=tempfile.mkdtemp(prefix="aquakv-example-"), progress=False
)
for r in res.layers:
    print(r.as_dict())
test = eval_windows(get_eval_stream("stdlib", tok), 128, max_windows=2)
for method in ("fp16", "higgs", "aquakv"):
    factory = cache_factory(method, model, res.predictors, cfg)
    ppl, cache = chunked_perplexity(model, test, factory, chunk_size=32, batch_size=2)
    bits = storage_report(model, cache, cfg).get("bits_per_value", 16.0)
    print(f"{method:>7}: perplexity {ppl:.3f} at {bits:.2f} bits per value")
