import json

import numpy as np
import pytest
from PIL import Image

from vectorize import synth
from vectorize.cli import main
from vectorize.export import read_dxf, read_svg
from vectorize.raster import iou, render

FAST = ["--model", "none", "--iterations", "30", "--device", "cpu"]


@pytest.fixture(scope="module")
def drawing_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("imgs")
    img, ink, truth = synth.sample(np.random.default_rng(7), 96, 128, degrade_p=0.0)
    g = (img * 255).astype(np.uint8)
    Image.fromarray(g).save(tmp / "gray.png")
    Image.fromarray(np.stack([g, g, g], -1)).save(tmp / "colour.jpg", quality=95)
    Image.fromarray(g).save(tmp / "scan.tif")
    return tmp, ink, truth


@pytest.mark.parametrize("name,fmt", [("gray.png", "svg"), ("colour.jpg", "dxf"), ("scan.tif", "svg")])
def test_convert_real_files(drawing_files, tmp_path, name, fmt, capsys):
    folder, ink, truth = drawing_files
    out = tmp_path / f"out.{fmt}"
    assert main([str(folder / name), str(out), *FAST]) == 0
    d = read_svg(out) if fmt == "svg" else read_dxf(out)
    assert d.size == (96, 128) and len(d) > 0
    assert iou(render(d), ink, None) > 0.6
    assert (tmp_path / "out.overlay.png").is_file()
    assert "lines" in capsys.readouterr().out


def test_blank_image_writes_an_empty_drawing(tmp_path, capsys):
    Image.fromarray(np.full((40, 50), 255, np.uint8)).save(tmp_path / "blank.png")
    assert main([str(tmp_path / "blank.png"), str(tmp_path / "b.svg"), *FAST]) == 0
    assert len(read_svg(tmp_path / "b.svg")) == 0 and "no strokes" in capsys.readouterr().out


@pytest.mark.parametrize("content", [b"", b"not an image at all"])
def test_bad_image_exits_2_and_writes_nothing(tmp_path, capsys, content):
    (tmp_path / "bad.png").write_bytes(content)
    assert main([str(tmp_path / "bad.png"), str(tmp_path / "o.svg"), *FAST]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.png" in err
    assert not list(tmp_path.glob("o.svg*")) and not list(tmp_path.glob(".o.svg*"))


def test_unknown_format_and_missing_file(tmp_path, drawing_files, capsys):
    folder = drawing_files[0]
    assert main([str(folder / "gray.png"), str(tmp_path / "o.pdf"), *FAST]) == 2
    assert "svg or dxf" in capsys.readouterr().err
    assert main([str(tmp_path / "nope.png"), str(tmp_path / "o.svg"), *FAST]) == 2
    assert not (tmp_path / "o.pdf").exists() and not (tmp_path / "o.svg").exists()


def test_train_then_eval_with_the_model(tmp_path, capsys):
    tiny = ["--steps", "2", "--batch-size", "4", "--eval-every", "0", "--checkpoint-every", "0", "--channels", "8",
            "--d-model", "16", "--layers", "1", "--ffn", "16", "--device", "cpu"]  # fmt: skip
    assert main(["train", "--part", "primitives", "--out", str(tmp_path / "m"), *tiny]) == 0
    assert (tmp_path / "m" / "primitives" / "model.safetensors").is_file()
    assert (
        main(["train", "--part", "cleaning", "--out", str(tmp_path / "m"), "--clean-channels", "4", *tiny])
        == 0
    )
    res = tmp_path / "ev"
    assert main(["eval", "--model", str(tmp_path / "m"), "--pages", "1", "--size", "64", "--iterations", "10",
                 "--out", str(res), "--device", "cpu"]) == 0  # fmt: skip
    rows = json.loads((res / "results.json").read_text())["rows"]
    assert {r["method"] for r in rows} >= {"ours", "network only", "skeleton + DP"}
    assert (res / "results.png").is_file() and (res / "resolved_config.json").is_file()
    assert main(["eval", "--model", str(tmp_path / "nothing")]) == 2
