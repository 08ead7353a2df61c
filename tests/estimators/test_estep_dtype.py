"""GaussianMixture(estep_dtype='float32'): the opt-in single-precision E-step of 'full'
fits: close to the float64 fit (and so to scikit-learn's), deterministic,
chunking-invariant to its rounding, resumable, refused on overflow and where it does
not exist."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from streammix import GaussianMixture, select
from streammix.errors import (CheckpointMismatchError, InvalidInputError,
                              InvalidParameterError)
from tests.conftest import make_blobs
from tests.estimators.test_exactness import relerr, shared_init


def fit(X, K, cov_type, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter ends these fits unconverged
        return GaussianMixture(K, covariance_type=cov_type, **kw).fit(X)


@pytest.mark.parametrize("d", [24, 40])
def test_float32_estep_is_the_float64_fit_to_single_precision(d):
    X = make_blobs(6000, d, 4, seed=d, offset=20.0)[0]
    init = shared_init(X, 4, "full")
    a = fit(X, 4, "full", tol=0, max_iter=6, **init)
    b = fit(X, 4, "full", tol=0, max_iter=6, estep_dtype="float32", **init)
    errs = [relerr(b.means_, a.means_), relerr(b.covariances_, a.covariances_),
            relerr(b.weights_, a.weights_)]
    assert 0 < max(errs) < 1e-5  # float32's rounding, not float64's
    assert b.lower_bound_ == pytest.approx(a.lower_bound_, rel=1e-6)
    # the same call gives the same bits; another chunking differs by rounding only
    again = fit(X, 4, "full", tol=0, max_iter=6, estep_dtype="float32", **init)
    np.testing.assert_array_equal(again.means_, b.means_)
    np.testing.assert_array_equal(again.covariances_, b.covariances_)
    chunked = fit(X, 4, "full", tol=0, max_iter=6, estep_dtype="float32",
                  chunk_size=777, **init)
    assert relerr(chunked.means_, b.means_) < 1e-5
    # predictions are float64 whatever the fit's E-step: the float64 model's on its
    # parameters
    ref = GaussianMixture(4)
    ref._set_state(b._get_params_value())
    ref.n_features_in_ = d
    np.testing.assert_array_equal(b.score_samples(X), ref.score_samples(X))


def test_float32_keeps_float64_where_it_does_not_pay():
    # 8 features, 4 components: float64's one Khatri-Rao product per block is faster
    X = make_blobs(3000, 8, 4, seed=1)[0]
    a = fit(X, 4, "full", max_iter=5, random_state=0)
    b = fit(X, 4, "full", max_iter=5, random_state=0, estep_dtype="float32")
    np.testing.assert_array_equal(a.means_, b.means_)


def test_float32_overflow_is_refused_not_fitted():
    X = make_blobs(2000, 20, 2, seed=3)[0]
    X[7] = 1e40  # fine in float64 (squares 1e80), past float32's range (3.4e38)
    gm = GaussianMixture(2, estep_dtype="float32", random_state=0)
    with pytest.raises(InvalidInputError, match="float32 E-step overflowed"):
        gm.fit(X)
    assert not hasattr(gm, "means_")  # nothing half-fitted
    GaussianMixture(2, random_state=0).fit(X)  # the float64 E-step fits it


def test_restarts_together_equal_restarts_one_by_one_in_float32():
    X = make_blobs(4000, 24, 3, seed=6)[0]
    kw = dict(n_init=3, max_iter=15, random_state=2, estep_dtype="float32")
    together = fit(X, 3, "full", **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # a callback makes the restarts run one after the other
        alone = GaussianMixture(3, **kw).fit(X, callback=lambda info: None)
    np.testing.assert_array_equal(together.means_, alone.means_)
    np.testing.assert_array_equal(together.covariances_, alone.covariances_)


def test_a_saved_float32_model_keeps_its_setting(tmp_path):
    from streammix.persistence import load, save

    X = make_blobs(2000, 24, 2, seed=7)[0]
    gm = fit(X, 2, "full", max_iter=5, random_state=0, estep_dtype="float32")
    save(gm, str(tmp_path / "m"))
    back = load(str(tmp_path / "m"))
    assert back.get_params()["estep_dtype"] == "float32"
    np.testing.assert_array_equal(back.means_, gm.means_)


def test_float32_estep_is_refused_where_it_does_not_exist():
    X = make_blobs(500, 3, 2, seed=0)[0]
    for cov_type in ("tied", "diag", "spherical"):
        with pytest.raises(InvalidParameterError, match="is for covariance_type 'full'"):
            GaussianMixture(2, covariance_type=cov_type, estep_dtype="float32").fit(X)
    for bad in ("float16", np.dtype("float32"), np.float32):
        with pytest.raises(InvalidParameterError, match="estep_dtype must be"):
            GaussianMixture(2, estep_dtype=bad).fit(X)
    # None and 'float64' are the default E-step: the same bits
    a = GaussianMixture(2, random_state=0).fit(X)
    b = GaussianMixture(2, random_state=0, estep_dtype="float64").fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)


class Stop(Exception):
    pass


def stop_at(n):
    def callback(info):
        if info.iteration == n:
            raise Stop
    return callback


def test_a_float32_checkpoint_resumes_and_refuses_a_float64_fit(tmp_path):
    X = make_blobs(3000, 24, 3, seed=5)[0]
    path = str(tmp_path / "ckpt")
    kw = dict(max_iter=8, tol=0, random_state=1, estep_dtype="float32")
    whole = fit(X, 3, "full", **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Stop):
            GaussianMixture(3, **kw).fit(X, checkpoint=path, callback=stop_at(3))
        with pytest.raises(CheckpointMismatchError, match="estep_dtype"):
            GaussianMixture(3, **{**kw, "estep_dtype": None}).fit(X, checkpoint=path)
        resumed = GaussianMixture(3, **kw).fit(X, checkpoint=path)
    assert resumed.n_iter_ == whole.n_iter_ == 8
    np.testing.assert_array_equal(resumed.means_, whole.means_)
    np.testing.assert_array_equal(resumed.covariances_, whole.covariances_)


def test_select_runs_float32_candidates_as_their_own_fits():
    X = make_blobs(4000, 24, 3, seed=2)[0]
    sel = select(X, [2, 3], ["full"], random_state=0, max_iter=20, estep_dtype="float32")
    for m in sel.models:
        own = fit(X, m.n_components, m.covariance_type, random_state=0, max_iter=20,
                  estep_dtype="float32")
        np.testing.assert_array_equal(m.means_, own.means_)
    assert sel.best.n_components == 3


def test_bayesian_mixture_takes_the_float32_estep_too():
    from streammix import BayesianGaussianMixture

    X = make_blobs(4000, 24, 3, seed=8)[0]
    kw = dict(n_components=4, max_iter=8, tol=0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = BayesianGaussianMixture(**kw).fit(X)
        b = BayesianGaussianMixture(**kw, estep_dtype="float32").fit(X)
    errs = [relerr(b.means_, a.means_), relerr(b.covariances_, a.covariances_),
            relerr(b.weights_, a.weights_)]
    assert 0 < max(errs) < 1e-5
    assert b.lower_bound_ == pytest.approx(a.lower_bound_, rel=1e-6)
    with pytest.raises(InvalidParameterError, match="is for covariance_type 'full'"):
        BayesianGaussianMixture(covariance_type="tied", estep_dtype="float32").fit(X)
