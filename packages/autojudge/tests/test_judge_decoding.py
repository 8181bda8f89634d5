"""Judge-mode decoding end to end with a judge trained on mined labels (issue #18, point 13): the
engine's output, accepted mismatches, accuracy and acceptance rate equal what the judge's own
decisions imply, replayed here with one-shot forwards (no KV cache) on a scripted case."""

import torch

from autojudge.config import JudgeConfig, SpecConfig, TaskConfig
from autojudge.data import Item
from autojudge.engine import SpeculativeDecoder
from autojudge.evaluate import Method, run_methods
from autojudge.judge import extract_features, train_judge
from autojudge.miner import HFGreedyLM, mine_one

EOS = 1  # the random models' config EOS
W, MAX_NEW = 4, 16


def _prompts(n, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, 64, (5,), generator=g).tolist() for _ in range(n)]


def _answer(text, item):
    """The scripted task's answer: the response's tokens 2 and 3 (a swap elsewhere does not matter)."""
    return tuple(text.split()[2:4])


def _trained_judge(target, draft):
    decode = lambda ids: " ".join(map(str, ids))
    t_lm, d_lm = HFGreedyLM(target), HFGreedyLM(draft)
    records = []
    for i, p in enumerate(_prompts(16, 0)):
        rec = mine_one(t_lm, d_lm, p, decode, _answer, Item(str(i), ""), MAX_NEW, {EOS})
        records.append(rec)
    feats = extract_features(records, target, draft, progress=False)
    judge, report = train_judge(feats, JudgeConfig(c_grid=(0.1, 1.0), val_fraction=0.25))
    return judge, feats


@torch.no_grad()
def _replay(target, draft, judge, prompt, threshold):
    """Judge decoding from one-shot forwards: tokens and, per cycle, (proposed, accepted, judged, refused)."""
    seq, out, cycles = list(prompt), [], []
    while len(out) < MAX_NEW:
        w = min(W, MAX_NEW - len(out))
        prop = []
        while len(prop) < w:  # the draft's greedy proposal, one full forward per token
            tok = int(draft(input_ids=torch.tensor([seq + prop])).logits[0, -1].argmax())
            prop.append(tok)
            if tok == EOS:
                break
        x = torch.tensor([seq + prop])
        t_h = target.get_decoder()(input_ids=x).last_hidden_state[0]
        d_h = draft.get_decoder()(input_ids=x).last_hidden_state[0]
        t_pred = target.get_output_embeddings()(t_h).argmax(-1).tolist()
        L, k = len(seq), len(prop)
        p_imp = judge.prob(torch.cat([d_h[L : L + k], t_h[L : L + k]], -1)).tolist()
        n = judged = 0
        while n < k and (prop[n] == t_pred[L - 1 + n] or p_imp[n] < threshold):
            judged += prop[n] != t_pred[L - 1 + n]
            n += 1
        emitted = prop[:n] + ([t_pred[L - 1 + n]] if n < k else [])
        if EOS in emitted:
            emitted = emitted[: emitted.index(EOS) + 1]
        cycles.append((k, min(n, len(emitted)), judged, n < k))
        out += emitted
        seq += emitted
        if emitted[-1] == EOS:
            break
    return out, cycles


def test_judge_mode_equals_the_judges_decisions(random_pair, list_tokenizer):
    target, draft = random_pair
    judge, feats = _trained_judge(target, draft)
    assert 0 < feats["label"].float().mean() < 1
    threshold = judge.threshold(13)  # about the median validation P(important)
    tok = list_tokenizer(64, eos=EOS)
    dec = SpeculativeDecoder(target, draft, tok, judge=judge, eos_token_id=EOS)
    prompts = _prompts(6, 1)
    items, replays = [], []
    accepted = refused = n_cycles = 0
    for i, p in enumerate(prompts):
        res = dec.generate(p, SpecConfig(W, "judge", threshold=threshold, max_new_tokens=MAX_NEW))
        ref_tokens, ref_cycles = _replay(target, draft, judge, p, threshold)
        assert res.tokens == ref_tokens
        assert [(c.proposed, c.accepted, c.judged) for c in res.cycles] == [c[:3] for c in ref_cycles]
        accepted += sum(c[2] for c in ref_cycles)
        refused += sum(c[3] for c in ref_cycles)
        n_cycles += len(ref_cycles)
        replays.append(ref_tokens)
        # gold = the replayed answer for even problems, something else for odd ones
        gold = _answer(tok.decode(ref_tokens), None) if i % 2 == 0 else ("no", "answer")
        items.append(Item(str(i), tok.decode(p), gold))
    assert accepted > 0 and refused > 0  # the judge accepted some mismatches and refused others
    cfg = SpecConfig(W, "judge", threshold=threshold, max_new_tokens=MAX_NEW)
    (row,) = run_methods(items, target, draft, tok, _answer, [Method("judge", cfg)], judge=judge, progress=False,
                         chat_template=TaskConfig().chat_template)  # fmt: skip
    assert row["accuracy"] == 3 / 6
    assert row["mismatch_accept_rate"] == accepted / (accepted + refused)
    assert row["accepted_per_cycle"] == sum(map(len, replays)) / n_cycles
