"""Distributed quantization with the gloo backend and 2 CPU processes."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from aqlm import AQLMConfig, QuantizedLinear
from aqlm.quantize import quantize_
from papercore.llm import zoo

CONFIG = AQLMConfig(
    num_codebooks=1,
    nbits_per_codebook=4,
    in_group_size=8,
    max_epochs=3,
    steps_per_epoch=5,
    finetune_max_epochs=2,
    finetune_lr=1e-3,
    val_size=2,
)


def make_inputs():
    model = zoo.random_model(
        "llama", seed=0, vocab_size=64, hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2
    )
    calib = torch.randint(0, 64, (8, 16), generator=torch.Generator().manual_seed(0))
    return model, calib


def quantized_state(model):
    return {n: m.unsigned_codes() for n, m in model.named_modules() if isinstance(m, QuantizedLinear)}


def worker(rank, world, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        model, calib = make_inputs()
        report = quantize_(model, CONFIG, calib, checkpoint_dir=os.path.join(out_dir, "ckpt"), progress=False)
        tensors = {f"codes/{n}": c for n, c in quantized_state(model).items()}
        tensors["mse"] = torch.tensor([layer.relative_mse for layer in report.layers], dtype=torch.float64)
        tensors["sequences"] = torch.tensor([report.calibration_sequences])
        tensors["logits"] = model(input_ids=calib[:2]).logits.detach()
        save_file(tensors, os.path.join(out_dir, f"rank{rank}.safetensors"))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_match_each_other_and_one_process(tmp_path):
    mp.spawn(worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert r0["sequences"].item() == r1["sequences"].item() == 4  # the 8 sequences are split across ranks
    for name in r0:
        if name.startswith("codes/"):
            assert torch.equal(r0[name], r1[name]), name
    assert torch.allclose(r0["logits"], r1["logits"])
    assert sorted((tmp_path / "ckpt").glob("block_*.safetensors"))  # rank 0 wrote the checkpoints

    model, calib = make_inputs()
    single = quantize_(model, CONFIG, calib, progress=False)
    # Block 0 sees XᵀX over the same tokens (summed in another order): the same quantization to rounding.
    # (Later blocks differ: fine-tuning on two shards takes other steps than on one.)
    block0 = [
        (a, b) for a, b in zip(single.layers, r0["mse"].tolist()) if a.name.startswith("model.layers.0.")
    ]
    assert len(block0) == 7
    for a, b in block0:
        assert abs(a.relative_mse - b) <= 1e-6 * max(a.relative_mse, 1e-12), a.name
