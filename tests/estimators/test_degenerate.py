"""Degenerate data never yields NaN.

Constant data, a constant feature, duplicated points, singleton and empty components,
reg_covar=0 on collapsed data: every fitted attribute stays finite, the covariances stay
positive definite (and consistent with the precisions), predictions work, and where
streammix repairs a covariance it says so with a DegenerateComponentWarning (scikit-learn
raises "ill-defined empirical covariance" there).

pyproject turns RuntimeWarning into an error, so a numpy "divide by zero" or "invalid
value" inside streammix fails these tests too.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from streammix import ConvergenceWarning, DegenerateComponentWarning, GaussianMixture

COV_TYPES = ["full", "tied", "diag", "spherical"]
INITS = ["kmeans", "k-means++", "random", "random_from_data"]


def _fit(gm, X, **kw):
    """Fit, ignoring only ConvergenceWarning (tiny max_iter on toy data is not the point)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return gm.fit(X, **kw)


def _positive_definite(cov_type, covariances, n_components, n_features):
    if cov_type == "full":
        mats = covariances
    elif cov_type == "tied":
        mats = covariances[None]
    elif cov_type == "diag":
        return covariances.shape == (n_components, n_features) and np.all(covariances > 0)
    else:
        return covariances.shape == (n_components,) and np.all(covariances > 0)
    return all(np.all(np.linalg.eigvalsh(0.5 * (m + m.T)) > 0) for m in mats)


def assert_sane(gm, X):
    """Everything fitted is finite, consistent and usable."""
    K, d = gm.n_components, X.shape[1]
    ct = gm.covariance_type
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        value = np.asarray(getattr(gm, name), dtype=np.float64)
        assert np.all(np.isfinite(value)), f"{name} is not finite: {value}"
    assert np.isfinite(gm.lower_bound_), gm.lower_bound_
    assert np.all(np.isfinite(gm.lower_bounds_)), gm.lower_bounds_
    assert gm.weights_.shape == (K,) and np.all(gm.weights_ >= 0)
    np.testing.assert_allclose(gm.weights_.sum(), 1.0, rtol=1e-12)
    assert gm.means_.shape == (K, d)
    assert _positive_definite(ct, gm.covariances_, K, d), gm.covariances_
    # precisions_ are the inverse of covariances_ (a repair must update both)
    P, C = gm.precisions_, gm.covariances_
    if ct == "full":
        prod = np.einsum("kij,kjl->kil", P, C)
        np.testing.assert_allclose(prod, np.broadcast_to(np.eye(d), prod.shape), atol=1e-6)
    elif ct == "tied":
        np.testing.assert_allclose(P @ C, np.eye(d), atol=1e-6)
    else:
        np.testing.assert_allclose(P * C, np.ones_like(C), rtol=1e-6)

    labels = gm.predict(X)
    assert labels.shape == (X.shape[0],) and labels.min() >= 0 and labels.max() < K
    proba = gm.predict_proba(X)
    assert proba.shape == (X.shape[0], K) and np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-10)
    np.testing.assert_array_equal(labels, proba.argmax(axis=1))
    ll = gm.score_samples(X)
    assert np.all(np.isfinite(ll)), ll
    assert np.isfinite(gm.score(X))
    assert np.isfinite(gm.bic(X)) and np.isfinite(gm.aic(X))
    Xs, ys = gm.sample(7)
    assert Xs.shape == (7, d) and np.all(np.isfinite(Xs)) and ys.shape == (7,)


# --------------------------------------------------------------------------- constant data
@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("K", [1, 2])
def test_constant_data(cov_type, init, K):
    X = np.full((25, 3), 2.5)
    gm = _fit(GaussianMixture(K, covariance_type=cov_type, init_params=init, random_state=0,
                              max_iter=20), X)
    assert_sane(gm, X)
    # every point sits on the used component's mean; its covariance is reg_covar * I
    used = int(np.argmax(gm.weights_))
    np.testing.assert_allclose(gm.means_[used], 2.5, rtol=1e-12)
    cov = np.asarray(gm.covariances_)
    var = {"full": lambda: np.diagonal(cov[used]), "tied": lambda: np.diagonal(cov),
           "diag": lambda: cov[used], "spherical": lambda: cov[used]}[cov_type]()
    np.testing.assert_allclose(var, 1e-6, rtol=1e-6)


@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("K", [1, 2])
def test_constant_data_reg_covar_zero_is_repaired_with_a_warning(cov_type, K):
    X = np.full((25, 3), -4.0)
    with pytest.warns(DegenerateComponentWarning, match="component|tied"):
        gm = _fit(GaussianMixture(K, covariance_type=cov_type, reg_covar=0.0, random_state=0),
                  X)
    assert_sane(gm, X)


@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("value, dtype", [(1e8, np.float64), (3.3, np.float32),
                                          (-7.0, np.int64)])
def test_constant_data_other_scales_and_dtypes(cov_type, value, dtype):
    X = np.full((30, 2), value).astype(dtype)
    with pytest.warns(DegenerateComponentWarning):
        gm = _fit(GaussianMixture(2, covariance_type=cov_type, reg_covar=0.0, random_state=0),
                  X)
    assert_sane(gm, X)


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_constant_one_feature_data(cov_type):
    X = np.zeros((12, 1))
    gm = _fit(GaussianMixture(2, covariance_type=cov_type, random_state=0), X)
    assert_sane(gm, X)
    with pytest.warns(DegenerateComponentWarning):
        gm = _fit(GaussianMixture(2, covariance_type=cov_type, reg_covar=0, random_state=0), X)
    assert_sane(gm, X)


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_constant_data_with_several_inits(cov_type):
    X = np.ones((15, 2))
    with pytest.warns(DegenerateComponentWarning):
        gm = _fit(GaussianMixture(2, covariance_type=cov_type, reg_covar=0, n_init=3,
                                  random_state=0), X)
    assert_sane(gm, X)


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_warm_start_onto_constant_data(cov_type):
    rng = np.random.RandomState(1)
    gm = _fit(GaussianMixture(2, covariance_type=cov_type, warm_start=True, max_iter=5,
                              random_state=0), rng.randn(40, 2))
    X = np.full((40, 2), 0.5)
    gm = _fit(gm, X)
    assert_sane(gm, X)


# --------------------------------------------------------------------------- constant feature
def _constant_feature_data(seed=0):
    rng = np.random.RandomState(seed)
    X = np.vstack([rng.randn(40, 3), rng.randn(40, 3) + 5.0])
    X[:, 1] = 7.0
    return X


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_constant_feature(cov_type):
    X = _constant_feature_data()
    gm = _fit(GaussianMixture(2, covariance_type=cov_type, random_state=0), X)
    assert_sane(gm, X)
    np.testing.assert_allclose(gm.means_[:, 1], 7.0, rtol=1e-12)
    # the other features are still separated into the two blobs
    assert sorted(np.bincount(gm.predict(X), minlength=2)) == [40, 40]
    if cov_type == "diag":
        np.testing.assert_allclose(gm.covariances_[:, 1], 1e-6, rtol=1e-6)


@pytest.mark.parametrize("cov_type", ["full", "tied", "diag"])
def test_constant_feature_reg_covar_zero_warns(cov_type):
    X = _constant_feature_data()
    with pytest.warns(DegenerateComponentWarning):
        gm = _fit(GaussianMixture(2, covariance_type=cov_type, reg_covar=0, random_state=0), X)
    assert_sane(gm, X)


def test_constant_feature_reg_covar_zero_spherical_needs_no_repair():
    # the mean of the variances is positive, so nothing is degenerate: no warning
    X = _constant_feature_data()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateComponentWarning)
        gm = _fit(GaussianMixture(2, covariance_type="spherical", reg_covar=0, random_state=0),
                  X)
    assert_sane(gm, X)


# --------------------------------------------------------------------------- duplicated points
def _duplicated(seed=0):
    rng = np.random.RandomState(seed)
    return np.repeat(rng.randn(3, 2) * 4, 10, axis=0)  # 3 distinct points, 10 copies each


@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("K", [3, 5])
@pytest.mark.parametrize("init", INITS)
def test_duplicated_points(cov_type, K, init):
    X = _duplicated()
    gm = _fit(GaussianMixture(K, covariance_type=cov_type, init_params=init, random_state=0,
                              max_iter=30), X)
    assert_sane(gm, X)


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_duplicated_points_reg_covar_zero_warns(cov_type):
    X = _duplicated()
    with pytest.warns(DegenerateComponentWarning):
        gm = _fit(GaussianMixture(3, covariance_type=cov_type, reg_covar=0, random_state=0), X)
    assert_sane(gm, X)
    # three components on three distinct points: each point is its own cluster
    assert len(np.unique(gm.predict(X))) == 3


@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("reg_covar", [0.0, 1e-6])
def test_singleton_components(cov_type, reg_covar):
    # as many samples as components: every component has one point
    X = np.random.RandomState(2).randn(3, 2)
    if reg_covar == 0:
        with pytest.warns(DegenerateComponentWarning):
            gm = _fit(GaussianMixture(3, covariance_type=cov_type, reg_covar=0,
                                      random_state=0), X)
    else:
        gm = _fit(GaussianMixture(3, covariance_type=cov_type, random_state=0), X)
    assert_sane(gm, X)


# --------------------------------------------------------------------------- empty component
_FAR = [[0.0, 0.0], [1e3, 1e3]]


def _blob(seed=0):
    return np.random.RandomState(seed).randn(60, 2)


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_component_losing_all_its_points(cov_type):
    X = _blob()
    gm = _fit(GaussianMixture(2, covariance_type=cov_type, means_init=_FAR, random_state=0), X)
    assert_sane(gm, X)
    assert gm.weights_[1] < 1e-10 and gm.weights_[0] > 1 - 1e-10
    # documented: an empty component keeps its previous mean
    np.testing.assert_allclose(gm.means_[1], [1e3, 1e3])
    np.testing.assert_array_equal(gm.predict(X), 0)


@pytest.mark.parametrize("cov_type", ["full", "diag", "spherical"])
def test_empty_component_reg_covar_zero_warns_and_names_it(cov_type):
    X = _blob()
    with pytest.warns(DegenerateComponentWarning, match="component 1"):
        gm = _fit(GaussianMixture(2, covariance_type=cov_type, means_init=_FAR, reg_covar=0,
                                  random_state=0), X)
    assert_sane(gm, X)


def test_empty_component_reg_covar_zero_tied():
    # the tied covariance pools all points, so an empty component leaves it well defined
    X = _blob()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateComponentWarning)
        gm = _fit(GaussianMixture(2, covariance_type="tied", means_init=_FAR, reg_covar=0,
                                  random_state=0), X)
    assert_sane(gm, X)


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_zero_initial_weight(cov_type):
    X = _blob()
    gm = _fit(GaussianMixture(2, covariance_type=cov_type, weights_init=[1.0, 0.0],
                              random_state=0), X)
    assert_sane(gm, X)


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_more_components_than_clusters_with_an_outlier(cov_type):
    X = np.vstack([np.zeros((30, 2)), [[1e6, -1e6]]])
    gm = _fit(GaussianMixture(3, covariance_type=cov_type, random_state=0), X)
    assert_sane(gm, X)
    with pytest.warns(DegenerateComponentWarning):
        gm = _fit(GaussianMixture(2, covariance_type=cov_type, reg_covar=0, random_state=0), X)
    assert_sane(gm, X)


# --------------------------------------------------------------------------- sample weights
@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("init", INITS)
def test_all_weight_on_one_sample(cov_type, init):
    X = _blob()
    sw = np.zeros(len(X))
    sw[5] = 2.0
    gm = _fit(GaussianMixture(2, covariance_type=cov_type, init_params=init, random_state=0),
              X, sample_weight=sw)
    assert_sane(gm, X)
    heavy = int(np.argmax(gm.weights_))
    np.testing.assert_allclose(gm.means_[heavy], X[5], rtol=1e-9)


@pytest.mark.parametrize("init", ["kmeans", "k-means++"])
@pytest.mark.parametrize("seed", [1, 2])
def test_weight_on_one_row_of_a_large_array(init, seed):
    # Far more rows than a 50,000-row init sample: the one weighted row is left out of
    # such a sample about 7 times in 8, and the sample's weights then sum to zero. The
    # init must not divide by that zero (nor fail), whatever rows it looks at.
    rng = np.random.RandomState(seed)
    X = rng.randn(400_000, 1)
    sw = np.zeros(len(X))
    sw[123_457] = 1.0
    gm = _fit(GaussianMixture(2, covariance_type="diag", init_params=init, max_iter=5,
                              random_state=seed), X, sample_weight=sw)
    assert_sane(gm, X[123_400:123_600])
    # all the weight is on one point: the component carrying it sits there
    heavy = int(np.argmax(gm.weights_))
    np.testing.assert_allclose(gm.means_[heavy], X[123_457], rtol=1e-9)


# --------------------------------------------------------------------------- tiny scales
@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_tiny_scale_data_reg_covar_zero(cov_type):
    X = np.random.RandomState(4).randn(50, 2) * 1e-9
    gm = _fit(GaussianMixture(2, covariance_type=cov_type, reg_covar=0, random_state=0), X)
    assert_sane(gm, X)


# --------------------------------------------------------------------------- far queries
@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_points_far_from_every_component(cov_type):
    # log-sum-exp: every component density underflows to 0, the posterior must not be 0/0
    X = np.random.RandomState(5).randn(50, 2) * 0.01
    gm = _fit(GaussianMixture(2, covariance_type=cov_type, random_state=0), X)
    far = np.array([[1e6, 1e6], [-1e6, 3.0], [0.0, 1e5]])
    proba = gm.predict_proba(far)
    assert np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    ll = gm.score_samples(far)
    assert np.all(np.isfinite(ll)) and np.all(ll < -1e6)
    np.testing.assert_array_equal(gm.predict(far), proba.argmax(axis=1))
