"""`streammix fit` driven from a client host against a cluster on other hosts (network
namespaces, `dask scheduler` / `dask worker` started by hand): TLS, a worker's link cut
mid-fit, the scheduler killed mid-fit and restarted. Results must not change by a bit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import streammix
from streammix.persistence import current_version, read_version
from tests.netns_hosts import DaskCluster, Network, hosts_fixture
from tests.tls_certs import TestCA

from .conftest import make_workspace, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]

# What docs/cluster.md tells users to give their scheduler and workers so that a host
# whose link is cut is dropped in seconds, not minutes (see test_link_cut_...).
FAST_FAILURE_ENV = {"DASK_DISTRIBUTED__COMM__TIMEOUTS__TCP": "12s",
                    "DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL": "10s"}
FIT = ["--set", "run.tol=0", "--set", "run.checkpoint_interval=null"]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    yield from hosts_fixture(tmp_path_factory, ("scheduler", "worker1", "worker2", "worker3", "client"))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("ws"))
    make_workspace(root, n=240_000)
    return root


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("tls"))
    good = TestCA(os.path.join(d, "site"))
    rogue = TestCA(os.path.join(d, "rogue"), name="another CA")
    return {"node": good.issue("node", [f"10.77.0.{i}" for i in range(1, 10)]),
            "client": good.issue("client"), "rogue": rogue.issue("intruder")}


def start_cluster(net, port: int, env=None, tls=None, workers=("worker1", "worker2")):
    c = DaskCluster(net, net.hosts["scheduler"], port=port, env=env, tls=tls)
    c.start_scheduler()
    for w in workers:
        c.start_worker(net.hosts[w])
    c.wait_workers(len(workers))
    return c


def cli_on_client(net, workspace, *args, timeout=600, env=None):
    """`streammix ARGS` on the client host, in the workspace."""
    return net.hosts["client"].run(
        [sys.executable, "-m", "streammix", "--no-progress", *args], cwd=workspace,
        timeout=timeout, env={"PYTHONUNBUFFERED": "1", **(env or {})})


def start_cli_on_client(net, workspace, *args, env=None) -> subprocess.Popen:
    log = os.path.join(net.workdir, f"cli-{time.monotonic_ns()}.log")
    proc = net.hosts["client"].popen(
        [sys.executable, "-m", "streammix", "--no-progress", *args], log=log,
        env={"PYTHONUNBUFFERED": "1", **(env or {})}, cwd=workspace)
    proc.log_path = log
    return proc


def tls_set(files: dict) -> list[str]:
    return ["--set", f"run.cluster.tls={{ca_file: {files['ca']}, cert: {files['cert']}, "
                     f"key: {files['key']}}}"]


def model(workspace, name):
    return streammix.load(os.path.join(workspace, "demo-data/models", name))


def reference(workspace, name="threaded", max_iter=12):
    """The same fit on Dask's threaded scheduler in one process (no cluster)."""
    ck = os.path.join(workspace, "demo-data/models", name)
    if not os.path.exists(ck):
        done = run_cli("fit", "configs/fit-cluster.yaml", *FIT, "--set", "run.cluster=null",
                       "--set", f"run.max_iter={max_iter}", "--set",
                       f"run.checkpoint=demo-data/models/{name}", cwd=workspace)
        assert done.returncode == 0, done.stderr
    return streammix.load(ck)


def assert_same_model(a, b, exact=False):
    check = np.testing.assert_array_equal if exact else \
        (lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12))
    assert a.n_iter_ == b.n_iter_
    check(a.means_, b.means_)
    check(a.covariances_, b.covariances_)
    check(a.weights_, b.weights_)


def test_tls_fit_from_the_client_host(net, workspace, certs):
    c = start_cluster(net, 8796, tls=certs["node"])
    try:
        done = cli_on_client(net, workspace, "fit", "configs/fit-cluster.yaml", *FIT,
                             "--scheduler", c.address, *tls_set(certs["client"]),
                             "--set", "run.max_iter=12",
                             "--set", "run.checkpoint=demo-data/models/tls")
        assert done.returncode == 0, done.stderr
        assert f"using the Dask cluster at {c.address}" in done.stderr

        # a client whose certificate another CA signed cannot submit work (it trusts
        # the right CA: the scheduler is the one that refuses)
        intruder = {**certs["rogue"], "ca": certs["client"]["ca"]}
        rogue = cli_on_client(net, workspace, "fit", "configs/fit-cluster.yaml", *FIT,
                              "--scheduler", c.address, *tls_set(intruder),
                              "--set", "run.checkpoint=demo-data/models/rogue", timeout=120)
        assert rogue.returncode == 1
        assert "cannot reach the Dask scheduler" in rogue.stderr
        assert "TLS handshake failed" in rogue.stderr and "Traceback" not in rogue.stderr
        assert not os.path.exists(os.path.join(workspace, "demo-data/models/rogue"))

        # plain tcp:// to the TLS scheduler: a clear line, exit 1
        plain = cli_on_client(net, workspace, "fit", "configs/fit-cluster.yaml", *FIT,
                              "--scheduler", c.address.replace("tls://", "tcp://"),
                              "--set", "run.checkpoint=demo-data/models/plain", timeout=120)
        assert plain.returncode == 1, plain.stderr
        assert "if it uses TLS, give its tls:// address" in plain.stderr
        assert "Traceback" not in plain.stderr

        # a worker whose certificate another CA signed cannot join
        c.start_worker(net.hosts["worker3"], tls=certs["rogue"])
        time.sleep(5)
        assert c.registered() == 2
        registered = [line for line in open(c.scheduler_log) if "Register worker" in line]
        assert not [line for line in registered if net.hosts["worker3"].address in line]
        log = c.worker_log("worker3")
        assert "SSL" in log or "certificate" in log.lower(), log[-2000:]
    finally:
        c.stop()
    assert_same_model(model(workspace, "tls"), reference(workspace))


def _iterations_saved(ck: str) -> int:
    if not os.path.exists(ck) or current_version(ck) is None:
        return 0
    return read_version(ck)[1]["state"]["n_iter"]


def _wait_for(pred, proc, timeout=180.0):
    t0 = time.monotonic()
    while not pred():
        assert proc.poll() is None, open(proc.log_path).read()[-3000:]
        assert time.monotonic() - t0 < timeout, "the fit made no progress"
        time.sleep(0.05)


def test_link_cut_mid_fit_loses_a_worker_not_a_bit(net, workspace):
    c = start_cluster(net, 8797, env=FAST_FAILURE_ENV)
    ck = os.path.join(workspace, "demo-data/models/cut")
    try:
        args = ["fit", "configs/fit-cluster.yaml", *FIT, "--scheduler", c.address,
                "--set", "run.max_iter=12", "--set", "run.checkpoint=demo-data/models/cut"]
        job = start_cli_on_client(net, workspace, *args, env=FAST_FAILURE_ENV)
        _wait_for(lambda: _iterations_saved(ck) >= 3, job)
        cut_at = time.monotonic()
        net.hosts["worker2"].link(False)
        assert job.wait(300) == 0, open(job.log_path).read()[-3000:]
        after_cut = time.monotonic() - cut_at
        print(f"fit ended {after_cut:.1f} s after the cut")
        log = open(job.log_path).read()
    finally:
        net.hosts["worker2"].link(True)
        c.stop()
    assert "lost the Dask worker tcp://10.77.0.3" in log, log[-3000:]
    assert_same_model(model(workspace, "cut"), reference(workspace), exact=True)
    # the cut is detected within the TCP timeout plus a heartbeat, not Dask's 300 s TTL
    assert after_cut < 120, after_cut


def test_scheduler_killed_mid_fit_exits_then_resumes_bit_identical(net, workspace):
    c = start_cluster(net, 8798, env=FAST_FAILURE_ENV)
    ck = os.path.join(workspace, "demo-data/models/lost-scheduler")
    args = ["fit", "configs/fit-cluster.yaml", *FIT, "--scheduler", c.address,
            "--set", "run.max_iter=12", "--set", "run.checkpoint=demo-data/models/lost-scheduler"]
    try:
        job = start_cli_on_client(net, workspace, *args, env=FAST_FAILURE_ENV)
        _wait_for(lambda: _iterations_saved(ck) >= 3, job)
        killed = time.monotonic()
        c.kill_scheduler()
        code = job.wait(120)
        took = time.monotonic() - killed
        log = open(job.log_path).read()
        assert code == 1, log[-3000:]
        assert "lost the Dask scheduler" in log, log[-3000:]
        assert "Traceback" not in log
        assert took < 60, took
        saved = _iterations_saved(ck)
        assert 3 <= saved < 12

        # Dask workers exit when their scheduler goes (they never reconnect): a
        # supervisor (systemd, Kubernetes, a batch system) starts them again with it
        for name in ("worker1", "worker2"):
            Network.stop(c.workers[name])
        c.start_scheduler()
        for name in ("worker1", "worker2"):
            c.start_worker(net.hosts[name])
        c.wait_workers(2, timeout=120)
        rerun = cli_on_client(net, workspace, *args, env=FAST_FAILURE_ENV)
        assert rerun.returncode == 0, rerun.stderr
        assert "in progress" in rerun.stderr
    finally:
        c.stop()
    assert_same_model(model(workspace, "lost-scheduler"), reference(workspace), exact=True)
