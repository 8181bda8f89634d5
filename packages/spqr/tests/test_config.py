import json
import math

import pytest

from spqr import PRESETS, SpQRConfig


def test_presets_and_round_trip():
    assert set(PRESETS) == {"w4", "w3", "gptq4", "gptq3", "rtn4", "rtn3"}
    w4 = SpQRConfig.from_preset("w4")
    assert (w4.wbits, w4.groupsize, w4.qq_groupsize, w4.qq_scale_bits, w4.outlier_threshold) == (
        4,
        16,
        16,
        3,
        0.2,
    )
    assert w4.bits_per_parameter() == 4.625 and SpQRConfig() == SpQRConfig.from_preset("w3")
    for name in PRESETS:
        cfg = SpQRConfig.from_preset(name)
        assert SpQRConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="unknown preset 'w5'"):
        SpQRConfig.from_preset("w5")


def test_gptq_and_rtn_force_their_grid():
    gptq = SpQRConfig(method="gptq", outlier_threshold=0.2, qq_scale_bits=3)
    assert math.isinf(gptq.outlier_threshold) and gptq.qq_scale_bits == gptq.qq_zero_bits == 16
    assert not gptq.has_outliers and gptq.bits_per_parameter() == 3 + 32 / 16
    assert SpQRConfig(method="rtn", permutation_order="act_order").permutation_order == "identity"
    assert SpQRConfig.from_preset("gptq4").bits_per_parameter() == 4.25


def test_config_is_a_papercore_config():
    from papercore.config import Config, ConfigError

    assert issubclass(SpQRConfig, Config) and SpQRConfig.VERSION == 1
    cfg = SpQRConfig.from_preset("gptq3")
    assert SpQRConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    # a dict as spqr 0.1 wrote it in checkpoints (every field, version 1) loads as it is
    old = {**SpQRConfig().to_dict(), "version": 1}
    assert SpQRConfig.from_dict(old) == SpQRConfig()
    with pytest.raises(ConfigError, match="unknown key"):
        SpQRConfig.from_dict({**old, "bits": 3})
    with pytest.raises(ConfigError, match="newer than this release"):
        SpQRConfig.from_dict({**old, "version": 2})
    with pytest.raises(ConfigError, match="wbits"):
        SpQRConfig.from_dict({**old, "wbits": "three"})
    assert SpQRConfig.from_dict({"outlier_threshold": "inf"}).outlier_threshold == math.inf
    assert SpQRConfig().replace(wbits=4).wbits == 4


@pytest.mark.parametrize(
    "field,value",
    [
        ("wbits", 1),
        ("wbits", 9),
        ("groupsize", 0),
        ("qq_scale_bits", 12),
        ("qq_zero_bits", 0),
        ("qq_groupsize", 0),
        ("blocksize", 0),
        ("outlier_threshold", -1.0),
        ("outlier_threshold", float("nan")),
        ("percdamp", -0.1),
        ("permutation_order", "random"),
        ("method", "awq"),
        ("version", 2),
        ("wbits", 3.5),
    ],
)
def test_invalid_config(field, value):
    with pytest.raises(ValueError, match=field):
        SpQRConfig(**{field: value})
