import json

import numpy as np
import pytest
import torch
from PIL import Image

from depth_sr.cli import main
from depth_sr.io import read_depth, write_depth
from depth_sr.scenes import area_downsample, synthetic_scene

TINY = ["--scale", "4", "--width", "4", "--y-channels", "4", "--depth-channels", "4", "--steps", "3", "--batch-size", "2",
        "--crop", "32", "--size", "32", "--n-train", "3", "--n-val", "2", "--eval-every", "3", "--no-plot"]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", *TINY, "--loss", "mix", "--out", str(out)]) == 0
    return out


def capture(folder, H=480, W=640, scale=4):
    """A Kinect/RealSense-style capture: 16-bit millimetre depth with holes (a shadow band, dropouts,
    out-of-range sky) at 1/scale of the 8-bit RGB's size."""
    s = synthetic_scene(5, (H, W))
    lr = area_downsample(s.depth, scale) * 1000 / 8  # metres-ish scene, in mm
    g = torch.Generator().manual_seed(0)
    lr[torch.rand(lr.shape, generator=g) < 0.05] = 0  # dropouts
    lr[:, 40:44] = 0  # a shadow band
    lr[:10] = 0  # out of range
    Image.fromarray(lr.round().numpy().astype(np.uint16)).save(folder / "depth.png")
    Image.fromarray((s.rgb.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(folder / "rgb.jpg")
    return lr > 0


def test_train_eval_and_upsample_a_sensor_capture(run, tmp_path, capsys):
    assert (run / "model" / "msg.json").is_file() and (run / "resolved_config.json").is_file()
    assert main(["eval", "--model", str(run), "--n-test", "2", "--out", str(tmp_path / "e")]) == 0
    res = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert set(res) == {"bicubic", "joint bilateral", "guided filter", "msg"} and "ssim" in res["msg"]
    assert (tmp_path / "e" / "eval.png").is_file()
    valid = capture(tmp_path)
    out = tmp_path / "hr.png"
    args = ["upsample", "--model", str(run), "--depth", str(tmp_path / "depth.png"), "--rgb", str(tmp_path / "rgb.jpg"),
            "--scale", "4", "--out", str(out), "--intrinsics", "525,525,319.5,239.5"]  # fmt: skip
    assert main(args) == 0
    hr = read_depth(out)
    assert hr.shape == (480, 640) and (tmp_path / "hr_compare.png").is_file()
    holes = torch.nn.functional.interpolate((~valid).float()[None, None], scale_factor=4)[0, 0] > 0
    assert (hr[holes] == 0).all() and (
        hr[~holes] > 0
    ).float().mean() > 0.99  # holes stay holes, nothing invented
    assert 0.5 < float(hr[~holes].median()) < 2.5  # metres, back from millimetres
    assert "holes stay holes" in capsys.readouterr().out


def test_dip_and_resume(run, tmp_path):
    d = 1 + torch.rand(8, 8)
    d[0, 0] = 0
    write_depth(tmp_path / "lr.npy", d)
    Image.fromarray((np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)).save(
        tmp_path / "rgb.png"
    )
    assert main(["dip", "--depth", str(tmp_path / "lr.npy"), "--rgb", str(tmp_path / "rgb.png"), "--steps", "3",
                 "--width", "4", "--out", str(tmp_path / "hr.npy")]) == 0  # fmt: skip
    hr = np.load(tmp_path / "hr.npy")
    assert hr.shape == (32, 32) and np.isnan(hr[:4, :4]).all() and np.isfinite(hr[4:, 4:]).all()
    assert main(["train", *TINY, "--loss", "mix", "--out", str(run)]) == 2  # a run is there
    assert main(["train", *TINY, "--loss", "mix", "--out", str(run), "--resume", "--steps", "4"]) == 0
    assert main(["train", *TINY, "--loss", "l2", "--out", str(run), "--resume"]) == 2  # another config


def test_bad_inputs(run, tmp_path, capsys):
    write_depth(tmp_path / "lr.png", 1 + torch.rand(8, 8))
    write_depth(tmp_path / "zero.png", torch.zeros(8, 8))
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
    Image.fromarray(np.zeros((30, 32, 3), dtype=np.uint8)).save(tmp_path / "odd.png")
    Image.fromarray(np.full((8, 8), 9, dtype=np.uint8)).save(tmp_path / "eight.png")
    base = [
        "upsample",
        "--model",
        str(run),
        "--rgb",
        str(tmp_path / "rgb.png"),
        "--out",
        str(tmp_path / "o.png"),
    ]
    cases = [
        (
            ["--depth", str(tmp_path / "lr.png"), "--rgb", str(tmp_path / "odd.png")],
            "must equal the RGB size",
        ),
        (["--depth", str(tmp_path / "zero.png")], "every pixel is a hole"),
        (["--depth", str(tmp_path / "lr.png"), "--scale", "2"], "must equal the RGB size"),
        (["--depth", str(tmp_path / "lr.png"), "--scale", "3"], "choose from 2, 4, 8, 16"),
        (["--depth", str(tmp_path / "lr.png"), "--intrinsics", "525,525"], "four numbers"),
        (["--depth", str(tmp_path / "eight.png")], "8-bit"),
    ]
    for extra, text in cases:
        assert main(base + extra) == 2, text
        assert text in capsys.readouterr().err, text
    # a scale the network was not trained for
    write_depth(tmp_path / "lr4.png", 1 + torch.rand(4, 4))
    assert main(base + ["--depth", str(tmp_path / "lr4.png"), "--scale", "8"]) == 2
    assert "trained for x4, not x8" in capsys.readouterr().err
    assert main(["eval", "--model", str(tmp_path / "nothing")]) == 2
    assert main(["train", "--loss", "huber", "--out", str(tmp_path / "t")]) == 2
