"""BayesianGaussianMixture: scikit-learn's variational mixture, exact on every input."""

from __future__ import annotations

import inspect
import warnings

import dask.array as da
import numpy as np
import pytest
import zarr

from streammix import (
    BayesianGaussianMixture,
    DegenerateComponentWarning,
    InvalidParameterError,
    NotFittedError,
    load,
)

sk_mixture = pytest.importorskip("sklearn.mixture")
pytestmark = pytest.mark.filterwarnings("ignore::streammix.ConvergenceWarning")

COV_TYPES = ["full", "tied", "diag", "spherical"]
PRIOR_TYPES = ["dirichlet_process", "dirichlet_distribution"]
POSTERIOR = ["weight_concentration_", "mean_precision_", "means_", "degrees_of_freedom_",
             "covariances_", "precisions_cholesky_"]
FITTED = ["weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_",
          "weight_concentration_prior_", "weight_concentration_", "mean_precision_prior_",
          "mean_precision_", "mean_prior_", "degrees_of_freedom_prior_",
          "degrees_of_freedom_", "covariance_prior_", "converged_", "n_iter_",
          "lower_bound_", "lower_bounds_", "n_features_in_"]


def three_blobs(n=300, seed=0):
    rng = np.random.RandomState(seed)
    return np.vstack([rng.randn(n, 3) * s + c for s, c in [(0.5, 0.0), (1.0, 4.0),
                                                            (0.7, -3.0)]])


def five_separated(n, seed=1):
    rng = np.random.RandomState(seed)
    centres = np.array([[0, 0], [20, 0], [0, 20], [20, 20], [10, 10]], float)
    labels = rng.randint(5, size=n)
    return centres[labels] + rng.randn(n, 2) * (0.6 + 0.2 * labels)[:, None]


def copy_posterior(src, dst):
    for name in POSTERIOR + ["converged_", "lower_bound_"]:
        v = getattr(src, name)
        if isinstance(v, tuple):
            v = tuple(np.array(a) for a in v)
        elif isinstance(v, np.ndarray):
            v = v.copy()
        setattr(dst, name, v)


def rel_err(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-300)))


@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_warm_start_from_scikit_learn_continues_as_scikit_learn(cov_type, prior_type):
    """A model whose posterior came from scikit-learn continues exactly as scikit-learn
    does: same attributes in, max_iter more iterations, same attributes and ELBO out."""
    X = three_blobs()
    kw = dict(n_components=5, covariance_type=cov_type,
              weight_concentration_prior_type=prior_type)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = sk_mixture.BayesianGaussianMixture(max_iter=3, random_state=0, **kw).fit(X)
        ours = BayesianGaussianMixture(max_iter=5, warm_start=True, **kw)
        copy_posterior(sk, ours)
        sk.set_params(warm_start=True, max_iter=5).fit(X)
        ours.fit(X)
    for name in ["weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_",
                 "mean_precision_", "degrees_of_freedom_", "weight_concentration_prior_",
                 "mean_precision_prior_", "mean_prior_", "degrees_of_freedom_prior_",
                 "covariance_prior_"]:
        assert rel_err(getattr(sk, name), getattr(ours, name)) < 1e-8, name
    assert rel_err(np.asarray(sk.weight_concentration_),
                   np.asarray(ours.weight_concentration_)) < 1e-8
    assert isinstance(ours.weight_concentration_, tuple) == (prior_type == "dirichlet_process")
    assert ours.lower_bound_ == pytest.approx(float(np.squeeze(sk.lower_bound_)), rel=1e-8)
    np.testing.assert_allclose(np.squeeze(ours.lower_bounds_),
                               np.squeeze(np.asarray(sk.lower_bounds_, dtype=float)),
                               rtol=1e-8)
    assert ours.n_iter_ == sk.n_iter_ and ours.converged_ == sk.converged_
    np.testing.assert_allclose(ours.score_samples(X), sk.score_samples(X), rtol=1e-8)
    np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), atol=1e-8)
    np.testing.assert_array_equal(ours.predict(X), sk.predict(X))


def test_same_parameters_attributes_and_methods_as_scikit_learn():
    ours = set(inspect.signature(BayesianGaussianMixture).parameters)
    theirs = set(inspect.signature(sk_mixture.BayesianGaussianMixture).parameters)
    assert theirs <= ours and ours - theirs == {"chunk_size", "client", "estep_dtype"}
    for name, p in inspect.signature(sk_mixture.BayesianGaussianMixture).parameters.items():
        assert inspect.signature(BayesianGaussianMixture).parameters[name].default == p.default
    m = BayesianGaussianMixture(n_components=3, random_state=0).fit(three_blobs())
    for name in FITTED:
        assert hasattr(m, name), name
    for name in ["fit", "fit_predict", "predict", "predict_proba", "score", "score_samples",
                 "sample", "get_params", "set_params"]:
        assert callable(getattr(m, name))
    assert not hasattr(m, "bic") and not hasattr(m, "aic")  # as in scikit-learn
    X, y = m.sample(50)
    assert X.shape == (50, 3) and y.shape == (50,)
    assert m.fit_predict(three_blobs()).shape == (900,)
    with pytest.raises(NotFittedError):
        BayesianGaussianMixture().predict(three_blobs())


@pytest.mark.parametrize("cov_type", ["full", "diag", "spherical"])
def test_dirichlet_process_switches_off_the_components_the_data_do_not_need(cov_type):
    """20 components on 5 well-separated clusters: more than 99% of the weight on 5 (as
    scikit-learn's); the others are switched off."""
    X = five_separated(4000)
    m = BayesianGaussianMixture(n_components=20, covariance_type=cov_type, random_state=0,
                                max_iter=500).fit(X)
    assert np.sort(m.weights_)[::-1][:5].sum() > 0.99
    assert m.effective_n_components() == 5
    sk = sk_mixture.BayesianGaussianMixture(n_components=20, covariance_type=cov_type,
                                            random_state=0, max_iter=500).fit(X)
    assert np.sort(sk.weights_)[::-1][:5].sum() > 0.99


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_any_chunking_and_dask_input_give_the_in_memory_fit(cov_type):
    """The same start (the posterior after one iteration) on other chunkings and on a
    dask array gives the in-memory result to rounding (the priors' pass included)."""
    X = five_separated(6000)
    kw = dict(n_components=6, covariance_type=cov_type, random_state=0, max_iter=8, tol=0)
    start = BayesianGaussianMixture(**{**kw, "max_iter": 1}).fit(X)

    def continued(data, **extra):
        m = BayesianGaussianMixture(warm_start=True, **kw, **extra)
        copy_posterior(start, m)
        return m.fit(data)

    ref = continued(X)
    for got in (continued(X, chunk_size=777), continued(da.from_array(X, chunks=(1000, 2)))):
        for name in ["means_", "covariances_", "weights_", "mean_precision_",
                     "degrees_of_freedom_", "mean_prior_", "covariance_prior_"]:
            assert rel_err(getattr(ref, name), getattr(got, name)) < 1e-10, name
        assert got.lower_bound_ == pytest.approx(ref.lower_bound_, rel=1e-10)


def test_zarr_path_and_sample_weights(tmp_path):
    """A Zarr path is read chunk by chunk; integer weights equal repeated rows."""
    X = five_separated(3000)
    path = str(tmp_path / "x.zarr")
    z = zarr.create_array(store=path, shape=X.shape, chunks=(500, 2), dtype="float64")
    z[:] = X
    kw = dict(n_components=5, random_state=0, max_iter=10, tol=0)
    start = BayesianGaussianMixture(max_iter=1, **{k: v for k, v in kw.items()
                                                   if k != "max_iter"}).fit(X)
    ref = BayesianGaussianMixture(warm_start=True, **kw)
    got = BayesianGaussianMixture(warm_start=True, **kw)
    for m in (ref, got):
        copy_posterior(start, m)
    ref.fit(X)
    got.fit(path)
    assert rel_err(ref.means_, got.means_) < 1e-10
    np.testing.assert_array_equal(got.predict(path).compute(), ref.predict(X))
    # frequency weights: weight 2 on every row of the first half equals repeating it
    w = np.ones(len(X))
    w[:1500] = 2.0
    rep = np.vstack([X, X[:1500]])
    a = BayesianGaussianMixture(warm_start=True, **kw)
    b = BayesianGaussianMixture(warm_start=True, **kw)
    copy_posterior(start, a)
    copy_posterior(start, b)
    a.fit(X, sample_weight=w)
    b.fit(rep)
    assert rel_err(a.means_, b.means_) < 1e-9
    assert rel_err(a.covariance_prior_, b.covariance_prior_) < 1e-9
    assert a.lower_bound_ == pytest.approx(b.lower_bound_, rel=1e-9)


def test_checkpoint_resume_and_save_load(tmp_path):
    X = five_separated(5000)
    kw = dict(n_components=6, random_state=0, max_iter=12, tol=0, n_init=2,
              weight_concentration_prior_type="dirichlet_distribution")
    ref = BayesianGaussianMixture(**kw).fit(X)
    ck = str(tmp_path / "ck")
    # a run stopped after 5 iterations of its first restart (as a crash would stop it),
    # resumed by the same call: the same bits as the uninterrupted run
    calls = []

    def stop(info):
        calls.append(info.iteration)
        if len(calls) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        BayesianGaussianMixture(**kw).fit(X, checkpoint=ck, callback=stop)
    got = BayesianGaussianMixture(**kw).fit(X, checkpoint=ck)
    for name in POSTERIOR + ["weights_", "lower_bounds_"]:
        np.testing.assert_array_equal(np.asarray(getattr(got, name)),
                                      np.asarray(getattr(ref, name)), err_msg=name)
    loaded = load(ck)
    assert type(loaded) is BayesianGaussianMixture
    np.testing.assert_array_equal(loaded.predict_proba(X), ref.predict_proba(X))
    np.testing.assert_array_equal(loaded.score_samples(X), ref.score_samples(X))
    assert loaded.covariance_prior_ == pytest.approx(ref.covariance_prior_)
    with pytest.raises(Exception, match="different fit"):
        BayesianGaussianMixture(**{**kw, "weight_concentration_prior": 0.5}).fit(
            X, checkpoint=ck)


@pytest.mark.parametrize("kwargs, match", [
    (dict(weight_concentration_prior=-1.0), "weight_concentration_prior"),
    (dict(mean_precision_prior=0.0), "mean_precision_prior"),
    (dict(weight_concentration_prior_type="dirichlet"), "weight_concentration_prior_type"),
    (dict(degrees_of_freedom_prior=1.5), "degrees_of_freedom_prior' should be greater than 2"),
    (dict(mean_prior=[0.0, 0.0]), "shape"),
    (dict(covariance_prior=np.eye(2)), "shape"),
    (dict(covariance_prior=-np.eye(3)), "positive-definite"),
    (dict(covariance_prior=[[1.0, 2.0, 0], [0, 1.0, 0], [0, 0, 1.0]]), "symmetric"),
    (dict(covariance_type="diag", covariance_prior=[1.0, -1.0, 1.0]), "positive"),
    (dict(covariance_type="spherical", covariance_prior=-2.0), "covariance_prior"),
])
def test_bad_priors_get_clear_errors_and_change_nothing(kwargs, match):
    X = three_blobs(100)
    m = BayesianGaussianMixture(n_components=2, random_state=0).fit(X)
    before = m.means_.copy()
    m.set_params(**kwargs)
    with pytest.raises(InvalidParameterError, match=match):
        m.fit(X)
    np.testing.assert_array_equal(m.means_, before)
    assert issubclass(InvalidParameterError, ValueError)


def test_given_priors_are_used():
    X = three_blobs(200)
    m = BayesianGaussianMixture(n_components=3, random_state=0, mean_prior=[1.0, 2.0, 3.0],
                                covariance_prior=2 * np.eye(3), degrees_of_freedom_prior=5,
                                mean_precision_prior=0.5, weight_concentration_prior=3.0).fit(X)
    np.testing.assert_array_equal(m.mean_prior_, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(m.covariance_prior_, 2 * np.eye(3))
    assert (m.degrees_of_freedom_prior_, m.mean_precision_prior_,
            m.weight_concentration_prior_) == (5.0, 0.5, 3.0)
    sk = sk_mixture.BayesianGaussianMixture(
        n_components=3, mean_prior=[1.0, 2.0, 3.0], covariance_prior=2 * np.eye(3),
        degrees_of_freedom_prior=5, mean_precision_prior=0.5, weight_concentration_prior=3.0,
        max_iter=2, warm_start=True)
    copy_posterior(m, sk)
    ours = BayesianGaussianMixture(**{**sk.get_params()})
    copy_posterior(m, ours)
    sk.fit(X)
    ours.fit(X)
    assert rel_err(sk.means_, ours.means_) < 1e-8


def test_degenerate_data_recover_with_a_warning():
    """A constant feature makes the data's covariance (the default covariance prior)
    singular: with reg_covar=0 the posterior covariances are repaired with a warning,
    never NaN, as GaussianMixture does; with the default reg_covar nothing to repair."""
    rng = np.random.RandomState(0)
    X = np.vstack([rng.randn(200, 3), rng.randn(200, 3) + 5])
    X[:, 2] = 1.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = BayesianGaussianMixture(n_components=4, covariance_type="full", reg_covar=0.0,
                                    random_state=0, max_iter=20).fit(X)
    assert any(issubclass(w.category, DegenerateComponentWarning) for w in caught)
    assert np.all(np.isfinite(m.covariances_)) and np.all(np.isfinite(m.score_samples(X)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateComponentWarning)
        m = BayesianGaussianMixture(n_components=4, random_state=0, max_iter=20).fit(X)
    assert np.all(np.isfinite(m.score_samples(X)))


def test_dirichlet_process_refuses_align_to_and_distribution_keeps_labels():
    X = five_separated(3000)
    ref = BayesianGaussianMixture(n_components=5, random_state=0,
                                  weight_concentration_prior_type="dirichlet_distribution",
                                  max_iter=200).fit(X)
    with pytest.raises(InvalidParameterError, match="align_to"):
        BayesianGaussianMixture(n_components=5, random_state=1).fit(X, align_to=ref)
    other = BayesianGaussianMixture(n_components=5, random_state=3, max_iter=200,
                                    weight_concentration_prior_type="dirichlet_distribution")
    other.fit(X[::-1], align_to=ref)
    np.testing.assert_allclose(other.means_, ref.means_, atol=0.05)
