"""Exact EM on Dask and Zarr: chunking, schedulers and worker processes do not change the
answer (relative 1e-10 against the in-memory fit, 1e-8 against scikit-learn)."""

from __future__ import annotations

import warnings

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from sklearn.mixture import GaussianMixture as SkGMM

from streammix import GaussianMixture
from tests.conftest import make_blobs

TYPES = ["full", "tied", "diag", "spherical"]


def relerr(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


@pytest.fixture(scope="module")
def data():
    X, _ = make_blobs(60_000, 6, 4, seed=21)
    return X


def inits(X, cov_type, K=4):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = SkGMM(K, covariance_type=cov_type, random_state=0, max_iter=2).fit(X[:5000])
    return dict(weights_init=ref.weights_, means_init=ref.means_,
                precisions_init=ref.precisions_, covariance_type=cov_type, tol=0, max_iter=6)


def fit(X, kw, **extra):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianMixture(4, **kw, **extra).fit(X)


def assert_same(model, ref, rtol=1e-10):
    assert relerr(model.weights_, ref.weights_) < rtol
    assert relerr(model.means_, ref.means_) < rtol
    assert relerr(model.covariances_, ref.covariances_) < rtol
    assert model.lower_bound_ == pytest.approx(ref.lower_bound_, rel=rtol)
    assert model.n_iter_ == ref.n_iter_


@pytest.mark.parametrize("cov_type", TYPES)
def test_numpy_dask_chunkings_and_zarr_agree(cov_type, data, tmp_path):
    kw = inits(data, cov_type)
    ref = fit(data, kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = SkGMM(4, **kw).fit(data)
    assert_same(ref, sk, rtol=1e-8)
    for chunks in [(1000, 6), (7777, 6), (60_000, 6), (20_000, 3)]:
        assert_same(fit(da.from_array(data, chunks=chunks), kw), ref)
    z = zarr.create_array(store=str(tmp_path / "x.zarr"), shape=data.shape,
                          chunks=(9000, 6), dtype="float64")
    z[:] = data
    assert_same(fit(z, kw), ref)
    assert_same(fit(str(tmp_path / "x.zarr"), kw), ref)


def test_float32_zarr_matches_float32_numpy(data, tmp_path):
    X32 = data.astype(np.float32)
    kw = inits(data, "full")
    ref = fit(X32, kw)
    z = zarr.create_array(store=str(tmp_path / "x32.zarr"), shape=X32.shape,
                          chunks=(5000, 6), dtype="float32")
    z[:] = X32
    assert_same(fit(z, kw), ref)


def test_same_dask_chunking_gives_same_bits(data):
    kw = inits(data, "diag")
    a = fit(da.from_array(data, chunks=(5000, 6)), kw)
    b = fit(da.from_array(data, chunks=(5000, 6)), kw)
    assert np.array_equal(a.means_, b.means_) and np.array_equal(a.covariances_, b.covariances_)


def test_sample_weight_on_dask_matches_numpy(data):
    w = np.random.default_rng(0).uniform(0, 2, size=len(data))
    kw = inits(data, "full")
    ref = fit(data, kw, sample_weight=None) if False else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = GaussianMixture(4, **kw).fit(data, sample_weight=w)
        got = GaussianMixture(4, **kw).fit(da.from_array(data, chunks=(4000, 6)),
                                           sample_weight=da.from_array(w, chunks=3000))
        got2 = GaussianMixture(4, **kw).fit(da.from_array(data, chunks=(4000, 6)),
                                            sample_weight=w)
    assert_same(got, ref)
    assert_same(got2, ref)


def test_predictions_on_dask_are_lazy_and_equal(data, tmp_path):
    kw = inits(data, "full")
    model = fit(data, kw)
    Xd = da.from_array(data, chunks=(7000, 6))
    labels = model.predict(Xd)
    assert isinstance(labels, da.Array)
    np.testing.assert_array_equal(labels.compute(), model.predict(data))
    np.testing.assert_allclose(model.predict_proba(Xd).compute(), model.predict_proba(data),
                               rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(model.score_samples(Xd).compute(), model.score_samples(data),
                               rtol=1e-13)
    assert model.score(Xd) == pytest.approx(model.score(data), rel=1e-12)
    assert model.bic(Xd) == pytest.approx(model.bic(data), rel=1e-12)


def test_write_predictions_streams_into_zarr(data, tmp_path):
    from streammix import write_predictions

    kw = inits(data, "diag")
    model = fit(data, kw)
    z = zarr.create_array(store=str(tmp_path / "in.zarr"), shape=data.shape,
                          chunks=(8000, 6), dtype="float64")
    z[:] = data
    group = write_predictions(model, str(tmp_path / "in.zarr"), str(tmp_path / "out.zarr"))
    np.testing.assert_array_equal(group["labels"][:], model.predict(data))
    np.testing.assert_allclose(group["proba"][:], model.predict_proba(data), rtol=1e-12)
    np.testing.assert_allclose(group["log_density"][:], model.score_samples(data), rtol=1e-13)
    assert group["labels"].chunks == (8000,)
    reopened = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    assert sorted(reopened.array_keys()) == ["labels", "log_density", "proba"]
    with pytest.raises(Exception):  # refuses to overwrite unless asked
        write_predictions(model, data, str(tmp_path / "out.zarr"))
    write_predictions(model, data, str(tmp_path / "out.zarr"), outputs=("labels",),
                      overwrite=True)
