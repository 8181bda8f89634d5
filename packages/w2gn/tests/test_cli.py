import json

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from w2gn.cli import main

FAST = ["--steps", "30", "--batch-size", "64", "--pretrain-steps", "10", "--device", "cpu"]


@pytest.fixture
def arrays(tmp_path):
    rng = np.random.default_rng(0)
    x, y = (
        rng.normal(size=(300, 3)).astype(np.float32),
        (rng.normal(size=(300, 3)) * 2 + 1).astype(np.float32),
    )
    np.save(tmp_path / "x.npy", x)
    np.savetxt(tmp_path / "y.csv", y, delimiter=",", header="a,b,c", comments="")
    save_file({"data": y}, str(tmp_path / "y.safetensors"))
    return tmp_path


def test_fit_on_files_then_transport(arrays, capsys):
    out = arrays / "run"
    assert (
        main(
            [
                "fit",
                "--source",
                str(arrays / "x.npy"),
                "--target",
                str(arrays / "y.csv"),
                "--out",
                str(out),
                *FAST,
            ]
        )
        == 0
    )
    assert (
        (out / "map.json").is_file()
        and (out / "metrics.jsonl").is_file()
        and (out / "resolved_config.json").is_file()
    )
    resolved = json.loads((out / "resolved_config.json").read_text())
    assert resolved["config"]["W2GNTrainConfig"]["steps"] == 30 and resolved["options"]["target"].endswith(
        "y.csv"
    )
    assert (
        main(
            [
                "transport",
                "--model",
                str(out),
                "--input",
                str(arrays / "x.npy"),
                "--out",
                str(arrays / "m.npy"),
            ]
        )
        == 0
    )
    back = arrays / "back.safetensors"
    assert (
        main(
            [
                "transport",
                "--model",
                str(out),
                "--input",
                str(arrays / "y.safetensors"),
                "--out",
                str(back),
                "--inverse",
            ]
        )
        == 0
    )
    assert np.load(arrays / "m.npy").shape == (300, 3)
    assert "mapped 300 points (inverse)" in capsys.readouterr().out


def test_fit_2d_builtin_writes_the_map_plot_and_resumes(tmp_path):
    out = tmp_path / "run"
    assert (
        main(["fit", "--out", str(out), *FAST, "--checkpoint-every", "10"]) == 0
    )  # normal -> swiss_roll in 2-D
    assert (out / "map.png").read_bytes()[:4] == b"\x89PNG" and (out / "curves.png").is_file()
    assert main(["fit", "--out", str(out), *FAST]) == 2  # exists: refuse without --resume
    assert (
        main(
            [
                "fit",
                "--out",
                str(out),
                *FAST[:-2],
                "--device",
                "cpu",
                "--resume",
                "--steps",
                "40",
                "--no-plot",
            ]
        )
        == 0
    )
    assert json.loads((out / "checkpoint" / "trainer.json").read_text())["step"] == 40
    assert main(["fit", "--out", str(out), *FAST, "--resume", "--lr", "0.5"]) == 2  # another config


@pytest.mark.parametrize(
    "args,needle",
    [
        (["fit", "--source", "nowhere.npy"], "no such file: nowhere.npy"),
        (["fit", "--source", "cube"], "unknown sampler 'cube'"),
        (["fit", "--target", "moons", "--dim", "3"], "'moons' is a 2-D toy: pass --dim 2"),
        (
            ["fit", "--source", "{x}/bad.npy", "--target", "{x}/x.npy", "--batch-size", "64"],
            "row(s) with NaN or inf",
        ),
        (
            ["fit", "--source", "{x}/x.npy", "--target", "{x}/y2.npy", "--batch-size", "64"],
            "different dimensions (3 and 2)",
        ),
        (
            ["fit", "--source", "{x}/x.npy", "--target", "{x}/x.npy", "--batch-size", "1024"],
            "fewer than one batch (1024)",
        ),
        (["transport", "--model", "{x}/model", "--input", "{x}/y2.npy"], "--input has 2 columns but the map"),
        (["transport", "--model", "{x}/nomodel", "--input", "{x}/x.npy"], "no map.json"),
        (["bench", "--suite", "celeba"], "--suite 'celeba': choose from gaussians, mix3tomix10"),
        (["bench", "--solvers", "sinkhorn", "--steps", "1"], "unknown solver(s) sinkhorn"),
        (["fit", "--lr", "-1"], "lr and init_std must be > 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(arrays, capsys, args, needle):
    x = np.load(arrays / "x.npy")
    bad = x.copy()
    bad[3, 0] = np.inf
    np.save(arrays / "bad.npy", bad)
    np.save(arrays / "y2.npy", x[:, :2])
    if not (arrays / "model").exists():
        from papercore.ot.icnn import DenseICNN
        from w2gn import W2GNConfig, W2Map

        W2Map(DenseICNN(3, (8, 8, 4)), DenseICNN(3, (8, 8, 4)), W2GNConfig(hidden=(8, 8, 4))).save(
            arrays / "model"
        )
    args = [a.replace("{x}", str(arrays)) for a in args]
    assert main([*args, "--out", str(arrays / "o")] if args[0] == "fit" else args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


def _write_pair(folder, dim):
    """Potentials in the W2 benchmark's file layout (its DenseICNN state-dict keys), written by hand."""
    g = torch.Generator().manual_seed(0)
    h = [max(2 * dim, 64), max(2 * dim, 64), max(dim, 32)]
    for v in (1, 2):
        sd = {f"quadratic_layers.{i}.{k}": 0.5 * torch.randn(*shape, generator=g)
              for i, w in enumerate(h) for k, shape in (("quadratic_decomposed", (dim, 1, w)), ("weight", (w, dim)), ("bias", (w,)))}  # fmt: skip
        sd["convex_layers.0.weight"] = 0.1 * torch.rand(h[1], h[0], generator=g)
        sd["convex_layers.1.weight"] = 0.1 * torch.rand(h[2], h[1], generator=g)
        sd["final_layer.weight"] = 0.1 * torch.rand(1, h[2], generator=g)
        torch.save(sd, folder / f"{dim}_v{v}.pt")


def test_bench_on_published_pairs_folder(tmp_path, capsys):
    pairs = tmp_path / "Mix3toMix10"
    pairs.mkdir()
    _write_pair(pairs, 2)
    out = tmp_path / "bench"
    args = ["bench", "--suite", "mix3tomix10", "--pairs", str(pairs), "--dims", "2", "--solvers", "bures", "emd", "w2gn",
            "--seeds", "2", "--out", str(out), "--steps", "20", "--batch-size", "64", "--pretrain-steps", "10"]  # fmt: skip
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "| identity |" in table and "| emd |" in table and "| w2gn |" in table
    res = json.loads((out / "results.json").read_text())
    rows = {(r["solver"], r["seed"]): r for r in res["rows"]}
    assert (
        rows[("constant", 0)]["l2_uvp_fwd"] == pytest.approx(100, abs=3)
        and rows[("identity", 1)]["cos_fwd"] == 0.0
    )
    summary = {s["solver"]: s for s in res["summary"]}
    assert (
        summary["bures"]["seeds"] == 2 and summary["bures"]["l2_uvp_fwd"] < summary["identity"]["l2_uvp_fwd"]
    )
    assert summary["emd"]["l2_uvp_fwd"] < summary["constant"]["l2_uvp_fwd"]
    assert (out / "l2_uvp.png").is_file() and (out / "results.md").read_text().startswith("| solver |")
