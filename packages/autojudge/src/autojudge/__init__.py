"""AutoJudge (Garipov et al., 2025): lossy speculative decoding with a judge trained without annotation."""

__version__ = "0.1.0"
