"""A scheduled job killed half-way (SIGKILL) and started again continues through the
checkpoint and ends exactly where an uninterrupted run ends: `fit` and `update`."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

import streammix
from streammix.persistence import current_version, read_version

from .conftest import make_workspace, points, run_cli

pytestmark = pytest.mark.slow


def _start(args, cwd):
    return subprocess.Popen([sys.executable, "-m", "streammix", "--no-progress", *args],
                            cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def _kill_when(proc, ready, timeout=120.0):
    """SIGKILL ``proc`` as soon as ``ready()`` holds; fail if it ends first."""
    t0 = time.monotonic()
    while not ready():
        assert proc.poll() is None, f"the job ended before the kill: {proc.stderr.read()}"
        assert time.monotonic() - t0 < timeout, "the job made no progress"
        time.sleep(0.01)
    proc.kill()
    proc.wait()


def _state(ck):
    return read_version(ck)[1]["state"]


def test_fit_killed_and_rerun_ends_where_an_uninterrupted_fit_ends(tmp_path):
    root = str(tmp_path)
    make_workspace(root, n=200_000)
    common = ["--set", "run.cluster=null", "--set", "run.tol=0", "--set", "run.max_iter=20",
              "--set", "run.checkpoint_interval=null"]
    ck = os.path.join(root, "demo-data/models/cluster-fit")

    def some_iterations_saved():
        v = current_version(ck) if os.path.exists(ck) else None
        return v is not None and _state(ck)["n_iter"] >= 3

    job = _start(["fit", "configs/fit-cluster.yaml", *common], cwd=root)
    _kill_when(job, some_iterations_saved)
    killed_at = _state(ck)
    assert not killed_at["fit_progress"]["done"]
    rerun = run_cli("fit", "configs/fit-cluster.yaml", *common, cwd=root)
    assert rerun.returncode == 0, rerun.stderr
    assert "in progress" in rerun.stderr
    assert f"iteration {killed_at['n_iter']}:" not in rerun.stderr  # not redone
    whole = run_cli("fit", "configs/fit-cluster.yaml", *common, "--set",
                    "run.checkpoint=demo-data/models/uninterrupted", cwd=root)
    assert whole.returncode == 0, whole.stderr
    a = streammix.load(ck)
    b = streammix.load(os.path.join(root, "demo-data/models/uninterrupted"))
    assert a.n_iter_ == b.n_iter_ == 20
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.covariances_, b.covariances_)
    assert a.lower_bounds_ == b.lower_bounds_


def test_update_killed_and_rerun_ends_where_an_uninterrupted_update_ends(tmp_path):
    root = str(tmp_path)
    make_workspace(root, n=60_000)
    X = points(root)
    os.makedirs(os.path.join(root, "demo-data/incoming"))
    for i in range(30):
        np.save(os.path.join(root, "demo-data/incoming", f"part-{i:04d}.npy"),
                X[i * 2000:(i + 1) * 2000])
    common = ["--set", "run.batch_size=1000", "--set", "run.checkpoint_every=1",
              "--set", "run.checkpoint_interval=null"]
    ck = os.path.join(root, "demo-data/models/stream")

    def some_batches_saved():
        v = current_version(ck) if os.path.exists(ck) else None
        return v is not None and _state(ck)["online"].get("n_updates", 0) >= 10

    job = _start(["update", "configs/stream-update.yaml", *common], cwd=root)
    _kill_when(job, some_batches_saved)
    cursor = _state(ck)["online"]["cursor"]
    assert len(cursor["files"]) < 30
    rerun = run_cli("update", "configs/stream-update.yaml", *common, cwd=root)
    assert rerun.returncode == 0, rerun.stderr
    whole = run_cli("update", "configs/stream-update.yaml", *common, "--set",
                    "run.checkpoint=demo-data/models/uninterrupted", cwd=root)
    assert whole.returncode == 0, whole.stderr
    a = streammix.load(ck)
    b = streammix.load(os.path.join(root, "demo-data/models/uninterrupted"))
    assert a.n_samples_seen_ == b.n_samples_seen_ == 60_000
    assert a.n_updates_ == b.n_updates_
    assert a.stream_cursor_ == b.stream_cursor_
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.covariances_, b.covariances_)
    np.testing.assert_array_equal(a.component_ids_, b.component_ids_)
