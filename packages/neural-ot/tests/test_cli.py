import json

import numpy as np
import pytest

from neural_ot import bench
from neural_ot.cli import main

FAST = [
    "--steps",
    "3",
    "--batch-size",
    "16",
    "--width",
    "16",
    "--depth",
    "1",
    "--map-steps",
    "2",
    "--device",
    "cpu",
]


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.normal(size=(100, 2)).astype(np.float32))
    np.save(tmp_path / "y.npy", rng.normal(size=(120, 2)).astype(np.float32) + 3)
    np.save(tmp_path / "lx.npy", np.repeat([0, 1], 50))
    ly = -np.ones(120)
    ly[:5], ly[5:10] = 0, 1
    np.save(tmp_path / "ly.npy", ly)
    bad = rng.normal(size=(100, 2))
    bad[7, 0] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    np.save(tmp_path / "ly_one_class.npy", np.r_[np.zeros(5), -np.ones(115)])
    return tmp_path


def test_fit_then_transport(files, capsys):
    out = files / "run"
    assert main(["fit", "--source", str(files / "x.npy"), "--target", str(files / "y.npy"), "--cost", "class-guided",
                 "--labels", str(files / "lx.npy"), str(files / "ly.npy"), "--z-dim", "2", "--out", str(out), *FAST]) == 0  # fmt: skip
    assert (out / "transport.json").is_file() and (out / "resolved_config.json").is_file()
    assert json.loads((out / "transport.json").read_text())["cost"]["name"] == "class-guided"
    assert (
        main(
            ["transport", "--model", str(out), "--input", str(files / "x.npy"), "--out", str(files / "t.npy")]
        )
        == 0
    )
    assert np.load(files / "t.npy").shape == (100, 2)
    assert main(["transport", "--model", str(out), "--input", str(files / "x.npy"), "--out", str(files / "s.npy"),
                 "--draws", "3"]) == 0  # fmt: skip
    assert np.load(files / "s.npy").shape == (100, 3, 2)
    assert (
        main(
            [
                "transport",
                "--model",
                str(out),
                "--input",
                str(files / "nan.npy"),
                "--out",
                str(files / "n.npy"),
            ]
        )
        == 2
    )
    assert "row 7" in capsys.readouterr().err
    assert (
        main(
            [
                "fit",
                "--source",
                str(files / "x.npy"),
                "--target",
                str(files / "y.npy"),
                "--out",
                str(out),
                *FAST,
            ]
        )
        == 2
    )


def test_builtin_grid_fit_writes_plan(tmp_path, capsys):
    assert main(["fit", "--cost", "class-guided", "--out", str(tmp_path / "g"), *FAST]) == 0
    assert (tmp_path / "g" / "plan.png").is_file() and "class accuracy" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--source", "{f}/nan.npy", "--target", "{f}/y.npy"], "row 7"),
        (
            [
                "--source",
                "{f}/x.npy",
                "--target",
                "{f}/y.npy",
                "--cost",
                "class-guided",
                "--labels",
                "{f}/ly.npy",
                "{f}/ly.npy",
            ],
            "source labels has shape (120,) but source has 100",
        ),
        (
            [
                "--source",
                "{f}/x.npy",
                "--target",
                "{f}/y.npy",
                "--cost",
                "class-guided",
                "--labels",
                "{f}/lx.npy",
                "{f}/ly_one_class.npy",
            ],
            "no labelled target",
        ),
        (["--source", "{f}/x.npy", "--target", "{f}/y.npy", "--cost", "cubic"], "unknown cost"),
        (["--source", "{f}/x.npy", "--target", "{f}/y.npy", "--cost", "pair-guided"], "pairs source row i"),
        (["--source", "{f}/x.npy"], "both --source and --target"),
        (["--source", "{f}/missing.npy", "--target", "{f}/y.npy"], "no such file"),
    ],
)
def test_bad_input_exits_2_with_one_line(files, capsys, args, message):
    args = [a.format(f=files) for a in args]
    assert main(["fit", *args, "--out", str(files / "bad"), *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_bench_suites_run_tiny(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        bench, "GRID", (bench.GRID[0].__class__(width=16, depth=1, map_steps=1), bench.GRID[1])
    )
    assert (
        main(["bench", "--suite", "grid", "--seeds", "2", "--steps", "2", "--out", str(tmp_path / "b")]) == 0
    )
    rows = json.loads((tmp_path / "b" / "results.json").read_text())
    assert len(rows) == 2 and rows[0]["emd_accuracy"] < 0.15  # emd keeps cells in place: near chance
    assert (tmp_path / "b" / "results.png").is_file()
    assert main(["bench", "--suite", "nope"]) == 2
