import numpy as np
import pytest
from sklearn.utils.estimator_checks import check_estimator

from prodige import GraphEmbedding
from prodige.bench import score

FAST = dict(steps=4, finetune_steps=1, prune_every=0, random_state=0, knn=4, random_edges=2)


def test_passes_scikit_learn_check_estimator():
    """Every applicable check passes; check_array_api_input skips itself (no array-API input)."""
    results = check_estimator(GraphEmbedding(**FAST), on_fail=None)
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    assert not failed, failed
    assert len(results) >= 40


def test_fit_points_and_precomputed_agree_and_transform_is_consistent():
    X = np.random.default_rng(0).normal(size=(60, 3))
    from scipy.spatial.distance import cdist

    D = cdist(X, X)
    kw = dict(
        steps=60, finetune_steps=60, prune_every=10, random_state=0, params_per_vertex=4, n_components=5
    )
    a = GraphEmbedding(**kw).fit(X)
    b = GraphEmbedding(**kw).fit(D, metric="precomputed")
    assert a.graph_.params_per_vertex() <= 4 and a.embedding_.shape == (60, 5)
    np.testing.assert_allclose(a.transform(X), a.embedding_)  # training points: their own vertex
    np.testing.assert_allclose(b.transform(D), b.embedding_)
    # fitted distances are an actual compression of D (better than the best constant)
    assert score(a.pairwise_distances(), D)["rel_mse"] < score(np.full_like(D, D.mean()), D)["rel_mse"]
    x_new = X[:3] + 0.01
    assert np.all(np.isfinite(a.transform(x_new)))
    assert a.get_params()["params_per_vertex"] == 4 and a.set_params(steps=5).steps == 5


@pytest.mark.parametrize(
    "D,match",
    [
        (np.ones((3, 4)), "must be square"),
        (np.array([[0, 1, 2], [1, 0, 1], [5, 1, 0.0]]), "not symmetric"),
        (np.array([[0, -1], [-1, 0.0]]), "negative"),
        (np.array([[0, np.nan], [np.nan, 0.0]]), "NaN|infinity"),
    ],
)
def test_bad_distance_matrices_are_refused(D, match):
    with pytest.raises(ValueError, match=match):
        GraphEmbedding(**FAST).fit(D, metric="precomputed")


def test_too_many_parameters_per_vertex_is_refused():
    X = np.random.default_rng(0).normal(size=(5, 2))
    with pytest.raises(ValueError, match="more than the complete graph"):
        GraphEmbedding(**FAST | {"params_per_vertex": 50}).fit(X)
