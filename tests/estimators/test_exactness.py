"""Exactness against scikit-learn: same initial parameters, same iterations, same result."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SkGMM

from streammix import GaussianMixture
from tests.conftest import make_blobs

TYPES = ["full", "tied", "diag", "spherical"]


def relerr(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def shared_init(X, K, cov_type, seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = SkGMM(K, covariance_type=cov_type, random_state=seed, max_iter=1,
                    init_params="random_from_data").fit(X)
    return dict(weights_init=ref.weights_, means_init=ref.means_,
                precisions_init=ref.precisions_)


def fit_both(X, K, cov_type, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = SkGMM(K, covariance_type=cov_type, **kw).fit(X)
        b = GaussianMixture(K, covariance_type=cov_type, **kw).fit(X)
    return a, b


@pytest.mark.parametrize("cov_type", TYPES)
@pytest.mark.parametrize("d", [1, 2, 16, 64])
@pytest.mark.parametrize("K", [1, 3, 16])
def test_fixed_iterations_match_sklearn(cov_type, d, K):
    X, _ = make_blobs(1200 if d < 64 else 2400, d, 4, seed=d * 100 + K)
    init = shared_init(X, K, cov_type)
    a, b = fit_both(X, K, cov_type, tol=0, max_iter=4, **init)
    assert relerr(b.weights_, a.weights_) < 1e-8
    assert relerr(b.means_, a.means_) < 1e-8
    assert relerr(b.covariances_, a.covariances_) < 1e-8
    assert relerr(b.precisions_cholesky_, a.precisions_cholesky_) < 1e-7
    assert b.lower_bound_ == pytest.approx(a.lower_bound_, rel=1e-8)
    np.testing.assert_allclose(b.lower_bounds_, a.lower_bounds_, rtol=1e-8)
    assert (b.n_iter_, b.converged_) == (a.n_iter_, a.converged_) == (4, False)


@pytest.mark.parametrize("cov_type", TYPES)
def test_convergence_rule_matches_sklearn(cov_type):
    X, _ = make_blobs(3000, 3, 3, seed=1)
    init = shared_init(X, 3, cov_type)
    a, b = fit_both(X, 3, cov_type, tol=1e-4, max_iter=200, **init)
    assert (b.n_iter_, b.converged_) == (a.n_iter_, a.converged_)
    assert a.converged_
    assert relerr(b.means_, a.means_) < 1e-8
    assert b.lower_bound_ == pytest.approx(a.lower_bound_, rel=1e-10)


@pytest.mark.parametrize("cov_type", TYPES)
def test_inference_matches_sklearn_on_same_parameters(cov_type):
    X, _ = make_blobs(2000, 4, 3, seed=2)
    Xt, _ = make_blobs(500, 4, 3, seed=3)
    init = shared_init(X, 3, cov_type)
    a, b = fit_both(X, 3, cov_type, tol=0, max_iter=5, **init)
    # put exactly the same parameters into ours to compare inference alone
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        setattr(b, name, getattr(a, name))
    np.testing.assert_allclose(b.score_samples(Xt), a.score_samples(Xt), rtol=1e-12)
    np.testing.assert_array_equal(b.predict(Xt), a.predict(Xt))
    np.testing.assert_allclose(b.predict_proba(Xt), a.predict_proba(Xt), rtol=1e-9, atol=1e-15)
    assert b.score(Xt) == pytest.approx(a.score(Xt), rel=1e-12)
    assert b.bic(Xt) == pytest.approx(a.bic(Xt), rel=1e-12)
    assert b.aic(Xt) == pytest.approx(a.aic(Xt), rel=1e-12)
    assert b._n_parameters() == a._n_parameters()


@pytest.mark.parametrize("cov_type", TYPES)
def test_float32_input_matches_sklearn_on_float64(cov_type):
    X, _ = make_blobs(3000, 8, 3, seed=4)
    X32 = X.astype(np.float32)
    init = shared_init(X, 3, cov_type)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = SkGMM(3, covariance_type=cov_type, tol=0, max_iter=5, **init).fit(X32.astype(np.float64))
        b = GaussianMixture(3, covariance_type=cov_type, tol=0, max_iter=5, **init).fit(X32)
    assert b.means_.dtype == np.float64
    assert relerr(b.means_, a.means_) < 1e-5
    assert relerr(b.covariances_, a.covariances_) < 1e-5
    assert b.lower_bound_ == pytest.approx(a.lower_bound_, rel=1e-5)


def test_float32_input_is_not_copied_whole(monkeypatch):
    """The kernels read float32 chunks directly: no float64 copy of X is ever made."""
    import streammix.execution.numpy_source as ns

    X = make_blobs(5000, 4, 2, seed=5)[0].astype(np.float32)
    seen = []
    orig = ns.NumpySource.__init__

    def spy(self, X_, *a, **k):
        seen.append(X_)
        orig(self, X_, *a, **k)

    monkeypatch.setattr(ns.NumpySource, "__init__", spy)
    GaussianMixture(2, max_iter=3, random_state=0).fit(X)
    assert seen and all(s is X for s in seen)


@pytest.mark.parametrize("cov_type", TYPES)
def test_sample_weight_equals_repeated_rows(cov_type):
    X, _ = make_blobs(600, 3, 2, seed=6)
    reps = np.random.default_rng(1).integers(0, 3, size=len(X))
    init = shared_init(X, 2, cov_type)
    kw = dict(covariance_type=cov_type, tol=0, max_iter=6, **init)
    w = GaussianMixture(2, **kw).fit(X, sample_weight=reps)
    r = GaussianMixture(2, **kw).fit(np.repeat(X, reps, axis=0))
    np.testing.assert_allclose(w.means_, r.means_, rtol=1e-10)
    np.testing.assert_allclose(w.covariances_, r.covariances_, rtol=1e-10)
    assert w.lower_bound_ == pytest.approx(r.lower_bound_, rel=1e-12)


@pytest.mark.parametrize("cov_type", TYPES)
@pytest.mark.parametrize("d,K", [(2, 4), (2, 64), (128, 4), (128, 64)])
@pytest.mark.parametrize("overlap", [False, True], ids=["separated", "overlap"])
def test_grid_corners_match_sklearn_and_any_chunking(cov_type, d, K, overlap):
    """The corners of bench_em's grid (d 2..128, K 4..64), on separated blobs and on
    bench_em's overlapping mixture (centres uniform in [-2.5, 2.5]^d, scales 0.5-2):
    scikit-learn's result to 1e-8 from the same start, and chunks of 97 rows equal to
    the whole to rounding."""
    rng = np.random.default_rng([d, K, overlap])
    n = 4000 if d == 2 else 2600
    if overlap:
        centres = rng.uniform(-2.5, 2.5, size=(K, d))
        labels = rng.integers(0, K, size=n)
        X = centres[labels] + rng.normal(size=(n, d)) * rng.uniform(0.5, 2, size=K)[labels, None]
    else:
        X, _ = make_blobs(n, d, min(K, 8), seed=d + K)
    init = shared_init(X, K, cov_type)
    a, b = fit_both(X, K, cov_type, tol=0, max_iter=3, reg_covar=1e-3, **init)
    assert relerr(b.weights_, a.weights_) < 1e-8
    assert relerr(b.means_, a.means_) < 1e-8
    assert relerr(b.covariances_, a.covariances_) < 1e-8
    assert b.lower_bound_ == pytest.approx(a.lower_bound_, rel=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = GaussianMixture(K, covariance_type=cov_type, tol=0, max_iter=3, reg_covar=1e-3,
                            chunk_size=97, **init).fit(X)
    np.testing.assert_allclose(c.means_, b.means_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(c.covariances_, b.covariances_, rtol=1e-10)
    assert c.lower_bound_ == pytest.approx(b.lower_bound_, rel=1e-12)


@pytest.mark.parametrize("chunk_size", [1, 7, 100, 4096])
def test_chunking_changes_result_only_by_rounding(chunk_size):
    X, _ = make_blobs(3000, 5, 3, seed=7)
    init = shared_init(X, 3, "full")
    base = GaussianMixture(3, tol=0, max_iter=5, **init).fit(X)
    other = GaussianMixture(3, tol=0, max_iter=5, chunk_size=chunk_size, **init).fit(X)
    np.testing.assert_allclose(other.means_, base.means_, rtol=1e-11)
    np.testing.assert_allclose(other.covariances_, base.covariances_, rtol=1e-11)


def test_same_chunking_gives_same_bits_whatever_the_threads():
    X, _ = make_blobs(200_000, 4, 3, seed=8)
    a = GaussianMixture(3, random_state=0, max_iter=5, tol=0, chunk_size=5000).fit(X)
    b = GaussianMixture(3, random_state=0, max_iter=5, tol=0, chunk_size=5000).fit(X)
    assert np.array_equal(a.means_, b.means_) and np.array_equal(a.covariances_, b.covariances_)
