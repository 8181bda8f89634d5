import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from papercore.config import Config, ConfigError, config_diff, load_config


@dataclass
class Inner(Config):
    width: int = 4


def _v1_to_v2(d):
    d["bits"] = d.pop("nbits")
    return d


@dataclass
class Method(Config):
    VERSION = 3
    MIGRATIONS = {1: _v1_to_v2, 2: lambda d: {**d, "skip": d.get("skip", ["lm_head"])}}

    required: int
    bits: int = 2
    tau: float = 0.2
    order: Literal["identity", "act_order"] = "act_order"
    skip: tuple[str, ...] = ("lm_head",)
    shape: tuple[int, int] = (4, 8)
    path: Path | None = None
    size: int | None = None
    inner: Inner = field(default_factory=Inner)

    def validate(self):
        if self.bits < 1:
            raise ValueError(f"bits must be >= 1, got {self.bits}")


def test_round_trip_through_json(tmp_path):
    cfg = Method(required=1, tau=math.inf, skip=["a", "b"], path="x/y", inner=Inner(width=7))
    assert cfg.skip == ("a", "b") and cfg.path == Path("x/y") and cfg.version == 3
    d = cfg.to_dict()
    assert d["skip"] == ["a", "b"] and d["path"] == "x/y" and d["inner"] == {"width": 7, "version": 1}
    assert Method.from_dict(json.loads(json.dumps(d))) == cfg
    cfg.to_json(tmp_path / "c.json")
    assert Method.from_json(tmp_path / "c.json") == cfg
    assert load_config(tmp_path / "c.json", Method) == cfg


def test_ints_coerce_to_floats_and_inf_strings_parse():
    cfg = Method.from_dict({"required": 1, "tau": 1, "inner": {"width": 2}})
    assert isinstance(cfg.tau, float) and cfg.inner == Inner(width=2)
    assert Method.from_dict({"required": 1, "tau": "inf"}).tau == math.inf


@pytest.mark.parametrize(
    "d,needle",
    [
        ({"required": 1, "bitz": 3}, "Method: unknown key(s) 'bitz'; allowed: required, bits, tau"),
        ({}, "missing required key(s) 'required'"),
        ({"required": "1"}, "Method.required: expected an integer, got '1' (str)"),
        ({"required": True}, "Method.required: expected an integer, got True"),
        ({"required": 1, "order": "random"}, "Method.order: expected one of 'identity', 'act_order'"),
        ({"required": 1, "shape": [1, 2, 3]}, "Method.shape: expected a list of an integer"),
        ({"required": 1, "skip": "lm_head"}, "Method.skip: expected a list of a string"),
        ({"required": 1, "inner": {"depth": 2}}, "Inner: unknown key(s) 'depth'"),
        ({"required": 1, "bits": 0}, "Method: bits must be >= 1, got 0"),
        ({"required": 1, "version": 4}, "version 4 is newer than this release understands (up to 3)"),
        ({"required": 1, "version": "3"}, "Method.version: expected an integer"),
    ],
)
def test_errors_name_the_key_and_the_fix(d, needle):
    with pytest.raises(ConfigError) as e:
        Method.from_dict(d)
    assert needle in str(e.value), str(e.value)
    assert isinstance(e.value, ValueError)


def test_migrations_run_one_version_at_a_time():
    cfg = Method.from_dict({"version": 1, "required": 2, "nbits": 5})
    assert (cfg.bits, cfg.skip, cfg.version) == (5, ("lm_head",), 3)

    @dataclass
    class NoMigration(Config):
        VERSION = 2
        a: int = 1

    with pytest.raises(ConfigError, match="version 1 is older than this release's 2 and has no migration"):
        NoMigration.from_dict({"version": 1, "a": 1})


def test_direct_construction_checks_types_and_version():
    with pytest.raises(ConfigError, match="Method.bits: expected an integer"):
        Method(required=1, bits="2")
    with pytest.raises(ConfigError, match="load older configs with Method.from_dict"):
        Method(required=1, version=1)
    with pytest.raises(ConfigError, match="newer"):
        Method(required=1, version=9)
    with pytest.raises(ConfigError, match="bits must be >= 1"):
        Method(required=1).replace(bits=0)


def test_post_init_in_a_subclass_is_refused():
    with pytest.raises(TypeError, match="put its checks in validate"):

        @dataclass
        class Bad(Config):
            a: int = 1

            def __post_init__(self):
                pass


def test_config_diff_names_the_first_difference():
    a = Method(required=1).to_dict()
    assert config_diff(a, a) is None
    assert config_diff(a, {**a, "tau": 0.5}) == "tau: 0.2 != 0.5"
