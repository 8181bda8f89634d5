import copy

import torch

from aqlm import AQLMConfig
from aqlm.finetune import distill_, encode_groups, evaluate_kl, finetune_block, update_codes
from aqlm.kernels.reference import dequantize
from aqlm.quantize import random_quantize_
from aqlm.quantized_linear import QuantizedLinear
from papercore.llm import zoo


def test_encode_groups_is_exact_for_one_codebook_and_never_worse():
    gen = torch.Generator().manual_seed(0)
    codebooks = torch.randn(1, 16, 1, 4, generator=gen)
    scales = torch.rand(6, 1, 1, 1, generator=gen) + 0.5
    target = torch.randn(6, 12, generator=gen)
    start = torch.randint(0, 16, (6, 3, 1), generator=gen)
    codes = encode_groups(target, codebooks, scales, start)
    # brute force nearest codeword for every group
    groups = (target / scales.view(-1, 1)).view(6, 3, 4)
    best = ((groups[:, :, None, :] - codebooks[0, :, 0][None, None]) ** 2).sum(-1).argmin(-1)
    assert torch.equal(codes[..., 0], best)
    multi = torch.randn(3, 16, 1, 4, generator=gen)
    start = torch.randint(0, 16, (6, 3, 3), generator=gen)
    err = lambda c: (dequantize(c, multi, scales) - target).pow(2).sum()
    assert err(encode_groups(target, multi, scales, start)) <= err(start)


def test_update_codes_respects_the_change_budget():
    gen = torch.Generator().manual_seed(1)
    layer = QuantizedLinear.from_parts(
        torch.randint(0, 16, (32, 8, 2), generator=gen),
        torch.randn(2, 16, 1, 4, generator=gen),
        torch.rand(32, 1, 1, 1) + 0.5,
    )
    before = layer.unsigned_codes().clone()
    grad = torch.randn(32, 32, generator=gen)
    frac = update_codes(layer, grad, code_lr=1.0, max_change=0.05)
    changed = (layer.unsigned_codes() != before).any(-1).float().mean().item()
    assert 0 < changed <= 0.05 + 1e-9 and abs(frac - changed) < 1e-9
    assert update_codes(layer, None, 1.0, 0.05) == 0.0


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
    data = torch.randint(0, 64, (8, 16), generator=torch.Generator().manual_seed(0))
    before = evaluate_kl(student, teacher, data)
    codes_before = {
        n: m.unsigned_codes().clone() for n, m in student.named_modules() if isinstance(m, QuantizedLinear)
    }
    res = distill_(
        student,
        teacher,
        data,
        epochs=4,
        lr=3e-3,
        batch_size=4,
        val_data=data,
        code_update_every=2,
        max_code_change=0.02,
        code_lr=0.5,
        progress=False,
    )
    assert res.steps == 8 and len(res.code_changes) == 4
    assert all(0 <= c <= 0.02 + 1e-9 for c in res.code_changes) and max(res.code_changes) > 0
    assert res.val_kl[-1] < before * 0.8
    changed = [
        (m.unsigned_codes() != codes_before[n]).any(-1).float().mean().item()
        for n, m in student.named_modules()
        if isinstance(m, QuantizedLinear)
    ]
    assert max(changed) <= 4 * 0.02 + 1e-9


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
