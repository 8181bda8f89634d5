import pytest
import torch

from hogwild.cache import Row
from hogwild.model import Engine
from papercore.llm import zoo
from papercore.testing import assert_close_rel


@pytest.fixture(scope="module")
def llama():
    return zoo.random_model("llama", seed=0)


def plain_logits(model, tokens):
    with torch.no_grad():
        return model(input_ids=torch.tensor([tokens])).logits[0].float()


@pytest.mark.parametrize("arch", ["llama", "mistral", "qwen2", "qwen3"])
def test_one_worker_reproduces_greedy_generate(arch):
    model = zoo.random_model(arch, seed=1)
    steps = 64 if arch == "llama" else 24
    prompt = torch.randint(3, 256, (1, 9), generator=torch.Generator().manual_seed(0))
    ref = model.generate(
        prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=steps, min_new_tokens=steps,
        do_sample=False, output_logits=True, return_dict_in_generate=True, pad_token_id=2,
    )  # fmt: skip
    engine = Engine(model, backend="torch")
    engine.cache.create("a")
    logits = engine.step([Row("a", ["a"], prompt[0].tolist())])
    tokens = []
    for i in range(steps):
        assert_close_rel(logits[0], ref.logits[i][0], 1e-5, f"{arch} step {i}")
        tokens.append(int(logits[0].argmax()))
        logits = engine.step([Row("a", ["a"], [tokens[-1]])])
    assert tokens == ref.sequences[0, 9:].tolist()
    assert engine.cache.length("a") == 9 + steps


def test_two_workers_match_a_plain_forward(llama):
    g = torch.Generator().manual_seed(1)
    prompt, b, sep, a = (torch.randint(3, 256, (n,), generator=g).tolist() for n in (11, 6, 2, 5))
    engine = Engine(llama, backend="torch")
    for name in ("prompt", "B", "sep", "A"):
        engine.cache.create(name)
    engine.step([Row("prompt", ["prompt"], prompt)])
    # B writes without seeing A (its first token) while A starts; then B continues, sep is written
    engine.step([Row("B", ["prompt", "B"], b[:3]), Row("A", ["prompt", "B", "sep", "A"], a[:1])])
    engine.step([Row("B", ["prompt", "B"], b[3:]), Row("sep", ["prompt", "B", "sep"], sep)])
    engine.cache.clear("A")  # A's first token saw an unfinished B: rewrite it
    out = engine.step([Row("A", ["prompt", "B", "sep", "A"], a)], all_logits=True)
    want = plain_logits(llama, prompt + b + sep + a)[-len(a) :]
    assert_close_rel(out[0], want, 1e-5)


def test_multi_token_rows_with_padding_match_plain_forwards(llama):
    g = torch.Generator().manual_seed(2)
    prompt, x, y = (torch.randint(3, 256, (n,), generator=g).tolist() for n in (8, 4, 1))
    engine = Engine(llama, backend="torch")
    for name in ("x", "y"):
        engine.cache.create(name)
    engine.prefill("p", prompt, chunk=3)  # three passes of up to 3 tokens
    out = engine.step([Row("x", ["p", "x"], x), Row("y", ["p", "y"], y)])
    assert_close_rel(out[0], plain_logits(llama, prompt + x)[-1], 1e-5)
    assert_close_rel(out[1], plain_logits(llama, prompt + y)[-1], 1e-5)


def test_history_move_then_logits_match_recomputation(llama):
    g = torch.Generator().manual_seed(3)
    prompt, a1, x, a2, b = (torch.randint(3, 256, (n,), generator=g).tolist() for n in (10, 5, 3, 4, 6))
    engine = Engine(llama, backend="torch")
    for name in ("common", "A", "B"):
        engine.cache.create(name)
    engine.step([Row("common", ["common"], prompt)])
    engine.step([Row("A", ["common", "A"], a1)])
    engine.step([Row("A", ["common", "A"], x)])
    # the finished step (a1 + first token of x) moves into the history, re-rotated; x[1:] stays in A
    engine.cache.merge("common", "A", count=len(a1) + 1)
    assert engine.cache.length("common") == 16 and engine.cache.length("A") == 2
    out = engine.step([Row("A", ["common", "A"], a2), Row("B", ["common", "B", "A"], b)], all_logits=True)
    seq = prompt + a1 + x + a2
    assert_close_rel(out[0, -len(a2) :], plain_logits(llama, seq)[-len(a2) :], 1e-5, "A after the move")
    # B sees the (post-write) history and A's current block after its own: causal order in its view
    assert_close_rel(out[1], plain_logits(llama, prompt + a1 + x[:1] + b)[-len(b) :], 1e-5, "B")


def test_model_is_restored_and_unsupported_models_fail(llama):
    engine = Engine(llama, backend="torch")
    engine.cache.create("a")
    engine.step([Row("a", ["a"], [5, 6])])
    assert llama.config._attn_implementation != "hogwild"

    class Fake(torch.nn.Module):
        config = type("C", (), {"model_type": "gpt2"})()

    with pytest.raises(NotImplementedError, match="gpt2"):
        Engine(Fake())


def test_triton_backend_in_a_model_matches_plain_forwards():
    from papercore.testing import triton_or_skip

    triton_or_skip()
    model = zoo.random_model("qwen3", seed=4, hidden_size=64, num_heads=4, num_kv_heads=1, head_dim=32)
    g = torch.Generator().manual_seed(4)
    prompt, a, b = (torch.randint(3, 256, (n,), generator=g).tolist() for n in (9, 3, 2))
    engine = Engine(model, backend="triton")
    for name in ("p", "a", "b"):
        engine.cache.create(name)
    engine.step([Row("p", ["p"], prompt)])
    out = engine.step([Row("a", ["p", "a"], a), Row("b", ["p", "a", "b"], b)])
    assert_close_rel(out[0], plain_logits(model, prompt + a)[-1], 1e-5)
    assert_close_rel(out[1], plain_logits(model, prompt + a + b)[-1], 1e-5)
