import json

import pytest
import torch

from laplatgan.cli import main
from papercore.geometry import sample_shapes
from papercore.geometry.io import read_cloud, write_cloud

TINY = ["--preset", "tiny", "--levels", "32", "64", "128", "--steps", "4", "--ae-steps", "4", "--batch-size", "8",
        "--eval-every", "2", "--n-train", "16", "--n-val", "8", "--n-test", "8"]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", *TINY, "--out", str(out), "--no-plot"]) == 0
    return out


def test_train_sample_upsample_eval(run, tmp_path, capsys):
    assert (run / "model" / "laplatgan.json").is_file() and (run / "resolved_config.json").is_file()
    assert main(["sample", "--model", str(run), "-n", "3", "--out", str(tmp_path / "s")]) == 0
    clouds = sorted((tmp_path / "s" / "level_128").glob("*.ply"))
    assert (
        len(clouds) == 3
        and read_cloud(clouds[0]).shape == (128, 3)
        and (tmp_path / "s" / "level_32.png").is_file()
    )
    low = tmp_path / "low.xyz"
    write_cloud(low, sample_shapes("table", 1, 32, seed=9)[0] * 4 + 1)  # any frame: normalised and back
    assert (
        main(["upsample", "--model", str(run), "--input", str(low), "--out", str(tmp_path / "high.ply")]) == 0
    )
    high = read_cloud(tmp_path / "high.ply")
    assert high.shape == (128, 3) and (high.mean(0) - 1).abs().max() < 1.0
    assert (
        main(
            [
                "eval",
                "--model",
                str(run),
                "--metrics",
                "mmd,cov,jsd,1nna",
                "--out",
                str(tmp_path / "e"),
                "--no-plot",
            ]
        )
        == 0
    )
    res = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert set(res) == {"32", "64", "128"} and set(res["128"]) == {"mmd-cd", "cov-cd", "jsd", "1nna-cd"}
    assert "| laplatgan | 128 |" in capsys.readouterr().out


def test_resume_and_refusals(run, tmp_path, capsys):
    assert main(["train", *TINY, "--out", str(run), "--no-plot"]) == 2  # a run is there
    assert main(["train", *TINY, "--out", str(run), "--no-plot", "--resume"]) == 0
    assert main(["train", *TINY, "--out", str(run), "--no-plot", "--resume", "--bottleneck", "8"]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "another LaplatGANConfig" in err


def test_bad_inputs(run, tmp_path, capsys):
    bad = tmp_path / "nan.xyz"
    bad.write_text("\n".join("0 0 0" for _ in range(31)) + "\nnan 0 0\n")
    assert main(["upsample", "--model", str(run), "--input", str(bad)]) == 2
    other = tmp_path / "other.npy"
    write_cloud(other, torch.rand(50, 3))
    assert main(["upsample", "--model", str(run), "--input", str(other)]) == 2  # another resolution
    assert (
        main(
            [
                "upsample",
                "--model",
                str(run),
                "--input",
                str(other),
                "--subsample",
                "--out",
                str(tmp_path / "h.npy"),
            ]
        )
        == 0
    )
    assert main(["sample", "--model", str(tmp_path / "nothing")]) == 2
    assert main(["train", "--data", "synthetic:teapot", "--out", str(tmp_path / "t")]) == 2
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "t")]) == 2
    assert main(["eval", "--model", str(run), "--metrics", "fid"]) == 2
    few = tmp_path / "few"
    few.mkdir()
    for i in range(12):
        write_cloud(few / f"{i}.npy", torch.rand(100, 3))
    assert main(["train", *TINY, "--data", str(few), "--out", str(tmp_path / "t2")]) == 2  # 100 < 128 points
    err = capsys.readouterr().err
    for text in ("NaN", "another resolution", "no LaplatGAN model", "unknown synthetic class", "no such folder",
                 "unknown metric", "fewer than the 128 needed"):  # fmt: skip
        assert text in err, text


def test_user_folder_training_and_metrics_command(tmp_path):
    data = tmp_path / "clouds"
    data.mkdir()
    for i, c in enumerate(sample_shapes("mug", 12, 160, seed=3) * 3):  # meshes or clouds, any scale
        write_cloud(data / f"{i:02d}.ply", c)
    assert main(["train", *TINY, "--data", str(data), "--out", str(tmp_path / "r"), "--no-plot"]) == 0
    a, b = tmp_path / "a", tmp_path / "b"
    for d, s in ((a, 0), (b, 1)):
        d.mkdir()
        for i, c in enumerate(sample_shapes("mug", 4, 64, seed=s)):
            write_cloud(d / f"{i}.npy", c)
    assert main(["metrics", str(a), str(b), "--points", "64", "--out", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["cov-cd"] > 0
