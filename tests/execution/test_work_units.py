"""Work units: a pass over many chunks is a task per unit of 2**k consecutive chunks, and
its sum is the in-memory pool's fold over the chunks, whatever the unit size, the number
of workers or which one ran what (issue: cost independent of the chunk count)."""

import os

import dask.array as da
import numpy as np
import pytest
import zarr

from streammix import GaussianMixture
from streammix.engines.em import statistics
from streammix.execution.dask_source import DaskSource, unit_size
from streammix.execution.numpy_source import NumpySource
from streammix import read_zarr
from streammix.math.covariances import get_covariance_type
from tests.conftest import make_blobs
from tests.kernels.test_kernels import random_params

N, D, ROWS = 61_000, 4, 100  # 610 chunks


@pytest.fixture(scope="module")
def many_chunks(tmp_path_factory):
    X = make_blobs(N, D, 3, seed=12)[0]
    path = str(tmp_path_factory.mktemp("units") / "x.zarr")
    zarr.create_array(path, data=X, chunks=(ROWS, D), compressors=None)
    return X, path


def _fixed_fit(X, max_iter: int) -> dict:
    """GaussianMixture parameters with a fixed initialisation (no sampling of the rows,
    which differs between in-memory and Dask sources), full covariances, tol 0."""
    rng = np.random.default_rng(4)
    return dict(n_components=3, covariance_type="full", max_iter=max_iter, tol=0.0,
                means_init=X[rng.choice(len(X), 3, replace=False)],
                weights_init=np.full(3, 1 / 3),
                precisions_init=np.tile(np.eye(D), (3, 1, 1)))


def _passes_and_units(stream) -> tuple[int, int]:
    """(passes, unit tasks) in a distributed task stream: a pass's tasks share a name,
    its units are level 0 of the fold."""
    keys = [str(t["key"]) for t in stream.data if "streammix-pass-" in str(t["key"])]
    return len({k.split(",")[0] for k in keys}), sum(", 0," in k for k in keys)


def _same(a, b):
    for f in ("s0", "s1", "s2"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert (a.loglik, a.n) == (b.loglik, b.n)


@pytest.mark.parametrize("cov_type", ["diag", "full"])
def test_any_unit_size_gives_the_bits_of_the_in_memory_fold(many_chunks, cov_type):
    X, path = many_chunks
    cov, params = get_covariance_type(cov_type), random_params(cov_type, 3, D)
    memory = statistics(NumpySource(X, None, ROWS), cov, params)
    for per_thread in (4, 1, 10_000):  # units of 32, 256 and 1 chunk(s) on 2 threads
        src = DaskSource(read_zarr(path), units_per_thread=per_thread)
        assert src.n_chunks == 610
        _same(statistics(src, cov, params), memory)


def test_a_pass_is_a_task_per_unit_not_per_chunk(many_chunks):
    _, path = many_chunks
    src = DaskSource(read_zarr(path))
    cov, params = get_covariance_type("diag"), random_params("diag", 3, D)
    from streammix.engines.em import _chunk_stats

    graph = dict(src._pass(_chunk_stats, (cov, params), False, lambda p: p[0]).dask)
    size = src.unit_size()
    assert size > 1 and size & (size - 1) == 0
    tasks, level = 0, -(-610 // size)  # the units, then the fold's groups of 8
    while True:
        tasks += level
        if level == 1:
            break
        level = -(-level // 8)
    assert len(graph) == tasks + 1 + 2  # + the fold's result and the two shared values
    assert unit_size(610, 2) == 64 and unit_size(610, 200) == 1 and unit_size(5, 1) == 1
    assert unit_size(3, 1, 1) == 2 and unit_size(1, 1, 1) == 1  # (this one never returned)


def test_no_task_gathers_more_than_eight_partial_sums():
    """A task per chunk (chunks computed in the pass) is folded by a tree of groups of
    8, never by one task holding every chunk's result; one chunk still goes through
    combine, as in memory."""
    from streammix.engines.em import _chunk_stats
    from streammix.execution.dask_source import _finish_fold

    X = make_blobs(50_000, D, 3, seed=2)[0]
    # 500 chunks, a task each: they all need one shared task (the zeros' chunk)
    computed = da.from_array(X, chunks=(100, D)) + da.zeros(D, chunks=D)
    src = DaskSource(computed)
    assert src.unit_size() == 1
    cov, params = get_covariance_type("diag"), random_params("diag", 3, D)
    graph = dict(src._pass(_chunk_stats, (cov, params), False, lambda p: p[0]).dask)
    widths = [len(t[1]) for t in graph.values()
              if isinstance(t, tuple) and getattr(t[0], "__name__", "") == "_fold_group"]
    assert widths and max(widths) <= 8
    _same(statistics(src, cov, params), statistics(NumpySource(X, None, 100), cov, params))
    assert _finish_fold([(0, "x")], lambda parts: ("combined", parts), 1) == \
        ("combined", ["x"])


def test_in_memory_and_computed_chunks_are_units_unless_chunks_share_a_task():
    X = make_blobs(20_000, D, 3, seed=1)[0]
    cov, params = get_covariance_type("diag"), random_params("diag", 3, D)
    memory = statistics(NumpySource(X, None, 100), cov, params)
    assert DaskSource(da.from_array(X, chunks=(100, D))).unit_size() > 1
    assert DaskSource(da.from_array(X, chunks=(100, D)).persist()).unit_size() > 1
    # each chunk computed by tasks of its own (from_array, then a multiply): run inside
    # the units, with the same bits
    computed = da.from_array(X, chunks=(100, D)) * 1.0
    src = DaskSource(computed)
    assert src.unit_size() > 1
    _same(statistics(src, cov, params), memory)
    shared = da.from_array(X, chunks=(100, D)) + da.zeros(D, chunks=D)
    assert DaskSource(shared).unit_size() == 1
    _same(statistics(DaskSource(shared), cov, params), memory)


def test_the_first_bad_chunk_in_row_order_is_reported(tmp_path):
    X = np.random.default_rng(0).normal(size=(20_000, 3))
    X[12_345, 1] = np.nan
    X[19_000, 2] = np.inf  # a later unit, perhaps finished first
    path = str(tmp_path / "bad.zarr")
    zarr.create_array(path, data=X, chunks=(100, 3), compressors=None)
    for _ in range(3):
        with pytest.raises(Exception) as err:
            GaussianMixture(2, random_state=0).fit(path)
        assert "row 12345" in str(err.value) and "chunk 123" in str(err.value)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::streammix.ConvergenceWarning")
def test_bits_do_not_depend_on_the_number_of_workers(many_chunks):
    """The same fit on the threaded scheduler and on clusters of 1 and 2 worker
    processes (units placed by Dask): the same bits as in memory."""
    from distributed import Client, LocalCluster

    X, path = many_chunks
    kw = _fixed_fit(X, max_iter=4)
    ref = GaussianMixture(**kw, chunk_size=ROWS).fit(X)
    fits = [GaussianMixture(**kw).fit(path)]
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as cluster, Client(cluster) as client:
            fits.append(GaussianMixture(**kw, client=client).fit(path))
    for fit in fits:
        for name in ("means_", "covariances_", "weights_"):
            np.testing.assert_array_equal(getattr(fit, name), getattr(ref, name))
        assert fit.lower_bounds_ == ref.lower_bounds_


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::streammix.ConvergenceWarning")
def test_a_worker_killed_mid_fit_changes_no_bit_at_610_chunks(many_chunks):
    """SIGKILL one of two worker processes while units run: Dask reruns its units on the
    other (or on the restarted) worker, and the fit ends with the in-memory bits."""
    import signal
    import threading
    import time

    from distributed import Client, LocalCluster

    X, path = many_chunks
    kw = _fixed_fit(X, max_iter=30)
    ref = GaussianMixture(**kw, chunk_size=ROWS).fit(X)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=False) as client:
        victim = sorted(client.run(os.getpid).values())[0]
        result = {}
        fit = threading.Thread(target=lambda: result.update(
            model=GaussianMixture(**kw, client=client).fit(path)))
        fit.start()
        deadline = time.time() + 60
        while time.time() < deadline and not any(client.processing().values()):
            time.sleep(0.01)
        time.sleep(0.5)  # a few iterations in
        os.kill(victim, signal.SIGKILL)
        fit.join(timeout=300)
        assert not fit.is_alive()
        assert victim not in client.run(os.getpid).values()  # it died and was replaced
    got = result["model"]
    for name in ("means_", "covariances_", "weights_"):
        np.testing.assert_array_equal(getattr(got, name), getattr(ref, name))
    assert got.lower_bounds_ == ref.lower_bounds_


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::streammix.ConvergenceWarning")
def test_persisted_on_clusters_of_1_2_3_workers_units_not_chunks_same_bits(many_chunks,
                                                                            tmp_path):
    """An array persisted on a cluster (610 chunks spread over the workers) is regrouped
    once into units held where most of their chunks are; every pass is then a task per
    unit, and the fit has the in-memory bits for 1, 2 and 3 workers."""
    import time

    from distributed import Client, LocalCluster, futures_of, get_task_stream

    from streammix import write_predictions

    X, _ = many_chunks
    kw = _fixed_fit(X, max_iter=3)
    ref = GaussianMixture(**kw, chunk_size=ROWS).fit(X)
    for workers in (1, 2, 3):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address=None) as cluster, \
                Client(cluster, set_as_default=False) as client:
            Xp = client.persist(da.from_array(X, chunks=(ROWS, D)))
            while any(f.status != "finished" for f in futures_of(Xp)):
                time.sleep(0.01)  # in worker memory before the fit
            src = DaskSource(Xp, client=client)
            size = src.unit_size()
            assert size > 1
            with get_task_stream(client=client) as stream:
                got = GaussianMixture(**kw, client=client).fit(Xp)
            n_passes, n_units = _passes_and_units(stream)
            assert n_passes >= 3 and n_units == n_passes * -(-610 // size)
            if workers == 3:  # predictions from the held units: the same labels
                out = str(tmp_path / "pred.zarr")
                group = write_predictions(got, Xp, out, outputs=("labels",), client=client)
                np.testing.assert_array_equal(group["labels"][:], ref.predict(X))
        for name in ("means_", "covariances_", "weights_"):
            np.testing.assert_array_equal(getattr(got, name), getattr(ref, name))
        assert got.lower_bounds_ == ref.lower_bounds_


@pytest.mark.filterwarnings("ignore::streammix.ConvergenceWarning")
def test_write_predictions_is_a_task_per_unit_not_per_chunk(many_chunks, tmp_path):
    from dask.callbacks import Callback

    from streammix import write_predictions

    X, path = many_chunks
    model = GaussianMixture(**_fixed_fit(X, max_iter=2)).fit(X)
    graphs = []

    class Graphs(Callback):
        def _start(self, dsk):
            graphs.append(len(dsk))

    with Graphs():
        group = write_predictions(model, path, str(tmp_path / "pred.zarr"))
    size = DaskSource(read_zarr(path)).unit_size()
    assert graphs and max(graphs) <= -(-610 // size) + 8  # units, their list, the shared
    np.testing.assert_array_equal(group["labels"][:], model.predict(X))
    np.testing.assert_allclose(group["proba"][:], model.predict_proba(X), rtol=1e-12)
    np.testing.assert_allclose(group["log_density"][:], model.score_samples(X), rtol=1e-12)
    assert group["labels"].chunks == (ROWS,)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::streammix.ConvergenceWarning")
def test_a_computed_array_on_a_cluster_is_a_task_per_unit_with_the_in_memory_bits(
        many_chunks):
    """dask.array.from_zarr (zarr's own reader, then a cast): 610 chunks computed in the
    pass, each by tasks of its own, run inside the units on the workers."""
    from distributed import Client, LocalCluster, get_task_stream

    X, path = many_chunks
    kw = _fixed_fit(X, max_iter=3)
    ref = GaussianMixture(**kw, chunk_size=ROWS).fit(X)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=False) as client:
        computed = da.from_zarr(zarr.open_array(path, mode="r")).astype("float64") * 1.0
        size = DaskSource(computed, client=client).unit_size()
        assert size > 1
        with get_task_stream(client=client) as stream:
            got = GaussianMixture(**kw, client=client).fit(computed)
        n_passes, n_units = _passes_and_units(stream)
        assert n_passes >= 3 and n_units == n_passes * -(-610 // size)
        assert len(stream.data) < 20 * n_passes  # no task per chunk anywhere
    for name in ("means_", "covariances_", "weights_"):
        np.testing.assert_array_equal(getattr(got, name), getattr(ref, name))
    assert got.lower_bounds_ == ref.lower_bounds_


def test_chunks_behind_aliases_are_computed_not_taken_as_data():
    """A concatenation of delayed reads (the CLI's .npy source) names its chunks by
    aliases to other keys: they are run inside the units, never mistaken for data."""
    import dask

    from streammix.execution.dask_source import _ChunkGraph

    X = make_blobs(20_000, D, 3, seed=6)[0]
    parts = [da.from_delayed(dask.delayed(np.array)(X[a:a + 100]), shape=(100, D),
                             dtype=X.dtype) for a in range(0, 20_000, 100)]
    src = DaskSource(da.concatenate(parts))
    assert all(isinstance(b, _ChunkGraph) for b in src.blocks) and src.unit_size() > 1
    cov, params = get_covariance_type("diag"), random_params("diag", 3, D)
    _same(statistics(src, cov, params), statistics(NumpySource(X, None, 100), cov, params))


@pytest.mark.parametrize("compressors", [None, "auto"], ids=["uncompressed", "zstd"])
@pytest.mark.parametrize("cov_type", ["diag", "spherical", "tied", "full"])
def test_runs_of_small_chunk_files_give_the_per_chunk_bits(tmp_path, compressors, cov_type,
                                                           monkeypatch):
    """Small chunks are gathered into runs (one numba call per run, files read straight
    into the run's buffer): the statistics are the bits of a task per chunk, of any unit
    size, and of the in-memory fold over the same chunks."""
    import streammix.execution.dask_source as ds

    X = make_blobs(20_000, 3, 3, seed=5)[0]
    path = str(tmp_path / "x.zarr")
    zarr.create_array(path, data=X, chunks=(37, 3), compressors=compressors)  # 541 chunks
    cov, params = get_covariance_type(cov_type), random_params(cov_type, 3, 3)
    memory = statistics(NumpySource(X, None, 37), cov, params)
    for run_bytes, per_thread in ((4 * 2**20, 4), (4 * 2**20, 1), (600, 4), (1, 10_000)):
        monkeypatch.setattr(ds, "RUN_BYTES", run_bytes)
        monkeypatch.setattr(ds, "UNITS_PER_THREAD", per_thread)
        _same(statistics(DaskSource(read_zarr(path)), cov, params), memory)


def test_a_bad_value_in_a_run_is_reported_exactly(tmp_path):
    """A NaN in one small chunk of a run: the run goes the per-chunk way, which names
    the first bad value's row and column, as before."""
    X = make_blobs(20_000, 3, 3, seed=5)[0]
    X[12_345, 2] = np.nan
    path = str(tmp_path / "x.zarr")
    zarr.create_array(path, data=X, chunks=(50, 3), compressors=None)
    from streammix import InvalidInputError

    with pytest.raises(InvalidInputError, match="row 12345, column 2"):
        GaussianMixture(2, random_state=0).fit(path)
