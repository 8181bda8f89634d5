import json

import pytest

from hogwild.config import GenerateConfig


def test_defaults_and_round_trip():
    cfg = GenerateConfig(workers=3, record_at=(20, 10, 10), budget=30)
    assert cfg.names == ("Alice", "Bob", "Carol") and cfg.record_at == (10, 20)
    again = GenerateConfig(**json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert GenerateConfig(workers=10).names[-1] == "Worker10"


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"workers": 65}, "workers"),
        ({"names": ("A", "A")}, "distinct"),
        ({"temperature": -1.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"record_at": (600,)}, "record_at"),
        ({"backend": "cuda"}, "backend"),
        ({"version": 9}, "version"),
    ],
)
def test_invalid(kw, match):
    with pytest.raises(ValueError, match=match):
        GenerateConfig(**kw)
