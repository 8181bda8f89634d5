import pytest

from aqlm import SCHEMES, AQLMConfig, bits_per_parameter, parse_scheme


def test_presets_and_free_schemes():
    assert SCHEMES["1x16g8"] == (1, 16, 8) and parse_scheme("2x8g8") == (2, 8, 8)
    assert parse_scheme("3x6g4") == (3, 6, 4)
    cfg = AQLMConfig.from_scheme("1x16g16", beam_size=4)
    assert (cfg.num_codebooks, cfg.nbits_per_codebook, cfg.in_group_size, cfg.beam_size) == (1, 16, 16, 4)
    assert cfg.scheme == "1x16g16"
    assert AQLMConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown scheme"):
        parse_scheme("two-bit")


@pytest.mark.parametrize(
    "field,value", [("nbits_per_codebook", 17), ("in_group_size", 0), ("relative_mse_tolerance", 1.0)]
)
def test_invalid_config(field, value):
    with pytest.raises(ValueError, match=field):
        AQLMConfig(**{field: value})


def test_bits_per_parameter_formula():
    # Paper: Llama-2-7B at 1x16g8 is 2.29 bits on average; a 4096x4096 layer alone: 2 + 1/(16*16)... check the terms.
    out, inp = 4096, 4096
    expected = 1 * 16 / 8 + 1 * 2**16 * 8 * 16 / (out * inp) + 16 / inp
    assert bits_per_parameter(out, inp, 1, 16, 8) == pytest.approx(expected)
    assert bits_per_parameter(11008, 4096, 2, 8, 8) == pytest.approx(
        2 + 2 * 256 * 8 * 16 / (11008 * 4096) + 16 / 4096
    )
