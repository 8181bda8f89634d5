"""papercore's LLM toolkit (``pip install papercore[llm]``): what the LLM packages share.

* :mod:`papercore.llm.data`: named corpora through ``datasets``, local files, the offline
  standard-library corpus, a local BPE tokenizer, calibration and evaluation windows;
* :mod:`papercore.llm.zoo`: tiny random configs and small trained models, cached;
* :mod:`papercore.llm.calib`: the layer-by-layer calibration engine (GPTQ/SpQR, AQLM, AQUA-KV);
* :mod:`papercore.llm.metrics`: perplexity;
* :mod:`papercore.llm.hf_compat`: shims over transformers versions;
* :mod:`papercore.llm.rope`: the RoPE helper;
* :mod:`papercore.llm.bench`: a Llama-shaped decode step for GPU timing.

Submodules are imported on first use.
"""
