import pytest
import torch
from transformers import AutoModelForCausalLM

from papercore.llm import zoo
from papercore.llm.data import load_tokenizer

# A few-second recipe that goes through exactly the code path of the named ones.
UNIT = zoo.Recipe(
    "unit",
    hidden_size=32,
    num_layers=1,
    num_heads=2,
    num_kv_heads=1,
    intermediate_size=64,
    seqlen=32,
    batch_size=4,
    steps=3,
    warmup=1,
    train_chars=60_000,
    eval_windows=4,
)


@pytest.mark.parametrize("arch", zoo.ARCHS)
@pytest.mark.parametrize("kv,tie", [(None, False), (2, True)])
def test_tiny_configs_build_and_run(arch, kv, tie):
    model = zoo.random_model(arch, num_kv_heads=kv, tie_embeddings=tie)
    cfg = model.config
    assert cfg.num_key_value_heads == (cfg.num_attention_heads if kv is None else kv)
    assert (model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()) == tie
    attn = model.model.layers[0].self_attn
    assert hasattr(attn, "q_norm") == (arch == "qwen3")
    assert (attn.q_proj.bias is not None) == (arch == "qwen2")
    logits = model(input_ids=torch.randint(0, 256, (2, 9))).logits
    assert logits.shape == (2, 9, 256) and torch.isfinite(logits).all()


def test_random_model_is_deterministic_and_rejects_bad_configs():
    a, b = zoo.random_model("qwen3", seed=3), zoo.random_model("qwen3", seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(ValueError, match="unknown architecture"):
        zoo.tiny_config("gpt2")
    with pytest.raises(ValueError, match="multiple"):
        zoo.tiny_config(num_heads=4, num_kv_heads=3)


def test_recipe_key_is_content_hash():
    assert zoo.RECIPES["tiny"].key() == zoo.Recipe("tiny").key()
    assert zoo.RECIPES["tiny"].key() != zoo.RECIPES["tiny"].replace(seed=1).key()
    with pytest.raises(ValueError, match="unknown zoo recipe"):
        zoo.get_recipe("huge")


def test_training_is_deterministic_and_loads_with_from_pretrained(tmp_path):
    m1 = zoo.train(UNIT, tmp_path / "a", progress=False)
    zoo.train(UNIT, tmp_path / "b", progress=False)
    a = AutoModelForCausalLM.from_pretrained(tmp_path / "a")
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "b")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name
    assert zoo.verify(tmp_path / "a") and m1["parameters"] == sum(p.numel() for p in a.parameters())
    tok = load_tokenizer(tmp_path / "a")
    assert tok.decode(tok("x = 1").input_ids) == "x = 1"


def test_refuses_to_overwrite_a_user_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not a zoo model"):
        zoo.train(UNIT, tmp_path, progress=False)
    assert (tmp_path / "mine.txt").read_text() == "precious"


def test_corrupt_cache_entry_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERCORE_CACHE", str(tmp_path))
    path = zoo.load_path(UNIT)
    weights = path / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])  # a partial copy
    assert not zoo.verify(path)
    assert zoo.load_path(UNIT) == path and zoo.verify(path)
    (path / zoo.MANIFEST).unlink()  # a crash before the manifest was written
    assert not zoo.verify(path)
    zoo.load_path(UNIT)
    assert zoo.verify(path) and weights.read_bytes() == good


def test_tiny_model_learned_something():
    path = zoo.load_path("tiny")  # cached across test runs
    m = zoo.info(path)
    assert m["test_perplexity"] < m["unigram_test_perplexity"] / 3, m
    model, tok = zoo.load("tiny")
    assert (
        model.config.vocab_size == len(tok) and sum(p.numel() for p in model.parameters()) == m["parameters"]
    )
