import numpy as np
import pytest
import torch

from papercore.ot.icnn import DenseICNN
from w2gn import W2GNConfig, W2Map


def _map():
    torch.manual_seed(0)
    return W2Map(DenseICNN(3, (8, 8, 4)), DenseICNN(3, (8, 8, 4)), W2GNConfig(hidden=(8, 8, 4)), {"w2": 1.5})


def test_save_load_round_trip(tmp_path):
    T = _map()
    T.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "conjugate.safetensors",
        "forward.safetensors",
        "map.json",
    ]
    U = W2Map.load(tmp_path / "m")
    x = torch.randn(20, 3)
    assert torch.equal(T.forward(x), U.forward(x)) and torch.equal(T.inverse(x), U.inverse(x))
    assert U.w2() == 1.5 and U.config == T.config
    np.testing.assert_array_equal(U.potential(x.numpy()), T.potential(x).numpy())


def test_bad_inputs_and_files(tmp_path):
    T = _map()
    with pytest.raises(
        ValueError, match=r"shape \[n, 3\] \(this map was fitted in dimension 3\), got \(5, 2\)"
    ):
        T.forward(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="NaN or inf"):
        T.forward(torch.full((2, 3), float("nan")))
    with pytest.raises(FileNotFoundError, match="no map.json"):
        W2Map.load(tmp_path)
    T.save(tmp_path / "m")
    meta = (tmp_path / "m" / "map.json").read_text().replace('"format_version": 1', '"format_version": 9')
    (tmp_path / "m" / "map.json").write_text(meta)
    with pytest.raises(ValueError, match="newer w2gn"):
        W2Map.load(tmp_path / "m")
