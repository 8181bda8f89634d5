import json

import pytest

from hogwild.config import GenerateConfig
from papercore.config import Config, ConfigError


def test_defaults_and_round_trip():
    cfg = GenerateConfig(workers=3, record_at=(20, 10, 10), budget=30)
    assert isinstance(cfg, Config) and cfg.version == GenerateConfig.VERSION == 2
    assert cfg.names == () and cfg.worker_names == ("Alice", "Bob", "Carol") and cfg.record_at == (10, 20)
    again = GenerateConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert GenerateConfig(workers=10).worker_names[-1] == "Worker10"
    # empty names mean "the defaults", so a saved config still works with another worker count
    assert cfg.replace(workers=4).worker_names == ("Alice", "Bob", "Carol", "Dave")


def test_json_file_round_trip(tmp_path):
    cfg = GenerateConfig(workers=2, names=("Ann", "Ben"), layout="interleaved", temperature=0.5)
    cfg.to_json(tmp_path / "cfg.json")
    assert GenerateConfig.from_json(tmp_path / "cfg.json") == cfg


def test_version_1_dicts_still_load():
    # what hogwild 0.1 wrote (results.json "config"): names filled in, a seed, version 1
    old = {
        "workers": 2, "names": ["Alice", "Bob"], "layout": "combined", "budget": 96, "temperature": 0.0,
        "top_p": 1.0, "check_every": 256, "finisher": True, "finisher_tokens": 16,
        "suppress": ["#", " #", "##", "</think>"], "few_shot": True, "chat_template": True,
        "record_at": [32, 64, 96], "backend": "auto", "seed": 3, "version": 1,
    }  # fmt: skip
    cfg = GenerateConfig.from_dict(old)
    assert cfg.version == 2 and cfg.budget == 96 and cfg.record_at == (32, 64, 96)
    assert cfg.worker_names == ("Alice", "Bob") and "seed" not in cfg.to_dict()


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"workers": 65}, "workers"),
        ({"workers": 0}, "workers"),
        ({"names": ("A", "A")}, "distinct"),
        ({"names": ("A",)}, "1 names for 2 workers"),
        ({"temperature": -1.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"record_at": (600,)}, "record_at"),
        ({"budget": 0}, "budget"),
        ({"check_every": -1}, "check_every"),
        ({"finisher_tokens": 0}, "finisher_tokens"),
        ({"backend": "cuda"}, "backend"),
        ({"layout": "zigzag"}, "layout"),
        ({"workers": "2"}, "workers"),
        ({"version": 9}, "version"),
    ],
)
def test_invalid(kw, match):
    with pytest.raises(ConfigError, match=match):
        GenerateConfig(**kw)


def test_bad_dicts_name_the_key():
    with pytest.raises(ConfigError, match="unknown key.*'seeds'"):
        GenerateConfig.from_dict({"seeds": 1})
    with pytest.raises(ConfigError, match="seed"):  # a seed in a current-version dict is not a field
        GenerateConfig.from_dict({"seed": 1, "version": 2})
    with pytest.raises(ConfigError, match="newer than this release"):
        GenerateConfig.from_dict({"version": 3})
