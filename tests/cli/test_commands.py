"""Every command run as a subprocess on generated data: the example configs end to end,
idempotent reruns, exit codes, logs, plots."""

import json
import math
import os

import numpy as np
import pytest
import zarr

import streammix
from streammix import GaussianMixture
from streammix.persistence import current_version, list_versions

from .conftest import N_ROWS, N_TRUE, make_workspace, points, run_cli


# ------------------------------------------------------------------ fit
def test_fit_example_on_a_local_cluster_matches_the_library(fitted_workspace):
    root, truth, proc = fitted_workspace
    assert "started a local Dask cluster: 2 worker processes" in proc.stderr
    assert "iteration 1: mean log-likelihood" in proc.stderr
    model = streammix.load(os.path.join(root, "demo-data/models/cluster-fit"))
    assert model.converged_
    ref = GaussianMixture(6, covariance_type="full", init_params="kmeans", max_iter=200,
                          tol=1e-6, random_state=0)
    ref.fit(os.path.join(root, "demo-data/points.zarr"))
    np.testing.assert_allclose(model.means_, ref.means_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.covariances_, ref.covariances_, rtol=1e-10, atol=1e-12)
    # the components are the generating ones
    _, true_means, _ = truth
    err = [np.min(np.linalg.norm(true_means - m, axis=1)) for m in model.means_]
    assert max(err) < 0.1


def test_fit_rerun_is_a_no_op(fitted_workspace):
    root, _, _ = fitted_workspace
    ck = os.path.join(root, "demo-data/models/cluster-fit")
    before = current_version(ck)
    proc = run_cli("fit", "configs/fit-cluster.yaml", "--set", "run.cluster=null", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "nothing to do" in proc.stderr
    assert "iteration 1:" not in proc.stderr
    assert current_version(ck) == before


def test_fit_from_npy_and_parquet_sources_gives_the_same_model(tmp_path):
    import pandas as pd

    make_workspace(str(tmp_path), n=20_000)
    X = points(str(tmp_path))
    np.save(tmp_path / "demo-data" / "points.npy", X)
    pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])]).assign(
        name="row").to_parquet(tmp_path / "demo-data" / "points.parquet")
    common = ["--set", "run.cluster=null", "--set", "model.covariance_type=diag",
              "--set", "source.chunk_rows=5000"]
    fits = {}
    for kind, path in (("npy", "../demo-data/points.npy"),
                       ("parquet", "../demo-data/points.parquet")):
        proc = run_cli("fit", "fit-cluster.yaml", *common, "--set",
                       f"source.type={kind}", "--set", f"source.path={path}", "--set",
                       f"run.checkpoint=ck-{kind}", cwd=str(tmp_path / "configs"))
        assert proc.returncode == 0, proc.stderr
        fits[kind] = streammix.load(str(tmp_path / "configs" / f"ck-{kind}"))
    import dask.array as da

    ref = GaussianMixture(6, covariance_type="diag", max_iter=200, tol=1e-6,
                          random_state=0).fit(da.from_array(X, chunks=(5000, -1)))
    for m in fits.values():
        np.testing.assert_allclose(m.means_, ref.means_, rtol=1e-9, atol=1e-10)


def test_nightly_refit_keeps_the_labels_of_the_previous_model(tmp_path):
    root = str(tmp_path)
    make_workspace(root)
    first = run_cli("fit", "configs/nightly-refit.yaml", cwd=root)
    assert first.returncode == 0, first.stderr
    assert "no previous model yet" in first.stderr
    ck = os.path.join(root, "demo-data/models/nightly")
    night1 = streammix.load(ck)
    # the next night: new rows from the same clusters, and another seed, which on its own
    # numbers the clusters differently
    from streammix.demo import make_truth, write_dataset

    write_dataset(os.path.join(root, "demo-data/points.zarr"), N_ROWS, 8, make_truth(8, 6, 0),
                  chunk_rows=15_000, seed=1)
    unaligned = GaussianMixture(6, max_iter=200, tol=1e-5, random_state=5).fit(
        os.path.join(root, "demo-data/points.zarr"))
    assert list(streammix.align(unaligned, night1)) != list(range(6))  # the test can fail
    second = run_cli("fit", "configs/nightly-refit.yaml", "--set", "run.random_state=5",
                     cwd=root)
    assert second.returncode == 0, second.stderr
    assert "aligning labels to the previous model" in second.stderr
    night2 = streammix.load(ck)
    dist = np.linalg.norm(night2.means_[:, None] - night1.means_[None], axis=2)
    assert list(dist.argmin(axis=1)) == list(range(6))
    assert np.max(np.diag(dist)) < 0.2
    # unchanged inputs: a no-op that keeps the aligned model
    third = run_cli("fit", "configs/nightly-refit.yaml", "--set", "run.random_state=5",
                    cwd=root)
    assert third.returncode == 0 and "nothing to do" in third.stderr
    np.testing.assert_array_equal(streammix.load(ck).means_, night2.means_)


# ------------------------------------------------------------------ predict / score
def test_score_example_flags_the_exact_quantile(fitted_workspace):
    root, _, _ = fitted_workspace
    proc = run_cli("score", "configs/score.yaml", cwd=root)
    assert proc.returncode == 0, proc.stderr
    g = zarr.open_group(os.path.join(root, "demo-data/scores.zarr"), mode="r")
    ld, flag = g["log_density"][:], g["anomaly"][:]
    model = streammix.load(os.path.join(root, "demo-data/models/cluster-fit"))
    np.testing.assert_allclose(ld, model.score_samples(points(root)), rtol=1e-10)
    k = math.ceil(0.001 * N_ROWS)
    assert flag.sum() == k
    assert set(np.flatnonzero(flag)) == set(np.argsort(ld)[:k])
    assert g.attrs["n_anomalies"] == k
    assert np.array_equal(g["labels"][:], model.predict(points(root)))


def test_predict_writes_labels_and_responsibilities(fitted_workspace):
    root, _, _ = fitted_workspace
    proc = run_cli("predict", "configs/score.yaml", "--set", "outputs.path=pred.zarr",
                   "--set", "outputs.anomaly=null", "--set", "outputs.write=[labels, proba]",
                   cwd=root)
    assert proc.returncode == 0, proc.stderr
    g = zarr.open_group(os.path.join(root, "pred.zarr"), mode="r")
    model = streammix.load(os.path.join(root, "demo-data/models/cluster-fit"))
    np.testing.assert_allclose(g["proba"][:], model.predict_proba(points(root)), atol=1e-12)
    assert np.array_equal(g["labels"][:], model.predict(points(root)))
    assert "log_density" not in g


# ------------------------------------------------------------------ inspect / report
def test_inspect_text_and_json(fitted_workspace):
    root, _, _ = fitted_workspace
    ck = os.path.join(root, "demo-data/models/cluster-fit")
    text = run_cli("inspect", ck, cwd=root)
    assert text.returncode == 0, text.stderr
    assert "K=6, d=8, full covariances" in text.stdout and "converged" in text.stdout
    js = run_cli("inspect", ck, "--json", cwd=root)
    info = json.loads(js.stdout)
    assert info["n_components"] == 6 and info["converged"] is True
    assert info["versions_on_disk"] == list_versions(ck)
    assert abs(sum(c["weight"] for c in info["components"]) - 1) < 1e-12
    assert len(info["lower_bounds"]) == info["n_iter"]


def _check_png(path, width, height):
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    assert img.shape[:2] == (height, width)
    rgb = img[..., :3].reshape(-1, 3)
    assert rgb.std() > 0.05                       # not blank
    assert len(np.unique((rgb * 255).astype(np.uint8), axis=0)) > 50


def test_report_writes_plots_that_are_not_blank(fitted_workspace):
    root, _, _ = fitted_workspace
    ck = os.path.join(root, "demo-data/models/cluster-fit")
    proc = run_cli("report", ck, "--out", "report", "--config", "configs/fit-cluster.yaml",
                   cwd=root)
    assert proc.returncode == 0, proc.stderr
    _check_png(os.path.join(root, "report/loglik.png"), 800, 640)
    _check_png(os.path.join(root, "report/components.png"), 1050, 1000)
    assert not os.path.exists(os.path.join(root, "report/selection.png"))


def test_select_picks_the_true_number_of_components(fitted_workspace):
    root, _, _ = fitted_workspace
    proc = run_cli("select", "configs/select.yaml", "--set",
                   "select.n_components={min: 4, max: 8}", "--set",
                   "select.covariance_types=[full]", "--set", "model.n_init=1", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert f"chosen by BIC: full covariances, K={N_TRUE}" in proc.stdout
    ck = os.path.join(root, "demo-data/models/selected")
    assert streammix.load(ck).n_components == N_TRUE
    _check_png(os.path.join(root, "demo-data/selection.png"), 1000, 400)
    rerun = run_cli("report", ck, "--out", "report-selected", cwd=root)
    assert rerun.returncode == 0, rerun.stderr
    _check_png(os.path.join(root, "report-selected/selection.png"), 1000, 400)
    assert "points drawn from the model" not in rerun.stderr  # (title is in the PNG)


# ------------------------------------------------------------------ update
def _drop_files(root, X, names):
    os.makedirs(os.path.join(root, "demo-data/incoming"), exist_ok=True)
    per = len(X) // len(names)
    for i, name in enumerate(names):
        np.save(os.path.join(root, "demo-data/incoming", name), X[i * per:(i + 1) * per])


def test_stream_update_from_a_directory(fitted_workspace):
    root, _, _ = fitted_workspace
    X = points(root)
    _drop_files(root, X[:30_000], ["a-000.npy", "a-001.npy", "a-002.npy"])
    ck = os.path.join(root, "demo-data/models/stream")
    proc = run_cli("update", "configs/stream-update.yaml", cwd=root)
    assert proc.returncode == 0, proc.stderr
    m1 = streammix.load(ck)
    assert m1.n_samples_seen_ == 30_000 and m1.stream_cursor_["files"] == [
        "a-000.npy", "a-001.npy", "a-002.npy"]
    v = current_version(ck)
    again = run_cli("update", "configs/stream-update.yaml", cwd=root)
    assert again.returncode == 0 and "nothing to do" in again.stderr
    assert current_version(ck) == v
    _drop_files(root, X[30_000:40_000], ["a-003.npy"])
    more = run_cli("update", "configs/stream-update.yaml", cwd=root)
    assert more.returncode == 0, more.stderr
    m2 = streammix.load(ck)
    assert m2.n_samples_seen_ == 40_000
    assert m2.n_updates_ == m1.n_updates_ + 1


def test_stream_update_from_a_growing_zarr_array_equals_partial_fit(tmp_path):
    root = str(tmp_path)
    make_workspace(root, n=50_000)
    X = points(root)
    z = zarr.create_array(os.path.join(root, "demo-data/stream.zarr"), shape=(0, 8),
                          chunks=(10_000, 8), dtype="float64")
    z.append(X[:25_000])
    assert run_cli("update", "configs/stream-update-zarr.yaml", cwd=root).returncode == 0
    z.append(X[25_000:])
    proc = run_cli("update", "configs/stream-update-zarr.yaml", cwd=root)
    assert proc.returncode == 0, proc.stderr
    model = streammix.load(os.path.join(root, "demo-data/models/stream-zarr"))
    assert model.stream_cursor_["rows"] == 50_000 and model.stream_cursor_["kind"] == "zarr"
    ref = streammix.OnlineGaussianMixture(6, covariance_type="diag", eta_min=0.01,
                                          random_state=0)
    for a, b in ((0, 10_000), (10_000, 20_000), (20_000, 25_000), (25_000, 35_000),
                 (35_000, 45_000), (45_000, 50_000)):
        ref.partial_fit(X[a:b])
    np.testing.assert_array_equal(model.means_, ref.means_)
    np.testing.assert_array_equal(model.covariances_, ref.covariances_)


# ------------------------------------------------------------------ errors and logs
def test_exit_codes(fitted_workspace, tmp_path):
    root, _, _ = fitted_workspace
    bad = os.path.join(root, "configs", "bad.yaml")
    with open(bad, "w") as f:
        f.write("source:\n  type: zarr\n  path: ../demo-data/points.zarr\nmodel:\n"
                "  n_componets: 3\nrun:\n  checkpoint: x\n")
    cases = {
        "bad key": (("fit", "configs/bad.yaml"), 2, "did you mean 'n_components'"),
        "usage": (("fit",), 2, "required: CONFIG"),
        "unknown command": (("fitt", "x.yaml"), 2, "invalid choice"),
        "missing data": (("fit", "configs/fit-cluster.yaml", "--set",
                          "source.path=nowhere.zarr"), 3, "does not exist"),
        "missing checkpoint": (("inspect", str(tmp_path / "none")), 4, "no checkpoint"),
        "wrong estimator": (("update", "configs/fit-cluster.yaml"), 2,
                            "needs OnlineGaussianMixture"),
        "other fit in checkpoint": (("fit", "configs/fit-cluster.yaml", "--set",
                                     "model.n_components=5", "--set", "run.cluster=null"),
                                    4, "run.on_mismatch: restart"),
    }
    for name, (args, code, message) in cases.items():
        proc = run_cli(*args, cwd=root)
        assert proc.returncode == code, (name, proc.stderr)
        assert message in proc.stderr, (name, proc.stderr)


def test_bad_data_and_corrupt_checkpoint_exit_codes(fitted_workspace, tmp_path):
    import shutil

    root, _, _ = fitted_workspace
    X = points(root)[:20_000].copy()
    X[12_345, 3] = np.nan
    zarr.create_array(str(tmp_path / "nan.zarr"), data=X, chunks=(5_000, 8))
    proc = run_cli("score", "configs/score.yaml", "--set", f"source.path={tmp_path}/nan.zarr",
                   "--set", f"outputs.path={tmp_path}/s.zarr", cwd=root)
    assert proc.returncode == 3, proc.stderr
    assert "12345" in proc.stderr
    ints = tmp_path / "ints.npy"
    np.save(ints, np.arange(40).reshape(20, 2))
    proc = run_cli("fit", "configs/fit-cluster.yaml", "--set", "source.type=npy", "--set",
                   f"source.path={ints}", "--set", f"run.checkpoint={tmp_path}/c",
                   "--set", "run.cluster=null", cwd=root)
    assert proc.returncode == 3 and "dtype" in proc.stderr, proc.stderr
    ck = tmp_path / "corrupt"
    shutil.copytree(os.path.join(root, "demo-data/models/cluster-fit"), ck)
    streammix.persistence.save(streammix.load(str(ck)), str(ck))  # a version to fall back to
    v = current_version(str(ck))
    chunk = ck / f"v{v:06d}" / "means" / "c.0.0"
    chunk.write_bytes(b"garbage")
    for args in (("inspect", str(ck)),
                 ("score", "configs/score.yaml", "--set", f"outputs.model={ck}", "--set",
                  f"outputs.path={tmp_path}/t.zarr")):
        proc = run_cli(*args, cwd=root)
        assert proc.returncode == 4, proc.stderr
        assert "means/c.0.0" in proc.stderr and "truncated or damaged" in proc.stderr
        assert "Traceback" not in proc.stderr and "Task was destroyed" not in proc.stderr
        assert "streammix repair" in proc.stderr
    fixed = run_cli("repair", str(ck), cwd=root)
    assert fixed.returncode == 0, fixed.stderr
    assert f"now points to version {v - 1} (was {v})" in fixed.stderr
    info = json.loads(run_cli("inspect", str(ck), "--json", cwd=root).stdout)
    assert info["version"] == v - 1 and info["versions_on_disk"][-1] == v
    again = run_cli("repair", str(ck), cwd=root)
    assert again.returncode == 0 and "nothing to repair" in again.stderr
    proc = run_cli("score", "configs/score.yaml", "--set", f"outputs.model={ck}", "--set",
                   f"outputs.path={tmp_path}/t.zarr", cwd=root)
    assert proc.returncode == 0, proc.stderr


def test_json_logs_are_one_object_per_line(fitted_workspace):
    root, _, _ = fitted_workspace
    proc = run_cli("--log-format", "json", "fit", "configs/fit-cluster.yaml", "--set",
                   "run.cluster=null", cwd=root)
    assert proc.returncode == 0, proc.stderr
    def strict(token):
        raise ValueError(f"not JSON: {token}")

    records = [json.loads(line, parse_constant=strict)
               for line in proc.stderr.splitlines() if line.strip()]
    assert records and all(r["command"] == "fit" and r["level"] == "info" for r in records)
    assert records[-1]["up_to_date"] is True and records[-1]["converged"] is True


def test_quiet_prints_nothing_on_success(fitted_workspace):
    root, _, _ = fitted_workspace
    proc = run_cli("-q", "fit", "configs/fit-cluster.yaml", "--set", "run.cluster=null",
                   cwd=root)
    assert proc.returncode == 0 and proc.stderr == ""


def test_fit_on_a_running_scheduler_given_by_address(tmp_path):
    from distributed import LocalCluster

    root = str(tmp_path)
    make_workspace(root, n=20_000)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp",
                      host="127.0.0.1", dashboard_address=":0") as cluster:
        proc = run_cli("fit", "configs/fit-cluster.yaml", "--scheduler",
                       cluster.scheduler_address, cwd=root)
        assert proc.returncode == 0, proc.stderr
        assert f"using the Dask cluster at {cluster.scheduler_address}" in proc.stderr
    model = streammix.load(os.path.join(root, "demo-data/models/cluster-fit"))
    ref = GaussianMixture(6, max_iter=200, tol=1e-6, random_state=0).fit(
        os.path.join(root, "demo-data/points.zarr"))
    np.testing.assert_allclose(model.means_, ref.means_, rtol=1e-10, atol=1e-12)
    bad = run_cli("fit", "configs/fit-cluster.yaml", "--scheduler", "tcp://127.0.0.1:9",
                  "--set", "run.checkpoint=elsewhere", cwd=root,
                  env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"})
    assert bad.returncode == 1 and "cannot reach the Dask scheduler" in bad.stderr


def test_persisted_source_gives_the_same_fit(fitted_workspace):
    root, _, _ = fitted_workspace
    proc = run_cli("fit", "configs/fit-cluster.yaml", "--set", "source.persist=true", "--set",
                   "run.checkpoint=persisted", "--set", "run.cluster=null", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "persisted 4 MiB of decoded chunks" in proc.stderr
    a = streammix.load(os.path.join(root, "persisted"))
    b = streammix.load(os.path.join(root, "demo-data/models/cluster-fit"))
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-10, atol=1e-12)
    again = run_cli("fit", "configs/fit-cluster.yaml", "--set", "source.persist=true", "--set",
                    "run.checkpoint=persisted", "--set", "run.cluster=null", cwd=root)
    assert "nothing to do" in again.stderr and "persisted" not in again.stderr.replace(
        os.path.join(root, "persisted"), "")


def test_outputs_never_replace_the_source_or_foreign_data(fitted_workspace, tmp_path):
    root, _, _ = fitted_workspace
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    for target in ("demo-data/points.zarr", "demo-data/models/cluster-fit", str(precious)):
        proc = run_cli("predict", "configs/score.yaml", "--set", f"outputs.path={target}",
                       "--set", "outputs.anomaly=null", cwd=root)
        assert proc.returncode == 2, proc.stderr
        assert "choose another path" in proc.stderr
    assert (precious / "notes.txt").read_text() == "keep me"
    assert streammix.load(os.path.join(root, "demo-data/models/cluster-fit")).converged_
    assert points(root).shape == (N_ROWS, 8)


def test_update_bad_batches_error_with_absolute_rows_or_skip(tmp_path):
    root = str(tmp_path)
    make_workspace(root, n=30_000)
    X = points(root)
    X[25_432, 2] = np.nan
    zarr.create_array(os.path.join(root, "demo-data/stream.zarr"), data=X, chunks=(10_000, 8))
    ck = os.path.join(root, "demo-data/models/stream-zarr")
    proc = run_cli("update", "configs/stream-update-zarr.yaml", cwd=root)
    assert proc.returncode == 3, proc.stderr
    assert "rows 20000:30000" in proc.stderr and "row 25432" in proc.stderr
    saved = streammix.load(ck)
    assert saved.stream_cursor_["rows"] == 20_000 and saved.n_samples_seen_ == 20_000
    skip = run_cli("update", "configs/stream-update-zarr.yaml", "--set",
                   "run.on_bad_batch=skip", cwd=root)
    assert skip.returncode == 0, skip.stderr
    assert "1 bad batches skipped" in skip.stderr
    after = streammix.load(ck)
    assert after.stream_cursor_["rows"] == 30_000
    np.testing.assert_array_equal(after.means_, saved.means_)  # the bad batch left no trace
    other = run_cli("update", "configs/stream-update-zarr.yaml", "--set",
                    "source.path=demo-data/points.zarr", cwd=root)
    assert other.returncode == 4 and "has consumed another source" in other.stderr


def test_score_with_an_online_model_and_fit_refuses_its_checkpoint(tmp_path):
    root = str(tmp_path)
    make_workspace(root, n=30_000)
    zarr.create_array(os.path.join(root, "demo-data/stream.zarr"), data=points(root),
                      chunks=(10_000, 8))
    assert run_cli("update", "configs/stream-update-zarr.yaml", cwd=root).returncode == 0
    proc = run_cli("score", "configs/score.yaml", "--set",
                   "outputs.model=demo-data/models/stream-zarr", cwd=root)
    assert proc.returncode == 0, proc.stderr
    fit = run_cli("fit", "configs/fit-cluster.yaml", "--set", "run.cluster=null", "--set",
                  "run.checkpoint=demo-data/models/stream-zarr", "--set",
                  "run.on_mismatch=restart", cwd=root)
    assert fit.returncode == 4 and "OnlineGaussianMixture" in fit.stderr


def test_parquet_with_a_string_column_is_bad_data(tmp_path):
    import pandas as pd

    make_workspace(str(tmp_path), n=1_000)
    df = pd.DataFrame(points(str(tmp_path)), columns=[f"f{i}" for i in range(8)])
    df["id"] = "x"
    df.to_parquet(tmp_path / "t.parquet")
    proc = run_cli("fit", "configs/fit-cluster.yaml", "--set", "source.type=parquet", "--set",
                   f"source.path={tmp_path}/t.parquet", "--set", "source.columns=[id, f0]",
                   "--set", "run.cluster=null", cwd=str(tmp_path))
    assert proc.returncode == 3 and "['id'] are not numeric" in proc.stderr, proc.stderr


def test_sigterm_releases_the_lock_and_a_rerun_continues(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    root = str(tmp_path)
    make_workspace(root, n=60_000)
    os.makedirs(os.path.join(root, "demo-data/incoming"))
    X = points(root)
    for i in range(30):
        np.save(os.path.join(root, "demo-data/incoming", f"p-{i:03d}.npy"),
                X[i * 2000:(i + 1) * 2000])
    ck = os.path.join(root, "demo-data/models/stream")
    args = ["update", "configs/stream-update.yaml", "--set", "run.batch_size=500", "--set",
            "run.checkpoint_every=1", "--set", "run.checkpoint_interval=null"]
    job = subprocess.Popen([sys.executable, "-m", "streammix", "--no-progress", *args],
                           cwd=root, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while not (os.path.exists(ck) and (current_version(ck) or 0) >= 5):
        assert job.poll() is None and time.monotonic() - t0 < 120
        time.sleep(0.01)
    job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=60)
    assert job.returncode == 1 and "SIGTERM" in err, err
    assert not os.path.exists(os.path.join(ck, "LOCK"))
    rerun = run_cli(*args, cwd=root)
    assert rerun.returncode == 0 and "stale" not in rerun.stderr, rerun.stderr
    assert streammix.load(ck).n_samples_seen_ == 60_000


def test_update_logs_the_structure_changes_of_the_stream(tmp_path):
    """A cluster appears at full capacity (tests/drift_streams.born): the log says
    which components merged and which was born, at which update."""
    from tests import drift_streams as ds

    make_workspace(str(tmp_path), n=2_000)
    incoming = tmp_path / "demo-data" / "incoming"
    incoming.mkdir(exist_ok=True)
    for b, X, _ in ds.born(n_batches=110):
        np.save(incoming / f"b-{b:03d}.npy", X)
    proc = run_cli("update", "configs/stream-update.yaml", "--set", "run.batch_size=2000",
                   "--set", "model.n_components=5", "--set", "model.max_components=null",
                   "--set", "model.eta_min=0.05", "--set", "model.covariance_type=full",
                   "--set", "model.init_size=2000",
                   cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "born (novel points)" in proc.stderr, proc.stderr[-2000:]
    assert "merged component" in proc.stderr
