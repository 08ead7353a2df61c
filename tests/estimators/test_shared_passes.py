"""Restarts that share their passes: n_init restarts advance together, each pass reading
a chunk once for all of them, and give the bits of the restarts run one after another."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import zarr

import streammix.execution.zarr_chunks as zc
from streammix import BayesianGaussianMixture, GaussianMixture
from tests.conftest import make_blobs

pytestmark = pytest.mark.filterwarnings("ignore::streammix.ConvergenceWarning")


def _one_by_one(info):
    """A callback: its presence makes the restarts run one after another (each can then
    report its own iterations), the reference here."""


def _fitted(model):
    out = {name: np.asarray(getattr(model, name)) for name in
           ("weights_", "means_", "covariances_", "precisions_cholesky_", "lower_bounds_")}
    out["n_iter_"], out["converged_"] = model.n_iter_, model.converged_
    return out


def _assert_same_bits(a, b):
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.parametrize("cov_type", ["full", "diag", "tied", "spherical"])
def test_restarts_together_give_the_sequential_bits(cov_type):
    X = make_blobs(40_000, 4, 5, seed=3)[0]
    kw = dict(n_components=5, covariance_type=cov_type, n_init=4, random_state=2,
              max_iter=30, chunk_size=1000)  # 40 chunks: the thread pool, not a region
    for data in (X, da.from_array(X, chunks=(1000, 4))):
        together = GaussianMixture(**kw).fit(data)
        apart = GaussianMixture(**kw).fit(data, callback=_one_by_one)
        _assert_same_bits(_fitted(together), _fitted(apart))


def test_bayesian_restarts_together_give_the_sequential_bits():
    X = make_blobs(20_000, 3, 4, seed=8)[0]
    kw = dict(n_components=6, n_init=3, random_state=1, max_iter=25, chunk_size=500,
              weight_concentration_prior_type="dirichlet_distribution")
    together = BayesianGaussianMixture(**kw).fit(X)
    apart = BayesianGaussianMixture(**kw).fit(X, callback=_one_by_one)
    _assert_same_bits(_fitted(together), _fitted(apart))
    np.testing.assert_array_equal(together.degrees_of_freedom_, apart.degrees_of_freedom_)


@pytest.mark.parametrize("compressors", [None, "auto"], ids=["uncompressed", "zstd"])
def test_a_zarr_chunk_is_read_once_per_pass_for_all_restarts(tmp_path, monkeypatch,
                                                             compressors):
    """n_init = 4 on a Zarr array: the chunk files read are those of the longest restart
    (plus the initialisations), not the sum of the four; the same model."""
    X = make_blobs(60_000, 4, 4, seed=9)[0]
    path = str(tmp_path / "x.zarr")
    zarr.create_array(path, data=X, chunks=(2000, 4), compressors=compressors)
    reads = {"n": 0}
    real_read, real_into = zc.ChunkFile.read, zc.ChunkFile.read_into

    def counted_read(ref, reuse=False):
        reads["n"] += 1
        return real_read(ref, reuse)

    def counted_into(ref, out):
        reads["n"] += 1
        real_into(ref, out)

    monkeypatch.setattr(zc.ChunkFile, "read", counted_read)
    monkeypatch.setattr(zc.ChunkFile, "read_into", counted_into)
    kw = dict(n_components=4, covariance_type="diag", n_init=4, random_state=0, max_iter=15,
              tol=0, init_params="random_from_data")
    reads["n"] = 0
    together = GaussianMixture(**kw).fit(path)
    shared = reads["n"]
    reads["n"] = 0
    apart = GaussianMixture(**kw).fit(path, callback=_one_by_one)
    alone = reads["n"]
    _assert_same_bits(_fitted(together), _fitted(apart))
    chunks = 30
    assert alone >= 4 * 15 * chunks            # every restart reads every chunk
    assert shared <= 15 * chunks + 4 * chunks, (shared, alone)  # one pass per iteration
