#!/usr/bin/env python3
"""`make demo`: run every installed member's CLI on its embedded default and print a short summary.

papercore runs `papercore info` and `papercore demo`; each package runs `<cli> demo`, which every
package CLI provides (its built-in model or data, no arguments). A member whose CLI is not
installed is reported and skipped; a failing demo fails the whole run, and so does one that takes
longer than DEMO_LIMIT_S seconds (default 180: every demo finishes within 3 minutes on 2 cores, from
an empty PAPERCORE_CACHE in CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from members import discover  # noqa: E402


def main() -> int:
    limit = float(os.environ.get("DEMO_LIMIT_S", "180"))
    bin_dir = Path(sys.executable).parent
    results = []
    for member in discover():
        for cli in member.scripts:
            exe = shutil.which(cli, path=str(bin_dir)) or shutil.which(cli)
            if exe is None:
                results.append((cli, "not installed", 0.0))
                continue
            commands = [["info"], ["demo"]] if member.path == "shared" else [["demo"]]
            for args in commands:
                print(f"\n$ {cli} {' '.join(args)}", flush=True)
                t0 = time.perf_counter()
                rc = subprocess.call([exe, *args])
                seconds = time.perf_counter() - t0
                status = "ok" if rc == 0 else f"FAILED (exit {rc})"
                if rc == 0 and seconds > limit:
                    status = f"FAILED (over {limit:.0f} s)"
                results.append((f"{cli} {' '.join(args)}", status, seconds))
    print("\nsummary")
    for name, status, seconds in results:
        print(f"  {name:<28} {status:<16} {seconds:6.1f} s")
    return 1 if any(s.startswith("FAILED") for _, s, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
