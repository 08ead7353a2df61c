"""streammix.select: a grid of candidates fitted together, each with its own fit's bits."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

import streammix.execution.zarr_chunks as zc
from streammix import GaussianMixture, InvalidInputError, InvalidParameterError, select
from tests.conftest import make_blobs

pytestmark = pytest.mark.filterwarnings("ignore::streammix.ConvergenceWarning")


def test_each_candidate_has_its_own_fits_bits_and_the_best_bic_wins(tmp_path):
    X = make_blobs(30_000, 3, 4, seed=21)[0]
    path = str(tmp_path / "x.zarr")
    zarr.create_array(path, data=X, chunks=(1000, 3))  # zstd
    kw = dict(random_state=3, n_init=2, max_iter=40, init_params="k-means++")
    result = select(path, n_components=[2, 3, 4, 5, 6], covariance_types=["full", "diag"],
                    **kw)
    assert len(result.table) == 10 and result.criterion == "bic"
    for row, model in zip(result.table, result.models):
        alone = GaussianMixture(row["n_components"], covariance_type=row["covariance_type"],
                                **kw).fit(path)
        for name in ("weights_", "means_", "covariances_", "lower_bounds_"):
            np.testing.assert_array_equal(np.asarray(getattr(model, name)),
                                          np.asarray(getattr(alone, name)), err_msg=name)
        assert row["bic"] == pytest.approx(alone.bic(path), rel=1e-10)
        assert row["aic"] == pytest.approx(alone.aic(path), rel=1e-10)
    best = min(result.table, key=lambda r: r["bic"])
    assert (result.best.n_components, result.best.covariance_type) == \
        (best["n_components"], best["covariance_type"])
    assert result.best.n_components == 4


def test_the_grid_reads_each_chunk_once_per_pass(tmp_path, monkeypatch):
    X = make_blobs(20_000, 2, 3, seed=4)[0]
    path = str(tmp_path / "x.zarr")
    zarr.create_array(path, data=X, chunks=(1000, 2), compressors=None)
    reads = {"n": 0}
    real = zc.ChunkFile.read_into

    def counted(ref, out):
        reads["n"] += 1
        real(ref, out)

    monkeypatch.setattr(zc.ChunkFile, "read_into", counted)
    kw = dict(random_state=0, max_iter=20, tol=0, init_params="random_from_data")
    select(path, n_components=range(2, 8), covariance_types=["diag"], **kw)
    shared = reads["n"]
    reads["n"] = 0
    for k in range(2, 8):
        GaussianMixture(k, covariance_type="diag", **kw).fit(path)
    assert reads["n"] >= 5 * shared  # 6 candidates: (almost) 6 times fewer reads


def test_bad_requests_are_refused():
    X = make_blobs(50, 2, 2, seed=1)[0]
    with pytest.raises(InvalidParameterError, match="criterion"):
        select(X, criterion="icl")
    with pytest.raises(InvalidInputError, match="n_components = 60"):
        select(X, n_components=[2, 60])
    with pytest.raises(InvalidParameterError, match="warm_start"):
        select(X, warm_start=True)
