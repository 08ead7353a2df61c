"""GaussianMixture(estep_dtype='float32'): the opt-in single-precision E-step of 'full'
and 'tied' fits: close to the float64 fit (and so to scikit-learn's), deterministic,
chunking-invariant to its rounding, resumable, and refused where it does not exist."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from streammix import GaussianMixture, select
from streammix.errors import CheckpointMismatchError, InvalidParameterError
from tests.conftest import make_blobs
from tests.estimators.test_exactness import relerr, shared_init


def fit(X, K, cov_type, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter ends these fits unconverged
        return GaussianMixture(K, covariance_type=cov_type, **kw).fit(X)


@pytest.mark.parametrize("cov_type,d", [("full", 3), ("full", 24), ("tied", 24)])
def test_float32_estep_is_the_float64_fit_to_single_precision(cov_type, d):
    X = make_blobs(6000, d, 4, seed=d, offset=20.0)[0]
    init = shared_init(X, 4, cov_type)
    a = fit(X, 4, cov_type, tol=0, max_iter=6, **init)
    b = fit(X, 4, cov_type, tol=0, max_iter=6, estep_dtype="float32", **init)
    errs = [relerr(b.means_, a.means_), relerr(b.covariances_, a.covariances_),
            relerr(b.weights_, a.weights_)]
    assert 0 < max(errs) < 1e-5  # float32's rounding, not float64's
    assert b.lower_bound_ == pytest.approx(a.lower_bound_, rel=1e-6)
    # the same call gives the same bits; another chunking differs by rounding only
    again = fit(X, 4, cov_type, tol=0, max_iter=6, estep_dtype="float32", **init)
    np.testing.assert_array_equal(again.means_, b.means_)
    np.testing.assert_array_equal(again.covariances_, b.covariances_)
    chunked = fit(X, 4, cov_type, tol=0, max_iter=6, estep_dtype="float32",
                  chunk_size=777, **init)
    assert relerr(chunked.means_, b.means_) < 1e-5
    # predictions are float64 whatever the fit's E-step: the float64 model's on its
    # parameters
    ref = GaussianMixture(4, covariance_type=cov_type)
    ref._set_state(b._get_params_value())
    ref.n_features_in_ = d
    np.testing.assert_array_equal(b.score_samples(X), ref.score_samples(X))


def test_float32_estep_is_refused_where_it_does_not_exist():
    X = make_blobs(500, 3, 2, seed=0)[0]
    for cov_type in ("diag", "spherical"):
        with pytest.raises(InvalidParameterError, match="'full' or 'tied'"):
            GaussianMixture(2, covariance_type=cov_type, estep_dtype="float32").fit(X)
    with pytest.raises(InvalidParameterError, match="estep_dtype must be"):
        GaussianMixture(2, estep_dtype="float16").fit(X)
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
    X = make_blobs(3000, 6, 3, seed=5)[0]
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
    X = make_blobs(4000, 5, 3, seed=2)[0]
    sel = select(X, [2, 3], ["full", "tied"], random_state=0, max_iter=20,
                 estep_dtype="float32")
    for m in sel.models:
        own = fit(X, m.n_components, m.covariance_type, random_state=0, max_iter=20,
                  estep_dtype="float32")
        np.testing.assert_array_equal(m.means_, own.means_)
    assert sel.best.n_components == 3
