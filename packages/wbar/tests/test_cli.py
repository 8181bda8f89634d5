import json

import numpy as np
import pytest

from wbar.cli import main

FAST = [
    "--steps",
    "2",
    "--batch-size",
    "64",
    "--not-steps",
    "2",
    "--generator-steps",
    "2",
    "--pretrain-steps",
    "10",
    "--device",
    "cpu",
]


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    for i, c in enumerate(([0, 0], [3, 0], [0, 3])):
        np.save(tmp_path / f"m{i}.npy", rng.normal(size=(400, 2)) + c)
    np.save(tmp_path / "m3d.npy", rng.normal(size=(400, 3)))
    bad = rng.normal(size=(400, 2))
    bad[9, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    return tmp_path


def test_fit_files_then_sample(files, capsys):
    out = files / "run"
    marg = [str(files / f"m{i}.npy") for i in range(3)]
    assert (
        main(["fit", "--marginals", *marg, "--weights", "0.25", "0.5", "0.25", "--out", str(out), *FAST]) == 0
    )
    assert (
        (out / "barycenter.json").is_file()
        and (out / "barycenter.png").is_file()
        and (out / "resolved_config.json").is_file()
    )
    assert json.loads((out / "resolved_config.json").read_text())["options"]["weights"] == [0.25, 0.5, 0.25]
    assert main(["sample", "--model", str(out), "-n", "50", "--out", str(files / "s.npy")]) == 0
    assert (
        main(["sample", "--model", str(out), "-n", "20", "--out", str(files / "s1.csv"), "--marginal", "1"])
        == 0
    )
    assert np.load(files / "s.npy").shape == (50, 2) and np.loadtxt(
        files / "s1.csv", delimiter=","
    ).shape == (20, 2)
    assert main(["fit", "--marginals", *marg, "--out", str(out), *FAST]) == 2  # exists, no --resume


def test_builtin_fit_writes_bw2(tmp_path, capsys):
    assert main(["fit", "--out", str(tmp_path / "r"), *FAST, "--no-plot"]) == 0
    assert "BW2-UVP" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--marginals", "{f}/m0.npy", "{f}/m3d.npy"], "different dimensions (2, 3)"),
        (
            ["--marginals", "{f}/m0.npy", "{f}/m1.npy", "--weights", "0.7", "0.7"],
            "sum to 1.4, not 1: fix them or pass --normalize-weights",
        ),
        (["--marginals", "{f}/m0.npy", "{f}/m1.npy", "--weights", "-1", "2"], "finite and >= 0"),
        (["--marginals", "{f}/m0.npy", "{f}/nan.npy"], "marginal 1 has 1 row(s) with NaN"),
        (["--marginals", "{f}/m0.npy", "{f}/m1.npy", "--batch-size", "1024"], "fewer than one batch (1024)"),
        (["--marginals", "{f}/m0.npy"], "needs at least two files"),
        (["--suite", "blobs"], "--suite 'blobs'"),
    ],
)
def test_bad_input_one_line_exit_2(files, capsys, args, needle):
    args = [a.replace("{f}", str(files)) for a in args]
    fast = [a for a in FAST if a != "1024"]
    if "--batch-size" in args:
        fast = [
            a for i, a in enumerate(FAST) if a != "--batch-size" and (i == 0 or FAST[i - 1] != "--batch-size")
        ]
    assert main(["fit", *args, "--out", str(files / "o"), *fast]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


def test_normalize_weights(files):
    marg = [str(files / f"m{i}.npy") for i in range(2)]
    assert (
        main(
            [
                "fit",
                "--marginals",
                *marg,
                "--weights",
                "1",
                "3",
                "--normalize-weights",
                "--out",
                str(files / "n"),
                *FAST,
                "--no-plot",
            ]
        )
        == 0
    )
    assert json.loads((files / "n" / "barycenter.json").read_text())["weights"] == [0.25, 0.75]


def test_bench_location_scatter(tmp_path, capsys):
    assert main(["bench", "--dims", "2", "--out", str(tmp_path), *FAST]) == 0
    rows = json.loads((tmp_path / "results.json").read_text())
    assert rows[0]["suite"] == "location-scatter" and rows[0]["free_support_500_bw2_uvp"] >= 0
    assert "| location-scatter | 2 | gaussian | win_bw2_uvp |" in capsys.readouterr().out
    assert (tmp_path / "results.png").stat().st_size > 0
    assert main(["bench", "--dims", "2", "--out", str(tmp_path / "b"), "--no-plot", *FAST]) == 0
    assert (tmp_path / "b" / "results.json").is_file() and not (tmp_path / "b" / "results.png").exists()
