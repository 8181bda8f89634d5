"""papercore: the shared foundation of the paper packages.

Generic half: :mod:`papercore.kernels` (Triton guard, FWHT, bit packing), :mod:`papercore.cli`
(the CLI pattern), :mod:`papercore.testing` (pytest markers and helpers), :mod:`papercore.io`
(atomic writes, safetensors + JSON). LLM half (``pip install papercore[llm]``):
:mod:`papercore.data`, :mod:`papercore.zoo`, :mod:`papercore.calib`, :mod:`papercore.metrics`.
Heavy submodules are imported on first use, never at ``import papercore``.
"""

__version__ = "0.1.0"
