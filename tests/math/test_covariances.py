"""M-steps from statistics against scikit-learn's from responsibilities, and one-pass
numerical stability on data with a large offset."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.mixture._gaussian_mixture import (
    _compute_precision_cholesky,
    _compute_precision_cholesky_from_precisions,
    _estimate_gaussian_parameters,
)

from streammix.math.covariances import COVARIANCE_TYPES, get_covariance_type
from streammix.math.stats import SufficientStats, full_to_type
from tests.conftest import make_blobs

TYPES = ["full", "tied", "diag", "spherical"]


def stats_from_resp(X, resp, centres, cov_type):
    """Full statistics of given responsibilities, reduced to ``cov_type``."""
    K = resp.shape[1]
    s0 = resp.sum(0)
    s1 = np.stack([resp[:, k] @ (X - centres[k]) for k in range(K)])
    s2 = np.stack([(resp[:, k : k + 1] * (X - centres[k])).T @ (X - centres[k]) for k in range(K)])
    st = SufficientStats("full", s0, s1, s2, 0.0, float(len(X)), centres)
    return full_to_type(st, cov_type)


@pytest.mark.parametrize("cov_type", TYPES)
def test_m_step_matches_sklearn(cov_type):
    X, _ = make_blobs(600, 4, 3, seed=3)
    rng = np.random.default_rng(0)
    resp = rng.uniform(size=(600, 5))
    resp /= resp.sum(1, keepdims=True)
    centres = rng.normal(size=(5, 4))
    cov = get_covariance_type(cov_type)
    w, m, c = cov.m_step(stats_from_resp(X, resp, centres, cov_type), 1e-6)
    nk, m_ref, c_ref = _estimate_gaussian_parameters(X, resp, 1e-6, cov_type)
    np.testing.assert_allclose(w, nk / nk.sum(), rtol=1e-13)
    np.testing.assert_allclose(m, m_ref, rtol=1e-12)
    np.testing.assert_allclose(c, c_ref, rtol=1e-11)
    pc, _ = cov.precision_cholesky(c)
    np.testing.assert_allclose(pc, _compute_precision_cholesky(c_ref, cov_type), rtol=1e-10)


@pytest.mark.parametrize("cov_type", TYPES)
def test_precisions_round_trip(cov_type):
    cov = get_covariance_type(cov_type)
    X, _ = make_blobs(300, 3, 2, seed=5)
    resp = np.random.default_rng(1).dirichlet(np.ones(2), size=300)
    _, _, c = cov.m_step(stats_from_resp(X, resp, np.zeros((2, 3)), cov_type), 1e-6)
    pc, _ = cov.precision_cholesky(c)
    prec = cov.precisions(pc)
    np.testing.assert_allclose(cov.precision_cholesky_from_precisions(prec),
                               _compute_precision_cholesky_from_precisions(prec, cov_type, xp=np),
                               rtol=1e-10)
    np.testing.assert_allclose(cov.covariances_from_precision_cholesky(pc), c, rtol=1e-9)


@pytest.mark.parametrize("cov_type", TYPES)
def test_large_offset_is_stable_in_one_pass(cov_type):
    """1e6 + N(0, 1) data: covariances equal those of the centred data to 1e-6, where the
    naive E[x x^T] - mu mu^T loses every digit."""
    from streammix import GaussianMixture

    X, _ = make_blobs(4000, 3, 2, seed=11, spread=4.0)
    kw = dict(n_components=2, covariance_type=cov_type, random_state=0, tol=0, max_iter=20,
              init_params="random_from_data")
    centred = GaussianMixture(**kw).fit(X)
    shifted = GaussianMixture(**kw).fit(X + 1e6)
    np.testing.assert_allclose(shifted.covariances_, centred.covariances_, rtol=1e-6)
    np.testing.assert_allclose(shifted.means_ - 1e6, centred.means_, rtol=1e-6, atol=1e-6)
    # and the naive formula really does fail on the shifted data
    Xs = X + 1e6
    naive = (Xs**2).mean(0) - Xs.mean(0) ** 2
    assert np.max(np.abs(naive - X.var(0)) / X.var(0)) > 1e-6


def test_registry_names():
    assert sorted(COVARIANCE_TYPES) == sorted(TYPES)
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        get_covariance_type("banana")


@pytest.mark.parametrize("cov_type,expected", [
    ("full", 3 * 4 * 5 / 2), ("tied", 4 * 5 / 2), ("diag", 3 * 4), ("spherical", 3)])
def test_n_parameters(cov_type, expected):
    cov = get_covariance_type(cov_type)
    assert cov.n_parameters(3, 4) == int(expected + 3 * 4 + 2)
