import json

import torch

from papercore.geometry.cli import main
from papercore.geometry.io import write_cloud
from papercore.geometry.shapes import sample_shapes


def _folder(path, clouds):
    path.mkdir()
    for i, c in enumerate(clouds):
        write_cloud(path / f"{i:03d}.npy", c)
    return path


def test_metrics_command(tmp_path, capsys):
    a = _folder(tmp_path / "a", sample_shapes("lamp", 6, 128, seed=0))
    b = _folder(tmp_path / "b", sample_shapes("lamp", 6, 128, seed=1))
    out = tmp_path / "m.json"
    assert (
        main(
            [
                "metrics",
                str(a),
                str(b),
                "--points",
                "128",
                "--metrics",
                "mmd-cd",
                "cov-cd",
                "jsd",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    res = json.loads(out.read_text())
    assert 0 < res["mmd-cd"] < 0.05 and 0 < res["cov-cd"] <= 1 and 0 < res["jsd"] < 1
    assert "| mmd-cd |" in capsys.readouterr().out


def test_metrics_command_bad_input(tmp_path, capsys):
    a = _folder(tmp_path / "a", sample_shapes("lamp", 3, 64, seed=0) * 3)  # outside the ball
    b = _folder(tmp_path / "b", sample_shapes("lamp", 3, 64, seed=1))
    assert main(["metrics", str(a), str(b), "--points", "64", "--metrics", "jsd"]) == 2
    assert "normalise them" in capsys.readouterr().err
    assert main(["metrics", str(a), str(b), "--points", "64", "--metrics", "jsd", "--normalize"]) == 0
    assert main(["metrics", str(a), str(b), "--metrics", "fid"]) == 2
    assert main(["metrics", str(a), str(b), "--points", "100"]) == 2
    err = capsys.readouterr().err
    assert "choose from" in err and "fewer than the 100 needed" in err
    bad = torch.zeros(64, 3)
    bad[0, 0] = float("nan")
    write_cloud(a / "999.npy", bad)
    assert main(["metrics", str(a), str(b), "--points", "64"]) == 2
    assert "NaN" in capsys.readouterr().err
    assert main(["metrics"]) == 2  # a usage error: one line, exit 2


def test_papercore_program_has_the_geometry_group(tmp_path, capsys):
    from papercore.app import main as papercore_main

    a = _folder(tmp_path / "a", sample_shapes("lamp", 3, 64, seed=0))
    b = _folder(tmp_path / "b", sample_shapes("lamp", 3, 64, seed=1))
    assert papercore_main(["geometry", "metrics", str(a), str(b), "--points", "64", "--metrics", "jsd"]) == 0
    assert "| jsd |" in capsys.readouterr().out
