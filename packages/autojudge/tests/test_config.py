"""The configs: JSON round trip, value checks, the version, and the SpecConfig saved before they
derived from papercore's Config."""

import dataclasses
import json

import pytest

from autojudge.config import EvalConfig, JudgeConfig, MineConfig, SpecConfig, TaskConfig
from papercore.config import ConfigError

CONFIGS = (SpecConfig, TaskConfig, MineConfig, JudgeConfig, EvalConfig)


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_round_trip_and_help(cls, tmp_path):
    cfg = cls()
    assert cls.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    cfg.to_json(tmp_path / "c.json")
    assert cls.from_json(tmp_path / "c.json") == cfg
    assert all(f.metadata.get("help") for f in dataclasses.fields(cls)), "every field has a help text"
    with pytest.raises(ConfigError, match="unknown key"):
        cls.from_dict({**cfg.to_dict(), "nope": 1})
    with pytest.raises(ConfigError, match="newer"):
        cls.from_dict({**cfg.to_dict(), "version": cls.VERSION + 1})


@pytest.mark.parametrize(
    "cls,bad,needle",
    [
        (SpecConfig, {"window": 0}, "window"),
        (SpecConfig, {"mode": "greedy"}, "mode"),
        (SpecConfig, {"accept_prob": 1.5}, "accept_prob"),
        (SpecConfig, {"max_new_tokens": 0}, "max_new_tokens"),
        (TaskConfig, {"max_new_tokens": 0}, "max_new_tokens"),
        (MineConfig, {"follow": "sideways"}, "follow"),
        (MineConfig, {"max_failed_share": 2.0}, "max_failed_share"),
        (MineConfig, {"min_per_class": -1}, "min_per_class"),
        (JudgeConfig, {"setup": "XY"}, "setup"),
        (JudgeConfig, {"val_fraction": 0.0}, "val_fraction"),
        (JudgeConfig, {"c_grid": [1.0, -1.0]}, "c_grid"),
        (EvalConfig, {"top_ks": [0]}, "top_ks"),
        (EvalConfig, {"window": "8"}, "window"),
    ],
)
def test_bad_values_are_config_errors(cls, bad, needle):
    with pytest.raises(ConfigError, match=needle):
        cls.from_dict(bad)


def test_spec_config_of_the_earlier_release_loads():
    """SpecConfig was a plain dataclass with a ``version: int = 1`` field; its dicts still load, and
    the positional order of the fields is unchanged."""
    old = {"window": 8, "mode": "judge", "threshold": 0.3, "top_k": 2, "accept_prob": 0.5,
           "max_new_tokens": 64, "seed": 3, "version": 1}  # fmt: skip
    cfg = SpecConfig.from_dict(old)
    assert cfg == SpecConfig(8, "judge", 0.3, max_new_tokens=64, seed=3) and cfg.to_dict() == old
    assert "seed" not in {f.name for f in dataclasses.fields(SpecConfig) if f.metadata.get("cli", True)}
