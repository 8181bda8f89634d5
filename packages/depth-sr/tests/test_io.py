import numpy as np
import pytest
import torch
from PIL import Image

from depth_sr.io import read_depth, read_rgb, write_depth


@pytest.mark.parametrize("suffix", ["png", "npy", "exr"])
def test_round_trip(tmp_path, suffix):
    if suffix == "exr":
        pytest.importorskip("OpenEXR")
    d = 0.5 + torch.rand(9, 11)
    d[2, 3] = 0
    d[4, 4] = float("nan")
    write_depth(tmp_path / f"d.{suffix}", d)
    r = read_depth(tmp_path / f"d.{suffix}")
    assert r[2, 3] == 0 and r[4, 4] == 0
    tol = 5e-4 if suffix == "png" else 0
    assert (r - torch.nan_to_num(d)).abs().max() <= tol


def test_png_in_millimetres_or_a_given_scale(tmp_path):
    mm = np.array([[0, 1000], [1500, 65535]], dtype=np.uint16)
    Image.fromarray(mm).save(tmp_path / "d.png")
    assert torch.allclose(read_depth(tmp_path / "d.png"), torch.tensor([[0, 1.0], [1.5, 65.535]]))
    assert torch.allclose(read_depth(tmp_path / "d.png", 1 / 5000), torch.tensor([[0, 0.2], [0.3, 13.107]]))


def test_refusals(tmp_path):
    Image.fromarray(np.full((4, 4), 7, dtype=np.uint8)).save(tmp_path / "eight.png")
    with pytest.raises(ValueError, match="8-bit"):
        read_depth(tmp_path / "eight.png")
    with pytest.raises(FileNotFoundError):
        read_depth(tmp_path / "none.png")
    np.save(tmp_path / "rgb.npy", np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="one"):
        read_depth(tmp_path / "rgb.npy")
    Image.fromarray(np.zeros((4, 5, 3), dtype=np.uint8)).save(tmp_path / "c.jpg")
    assert read_rgb(tmp_path / "c.jpg").shape == (3, 4, 5)
