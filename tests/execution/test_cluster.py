"""Fits through real distributed clusters: a LocalCluster of worker processes, a
scheduler and workers started from the `dask` command line, and a worker killed mid-fit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings

import dask.array as da
import numpy as np
import pytest
import zarr
from distributed import Client, LocalCluster

from streammix import BayesianGaussianMixture, GaussianMixture
from tests.conftest import make_blobs

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def zarr_data(tmp_path_factory):
    X, _ = make_blobs(120_000, 8, 5, seed=31)
    path = str(tmp_path_factory.mktemp("cluster") / "x.zarr")
    z = zarr.create_array(store=path, shape=X.shape, chunks=(6000, 8), dtype="float64")
    z[:] = X
    return X, path


def shared_init(X, cov_type="full", max_iter=6):
    g = GaussianMixture(5, covariance_type=cov_type, random_state=0, max_iter=1).fit(X[:20000])
    return dict(weights_init=g.weights_, means_init=g.means_, precisions_init=g.precisions_,
                covariance_type=cov_type, tol=0, max_iter=max_iter)


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as c:
        yield c


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_local_cluster_of_processes_equals_in_memory(cluster, zarr_data, cov_type):
    X, path = zarr_data
    kw = shared_init(X, cov_type)
    ref = GaussianMixture(5, **kw).fit(X)
    with Client(cluster, set_as_default=False) as client:
        got = GaussianMixture(5, client=client, **kw).fit(path)
        labels = got.predict(path)
        # predictions stay lazy until computed, on the same cluster
        np.testing.assert_array_equal(client.compute(labels, sync=True), ref.predict(X))
    np.testing.assert_allclose(got.means_, ref.means_, rtol=1e-10)
    np.testing.assert_allclose(got.covariances_, ref.covariances_, rtol=1e-10)
    assert got.lower_bound_ == pytest.approx(ref.lower_bound_, rel=1e-10)


@pytest.mark.parametrize("cov_type", ["full", "tied", "diag", "spherical"])
def test_bayesian_mixture_on_the_cluster_equals_in_memory(cluster, zarr_data, cov_type):
    """Variational inference on a 2-worker cluster reading the Zarr array (the priors'
    pass, the initial k-means and every iteration) equals the in-memory fit to 1e-10."""
    X, path = zarr_data
    kw = dict(n_components=8, covariance_type=cov_type, random_state=0, max_iter=5, tol=0,
              weight_concentration_prior_type="dirichlet_process")
    start = BayesianGaussianMixture(**{**kw, "max_iter": 1}).fit(X[:30000])

    def continued(data, **extra):
        m = BayesianGaussianMixture(warm_start=True, **kw, **extra)
        for name in ("weight_concentration_", "mean_precision_", "means_",
                     "degrees_of_freedom_", "covariances_", "precisions_cholesky_",
                     "converged_", "lower_bound_"):
            setattr(m, name, getattr(start, name))
        return m.fit(data)

    ref = continued(X)
    with Client(cluster, set_as_default=False) as client:
        got = continued(path, client=client)
        proba = client.compute(got.predict_proba(path), sync=True)
    for name in ("means_", "covariances_", "weights_", "mean_precision_",
                 "degrees_of_freedom_", "mean_prior_", "covariance_prior_"):
        np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=1e-10,
                                   err_msg=name)
    assert got.lower_bound_ == pytest.approx(ref.lower_bound_, rel=1e-10)
    np.testing.assert_allclose(proba, ref.predict_proba(X), atol=1e-10)


def test_persisted_and_weighted_arrays_on_the_cluster(cluster, zarr_data):
    """Chunks held by the workers (persisted futures), a plain dask array, a Zarr path
    read inside the tasks, and dask sample weights all give the in-memory fit."""
    X, path = zarr_data
    kw = shared_init(X, "diag", max_iter=3)
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(X))
    ref = GaussianMixture(5, **kw).fit(X, sample_weight=w)
    with Client(cluster, set_as_default=False) as client:
        held = client.persist(da.from_zarr(path))
        sw = da.from_array(w, chunks=6000)
        for data in (held, da.from_array(X, chunks=(6000, 8)), path):
            got = GaussianMixture(5, client=client, **kw).fit(data, sample_weight=sw)
            np.testing.assert_allclose(got.means_, ref.means_, rtol=1e-10)
            np.testing.assert_allclose(got.covariances_, ref.covariances_, rtol=1e-10)


def test_active_client_is_used_by_default(cluster, zarr_data):
    X, path = zarr_data
    kw = shared_init(X, "spherical", max_iter=2)
    ref = GaussianMixture(5, **kw).fit(X)
    def transitions(dask_scheduler):
        return dask_scheduler.transition_counter

    with Client(cluster) as client:  # becomes the default client
        before = client.run_on_scheduler(transitions)
        got = GaussianMixture(5, **kw).fit(path)
        # the cluster's scheduler ran our tasks (hundreds of task transitions)
        assert client.run_on_scheduler(transitions) - before > 100
    np.testing.assert_allclose(got.means_, ref.means_, rtol=1e-10)


def test_worker_killed_mid_fit_does_not_change_the_result(zarr_data):
    """SIGKILL one worker process during the fit: its statistics tasks are pure, the
    scheduler recomputes them on the surviving (or restarted) worker, and the result is
    bit-identical because the reduction tree is fixed by the graph, not by who ran what.
    distributed.scheduler.allowed-failures (default 3) bounds how many worker deaths a
    single task may witness before the scheduler gives up on it."""
    X, path = zarr_data
    kw = shared_init(X, "full", max_iter=40)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as lc, Client(lc, set_as_default=False) as client:
        ref = GaussianMixture(5, client=client, **kw).fit(path)
        pids = client.run(os.getpid)
        victim = sorted(pids.values())[0]
        result = {}

        def run():
            result["model"] = GaussianMixture(5, client=client, **kw).fit(path)

        t = threading.Thread(target=run)
        t.start()
        # wait until tasks are running on the workers, then kill one
        deadline = time.time() + 30
        while time.time() < deadline:
            if any(client.processing().values()):
                break
            time.sleep(0.01)
        time.sleep(0.3)
        os.kill(victim, signal.SIGKILL)
        t.join(timeout=300)
        assert not t.is_alive()
        new_pids = client.run(os.getpid)
        assert victim not in new_pids.values()  # the worker really died (and was replaced)
    got = result["model"]
    assert np.array_equal(got.means_, ref.means_)
    assert np.array_equal(got.covariances_, ref.covariances_)
    assert got.lower_bound_ == ref.lower_bound_


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_scheduler_and_workers_from_the_command_line(zarr_data):
    X, path = zarr_data
    kw = shared_init(X, "tied", max_iter=4)
    ref = GaussianMixture(5, **kw).fit(X)
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask_cli = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [subprocess.Popen(dask_cli + ["--host", "127.0.0.1", "--port", str(port),
                                          "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        worker_cli = [sys.executable, "-m", "distributed.cli.dask_worker", address,
                      "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"]
        for _ in range(2):
            procs.append(subprocess.Popen(worker_cli, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        deadline = time.time() + 60
        while True:
            try:
                client = Client(address, timeout=5, set_as_default=False)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
        with client:
            client.wait_for_workers(2, timeout=60)
            # an address string works as well as a Client object
            got = GaussianMixture(5, client=address, **kw).fit(path)
            assert len(client.scheduler_info()["workers"]) == 2
            client.shutdown()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    np.testing.assert_allclose(got.means_, ref.means_, rtol=1e-10)
    np.testing.assert_allclose(got.covariances_, ref.covariances_, rtol=1e-10)
