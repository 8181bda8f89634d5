import math

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from aquakv.config import AquaKVConfig
from aquakv.evaluate import cache_factory, chunked_perplexity
from aquakv.kivi import KIVICache, _quant
from papercore.kernels.packing import unpack_bits
from papercore.llm import zoo
from papercore.llm.hf_compat import cache_kwarg, output_cache


def test_minmax_quantization_matches_hand_computation():
    x = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    words, scale, zero = _quant(x, 2, -1)
    assert float(scale) == 1.0 and float(zero) == 0.0
    assert unpack_bits(words, 2, 4).tolist() == [[0, 1, 2, 3]]


def test_kivi_cache_error_shrinks_with_bits_and_storage_is_exact():
    m = zoo.random_model("llama", hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=32)
    ids = torch.randint(0, 256, (2, 80))
    ref = m(input_ids=ids).logits
    errs = []
    for bits in (2, 4, 8):
        cache = KIVICache(m, bits, group=16, residual=16)
        out = m(input_ids=ids[:, :48], use_cache=True, **{cache_kwarg(m): cache})
        out2 = m(input_ids=ids[:, 48:], use_cache=True, **{cache_kwarg(m): output_cache(out)})
        errs.append((out2.logits - ref[:, 48:]).abs().max().item())
        mem = cache.memory()
        # per token and layer: K and V, 64 values each at `bits` + fp16 scale and zero per 16 values
        assert mem["quantized"] == 2 * 2 * mem["quantized_tokens"] * 2 * (64 * bits // 8 + 64 // 16 * 4)
    assert errs[0] > errs[1] > errs[2]


def test_fp16_method_is_the_exact_full_sequence_perplexity():
    """The harness's fp16 baseline (transformers' DynamicCache, fed 16 tokens at a time) gives the
    perplexity of one plain forward, computed here by hand: exp(mean NLL of tokens 2..L)."""
    m = zoo.random_model("llama", hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=32)
    ids = torch.randint(0, 256, (3, 48), generator=torch.Generator().manual_seed(0))
    ppl, cache = chunked_perplexity(m, ids, cache_factory("fp16", m, None, None), chunk_size=16, batch_size=2)
    assert type(cache) is DynamicCache and cache.get_seq_length() == 48
    logits = m(input_ids=ids).logits
    nll = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    assert abs(ppl - math.exp(nll.item())) < 1e-4 * ppl
    kivi2, _ = chunked_perplexity(m, ids, cache_factory("kivi2", m, None, AquaKVConfig(buffer_size=16)),
                                  chunk_size=16, batch_size=2)  # fmt: skip
    assert abs(kivi2 - ppl) > 1e-3 * ppl  # a lossy cache is seen by the same check
