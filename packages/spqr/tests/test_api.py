"""The package root exports what the README documents, and the README uses only exported names."""

import re
from pathlib import Path

import spqr

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
SUBMODULES = {
    "checkpoint",
    "cli",
    "config",
    "engine",
    "hf_quantizer",
    "kernels",
    "quantize",
    "quantized_linear",
}


def test_root_all_matches_the_readme():
    used = set(re.findall(r"(?<![/\w])spqr\.([A-Za-z_]\w*)", README)) - SUBMODULES
    assert used <= set(spqr.__all__), f"README names not exported: {sorted(used - set(spqr.__all__))}"
    assert set(spqr.__all__) <= used, f"exported but not in the README: {sorted(set(spqr.__all__) - used)}"
    for name in spqr.__all__:
        assert getattr(spqr, name) is not None
