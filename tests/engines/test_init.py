"""Initialisation: determinism under random_state, k-means quality, n_init keeps the best."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.cluster import KMeans

from streammix import GaussianMixture
from streammix.engines.kmeans import kmeans
from streammix.execution import NumpySource
from tests.conftest import make_blobs

METHODS = ["kmeans", "k-means++", "random", "random_from_data"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_inits_are_deterministic(method, cov_type):
    X, _ = make_blobs(3000, 3, 4, seed=1)
    kw = dict(init_params=method, covariance_type=cov_type, max_iter=0, random_state=42)
    a = GaussianMixture(4, **kw).fit(X)
    b = GaussianMixture(4, **kw).fit(X)
    c = GaussianMixture(4, **{**kw, "random_state": 43}).fit(X)
    assert np.array_equal(a.means_, b.means_)
    assert np.array_equal(a.covariances_, b.covariances_)
    assert not np.array_equal(a.means_, c.means_)
    assert np.all(np.isfinite(a.covariances_))
    assert a.weights_.sum() == pytest.approx(1.0, rel=1e-9)


def test_random_init_draws_sklearns_stream():
    """'random' draws the same numbers as scikit-learn's one n x K draw, chunk by chunk."""
    from sklearn.mixture import GaussianMixture as SkGMM

    X, _ = make_blobs(5000, 3, 3, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = SkGMM(3, init_params="random", max_iter=0, random_state=5).fit(X)
        b = GaussianMixture(3, init_params="random", max_iter=0, random_state=5,
                            chunk_size=777).fit(X)
    np.testing.assert_allclose(b.means_, a.means_, rtol=1e-10)
    np.testing.assert_allclose(b.weights_, a.weights_, rtol=1e-10)
    np.testing.assert_allclose(b.covariances_, a.covariances_, rtol=1e-9)


def test_kmeans_inertia_close_to_sklearn():
    X, _ = make_blobs(20000, 5, 8, seed=3)
    ours = min(kmeans(NumpySource(X), 8, np.random.RandomState(s))[1] for s in range(3))
    ref = KMeans(8, n_init=3, random_state=0).fit(X).inertia_
    assert ours <= 1.1 * ref


def test_kmeans_init_finds_blob_centres():
    X, labels = make_blobs(10000, 2, 3, seed=4, spread=20.0)
    g = GaussianMixture(3, random_state=0).fit(X)
    true = np.stack([X[labels == k].mean(0) for k in range(3)])
    dist = np.linalg.norm(g.means_[:, None] - true[None], axis=2)
    assert np.all(dist.min(axis=1) < 0.2)


def test_n_init_keeps_best_lower_bound():
    X, _ = make_blobs(3000, 2, 6, seed=5, spread=3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        singles = [GaussianMixture(6, init_params="random_from_data", n_init=1, max_iter=30,
                                   random_state=np.random.RandomState(9)).fit(X)]
        rs = np.random.RandomState(9)
        runs = []
        for _ in range(4):
            runs.append(GaussianMixture(6, init_params="random_from_data", max_iter=30,
                                        random_state=rs).fit(X).lower_bound_)
        best = GaussianMixture(6, init_params="random_from_data", n_init=4, max_iter=30,
                               random_state=9).fit(X)
    assert best.lower_bound_ == pytest.approx(max(runs), rel=1e-12)
    assert best.lower_bound_ >= singles[0].lower_bound_


def test_warm_start_continues_from_previous_fit():
    X, _ = make_blobs(3000, 2, 3, seed=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = GaussianMixture(3, warm_start=True, max_iter=2, tol=0, random_state=0).fit(X)
        first = g.means_.copy()
        g.fit(X)
        ref = GaussianMixture(3, max_iter=4, tol=0, random_state=0).fit(X)
    assert not np.array_equal(first, g.means_)
    np.testing.assert_allclose(g.means_, ref.means_, rtol=1e-12)
