"""AutoJudge (Garipov et al., 2025): lossy speculative decoding with a judge trained without annotation.

mine (label draft/target mismatches by whether they change the target's answer) -> train (a linear
judge on hidden states) -> decode (accept a mismatch the judge calls unimportant).
"""

__version__ = "0.1.0"

from autojudge.checkers import load_checker
from autojudge.config import EvalConfig, JudgeConfig, MineConfig, SpecConfig, TaskConfig
from autojudge.data import Item, builtin_items, encode_prompt, load_items
from autojudge.engine import SpecResult, SpeculativeDecoder, greedy
from autojudge.evaluate import format_table, run_eval, run_methods
from autojudge.judge import Judge, extract_features, train_judge
from autojudge.miner import label_stats, load_mined, mine
from autojudge.models import load_pair

__all__ = [
    "EvalConfig",
    "Item",
    "Judge",
    "JudgeConfig",
    "MineConfig",
    "SpecConfig",
    "SpecResult",
    "SpeculativeDecoder",
    "TaskConfig",
    "builtin_items",
    "encode_prompt",
    "extract_features",
    "format_table",
    "greedy",
    "label_stats",
    "load_checker",
    "load_items",
    "load_mined",
    "load_pair",
    "mine",
    "run_eval",
    "run_methods",
    "train_judge",
]
