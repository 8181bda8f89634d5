import pytest
import torch

from aqlm import AQLMConfig
from aqlm.quantize import random_quantize_
from papercore.llm import zoo

# A fast `aqlm quantize` of the zoo tiny model, block fine-tuning included (2 steps per epoch).
FAST_CLI = [
    "--scheme", "1x4g8", "--nsamples", "8", "--seqlen", "32", "--max-epochs", "2",
    "--steps-per-epoch", "5", "--init-max-iter", "10", "--eval-windows", "2",
    "--finetune-max-epochs", "2", "--finetune-batch-size", "3", "--val-size", "2",
    "--finetune-lr", "1e-3", "--device", "cpu", "--log-level", "warning",
]  # fmt: skip


def random_quantized(model, num_codebooks=2, nbits=4, group=8, seed=0):
    """``model`` with every decoder linear swapped for a QuantizedLinear with random codes (format tests)."""
    cfg = AQLMConfig(num_codebooks=num_codebooks, nbits_per_codebook=nbits, in_group_size=group)
    return random_quantize_(model, cfg, seed=seed)


@pytest.fixture
def tiny_random_quantized():
    return random_quantized(zoo.random_model("llama", vocab_size=64, hidden_size=32, num_layers=2))


def run_cli(argv: list[str]) -> int:
    """``aqlm`` in this process, on one thread (as each torchrun worker runs, so sums match)."""
    from aqlm.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return main(argv)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def cli():
    """``(run_cli, FAST_CLI)``: run ``aqlm`` in this process, and the flags of a fast quantization."""
    return run_cli, list(FAST_CLI)


@pytest.fixture(scope="session")
def quantized_run(tmp_path_factory):
    """The output folder of one single-process ``aqlm quantize --out DIR`` run (shared, read-only)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    assert run_cli(["quantize", "--out", str(out), *FAST_CLI]) == 0
    return out
