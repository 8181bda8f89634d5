import copy

import torch

from aqlm import AQLMConfig, DistillConfig
from aqlm.finetune import (
    CodeUpdater,
    StraightThroughAdam,
    beam_encode_groups,
    distill_,
    evaluate_kl,
    finetune_block,
    update_codes,
)
from aqlm.kernels.reference import dequantize
from aqlm.quantize import random_quantize_
from aqlm.quantized_linear import QuantizedLinear
from papercore.llm import zoo


def test_beam_search_re_encoding_is_exhaustive_with_a_full_beam_and_never_worse():
    gen = torch.Generator().manual_seed(0)
    codebooks = torch.randn(2, 8, 1, 4, generator=gen)
    scales = torch.rand(6, 1, 1, 1, generator=gen) + 0.5
    target = torch.randn(6, 12, generator=gen)
    start = torch.randint(0, 8, (6, 3, 2), generator=gen)
    err = lambda c: (dequantize(c, codebooks, scales) - target).view(6, 3, 4).pow(2).sum(-1)
    # brute force: every pair of codes for every group
    pairs = torch.cartesian_prod(torch.arange(8), torch.arange(8))  # [64, 2]
    sums = codebooks[0, pairs[:, 0], 0] + codebooks[1, pairs[:, 1], 0]  # [64, 4]
    groups = (target / scales.view(-1, 1)).view(6, 3, 1, 4)
    best = ((groups - sums) ** 2).sum(-1).argmin(-1)
    full = beam_encode_groups(target, codebooks, scales, start, beam_size=8)
    assert torch.equal(full, pairs[best])
    greedy = beam_encode_groups(target, codebooks, scales, start, beam_size=1)
    assert (err(greedy) <= err(start) + 1e-6).all() and (err(full) <= err(greedy) + 1e-6).all()
    assert err(full).sum() < err(greedy).sum()  # the beam finds better pairs than one greedy pass here


def test_update_codes_moves_toward_the_target_within_the_change_budget():
    gen = torch.Generator().manual_seed(1)
    layer = QuantizedLinear.from_parts(
        torch.randint(0, 16, (32, 8, 2), generator=gen),
        torch.randn(2, 16, 1, 4, generator=gen),
        torch.rand(32, 1, 1, 1) + 0.5,
    )
    before = layer.unsigned_codes().clone()
    target = layer.dequantize() + 0.5 * torch.randn(32, 32, generator=gen)
    error = lambda: (layer.dequantize() - target).pow(2).sum().item()
    start = error()
    frac = update_codes(layer, target, beam_size=4, max_change=0.05)
    changed = (layer.unsigned_codes() != before).any(-1).float().mean().item()
    assert 0 < changed <= 0.05 + 1e-9 and abs(frac - changed) < 1e-9 and error() < start
    assert update_codes(layer, target, beam_size=4, max_change=0.0) == 0.0


def test_code_updates_keep_the_move_the_codes_did_not_take():
    # One scalar codebook {0, 1}, all codes 0 (W = 0), dL/dW = -1: each Adam step moves W by +0.3.
    def layer():
        return QuantizedLinear.from_parts(
            torch.zeros(4, 3, 1, dtype=torch.int64),
            torch.tensor([0.0, 1.0]).view(1, 2, 1, 1),
            torch.ones(4, 1, 1, 1),
        )

    grad = -torch.ones(4, 3)
    for decay, expected in ((1.0, [0.0, 0.0, 0.0]), (0.0, [0.0, 1.0, 0.0])):
        cfg = DistillConfig(
            code_lr=0.3, code_betas=(0.0, 0.95), max_code_change=1.0, code_residual_decay=decay
        )
        updater, q = CodeUpdater(cfg), layer()
        # restarting from the codes, 0.3 never reaches the midpoint 0.5; kept, 0.3 + 0.3 does
        assert [updater.step("q", q, grad) for _ in range(3)] == expected, decay


def test_straight_through_adam_is_adam():
    w = torch.randn(4, 6)
    grads = [torch.randn(4, 6) for _ in range(3)]
    ours = StraightThroughAdam(1e-2, (0.9, 0.95))
    p = torch.nn.Parameter(w.clone())
    ref = torch.optim.Adam([p], lr=1e-2, betas=(0.9, 0.95), eps=1e-8)
    for g in grads:
        moved = ours.step("layer", p.detach().clone(), g)
        p.grad = g
        ref.step()
        torch.testing.assert_close(moved, p.detach())


def test_block_finetune_lowers_the_block_error():
    torch.manual_seed(0)
    teacher = zoo.random_model("llama", vocab_size=64, hidden_size=32, num_layers=1)
    block = copy.deepcopy(teacher.model.layers[0])
    random_quantize_(block, AQLMConfig(num_codebooks=1, nbits_per_codebook=4, in_group_size=4))
    hidden = [torch.randn(1, 10, 32) for _ in range(6)]
    pos = teacher.model.rotary_emb(hidden[0], torch.arange(10)[None])
    kwargs = {"position_embeddings": pos, "attention_mask": None}
    with torch.no_grad():
        targets = [teacher.model.layers[0](h, **kwargs) for h in hidden]
    run = lambda h, b: block(h, **kwargs)
    res = finetune_block(block, run, hidden, targets, max_epochs=8, lr=1e-2, val_size=2, early_stop=8)
    assert res.epochs == 8 and min(res.val_loss) < res.initial_val_loss * 0.9
    assert all(not p.requires_grad for p in block.parameters())


def test_distillation_lowers_kl_and_code_updates_are_bounded():
    torch.manual_seed(0)
    teacher = zoo.random_model("llama", vocab_size=64, hidden_size=32, num_layers=2)
    student = random_quantize_(
        copy.deepcopy(teacher), AQLMConfig(num_codebooks=1, nbits_per_codebook=4, in_group_size=4)
    )
    for m in student.modules():
        if isinstance(m, QuantizedLinear):
            m.store_as_(torch.float16)
    data = torch.randint(0, 64, (8, 16), generator=torch.Generator().manual_seed(0))
    before = evaluate_kl(student, teacher, data)
    codes_before = {
        n: m.unsigned_codes().clone() for n, m in student.named_modules() if isinstance(m, QuantizedLinear)
    }
    cfg = DistillConfig(epochs=4, lr=3e-3, batch_size=4, code_update_every=2, max_code_change=0.02)
    res = distill_(student, teacher, data, cfg, val_data=data, progress=False)
    assert res.steps == 8 and len(res.code_changes) == 4
    assert all(0 <= c <= 0.02 + 1e-9 for c in res.code_changes) and max(res.code_changes) > 0
    assert res.val_kl[-1] < before * 0.8
    changed = [
        (m.unsigned_codes() != codes_before[n]).any(-1).float().mean().item()
        for n, m in student.named_modules()
        if isinstance(m, QuantizedLinear)
    ]
    assert max(changed) <= 4 * 0.02 + 1e-9
    # trained in float32, stored again as they came
    assert student.model.layers[0].mlp.up_proj.codebooks.dtype == torch.float16


def test_block_finetune_of_a_bfloat16_block_keeps_small_updates():
    """Steps of lr 1e-5 are below bf16 resolution; float32 master copies must accumulate them."""
    torch.manual_seed(0)
    teacher = zoo.random_model("llama", vocab_size=64, hidden_size=32, num_layers=1)
    block = copy.deepcopy(teacher.model.layers[0])
    random_quantize_(block, AQLMConfig(num_codebooks=1, nbits_per_codebook=4, in_group_size=4))
    block.to(torch.bfloat16)
    hidden = [torch.randn(1, 10, 32) for _ in range(4)]
    pos = teacher.model.rotary_emb(hidden[0], torch.arange(10)[None])
    with torch.no_grad():
        targets = [teacher.model.layers[0](h, position_embeddings=pos, attention_mask=None) for h in hidden]
    bf_pos = tuple(t.to(torch.bfloat16) for t in pos)
    run = lambda h, b: block(h.to(torch.bfloat16), position_embeddings=bf_pos, attention_mask=None)
    before = block.mlp.up_proj.codebooks.detach().clone()
    finetune_block(block, run, hidden, targets, max_epochs=10, lr=1e-5, early_stop=10, keep_best=False)
    assert block.mlp.up_proj.codebooks.dtype == torch.bfloat16
    assert not torch.equal(block.mlp.up_proj.codebooks, before)
