import pytest
import torch
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from hogwild.rope import RopeSpec, apply_rope, rotate
from papercore.llm import zoo
from papercore.testing import assert_close_rel

ROPES = {
    "default": None,
    "linear": {"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0},
    "llama3": {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64,
        "rope_theta": 500000.0,
    },
    "yarn": {
        "rope_type": "yarn",
        "factor": 4.0,
        "original_max_position_embeddings": 64,
        "rope_theta": 10000.0,
    },
}


def _model(kind):
    kw = {} if ROPES[kind] is None else {"rope_parameters": ROPES[kind]}
    return zoo.random_model("llama", head_dim=32, **kw)


def test_rotation_is_a_group(seed):
    spec = RopeSpec(1.0 / (10000 ** (torch.arange(0, 32, 2).float() / 32)))
    k = torch.randn(3, 5, 32, dtype=torch.float64)
    a, b = torch.randint(0, 500, (5,)), torch.randint(-200, 500, (5,))
    assert_close_rel(
        rotate(rotate(k, a, spec.inv_freq), b, spec.inv_freq), rotate(k, a + b, spec.inv_freq), 1e-5
    )
    assert_close_rel(rotate(rotate(k, a, spec.inv_freq), -a, spec.inv_freq), k, 1e-5)
    # a rotation preserves norms, and R(0) is the identity
    assert torch.allclose(rotate(k, a, spec.inv_freq).norm(dim=-1), k.norm(dim=-1))
    assert torch.equal(rotate(k, 0, spec.inv_freq), k)


@pytest.mark.parametrize("kind", list(ROPES))
def test_offset_matches_transformers(kind, seed):
    model = _model(kind)
    spec = RopeSpec.from_config(model.config)
    # from_config (transformers' ROPE_INIT_FUNCTIONS) agrees with the buffers the model uses
    assert torch.allclose(spec.inv_freq, model.model.rotary_emb.inv_freq)
    assert spec.attention_scaling == pytest.approx(model.model.rotary_emb.attention_scaling)
    if kind == "yarn":
        assert spec.attention_scaling > 1.05  # the case where compounding would show
    q, k = torch.randn(2, 4, 6, 32), torch.randn(2, 4, 6, 32)
    pos = torch.randint(0, 100, (2, 6))
    offset = 37
    cos, sin = model.model.rotary_emb(q, pos + offset)
    q_hf, k_hf = apply_rotary_pos_emb(q, k, cos, sin)
    # what the model stores (rotated once, scaled once), moved by a pure rotation
    k_moved = rotate(apply_rope(k, pos[:, None, :], spec), offset, spec.inv_freq)
    assert_close_rel(k_moved, k_hf, 1e-5, f"{kind} keys")
    # moving twice does not compound the attention factor
    k_twice = rotate(
        rotate(apply_rope(k, pos[:, None, :], spec), 20, spec.inv_freq), offset - 20, spec.inv_freq
    )
    assert_close_rel(k_twice, k_hf, 1e-5, f"{kind} keys moved twice")
    assert_close_rel(apply_rope(q, pos[:, None, :] + offset, spec), q_hf, 1e-5)


def test_unsupported_rope_type_is_rejected():
    model = zoo.random_model(
        "llama", rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1e4}
    )
    with pytest.raises(NotImplementedError, match="dynamic"):
        RopeSpec.from_config(model.config)
    with pytest.raises(NotImplementedError, match="dynamic"):
        RopeSpec.from_model(model)
