import json

import numpy as np
import pytest

from def3d import DataConfig, ModelConfig, save_model
from def3d.cli import main
from def3d.models import build_model
from def3d.train import DEFModel


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    m = ModelConfig(depth=1, width=8, k=8, mlp=16)
    d = DataConfig(patch_points=256)
    net, head = build_model(m)
    folder = tmp_path_factory.mktemp("m") / "model"
    save_model(DEFModel(net.eval(), head, m, d, {"spacing": 0.025}), folder)
    return folder


def test_predict_writes_distances_curves_and_preview(tmp_path, tiny_model):
    import open3d as o3d

    mesh = o3d.geometry.TriangleMesh.create_box(1, 2, 0.5)
    path = tmp_path / "part.stl"
    mesh.compute_triangle_normals()
    o3d.io.write_triangle_mesh(str(path), mesh)
    out = tmp_path / "out"
    assert (
        main(
            [
                "predict",
                str(path),
                "--model",
                str(tiny_model),
                "--out",
                str(out),
                "--resolution",
                "0.05",
                "--no-plot",
            ]
        )
        == 0
    )
    for f in ("distances.ply", "curves.obj", "curves.json", "summary.json"):
        assert (out / f).exists()
    s = json.loads((out / "summary.json").read_text())
    assert s["vs_dihedral_edges"]["dihedral_edges"] == 12
    pc = o3d.io.read_point_cloud(str(out / "distances.ply"))
    assert len(pc.points) == s["points"] and pc.has_colors()


@pytest.mark.parametrize(
    "content, suffix, words",
    [
        ("", ".xyz", "no points"),
        ("0 0 0\nnan 1 2\n" * 40, ".xyz", "NaN"),
        ("solid x\nthis is not an stl\n", ".stl", "mesh"),
        ("1 2 3\n", ".abc", "unknown extension"),
        ("\n".join(f"{i} 0 0" for i in range(100)), ".xyz", "too sparse"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(tmp_path, capsys, tiny_model, content, suffix, words):
    path = tmp_path / f"bad{suffix}"
    path.write_text(content)
    args = ["predict", str(path), "--model", str(tiny_model), "--out", str(tmp_path / "o"), "--no-plot"]
    if "sparse" in words:
        args += ["--resolution", "0.01"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words.lower() in err[0].lower()


def test_train_and_eval_commands(tmp_path):
    run = tmp_path / "run"
    args = [
        "train",
        "--out",
        str(run),
        "--patch-points",
        "128",
        "--depth",
        "1",
        "--width",
        "8",
        "--k",
        "8",
        "--mlp",
        "16",
        "--steps",
        "4",
        "--batch-size",
        "2",
        "--train-patches",
        "4",
        "--val-patches",
        "2",
        "--eval-every",
        "2",
        "--no-plot",
    ]
    assert main(args) == 0
    assert (run / "model" / "model.json").exists()
    out = tmp_path / "ev"
    assert (
        main(
            [
                "eval",
                "--model",
                str(run),
                "--out",
                str(out),
                "--patches",
                "2",
                "--noise",
                "0",
                "--shapes",
                "0",
                "--no-plot",
            ]
        )
        == 0
    )
    res = json.loads((out / "results.json").read_text())
    assert {r["method"] for r in res["fields"]} == {"DEF-points-hist", "PCA baseline"}
    assert all(np.isfinite(r["mRMSE"]) for r in res["fields"])
