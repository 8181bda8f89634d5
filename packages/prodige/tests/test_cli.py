import json

import networkx as nx
import numpy as np
import pytest

from prodige.cli import main

FAST = ["--steps", "20", "--finetune-steps", "5", "--batch-size", "8", "--knn", "4", "--random-edges", "2",
        "--prune-every", "10", "--params-per-vertex", "4"]  # fmt: skip


def test_fit_file_then_eval_and_exports(tmp_path, capsys):
    X = np.random.default_rng(0).normal(size=(40, 3))
    np.save(tmp_path / "x.npy", X)
    out = tmp_path / "run"
    assert main(["fit", "--data", str(tmp_path / "x.npy"), "--out", str(out), "--no-plot", *FAST]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["params_per_vertex"] <= 4 and (out / "resolved_config.json").is_file()
    G = nx.read_graphml(out / "graph.graphml")
    rows = (out / "edges.csv").read_text().splitlines()
    assert G.number_of_edges() == res["kept_edges"] == len(rows) - 1
    assert main(["eval", "--model", str(out)]) == 0
    ev = json.loads((out / "eval.json").read_text())
    assert abs(ev["rel_mse"] - res["rel_mse"]) < 1e-12
    assert (out / "eval.png").stat().st_size > 0
    (out / "eval.png").unlink()
    assert main(["eval", "--model", str(out), "--no-plot"]) == 0 and not (out / "eval.png").exists()
    assert main(["fit", "--data", str(tmp_path / "x.npy"), "--out", str(out), *FAST]) == 2  # exists


def _write(tmp_path, name, D):
    np.save(tmp_path / name, np.asarray(D, dtype=float))
    return str(tmp_path / name)


@pytest.mark.parametrize(
    "D,needle",
    [
        (np.ones((3, 4)), "must be square"),
        ([[0, 1, 2], [1, 0, 1], [5, 1, 0]], "not symmetric"),
        ([[0, -1], [-1, 0]], "negative distances"),
        ([[0, np.nan], [np.nan, 0]], "NaN"),
    ],
)
def test_bad_distance_files_exit_2_with_one_line(tmp_path, capsys, D, needle):
    path = _write(tmp_path, "d.npy", D)
    assert main(["fit", "--distances", path, "--out", str(tmp_path / "o"), *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_other_bad_inputs_exit_2(tmp_path, capsys):
    D = _write(tmp_path, "d.npy", [[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    assert main(["fit", "--distances", D, "--out", str(tmp_path / "o"), *FAST[:-1], "9"]) == 2
    assert "more than the complete graph" in capsys.readouterr().err
    far = _write(tmp_path, "far.npy", [[0, 1, 9, 9], [1, 0, 9, 9], [9, 9, 0, 1], [9, 9, 1, 0]])
    args = [
        "fit",
        "--distances",
        far,
        "--out",
        str(tmp_path / "p"),
        "--no-soft",
        "--knn",
        "1",
        "--random-edges",
        "0",
    ]
    assert main(args) == 2 and "soft=False" in capsys.readouterr().err
    assert main(["fit", "--data", "nowhere.npy"]) == 2 and "no such file" in capsys.readouterr().err
    assert main(["eval", "--model", str(tmp_path / "none")]) == 2


def test_glove_command(tmp_path, capsys):
    out = tmp_path / "g"
    args = ["glove", "--text", "synthetic", "--words", "40", "--window", "2", "--steps", "40", "--batch-size", "4",
            "--knn", "4", "--random-edges", "2", "--prune-every", "20", "--baseline-steps", "20", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    assert (
        np.isfinite(res["prodige_loss"]) and res["params_per_word"] <= 5 and "glove_vectors_dim4_loss" in res
    )
    assert (
        len(json.loads((out / "vocab.json").read_text())) == 40
        and "| PRODIGE graph" in capsys.readouterr().out
    )
    assert main(["glove", "--text", "corpus.csv", "--out", str(tmp_path / "h")]) == 2
