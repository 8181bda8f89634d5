"""AQLM checkpoints published by others: a fixture written by hand in the upstream layout (not by
`save_quantized`) loads through `aqlm.load_quantized` and transformers, and computes what its
tensors say.

The layout (the authors' convert_to_hf.py and transformers' AqlmConfig): config.json gains
``quantization_config = {quant_method: "aqlm", nbits_per_codebook, num_codebooks, out_group_size,
in_group_size, linear_weights_not_to_quantize}``; each quantized linear ``<name>`` stores
``<name>.codes`` ``[out/out_g, in/in_g, M]`` (int8 for B <= 8, int16 for B <= 16; unsigned codes
>= 2^(B-1) stored minus 2^B), ``<name>.codebooks`` ``[M, 2^B, out_g, in_g]`` fp16,
``<name>.scales`` ``[out/out_g, 1, 1, 1]`` fp16, and ``<name>.bias``; everything else is fp16.
"""

import json

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

import aqlm

HIDDEN, INTER, VOCAB, IN_G = 16, 32, 40, 4
LINEARS = {  # name in a block -> (out, in)
    "self_attn.q_proj": (16, 16),
    "self_attn.k_proj": (8, 16),
    "self_attn.v_proj": (8, 16),
    "self_attn.o_proj": (16, 16),
    "mlp.gate_proj": (INTER, HIDDEN),
    "mlp.up_proj": (INTER, HIDDEN),
    "mlp.down_proj": (HIDDEN, INTER),
}


def model_config(bias: bool) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": INTER,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "num_hidden_layers": 1,
        "vocab_size": VOCAB,
        "max_position_embeddings": 64,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "attention_bias": bias,
        "mlp_bias": bias,
        "torch_dtype": "float16",
    }


def decode(stored: torch.Tensor, nbits: int) -> torch.Tensor:
    return stored.long() % (1 << nbits)


def dense_weight(codes, codebooks, scales, nbits) -> torch.Tensor:
    """The weight the tensors describe, one (output group, input group) block at a time."""
    o_groups, i_groups, m = codes.shape
    _, _, og, g = codebooks.shape
    w = torch.zeros(o_groups * og, i_groups * g, dtype=torch.float64)
    idx = decode(codes, nbits)
    for o in range(o_groups):
        for i in range(i_groups):
            block = sum(codebooks[k, idx[o, i, k]].double() for k in range(m))
            w[o * og : (o + 1) * og, i * g : (i + 1) * g] = scales[o, 0, 0, 0].double() * block
    return w


def write_upstream_checkpoint(path, *, num_codebooks, nbits, out_group_size, bias):
    gen = torch.Generator().manual_seed(nbits * 10 + out_group_size)
    code_dtype = torch.int8 if nbits <= 8 else torch.int16
    half = lambda *shape, s=1.0: (torch.randn(*shape, generator=gen) * s).half()
    tensors = {
        "model.embed_tokens.weight": half(VOCAB, HIDDEN),
        "model.norm.weight": (1 + half(HIDDEN, s=0.1)).half(),
        "model.layers.0.input_layernorm.weight": (1 + half(HIDDEN, s=0.1)).half(),
        "model.layers.0.post_attention_layernorm.weight": (1 + half(HIDDEN, s=0.1)).half(),
        "lm_head.weight": half(VOCAB, HIDDEN, s=0.3),
    }
    dense = {}
    for name, (out, inp) in LINEARS.items():
        key = f"model.layers.0.{name}"
        unsigned = torch.randint(
            0, 1 << nbits, (out // out_group_size, inp // IN_G, num_codebooks), generator=gen
        )
        codes = torch.where(unsigned >= 1 << (nbits - 1), unsigned - (1 << nbits), unsigned).to(code_dtype)
        codebooks = half(num_codebooks, 1 << nbits, out_group_size, IN_G, s=0.5 / num_codebooks)
        scales = (0.5 + torch.rand(out // out_group_size, 1, 1, 1, generator=gen)).half()
        tensors |= {f"{key}.codes": codes, f"{key}.codebooks": codebooks, f"{key}.scales": scales}
        dense[f"{key}.weight"] = dense_weight(codes, codebooks, scales, nbits)
        if bias:
            tensors[f"{key}.bias"] = half(out, s=0.1)
    config = model_config(bias) | {
        "quantization_config": {
            "quant_method": "aqlm",
            "nbits_per_codebook": nbits,
            "num_codebooks": num_codebooks,
            "out_group_size": out_group_size,
            "in_group_size": IN_G,
            "linear_weights_not_to_quantize": [
                "model.layers.0.input_layernorm.weight",
                "model.layers.0.post_attention_layernorm.weight",
                "model.embed_tokens.weight",
                "model.norm.weight",
                "lm_head.weight",
            ],
        }
    }
    path.mkdir()
    (path / "config.json").write_text(json.dumps(config, indent=2))
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
    return tensors, dense


@pytest.mark.parametrize(
    "num_codebooks,nbits,out_group_size,bias",
    [(2, 8, 1, False), (1, 16, 1, True), (2, 8, 2, True), (1, 12, 2, False)],
    ids=["int8-og1", "int16-og1-bias", "int8-og2-bias", "int16-og2"],
)
def test_upstream_checkpoint_loads_and_computes_what_its_tensors_say(
    tmp_path, num_codebooks, nbits, out_group_size, bias
):
    path = tmp_path / "upstream"
    tensors, dense = write_upstream_checkpoint(
        path, num_codebooks=num_codebooks, nbits=nbits, out_group_size=out_group_size, bias=bias
    )
    # A dense model holding the reconstructed weights: what the checkpoint means.
    reference = LlamaForCausalLM(LlamaConfig(**model_config(bias))).double().eval()
    state = {k: v.double() for k, v in tensors.items() if not k.endswith((".codes", ".codebooks", ".scales"))}
    missing, unexpected = reference.load_state_dict(state | dense, strict=False)
    assert not unexpected and missing == []
    gen = torch.Generator().manual_seed(1)
    xs = {
        name: torch.randn(3, 5, inp, generator=gen, dtype=torch.float64) for name, (_, inp) in LINEARS.items()
    }
    ids = torch.randint(0, VOCAB, (2, 7), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want_logits = reference(ids).logits.float()
    ours = aqlm.load_quantized(path, dtype=torch.float32)
    hf = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    for model in (ours, hf):
        for name in LINEARS:
            layer = model.model.layers[0].get_submodule(name)
            assert isinstance(layer, aqlm.QuantizedLinear) and layer.out_group_size == out_group_size
            x = xs[name]
            want = x @ dense[f"model.layers.0.{name}.weight"].T
            if bias:
                want = want + tensors[f"model.layers.0.{name}.bias"].double()
            with torch.no_grad():
                got = layer(x.float())
            torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
        with torch.no_grad():
            torch.testing.assert_close(model(ids).logits, want_logits, rtol=1e-4, atol=1e-4)
    # Our loader keeps codebooks and scales as stored (fp16) and counts their bits.
    q = ours.model.layers[0].mlp.up_proj
    assert q.codebooks.dtype == q.scales.dtype == torch.float16
    expected = (nbits if nbits in (8, 16) else 16) * num_codebooks / (IN_G * out_group_size)
    expected += 16 * num_codebooks * (1 << nbits) * IN_G * out_group_size / (INTER * HIDDEN)
    expected += 16 / (HIDDEN * out_group_size)
    assert q.bits_per_parameter == pytest.approx(expected)
    # In the default dtype (fp16, as config.json says) the model still runs.
    assert torch.isfinite(aqlm.load_quantized(path)(ids).logits.float()).all()
