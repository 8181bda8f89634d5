"""Shared bits of the aquakv benchmark scripts (not collected by pytest)."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc)
    p.add_argument(
        "--quick", action="store_true", help="tiny shapes on the CPU (checks the script end to end)"
    )
    p.add_argument(
        "--json", default=None, help="results file (default docs/benchmarks/aquakv*.json; --quick: none)"
    )
    p.add_argument("--out", default=None, help="folder for extra artifacts (a copy of the JSON)")
    p.add_argument("--contexts", default="1024,8192,32768", help="decode contexts (bench_decode)")
    return p


def guarded(name: str, fn, failures: list):
    """Run one configuration; report a failure (OOM included) and carry on."""
    import torch

    try:
        return fn()
    except torch.cuda.OutOfMemoryError as e:
        failures.append(f"{name}: out of memory ({str(e).splitlines()[0]})")
    except Exception as e:  # noqa: BLE001 - one failure must not stop the others
        failures.append(f"{name}: {type(e).__name__}: {e}")
        traceback.print_exc(file=sys.stderr)
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return None


def fair_sdpa():
    """SDPA without the cuDNN backend, for every cache alike.

    torch picks cuDNN attention on Hopper; it builds an execution plan per new key length, and a
    decode step has a new key length every time: 2.2 ms of host time per attention call at 8k was
    measured on the H200 (60% of an fp16 step). Flash / memory-efficient kernels have no such cost.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])
