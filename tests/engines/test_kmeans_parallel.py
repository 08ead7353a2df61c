"""k-means|| on Dask input: quality against scikit-learn, determinism, and no pass that
brings the data to the client."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from sklearn.cluster import KMeans

import streammix.execution.dask_source as dask_source
from streammix import GaussianMixture
from streammix.engines.kmeans import kmeans
from streammix.execution.dask_source import DaskSource
from tests.conftest import make_blobs


def test_kmeans_parallel_inertia_within_10_percent_of_sklearn():
    X, _ = make_blobs(40_000, 6, 10, seed=41, spread=4.0)
    ref = KMeans(10, n_init=1, random_state=0).fit(X).inertia_
    source = DaskSource(da.from_array(X, chunks=(3000, 6)))
    ours = [kmeans(source, 10, np.random.RandomState(s))[1] for s in range(3)]
    assert np.median(ours) <= 1.10 * ref, (ours, ref)


def test_kmeans_parallel_is_deterministic_for_a_chunking():
    X, _ = make_blobs(20_000, 3, 5, seed=42)
    a = kmeans(DaskSource(da.from_array(X, chunks=(2500, 3))), 5, np.random.RandomState(7))[0]
    b = kmeans(DaskSource(da.from_array(X, chunks=(2500, 3))), 5, np.random.RandomState(7))[0]
    assert np.array_equal(a, b)


def _nbytes(obj) -> int:
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, (tuple, list)):
        return sum(_nbytes(o) for o in obj)
    if hasattr(obj, "__dict__"):
        return sum(_nbytes(v) for v in vars(obj).values())
    return 8


@pytest.mark.parametrize("init", ["kmeans", "k-means++", "random", "random_from_data"])
def test_init_on_dask_never_brings_the_data_to_the_client(monkeypatch, init):
    # k-means++ seeds from a uniform sample of 50,000 rows and their keys (a constant)
    X, _ = make_blobs(400_000, 8, 4, seed=43)
    Xd = da.from_array(X, chunks=(20_000, 8))
    results = []
    real_compute = dask_source.compute

    def spy(obj, client):
        out = real_compute(obj, client)
        results.append(_nbytes(out))
        return out

    def forbidden(*a, **k):
        raise AssertionError("the whole dask array was computed")

    monkeypatch.setattr(dask_source, "compute", spy)
    monkeypatch.setattr(da.Array, "compute", forbidden)
    monkeypatch.setattr(da.Array, "__array__", forbidden)
    g = GaussianMixture(4, init_params=init, max_iter=2, random_state=0).fit(Xd)
    assert np.all(np.isfinite(g.means_))
    assert results and max(results) <= 50_000 * (8 * 8 + 8) + 4096 < X.nbytes / 5, max(results)
