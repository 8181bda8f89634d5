import json

import pytest

from aquakv import AquaKVConfig, CalibrationConfig
from papercore.config import ConfigError

# What aquakv 0.1 wrote (dataclasses.asdict, "version" last) into predictors.json, report.json and
# layers/config.json before AquaKVConfig derived from papercore's Config.
SAVED_V1 = {"edenn_d": 2, "edenn_n": 64, "group_size": None, "first_layer_bits": 16, "scale_dtype": "float16",
            "prefix_size": 4, "buffer_size": 128, "version": 1}  # fmt: skip


def test_configs_round_trip_through_json(tmp_path):
    cfg = AquaKVConfig(edenn_n=64, group_size=32, first_layer_bits=16, buffer_size=16)
    assert AquaKVConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    calib = CalibrationConfig(nsamples=8, seqlen=64, valid_nsamples=1, percdamp=0.01)
    calib.to_json(tmp_path / "c.json")
    assert CalibrationConfig.from_json(tmp_path / "c.json") == calib


def test_configs_saved_by_aquakv_0_1_still_load():
    assert AquaKVConfig.from_dict(SAVED_V1) == AquaKVConfig(edenn_n=64, first_layer_bits=16)
    assert AquaKVConfig(edenn_n=64, first_layer_bits=16).to_dict() == SAVED_V1  # same keys and values


@pytest.mark.parametrize(
    "cls,values,needle",
    [
        (AquaKVConfig, {"group_size": 24}, "group_size must be a power of two"),
        (AquaKVConfig, {"edenn_n": 24}, "edenn_n must be a power of two"),
        (AquaKVConfig, {"first_layer_bits": 5}, "first_layer_bits"),
        (AquaKVConfig, {"scale_dtype": "int8"}, "scale_dtype"),
        (AquaKVConfig, {"buffer_size": -1}, "buffer_size"),
        (AquaKVConfig, {"edenn_d": "2"}, "expected an integer"),
        (AquaKVConfig, {"edenn_m": 2}, "unknown key"),
        (AquaKVConfig, {"version": 2}, "newer than this release"),
        (CalibrationConfig, {"nsamples": 4, "valid_nsamples": 4}, "smaller than nsamples"),
        (CalibrationConfig, {"percdamp": -1.0}, "percdamp"),
        (CalibrationConfig, {"seqlen": 1}, "seqlen"),
    ],
)
def test_bad_values_are_config_errors(cls, values, needle):
    with pytest.raises(ConfigError, match=needle):
        cls.from_dict(values)


def test_calibration_sizes_resolve_to_the_paper_or_the_zoo_defaults():
    assert CalibrationConfig().resolved() == CalibrationConfig(nsamples=256, seqlen=8192, valid_nsamples=32)
    assert CalibrationConfig().resolved(small=True) == CalibrationConfig(
        nsamples=32, seqlen=256, valid_nsamples=4
    )
    assert CalibrationConfig(nsamples=10, valid_nsamples=0).resolved().valid_nsamples == 0
    with pytest.raises(ValueError, match="valid_nsamples"):
        CalibrationConfig(valid_nsamples=6).holdout(6)
