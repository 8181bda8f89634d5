import json

import pytest

import aqlm
import aqlm.config
from aqlm import SCHEMES, AQLMConfig, DistillConfig, bits_per_parameter, parse_scheme
from papercore.config import Config, ConfigError


def test_presets_and_free_schemes():
    assert SCHEMES["1x16g8"] == (1, 16, 8) and parse_scheme("2x8g8") == (2, 8, 8)
    assert parse_scheme("3x6g4") == (3, 6, 4)
    cfg = AQLMConfig.from_scheme("1x16g16", beam_size=4)
    assert (cfg.num_codebooks, cfg.nbits_per_codebook, cfg.in_group_size, cfg.beam_size) == (1, 16, 16, 4)
    assert cfg.scheme == "1x16g16"
    with pytest.raises(ValueError, match="unknown scheme"):
        parse_scheme("two-bit")


@pytest.mark.parametrize("cls", [AQLMConfig, DistillConfig])
def test_configs_derive_from_config_and_round_trip(cls, tmp_path):
    assert issubclass(cls, Config)
    cfg = cls()
    assert cls.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    cfg.to_json(tmp_path / "c.json")
    assert cls.from_json(tmp_path / "c.json") == cfg
    with pytest.raises(ConfigError, match="unknown key"):
        cls.from_dict({**cfg.to_dict(), "nsamples": 128})
    with pytest.raises(ConfigError, match="newer than this release"):
        cls.from_dict({**cfg.to_dict(), "version": cls.VERSION + 1})


def test_config_saved_by_the_previous_release_still_loads():
    # aqlm_config.json of a block-checkpoint folder written before codebook_dtype existed
    old = {**AQLMConfig.from_scheme("1x16g8", finetune_max_epochs=3).to_dict(), "version": 1}
    del old["codebook_dtype"]
    cfg = AQLMConfig.from_dict(old)
    assert cfg.scheme == "1x16g8" and cfg.finetune_max_epochs == 3 and cfg.codebook_dtype == "float16"
    assert cfg.skip == ("lm_head", "embed_tokens", "gate")


@pytest.mark.parametrize(
    "cls,field,value",
    [
        (AQLMConfig, "nbits_per_codebook", 17),
        (AQLMConfig, "in_group_size", 0),
        (AQLMConfig, "relative_mse_tolerance", 1.0),
        (AQLMConfig, "finetune_batch_size", 0),
        (AQLMConfig, "codebook_dtype", "float8"),
        (DistillConfig, "max_code_change", 1.5),
        (DistillConfig, "code_beam_size", 0),
    ],
)
def test_invalid_config(cls, field, value):
    with pytest.raises(ConfigError, match=field):
        cls(**{field: value})


def test_dead_run_options_are_gone_and_the_readme_names_are_exported():
    assert not hasattr(aqlm.config, "RunOptions")
    for name in (
        "quantize_",
        "load_quantized",
        "save_quantized",
        "QuantizedLinear",
        "AQLMConfig",
        "distill_",
    ):
        assert name in aqlm.__all__ and hasattr(aqlm, name)


def test_bits_per_parameter_formula():
    # Paper: Llama-2-7B at 1x16g8 is 2.29 bits on average; a 4096x4096 layer alone: 2 + 1/(16*16)... check the terms.
    out, inp = 4096, 4096
    expected = 1 * 16 / 8 + 1 * 2**16 * 8 * 16 / (out * inp) + 16 / inp
    assert bits_per_parameter(out, inp, 1, 16, 8) == pytest.approx(expected)
    assert bits_per_parameter(11008, 4096, 2, 8, 8) == pytest.approx(
        2 + 2 * 256 * 8 * 16 / (11008 * 4096) + 16 / 4096
    )
    # 6-bit codes stored in int8, float32 codebooks and scales
    assert bits_per_parameter(64, 32, 1, 6, 8, code_bits=8, codebook_bits=32, scale_bits=32) == pytest.approx(
        8 / 8 + 32 * 64 * 8 / (64 * 32) + 32 / 32
    )
