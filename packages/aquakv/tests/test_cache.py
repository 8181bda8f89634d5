import warnings

import pytest
import torch
from transformers import DynamicCache

from aquakv.cache import AquaKVCache
from aquakv.config import AquaKVConfig, UnsupportedLayoutError, bytes_per_token, config_bytes_per_token
from aquakv.predictors import Predictors
from aquakv.quantizer import IdentityQuantizer
from papercore.llm import zoo
from papercore.llm.hf_compat import cache_kwarg, output_cache


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
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # the keyword this transformers wants (hf_compat)
        got = m.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=2, **{cache_kwarg(m): cache})
    assert torch.equal(got, plain) and cache.get_seq_length() == 51
    real = AquaKVCache(m, None, AquaKVConfig(buffer_size=8, group_size=16))
    with warnings.catch_warnings():  # the spelling still works (deprecated on transformers 5.2x)
        warnings.simplefilter("ignore", FutureWarning)
        out = m.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=2, past_key_values=real)
    assert out.shape == (2, 52) and real.memory()["quantized_tokens"] > 0
    assert real.get_seq_length() == 51


def _tensors(obj, path="cache", seen=None):
    """Every tensor reachable from the cache's attributes (not descending into nn.Modules)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, torch.nn.Module):
        return
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        yield path, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{path}[{k!r}]", seen)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{path}[{i}]", seen)
    elif hasattr(obj, "__dict__"):
        for k, v in vars(obj).items():
            yield from _tensors(v, f"{path}.{k}", seen)


@pytest.mark.parametrize("keep", [False, True])
def test_no_dequantized_copy_outlives_a_forward(keep):
    m = _model()
    cfg = AquaKVConfig(prefix_size=3, buffer_size=16, group_size=32)
    cache = AquaKVCache(m, Predictors.zeros(3, 32), cfg, keep_dequantized=keep, check_fingerprint=False)
    _feed(m, torch.randint(0, 256, (2, 3 + 48 + 5)), cache, [19, 16, 16, 1, 1, 1, 1, 1])
    tq = cache.layers[0].num_quantized
    assert tq == 3 + 48 and cache.layers[0].num_buffer == 5  # the sink's slots are quantized too
    # Float tensors holding the quantized tokens (a token axis of length tq, C or head_dim wide).
    held = [p for p, t in _tensors(cache) if t.is_floating_point() and tq in t.shape[:-1]
            and t.shape[-1] in (16, 32)]  # fmt: skip
    if keep:  # the labelled speed option holds reconstructions: the inspection sees them
        assert len(held) == 2 * 3 and cache.memory()["dequantized_kept"] > 0
    else:
        assert held == []
        kinds = {p.rsplit(".", 1)[-1] for p, t in _tensors(cache) if tq in t.shape}
        assert kinds == {"codes", "scales"}  # the quantized tokens live in packed codes and scales only
        assert all(t.dtype == torch.int32 for p, t in _tensors(cache) if p.endswith(".codes"))


def test_measured_bytes_equal_the_formula():
    m = _model(kv=2, head_dim=32)  # C = 64
    cfg = AquaKVConfig(buffer_size=16)
    cache = AquaKVCache(m, None, cfg)
    _feed(m, torch.randint(0, 256, (2, 90)), cache, [32])
    mem = cache.memory()
    # Chunks of 16 positions after the 4-token sink, written at the start of the forward after the
    # one that completes them: the third forward (26 tokens) starts with 64 tokens cached, so
    # positions [4, 52) are in complete chunks and slots [0, 52) are quantized (the sink's too).
    assert mem["quantized_tokens"] == 52 and cache.layers[0].num_buffer == 90 - 52
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


class _HalfRotary(torch.nn.Module):  # rotary embedding over half the head (partial RoPE)
    def forward(self, x, pos):
        t = pos.shape[-1]
        return torch.ones(1, t, 8), torch.zeros(1, t, 8)


def test_unsupported_attention_layouts_are_clear_errors():
    m = _model()
    m.config.layer_types = ["full_attention", "chunked_attention", "full_attention"]
    with pytest.raises(UnsupportedLayoutError, match="chunked_attention"):
        AquaKVCache(m, None)
    m = _model()
    m.model.rotary_emb = _HalfRotary()
    with pytest.raises(UnsupportedLayoutError, match="partial rotary"):
        AquaKVCache(m, None)  # at construction, not in the middle of a forward
    m = _model()
    del m.model.rotary_emb
    with pytest.raises(ValueError, match="RoPE models only"):  # also a ValueError: the CLI's exit 2
        AquaKVCache(m, None)


def test_fused_backend_gives_the_torch_backends_logits():
    """The cache's fused path (two-part value predictor, RoPE and the write into the attention
    tensor inside the kernel) against the torch path, with real predictors and a real quantizer."""
    from papercore.testing import triton_or_skip

    triton_or_skip()
    torch.manual_seed(0)
    m = _model()
    C = m.config.num_key_value_heads * 16
    g = torch.Generator().manual_seed(3)
    preds = Predictors.zeros(3, C)
    for i in (1, 2):
        preds.key[i] = (torch.randn(C, C, generator=g) / C**0.5 * 0.5, torch.randn(C, generator=g) * 0.01)
        preds.value[i] = (
            torch.randn(C, 2 * C, generator=g) / (2 * C) ** 0.5 * 0.5,
            torch.randn(C, generator=g) * 0.01,
        )
    ids = torch.randint(0, 256, (2, 42))  # batch 2: strided writes into the attention tensors
    cfg = AquaKVConfig(prefix_size=4, buffer_size=16, group_size=32)
    outs = [
        _feed(m, ids, AquaKVCache(m, preds, cfg, backend=be, check_fingerprint=False), [20, 1, 1])[0]
        for be in ("torch", "triton")
    ]
    assert (outs[0] - outs[1]).abs().max() < 1e-4 * outs[0].abs().max()


def _random_predictors(C, layers=3, seed=3):
    g = torch.Generator().manual_seed(seed)
    preds = Predictors.zeros(layers, C)
    for i in range(1, layers):
        preds.key[i] = (torch.randn(C, C, generator=g) / C**0.5 * 0.5, torch.randn(C, generator=g) * 0.01)
        preds.value[i] = (
            torch.randn(C, 2 * C, generator=g) / (2 * C) ** 0.5 * 0.5,
            torch.randn(C, generator=g) * 0.01,
        )
    return preds


def test_left_padded_batch_gives_each_sequence_its_own_outputs():
    """Positions come from position_ids: with real predictors and a real quantizer, each row of a
    left-padded batch gets the logits of the same prompt generated alone (before, the un-rotation
    used slot indices and the sink held pads: the padded rows differed by ~0.6 in the logits)."""
    torch.manual_seed(0)
    m = _model()
    preds = _random_predictors(32)
    cfg = AquaKVConfig(prefix_size=2, buffer_size=8, group_size=32)
    g = torch.Generator().manual_seed(1)
    prompts = [
        torch.randint(3, 256, (n,), generator=g) for n in (21, 14, 9)
    ]  # pads 0, 7, 12: not multiples of 8
    T = max(len(p) for p in prompts)
    ids, mask = torch.zeros(3, T, dtype=torch.long), torch.zeros(3, T, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, T - len(p) :], mask[i, T - len(p) :] = p, 1
    make = lambda: AquaKVCache(m, preds, cfg, check_fingerprint=False)
    kw = dict(
        max_new_tokens=10, do_sample=False, pad_token_id=0, output_logits=True, return_dict_in_generate=True
    )
    cache = make()
    batch = m.generate(ids, attention_mask=mask, **kw, **{cache_kwarg(m): cache})
    assert cache.layers[0].num_quantized > 0
    for i, p in enumerate(prompts):
        alone = m.generate(p[None], **kw, **{cache_kwarg(m): make()})
        a, b = torch.stack(batch.logits)[:, i], torch.stack(alone.logits)[:, 0]
        assert (a - b).abs().max() < 1e-5 * b.abs().max(), i
        assert torch.equal(batch.sequences[i, T:], alone.sequences[0, len(p) :])


def test_right_padding_is_refused():
    m = _model()
    cache = AquaKVCache(m, None, AquaKVConfig(group_size=32))
    pos = torch.tensor(
        [[0, 1, 2, 3], [0, 1, 1, 1]]
    )  # row 1 right-padded (transformers gives pads position 1)
    with pytest.raises(ValueError, match="left padding"):
        m(input_ids=torch.randint(3, 256, (2, 4)), position_ids=pos, **{cache_kwarg(m): cache})


def test_crop_leaves_no_trace():
    """Feeding A, then B, cropping B and feeding C gives C the logits of feeding A then C, with real
    predictors and quantizer, also when B completes a chunk (written only at the next forward)."""
    torch.manual_seed(0)
    m = _model()
    preds = _random_predictors(32)
    cfg = AquaKVConfig(prefix_size=2, buffer_size=8, group_size=32)
    a, b, c = (torch.randint(3, 256, (2, n)) for n in (20, 7, 5))  # 20 + 7 = 27 completes [18, 26)
    make = lambda: AquaKVCache(m, preds, cfg, check_fingerprint=False)
    key = cache_kwarg(m)
    ref = make()
    m(input_ids=a, **{key: ref})
    want = m(input_ids=c, **{key: ref}).logits
    cache = make()
    assert cache.is_croppable
    m(input_ids=a, **{key: cache})
    m(input_ids=b, **{key: cache})
    cache.crop(-7)
    assert cache.get_seq_length() == 20
    got = m(input_ids=c, **{key: cache}).logits
    assert torch.equal(got, want)
    assert cache.layers[0].num_quantized == ref.layers[0].num_quantized == 18
    with pytest.raises(ValueError, match="quantized"):
        cache.crop(-10)  # into the quantized slots


def test_assisted_decoding_and_beam_search_match_the_plain_cache():
    """With an identity quantizer the cache is exact, so assisted decoding (which crops the
    rejected draft tokens) and beam search (which reorders rows) give transformers' own outputs."""
    torch.manual_seed(0)
    m = _model()
    draft = zoo.random_model("llama", hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1)
    ids = torch.randint(3, 256, (1, 20))
    kw = dict(max_new_tokens=8, do_sample=False, pad_token_id=0)
    ident = lambda: _identity_cache(m, prefix_size=2, buffer_size=8)
    plain = m.generate(ids, **kw)
    assert torch.equal(m.generate(ids, assistant_model=draft, **kw, **{cache_kwarg(m): ident()}), plain)
    beams = m.generate(ids, num_beams=2, **kw)
    assert torch.equal(m.generate(ids, num_beams=2, **kw, **{cache_kwarg(m): ident()}), beams)
