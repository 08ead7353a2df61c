"""SIGKILL at random moments (and in the middle of a save): every resume ends with the
same bits as an uninterrupted run, and an online stream counts every batch once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

CHILD = textwrap.dedent("""
    import sys, time, warnings
    warnings.simplefilter("ignore")
    import numpy as np
    import streammix.persistence.store as store
    from streammix import (BayesianGaussianMixture, GaussianMixture,
                           OnlineBayesianGaussianMixture, OnlineGaussianMixture)
    kind, ck, out, slow_save = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
    if slow_save:
        def pause():
            print("SAVING", flush=True)
            time.sleep(0.4)
        store.before_commit = pause
    rng = np.random.default_rng(7)
    centres = rng.normal(scale=6, size=(4, 5))
    X = centres[rng.integers(0, 4, 60_000)] + rng.normal(size=(60_000, 5))
    if kind == "batch":
        m = GaussianMixture(4, covariance_type="full", tol=0, max_iter=40, n_init=2,
                            random_state=1, chunk_size=5000)
        m.fit(X, checkpoint=ck if ck != "-" else None, checkpoint_every=1)
        np.savez(out, means=m.means_, covs=m.covariances_, w=m.weights_,
                 lb=np.array(m.lower_bounds_), n_iter=m.n_iter_)
    elif kind == "bayes":
        m = BayesianGaussianMixture(n_components=6, covariance_type="full", tol=0,
                                    max_iter=40, n_init=2, random_state=1, chunk_size=5000)
        m.fit(X, checkpoint=ck if ck != "-" else None, checkpoint_every=1)
        np.savez(out, means=m.means_, covs=m.covariances_, w=m.weights_,
                 lb=np.array(m.lower_bounds_), n_iter=m.n_iter_,
                 wc=np.asarray(m.weight_concentration_), dof=m.degrees_of_freedom_)
    elif kind == "online_bayes":
        batches = [X[i:i + 1000] for i in range(0, 60_000, 1000)]
        m = OnlineBayesianGaussianMixture(6, covariance_type="diag", init_size=3000,
                                          random_state=1, eta_min=0.02)
        m.fit(batches, n_passes=2, checkpoint=ck if ck != "-" else None)
        np.savez(out, means=m.means_, covs=m.covariances_, w=m.weights_,
                 lb=np.array(m.lower_bounds_), n_iter=m.n_updates_,
                 seen=m.n_samples_seen_, wc=np.asarray(m.weight_concentration_))
    else:
        batches = [X[i:i + 1000] for i in range(0, 60_000, 1000)]
        m = OnlineGaussianMixture(4, covariance_type="diag", init_size=3000, random_state=1,
                                  eta_min=0.02)
        m.fit(batches, n_passes=2, checkpoint=ck if ck != "-" else None)
        np.savez(out, means=m.means_, covs=m.covariances_, w=m.weights_,
                 lb=np.array(m.lower_bounds_), n_iter=m.n_updates_,
                 seen=m.n_samples_seen_)
    print("DONE", flush=True)
""")


def run_child(kind, ck, out, slow_save=False):
    return subprocess.Popen([sys.executable, "-c", CHILD, kind, str(ck), str(out),
                             "1" if slow_save else "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc, timeout=600):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-2000:]
    return out


def kill_at(proc, delay):
    time.sleep(delay)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def kill_during_save(proc, nth):
    seen = 0
    while True:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("SAVING"):
            seen += 1
            if seen == nth:
                os.kill(proc.pid, signal.SIGKILL)
                break
    proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["batch", "online", "bayes", "online_bayes"])
def test_sigkill_and_resume_gives_the_uninterrupted_result(tmp_path, kind):
    ref_out = tmp_path / "ref.npz"
    finish(run_child(kind, "-", ref_out))
    ck, out = tmp_path / "ck", tmp_path / "out.npz"
    rng = np.random.default_rng(11)
    kills = 0
    # two kills in the middle of a save (after the version is written, before the
    # pointer moves), then kills at random moments
    for nth in (2, 3):
        kill_during_save(run_child(kind, ck, out, slow_save=True), nth)
        kills += 1
    for _ in range(4):
        proc = run_child(kind, ck, out)
        kill_at(proc, float(rng.uniform(1.5, 4.0)))
        if proc.returncode == 0:
            break
        kills += 1
    finish(run_child(kind, ck, out))
    assert kills >= 3
    ref, got = np.load(ref_out), np.load(out)
    for name in ref.files:
        assert np.array_equal(ref[name], got[name]), name
    if kind in ("online", "online_bayes"):
        assert float(got["seen"]) == 2 * 60_000           # every batch exactly once
        assert int(got["n_iter"]) == 2 * 60 - 3           # 3 batches went to the init buffer
