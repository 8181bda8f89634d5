"""Throughput of bit packing on a GPU: Triton kernels vs the torch reference vs a plain copy.

    python shared/benchmarks/bench_packing.py [--log2n 28] [--json results.json]

GB/s counts bytes read + written: uint8 codes in and int32 words out for pack, the reverse for
unpack (which writes uint8 codes). Times are triton.testing.do_bench medians after warm-up. The
device-to-device copy measured in the same run is the roofline: a kernel at 1.0 of it moves
its bytes as fast as the memory system allows.
"""

from __future__ import annotations

import argparse
import sys

import torch

BITS = (2, 3, 4, 8)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log2n", type=int, default=28, help="number of codes is 2**LOG2N (default 28)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as a JSON list to PATH")
    args = ap.parse_args()

    if not torch.cuda.is_available():
        print("bench_packing.py needs a CUDA GPU and none was found; nothing to measure.", file=sys.stderr)
        return 1
    from papercore.kernels.triton_guard import interpreter_enabled, triton_version

    if triton_version() is None or interpreter_enabled():
        print("bench_packing.py needs Triton compiled for the GPU: install triton, unset TRITON_INTERPRET.")
        return 1
    from triton.testing import do_bench

    from papercore.bench import Entry, command_line, hardware, today, write_results
    from papercore.kernels.packing import pack_bits, unpack_bits

    def gbps(nbytes: int, fn) -> float:
        return nbytes / (do_bench(fn, warmup=100, rep=500, return_mode="median") * 1e-3) / 1e9

    src = torch.randint(0, 256, (2**30,), dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    copy = gbps(2 * src.numel(), lambda s=src, d=dst: d.copy_(s))
    del src, dst

    n = 2**args.log2n
    hw, date, cmd = hardware(), today(), command_line()
    print(f"{hw}: n = 2^{args.log2n} codes; device-to-device copy {copy:.0f} GB/s (read + write)\n")
    print(f"{'op':<8}{'bits':>5}{'triton GB/s':>13}{'torch GB/s':>12}{'speedup':>9}{'of copy':>9}")
    entries = []
    for bits in BITS:
        codes = torch.randint(0, 2**bits, (n,), dtype=torch.uint8, device="cuda")
        words = pack_bits(codes, bits, backend="triton")
        assert torch.equal(words, pack_bits(codes, bits, backend="torch")), "triton != torch"
        assert torch.equal(unpack_bits(words, bits, n, dtype=torch.uint8, backend="triton"), codes)
        nbytes = codes.numel() + words.numel() * words.element_size()
        ops = {
            # validate=False: time the packing, not the range check (an aminmax and a host sync)
            "pack": lambda b, c=codes, k=bits: pack_bits(c, k, backend=b, validate=False),
            "unpack": lambda b, w=words, k=bits: unpack_bits(w, k, n, dtype=torch.uint8, backend=b),
        }
        for op, fn in ops.items():
            tri = gbps(nbytes, lambda f=fn: f("triton"))
            ref = gbps(nbytes, lambda f=fn: f("torch"))
            print(f"{op:<8}{bits:>5}{tri:>13.0f}{ref:>12.1f}{tri / ref:>8.1f}x{tri / copy:>9.2f}")
            name = f"{op}_bits k={bits} W=32 n=2^{args.log2n}"
            for baseline, base in (("torch reference", ref), ("device-to-device copy", copy)):
                entries.append(
                    Entry(name, "GB/s (read+write)", tri, baseline, base, tri / base, hw, date, cmd)
                )
        del codes, words
        torch.cuda.empty_cache()

    if args.json:
        print()
        write_results(entries, args.json, md_title="Bit packing throughput")
        print(f"\nwrote {len(entries)} entries to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
