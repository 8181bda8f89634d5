import pytest
import torch

from autojudge.engine import CachedLM, SpecConfig, SpeculativeDecoder, greedy
from papercore.llm import zoo

WINDOWS = (1, 2, 4, 8, 16)


def _accounting(res, window):
    assert sum(c.emitted for c in res.cycles) == len(res.tokens)
    assert res.target_calls == len(res.cycles)
    assert all(c.accepted <= c.proposed <= window and c.emitted <= window for c in res.cycles)
    assert all(c.exact <= c.accepted or c.exact == c.proposed for c in res.cycles)


def _eos_inside(model, prompt, at):
    """A token that target greedy emits at step ``at`` (and not before): EOS then falls inside a window."""
    out = greedy(model, prompt, 40)
    for i in range(at, len(out)):
        if out[i] not in out[:i]:
            return out[i]
    return None


@pytest.mark.parametrize("window", WINDOWS)
def test_lossless_equals_target_greedy_with_eos_and_cut(random_pair, prompts, window):
    target, draft = random_pair
    for p in prompts:
        for max_new in (1, 13, 29):  # cuts mid-window for most W
            eos = _eos_inside(target, p, 5)
            dec = SpeculativeDecoder(target, draft, eos_token_id=eos if eos is not None else 0)
            ref = greedy(target, p, max_new, eos=dec.eos)
            res = dec.generate(p, SpecConfig(window=window, max_new_tokens=max_new))
            assert res.tokens == ref, (window, max_new, p)
            _accounting(res, window)
            if ref and ref[-1] in dec.eos:
                assert res.stopped == "eos"
            # without an EOS in reach: the length cut
            dec2 = SpeculativeDecoder(target, draft, eos_token_id=63 if 63 not in ref else 0)
            ref2 = greedy(target, p, max_new, eos=dec2.eos)
            assert dec2.generate(p, window=window, max_new_tokens=max_new).tokens == ref2


@pytest.mark.parametrize("window", WINDOWS)
def test_accept_all_equals_draft_greedy_and_top1_equals_lossless(random_pair, prompts, window):
    target, draft = random_pair
    dec = SpeculativeDecoder(target, draft, eos_token_id=0)
    for p in prompts:
        res = dec.generate(p, window=window, max_new_tokens=30, mode="accept_all")
        assert res.tokens == greedy(draft, p, 30, eos=0)
        _accounting(res, window)
        assert all(c.accepted == c.proposed for c in res.cycles)
        top1 = dec.generate(p, window=window, max_new_tokens=30, mode="topk", top_k=1)
        assert top1.tokens == greedy(target, p, 30, eos=0)
        topv = dec.generate(p, window=window, max_new_tokens=30, mode="topk", top_k=64)
        assert topv.tokens == res.tokens
        rnd0 = dec.generate(p, window=window, max_new_tokens=30, mode="random", accept_prob=0.0)
        assert rnd0.tokens == top1.tokens


def test_exact_count_matches_an_independent_prefix_check(random_pair, prompts):
    target, draft = random_pair
    dec = SpeculativeDecoder(target, draft, eos_token_id=0)
    res = dec.generate(prompts[2], window=4, max_new_tokens=40, mode="random", accept_prob=0.5, seed=3)
    _accounting(res, 4)
    # replay: at every cycle the exact-match prefix is what the target's greedy next tokens give
    seq = list(prompts[2])
    for c in res.cycles:
        cont = greedy(target, seq, c.proposed, eos=None)
        proposal_prefix = res.tokens[len(seq) - len(prompts[2]) :][: c.accepted]
        m = 0
        while m < len(proposal_prefix) and proposal_prefix[m] == cont[m]:
            m += 1
        assert c.exact == m  # a matching draft token is always kept, so exact <= accepted
        seq += res.tokens[len(seq) - len(prompts[2]) :][: c.emitted]


def test_incremental_hidden_states_equal_one_shot(random_pair):
    target, _ = random_pair
    seq = torch.randint(3, 64, (30,), generator=torch.Generator().manual_seed(5)).tolist()
    full = target.get_decoder()(input_ids=torch.tensor([seq])).last_hidden_state[0]
    lm = CachedLM(target)
    parts = []
    _, h = lm.feed(seq[:10])
    parts.append(h)
    _, h = lm.feed(seq[10:13])
    parts.append(h)
    lm.feed([7, 8, 9])  # a rejected proposal
    lm.crop(13)
    _, h = lm.feed(seq[13:14])
    parts.append(h)
    for t in seq[14:]:
        _, h = lm.feed([t])
        parts.append(h)
    inc = torch.cat(parts)
    assert (inc - full).abs().max().item() <= 1e-5
    # the greedy shift: position i's logits predict token i+1
    logits = target(input_ids=torch.tensor([seq])).logits[0]
    assert torch.allclose(lm.head(inc), logits, atol=1e-5)


def test_bad_inputs(random_pair):
    target, _ = random_pair
    other = zoo.random_model("llama", seed=3, vocab_size=80, hidden_size=32, num_layers=1)
    with pytest.raises(ValueError, match="vocabularies differ"):
        SpeculativeDecoder(target, other)
    dec = SpeculativeDecoder(target, random_pair[1])
    with pytest.raises(ValueError, match="judge"):
        dec.generate([5], mode="judge")
    with pytest.raises(ValueError, match="window"):
        SpecConfig(window=0)
    with pytest.raises(ValueError, match="empty"):
        dec.generate([])


def _padded(model, width, seed):
    """``model`` with its output layer (and embeddings) padded to ``width`` rows that would win the
    argmax over the real vocabulary if they were compared."""
    import copy

    m = copy.deepcopy(model)
    n = m.get_output_embeddings().out_features
    m.resize_token_embeddings(width)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w = m.get_output_embeddings().weight
        w[n:] = 4 * w[torch.randint(0, n, (width - n,), generator=g)]
    return m


def test_padded_output_layers_compare_the_shared_vocabulary(random_pair, prompts, list_tokenizer):
    """Qwen2.5 0.5B-3B have 151,936 logits and 7B+ 152,064 for one tokenizer: such pairs work, on the
    shared vocabulary (issue #18, point 14)."""
    from autojudge.miner import HFGreedyLM

    target, draft = random_pair
    draft72, target80 = _padded(draft, 72, 1), _padded(target, 80, 2)
    p = prompts[2]
    assert greedy(draft72, p, 30, eos=0) != greedy(draft, p, 30, eos=0)  # the padding would win unsliced
    assert greedy(target80, p, 30, eos=0) != greedy(target, p, 30, eos=0)
    tok = list_tokenizer(64)
    for t, d in ((target, draft72), (target80, draft), (target80, draft72)):
        dec = SpeculativeDecoder(t, d, tok, eos_token_id=0)
        assert dec.vocab == 64
        for w in (1, 4):
            assert dec.generate(p, window=w, max_new_tokens=30).tokens == greedy(target, p, 30, eos=0)
            res = dec.generate(p, window=w, max_new_tokens=30, mode="accept_all")
            assert res.tokens == greedy(draft, p, 30, eos=0)
        assert HFGreedyLM(d, dec.vocab).predictions(p) == HFGreedyLM(draft).predictions(p)
    with pytest.raises(ValueError, match="no tokenizer"):
        SpeculativeDecoder(target, draft72)
    with pytest.raises(ValueError, match="vocabularies differ"):
        SpeculativeDecoder(target, draft72, list_tokenizer(73))  # a tokenizer bigger than the draft's logits
    with pytest.raises(ValueError, match="tokenizers differ"):
        SpeculativeDecoder(target, draft72, tok, draft_tokenizer=list_tokenizer(63))
