import torch

from aquakv.cache import AquaKVCache
from aquakv.config import AquaKVConfig
from aquakv.predictors import Predictors
from aquakv.quantizer import IdentityQuantizer
from aquakv.rope import RopeTable, rotate, unrotate
from papercore.llm import zoo
from papercore.llm.hf_compat import cache_kwarg


def test_unrotate_rotate_round_trip():
    m = zoo.random_model("llama", hidden_size=64, num_layers=1, num_heads=4, num_kv_heads=2)
    cos, sin = RopeTable(m.model.rotary_emb, 16).get(0, 300, "cpu", torch.float32)
    k = torch.randn(2, 2, 300, 16)
    assert (unrotate(rotate(k, cos, sin), cos, sin) - k).abs().max() < 1e-6
    assert (rotate(unrotate(k, cos, sin), cos, sin) - k).abs().max() < 1e-6
    assert (rotate(k, cos, sin) - k).abs().max() > 0.1  # it does rotate
    # With an attention scaling (cos, sin both scaled) the inverse still holds.
    assert (unrotate(rotate(k, 1.3 * cos, 1.3 * sin), 1.3 * cos, 1.3 * sin) - k).abs().max() < 1e-5


def test_stored_keys_are_the_pre_rope_k_norm_outputs_on_qwen3():
    m = zoo.random_model("qwen3", hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2)
    caught = []
    m.model.layers[1].self_attn.k_norm.register_forward_hook(lambda mod, i, o: caught.append(o.detach()))
    C = 32
    cache = AquaKVCache(m, Predictors.zeros(2, C), AquaKVConfig(prefix_size=0, buffer_size=0),
                        quantizer=IdentityQuantizer(C), first_quantizer=IdentityQuantizer(C), check_fingerprint=False)  # fmt: skip
    ids = torch.randint(0, 256, (1, 20))
    m(input_ids=ids, use_cache=True, **{cache_kwarg(m): cache})
    m(input_ids=ids[:, :1], use_cache=True, **{cache_kwarg(m): cache})  # writes the 20 tokens (chunks of 1)
    stored = cache.layers[1].qk.codes  # identity quantizer, zero predictors: the pre-RoPE key itself
    assert stored.shape[1] == 20 and (stored - caught[0].reshape(1, 20, C)).abs().max() < 1e-5
