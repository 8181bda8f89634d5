"""papercore: the shared foundation of the paper packages.

Generic half: :mod:`papercore.kernels` (Triton guard, FWHT, bit packing), :mod:`papercore.cli`
(the CLI pattern), :mod:`papercore.testing` (pytest markers and helpers), :mod:`papercore.io`
(atomic writes, safetensors + JSON). LLM half (``pip install papercore[llm]``):
:mod:`papercore.llm.data`, :mod:`papercore.llm.zoo`, :mod:`papercore.llm.calib`, :mod:`papercore.llm.metrics`.
Heavy submodules are imported on first use, never at ``import papercore``.
"""

__version__ = "0.1.0"
