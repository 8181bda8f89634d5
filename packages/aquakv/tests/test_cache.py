import pytest
import torch
from transformers import DynamicCache

from aquakv.cache import AquaKVCache
from aquakv.config import AquaKVConfig, bytes_per_token, config_bytes_per_token
from aquakv.predictors import Predictors
from aquakv.quantizer import IdentityQuantizer
from papercore import zoo
from papercore.hf_compat import cache_kwarg, output_cache


def _model(arch="llama", **kw):
    m = zoo.random_model(arch, hidden_size=64, num_layers=3, num_heads=4, num_kv_heads=kw.pop("kv", 2), **kw)
    m.config._attn_implementation = "eager"
    return m


def _identity_cache(m, **cfg):
    C = m.config.num_key_value_heads * 16
    return AquaKVCache(m, Predictors.zeros(3, C), AquaKVConfig(**cfg), quantizer=IdentityQuantizer(C),
                       first_quantizer=IdentityQuantizer(C), check_fingerprint=False)  # fmt: skip


def _feed(m, ids, cache, sizes):
    key, outs, s = cache_kwarg(m), [], 0
    i = 0
    while s < ids.shape[1]:
        n = sizes[i % len(sizes)]
        out = m(input_ids=ids[:, s : s + n], use_cache=True, **{key: cache})
        cache = output_cache(out)
        outs.append(out.logits)
        s, i = s + n, i + 1
    return torch.cat(outs, 1), cache


@pytest.mark.parametrize(
    "arch,kv,cfg,sizes",
    [
        ("llama", 2, dict(prefix_size=4, buffer_size=16), [32]),  # chunked feeding, flushes
        ("qwen3", 2, dict(prefix_size=4, buffer_size=16), [7, 1, 1, 13]),  # uneven chunks, decode steps
        (
            "qwen2",
            4,
            dict(prefix_size=2, buffer_size=8),
            [70, 1, 1, 1],
        ),  # MHA, prefill longer than the buffer
        ("mistral", 2, dict(prefix_size=200, buffer_size=16), [32]),  # prefix only
        ("llama", 2, dict(prefix_size=0, buffer_size=1000), [32]),  # buffer only
    ],
)
def test_identity_quantizer_reproduces_the_plain_cache(arch, kv, cfg, sizes):
    torch.manual_seed(0)
    m = _model(arch, kv=kv)
    ids = torch.randint(0, 256, (2, 100))
    ref, _ = _feed(m, ids, DynamicCache(config=m.config), sizes)
    got, cache = _feed(m, ids, _identity_cache(m, **cfg), sizes)
    assert (got - ref).abs().max() < 1e-5
    assert cache.get_seq_length() == 100
    assert cache._prev_old is None and cache._prev_new is None  # nothing dequantized outlives the forward
    assert cache.memory()["dequantized_kept"] == 0


def test_generate_with_aquakv_cache_and_batch():
    m = _model()
    ids = torch.randint(3, 256, (2, 40))
    plain = m.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=2)
    cache = _identity_cache(m, prefix_size=4, buffer_size=8)
    got = m.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=2, past_key_values=cache)
    assert torch.equal(got, plain) and cache.get_seq_length() == 51
    real = AquaKVCache(m, None, AquaKVConfig(buffer_size=8, group_size=16))
    out = m.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=2, past_key_values=real)
    assert out.shape == (2, 52) and real.memory()["quantized_tokens"] > 0


def test_measured_bytes_equal_the_formula():
    m = _model(kv=2, head_dim=32)  # C = 64
    cfg = AquaKVConfig(buffer_size=16)
    cache = AquaKVCache(m, None, cfg)
    _feed(m, torch.randint(0, 256, (2, 90)), cache, [32])
    mem = cache.memory()
    assert mem["quantized_tokens"] == 86 - 86 % 16 or mem["quantized_tokens"] > 0
    per_token = mem["quantized"] / (2 * mem["quantized_tokens"])
    # by hand: layer 0 at (2,256): 32 codes x 8 bits = 32 B + 2 B scale; layers 1-2 at (2,16): 16 B + 2 B; K and V
    assert per_token == 2 * (32 + 2) + 2 * 2 * (16 + 2) == config_bytes_per_token(cfg, 3, 64)
    assert cache.measured_bytes_per_token() == per_token


def test_llama_3b_shape_bytes_per_token():
    b = bytes_per_token(28, 1024)
    assert b == 14960
    assert abs(8 * b / (2 * 28 * 1024) - 2.087) < 1e-3 and abs(2 * 28 * 1024 * 2 / b - 7.67) < 0.01
    assert bytes_per_token(28, 1024, scale_bytes=4) == 2 * (512 + 4) + 27 * 2 * (256 + 4)


def test_keep_dequantized_is_exact_and_holds_memory():
    m = _model()
    ids = torch.randint(0, 256, (1, 80))
    a, ca = _feed(m, ids, AquaKVCache(m, None, AquaKVConfig(buffer_size=16, group_size=32)), [16, 1, 1])
    b, cb = _feed(
        m,
        ids,
        AquaKVCache(m, None, AquaKVConfig(buffer_size=16, group_size=32), keep_dequantized=True),
        [16, 1, 1],
    )
    assert (a - b).abs().max() < 1e-4 and cb.memory()["dequantized_kept"] > 0


def test_bad_layouts_and_groups():
    m = _model()
    with pytest.raises(ValueError, match="does not divide|power of two"):
        AquaKVCache(m, None, AquaKVConfig(group_size=64))
    with pytest.raises(ValueError, match="group_size must be a power of two"):
        AquaKVConfig(group_size=24)
    cache = AquaKVCache(m, None)
    with pytest.raises(ValueError, match="unsupported attention layout"):
        cache.update(torch.zeros(1, 3, 4, 16), torch.zeros(1, 3, 4, 16), 0)
    with pytest.raises(ValueError, match="calibrate"):
        AquaKVCache(m, Predictors.zeros(2, 32))
