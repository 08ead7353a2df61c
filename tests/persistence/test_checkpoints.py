"""Checkpoints: round trips, plain-zarr readability, corruption detection, the writer
lock, format versions, and resuming batch fits."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import zarr

import streammix.persistence.store as store
from streammix import (
    CheckpointCorruptError,
    CheckpointLockedError,
    CheckpointMismatchError,
    CheckpointVersionError,
    GaussianMixture,
    OnlineGaussianMixture,
    load,
)
from streammix.persistence import CheckpointWriter, list_versions
from tests.conftest import make_blobs

TYPES = ["full", "tied", "diag", "spherical"]
pytestmark = pytest.mark.filterwarnings("ignore::streammix.ConvergenceWarning")


def fitted_batch(cov_type, **kw):
    X, _ = make_blobs(3000, 3, 3, seed=1)
    return GaussianMixture(3, covariance_type=cov_type, random_state=0, max_iter=20,
                           **kw).fit(X), X


def fitted_online(cov_type):
    X, _ = make_blobs(8000, 3, 3, seed=2)
    o = OnlineGaussianMixture(3, covariance_type=cov_type, init_size=2000, random_state=0,
                              eta_min=0.01)
    return o.fit([X[i : i + 1000] for i in range(0, 8000, 1000)]), X


def assert_same_model(a, b, X):
    for k, v in vars(a).items():
        if k.startswith("_") and k not in ("_next_id",):
            continue
        w = getattr(b, k)
        if isinstance(v, np.ndarray):
            assert v.dtype == w.dtype and np.array_equal(v, w), k
        else:
            assert v == w or (isinstance(v, float) and np.isnan(v) and np.isnan(w)), k
    assert a.get_params().keys() == b.get_params().keys()
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))


@pytest.mark.parametrize("cov_type", TYPES)
def test_round_trip_batch(cov_type, tmp_path):
    model, X = fitted_batch(cov_type, means_init=None)
    assert model.save(tmp_path / "ck") == 1
    back = load(tmp_path / "ck")
    assert_same_model(model, back, X)
    assert isinstance(back, GaussianMixture) and back.n_iter_ == model.n_iter_


@pytest.mark.parametrize("cov_type", TYPES)
def test_round_trip_online(cov_type, tmp_path):
    model, X = fitted_online(cov_type)
    model.save(str(tmp_path / "ck"))
    back = load(str(tmp_path / "ck"))
    assert_same_model(model, back, X)
    np.testing.assert_array_equal(back.component_ids_, model.component_ids_)
    assert back.events_ == model.events_
    # the restored state keeps learning exactly like the original
    extra = make_blobs(1000, 3, 3, seed=9)[0]
    model.partial_fit(extra)
    back.partial_fit(extra)
    assert np.array_equal(model.means_, back.means_)


def test_round_trip_keeps_init_arrays(tmp_path):
    X, _ = make_blobs(500, 2, 2, seed=3)
    g = GaussianMixture(2, means_init=[[0.0, 0.0], [5.0, 5.0]], max_iter=3).fit(X)
    g.save(tmp_path / "ck")
    np.testing.assert_array_equal(load(tmp_path / "ck").means_init, [[0.0, 0.0], [5.0, 5.0]])


def test_plain_zarr_reads_means_and_weights(tmp_path):
    model, _ = fitted_batch("full")
    model.save(tmp_path / "ck")
    pointer = json.loads((tmp_path / "ck" / "CURRENT.json").read_text())
    group = zarr.open_group(str(tmp_path / "ck" / f"v{pointer['version']:06d}"), mode="r")
    np.testing.assert_array_equal(group["means"][:], model.means_)
    np.testing.assert_array_equal(group["weights"][:], model.weights_)
    assert group.attrs["streammix"]["state"]["covariance_type"] == "full"


def test_versions_are_kept_and_pruned(tmp_path):
    model, _ = fitted_batch("diag")
    for i in range(5):
        assert model.save(tmp_path / "ck", keep_last=2) == i + 1
    assert list_versions(tmp_path / "ck") == [4, 5]


def _two_versions(tmp_path, cov_type="full"):
    a, X = fitted_batch(cov_type)
    b = GaussianMixture(3, covariance_type=cov_type, random_state=1, max_iter=2).fit(X)
    a.save(tmp_path / "ck")
    b.save(tmp_path / "ck")
    return a, b, tmp_path / "ck"


def _array_chunk_files(path, version, name):
    root = path / f"v{version:06d}" / name
    return [p for p in root.rglob("*") if p.is_file() and p.name != "zarr.json"]


@pytest.mark.parametrize("damage", ["delete", "truncate", "flip"])
def test_damaged_array_is_detected_and_previous_version_loads(tmp_path, damage):
    a, b, path = _two_versions(tmp_path)
    (chunk,) = _array_chunk_files(path, 2, "means")
    if damage == "delete":
        chunk.unlink()
    elif damage == "truncate":
        chunk.write_bytes(chunk.read_bytes()[:7])
    else:
        data = bytearray(chunk.read_bytes())
        data[len(data) // 2] ^= 0xFF
        chunk.write_bytes(bytes(data))
    with pytest.raises(CheckpointCorruptError, match="version 2.*means"):
        load(path)
    np.testing.assert_array_equal(load(path, version=1).means_, a.means_)
    np.testing.assert_array_equal(load(path, fallback=True).means_, a.means_)


def test_tampered_values_that_still_decode_are_caught_by_checksums(tmp_path):
    a, b, path = _two_versions(tmp_path)
    g = zarr.open_group(str(path / "v000002"), mode="r+")
    g["weights"][0] = 0.5
    with pytest.raises(CheckpointCorruptError, match="checksum"):
        load(path)


def test_missing_pointer(tmp_path):
    a, b, path = _two_versions(tmp_path)
    (path / "CURRENT.json").unlink()
    with pytest.raises(CheckpointCorruptError, match="no pointer.*versions on disk: \\[1, 2\\]"):
        load(path)
    np.testing.assert_array_equal(load(path, fallback=True).means_, b.means_)


def test_newer_format_is_refused(tmp_path):
    """A version written by a future streammix (its manifest and pointer say format 3)
    is refused with CheckpointVersionError; older versions still load."""
    import json

    from streammix.persistence import version_format as fmt

    a, b, path = _two_versions(tmp_path)
    vdir = path / "v000002"
    doc = json.loads((vdir / "MANIFEST.json").read_text())
    body = {k: v for k, v in doc.items() if k != "digest"}
    body["format_version"] = store.FORMAT_VERSION + 1
    manifest = json.dumps({**body, "digest": fmt.sha256(fmt.canonical_json(body))}).encode()
    (vdir / "MANIFEST.json").write_bytes(manifest)
    (path / "CURRENT.json").write_text(store._pointer_document(2, fmt.sha256(manifest), True))
    with pytest.raises(CheckpointVersionError, match=f"newer than format {store.FORMAT_VERSION}"):
        load(path)
    np.testing.assert_array_equal(load(path, version=1).means_, a.means_)


def test_edited_attributes_are_caught(tmp_path):
    """The group's attributes (the JSON state) are covered by the manifest: an edited
    n_components is a corrupt version, never a model with K=4 and 3 means."""
    a, b, path = _two_versions(tmp_path)
    g = zarr.open_group(str(path / "v000002"), mode="r+")
    meta = dict(g.attrs["streammix"])
    meta["state"]["hyperparameters"]["n_components"] += 1
    g.attrs["streammix"] = meta
    with pytest.raises(CheckpointCorruptError, match="version 2: file zarr.json"):
        load(path)
    np.testing.assert_array_equal(load(path, fallback=True).means_, a.means_)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(Exception, match="no checkpoint"):
        load(tmp_path / "nothing")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "CURRENT.json").write_text("{not json")
    with pytest.raises(CheckpointCorruptError, match="pointer"):
        load(tmp_path / "junk")


def test_second_writer_is_refused_and_stale_lock_is_broken(tmp_path):
    model, _ = fitted_batch("diag")
    with CheckpointWriter(tmp_path / "ck"):
        with pytest.raises(CheckpointLockedError, match="being written by pid"):
            model.save(tmp_path / "ck")
    model.save(tmp_path / "ck")  # released: fine again
    # a lock left by a dead process is stale and broken with a warning
    (tmp_path / "ck" / "LOCK").write_text(json.dumps(
        {"host": os.uname().nodename, "pid": 2**22 + 12345, "token": "x",
         "since": 0, "heartbeat": 0}))
    with pytest.warns(UserWarning, match="stale"):
        model.save(tmp_path / "ck")


def test_crash_before_commit_leaves_previous_version_current(tmp_path, monkeypatch):
    a, b, path = _two_versions(tmp_path)

    def boom():
        raise KeyboardInterrupt("killed during save")

    monkeypatch.setattr(store, "before_commit", boom)
    with pytest.raises(KeyboardInterrupt):
        a.save(path)
    monkeypatch.setattr(store, "before_commit", None)
    np.testing.assert_array_equal(load(path).means_, b.means_)   # still version 2
    assert not (path / "LOCK").exists()


# ------------------------------------------------------------------ resuming batch fits
def _data():
    return make_blobs(20_000, 4, 4, seed=5)[0]


def test_resume_after_interruption_is_bit_identical(tmp_path, monkeypatch):
    X = _data()
    kw = dict(n_components=4, covariance_type="full", tol=0, max_iter=12, n_init=2,
              random_state=3, chunk_size=3000)
    ref = GaussianMixture(**kw).fit(X)
    import streammix.engines.em as em

    calls = {"n": 0}
    real = em.statistics

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] in (5, 19):
            raise KeyboardInterrupt("preempted")
        return real(*a, **k)

    monkeypatch.setattr(em, "statistics", flaky)
    import streammix.estimators.gaussian_mixture as gm_mod
    monkeypatch.setattr(gm_mod, "run_em", em.run_em)
    for _ in range(5):
        try:
            got = GaussianMixture(**kw).fit(X, checkpoint=tmp_path / "ck", checkpoint_every=1)
            break
        except KeyboardInterrupt:
            continue
    assert calls["n"] > 24  # it was interrupted twice and resumed
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert np.array_equal(getattr(got, name), getattr(ref, name)), name
    assert got.lower_bounds_ == ref.lower_bounds_ and got.n_iter_ == ref.n_iter_


def test_finished_checkpoint_returns_at_once(tmp_path, monkeypatch):
    X = _data()
    kw = dict(n_components=3, covariance_type="diag", random_state=0, chunk_size=4000)
    first = GaussianMixture(**kw).fit(X, checkpoint=tmp_path / "ck")
    import streammix.engines.em as em

    monkeypatch.setattr(em, "statistics", lambda *a, **k: pytest.fail("recomputed"))
    again = GaussianMixture(**kw).fit(X, checkpoint=tmp_path / "ck")
    assert np.array_equal(again.means_, first.means_) and again.n_iter_ == first.n_iter_


def test_resume_refuses_other_data_or_parameters(tmp_path):
    X = _data()
    kw = dict(n_components=3, random_state=0, max_iter=3, chunk_size=4000)
    GaussianMixture(**kw).fit(X, checkpoint=tmp_path / "ck")
    Y = X.copy()
    Y[-1, 0] += 1.0  # one value changed among the fingerprinted rows
    with pytest.raises(CheckpointMismatchError, match="sample"):
        GaussianMixture(**kw).fit(Y, checkpoint=tmp_path / "ck")
    with pytest.raises(CheckpointMismatchError, match="shape"):
        GaussianMixture(**kw).fit(X[:-10], checkpoint=tmp_path / "ck")
    with pytest.raises(CheckpointMismatchError, match="n_components"):
        GaussianMixture(**{**kw, "n_components": 4}).fit(X, checkpoint=tmp_path / "ck")
    with pytest.raises(CheckpointMismatchError, match="chunks"):
        GaussianMixture(**{**kw, "chunk_size": 5000}).fit(X, checkpoint=tmp_path / "ck")
    g = GaussianMixture(**{**kw, "n_components": 4}).fit(
        X, checkpoint=tmp_path / "ck", checkpoint_mismatch="restart")
    assert g.means_.shape == (4, 4)


class _Stop(Exception):
    pass


def test_fit_resumes_from_the_newest_good_version_when_the_pointer_is_gone(tmp_path):
    from streammix import GaussianMixture

    X, _ = make_blobs(4000, 3, 4, seed=2)
    params = dict(n_components=4, random_state=0, tol=0.0, max_iter=8)
    whole = GaussianMixture(**params).fit(X)
    ck = str(tmp_path / "ck")

    def stop(info):
        if info.iteration == 4:
            raise _Stop

    with pytest.raises(_Stop):
        GaussianMixture(**params).fit(X, checkpoint=ck, callback=stop)
    os.remove(os.path.join(ck, "CURRENT.json"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resumed = GaussianMixture(**params).fit(X, checkpoint=ck, callback=lambda i: (
            pytest.fail("iteration 1 redone") if i.iteration == 1 else None))
    np.testing.assert_array_equal(resumed.means_, whole.means_)


def test_repair_points_at_the_newest_good_version(tmp_path):
    from streammix.errors import CheckpointCorruptError
    from streammix.persistence import current_version, load, repair

    a, b, path = _two_versions(tmp_path)
    assert repair(path) == (2, 2, [])                        # healthy: nothing to do
    (chunk,) = _array_chunk_files(path, 2, "means")
    chunk.write_bytes(b"garbage")
    with pytest.raises(CheckpointCorruptError):
        load(path)
    before, now, problems = repair(path)
    assert (before, now) == (2, 1) and "means" in problems[0]
    np.testing.assert_array_equal(load(path).means_, a.means_)
    os.remove(path / "CURRENT.json")                         # a lost pointer
    assert repair(path)[:2] == (None, 1) and current_version(path) == 1
    (chunk,) = _array_chunk_files(path, 1, "means")
    chunk.write_bytes(b"garbage")
    with pytest.raises(CheckpointCorruptError, match="no version"):
        repair(path)


# ------------------------------------------------------------------ issue 13: lost pointer,
# unfinished models, pruning that keeps the last finished model
def _fit_with_checkpoint(ck, X, stop_after=None, **fit_kw):
    class Stop(Exception):
        pass

    def stop(info):
        if stop_after is not None and info.iteration == stop_after:
            raise Stop()

    m = GaussianMixture(3, covariance_type="diag", tol=0.0, max_iter=8, random_state=0)
    try:
        m.fit(X, checkpoint=ck, checkpoint_every=1, keep_last=2, callback=stop, **fit_kw)
    except Stop:
        return None
    return m


def test_lost_pointer_on_a_finished_fit_is_restored_without_a_new_version(tmp_path):
    X, _ = make_blobs(1000, 3, 3, seed=5)
    ck = str(tmp_path / "ck")
    first = _fit_with_checkpoint(ck, X)
    versions = list_versions(ck)
    os.remove(os.path.join(ck, "CURRENT.json"))
    again = _fit_with_checkpoint(ck, X)
    assert list_versions(ck) == versions  # nothing refitted, nothing saved
    assert store.current_version(ck) == versions[-1]  # the pointer is back
    np.testing.assert_array_equal(again.means_, first.means_)
    assert store.read_pointer(ck).get("restored") is True
    np.testing.assert_array_equal(load(ck).means_, first.means_)


def test_lost_pointer_mid_fit_continues_to_the_same_bits(tmp_path):
    X, _ = make_blobs(1000, 3, 3, seed=5)
    whole = _fit_with_checkpoint(str(tmp_path / "whole"), X)
    ck = str(tmp_path / "ck")
    assert _fit_with_checkpoint(ck, X, stop_after=4) is None
    os.remove(os.path.join(ck, "CURRENT.json"))
    resumed = _fit_with_checkpoint(ck, X)
    np.testing.assert_array_equal(resumed.means_, whole.means_)
    assert resumed.lower_bounds_ == whole.lower_bounds_


def test_online_fit_with_a_lost_pointer_continues_from_its_newest_version(tmp_path):
    X, _ = make_blobs(6000, 3, 3, seed=6)
    batches = [X[i : i + 500] for i in range(0, 6000, 500)]

    def model():
        return OnlineGaussianMixture(3, covariance_type="diag", init_size=1000,
                                     random_state=0, eta_min=0.02)

    whole = model().fit(batches)
    ck = str(tmp_path / "ck")

    def first_half():
        yield from batches[:7]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model().fit(first_half(), checkpoint=ck)
    os.remove(os.path.join(ck, "CURRENT.json"))
    resumed = model().fit(batches, checkpoint=ck)
    assert resumed.n_samples_seen_ == whole.n_samples_seen_ == 6000
    np.testing.assert_array_equal(resumed.means_, whole.means_)


def test_unfinished_fit_warns_and_finished_true_gives_the_last_finished_model(tmp_path):
    """A refit in progress on top of a finished model: load() warns and returns the
    iterate; load(finished=True) returns the finished model, which pruning keeps although
    it is older than keep_last versions."""
    from streammix import UnfinishedModelWarning

    X, _ = make_blobs(1000, 3, 3, seed=5)
    ck = str(tmp_path / "ck")
    done = _fit_with_checkpoint(ck, X)
    Y = X + 0.5  # new data: a new fit in the same checkpoint
    assert _fit_with_checkpoint(ck, Y, stop_after=5,
                                checkpoint_mismatch="restart") is None  # keep_last=2
    with pytest.warns(UnfinishedModelWarning, match="finished=True"):
        iterate = load(ck)
    assert not iterate.converged_ and iterate.n_iter_ == 4  # saved before the stop
    from streammix.cli.commands.inspect import as_text, summarise

    summary = summarise(ck)
    assert summary["finished"] is False and summary["in_progress"] is True
    assert "in progress or interrupted" in as_text(summary)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnfinishedModelWarning)
        finished = load(ck, finished=True)
    np.testing.assert_array_equal(finished.means_, done.means_)
    assert len(list_versions(ck)) == 3  # two newest + the finished one
    refit = _fit_with_checkpoint(ck, Y, checkpoint_mismatch="restart")
    assert refit is not None and len(list_versions(ck)) == 2  # finished again: pruned
    np.testing.assert_array_equal(load(ck, finished=True).means_, refit.means_)


def test_finished_true_without_any_finished_version(tmp_path):
    X, _ = make_blobs(1000, 3, 3, seed=5)
    ck = str(tmp_path / "ck")
    assert _fit_with_checkpoint(ck, X, stop_after=3) is None
    with pytest.raises(CheckpointCorruptError, match="no finished model"):
        load(ck, finished=True)


def test_a_save_is_durable_files_and_folders_are_synced(tmp_path, monkeypatch):
    """Every file of a version is fdatasync'ed and every new folder fsync'ed before the
    pointer moves (what a power cut needs)."""
    import streammix.persistence.storage as storage

    synced_files, synced_dirs = [], []
    real_fdatasync, real_fsync = os.fdatasync, os.fsync

    def fdatasync(fd):
        synced_files.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fdatasync(fd)

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        (synced_dirs if os.path.isdir(path) else synced_files).append(path)
        return real_fsync(fd)

    monkeypatch.setattr(storage.os, "fdatasync", fdatasync)
    monkeypatch.setattr(storage.os, "fsync", fsync)
    model, _ = fitted_batch("full")
    ck = tmp_path / "ck"
    model.save(ck)
    names = {os.path.basename(p) for p in synced_files}
    assert {"c.0.0", "zarr.json", "MANIFEST.json", "CURRENT.json"} <= names | {
        os.path.basename(p).split(".", 1)[0] + ".json" for p in synced_files
        if "CURRENT.json" in p}
    n_files = sum(len(fs) for _, _, fs in os.walk(ck / "v000001"))
    assert sum("staging" in p for p in synced_files) == n_files
    assert any(p.endswith("/means") for p in synced_dirs)
    assert str(ck) in synced_dirs  # the rename into place and the pointer's replace


def test_an_interrupted_online_fit_is_unfinished_in_load_and_inspect(tmp_path, capsys):
    """OnlineGaussianMixture.fit stopped between batches: load() warns, load(finished=True)
    refuses, `streammix inspect` says "in progress or interrupted" ("finished": false);
    partial_fit models (no passes in their cursor) stay finished."""
    import json

    from streammix import OnlineGaussianMixture, UnfinishedModelWarning
    from streammix.cli import main

    X, _ = make_blobs(4000, 3, 3, seed=5)
    ck = str(tmp_path / "ck")

    def batches():
        for i in range(4):
            if i == 3:
                raise KeyboardInterrupt  # the user stops the fit
            yield X[i * 1000:(i + 1) * 1000]

    model = OnlineGaussianMixture(3, random_state=0)
    with pytest.raises(KeyboardInterrupt):
        model.fit(batches(), checkpoint=ck, checkpoint_every=1, checkpoint_interval=None)
    with pytest.warns(UnfinishedModelWarning, match="online fit in progress or interrupted"):
        load(ck)
    with pytest.raises(CheckpointCorruptError, match="no finished model"):
        load(ck, finished=True)
    assert main(["--no-progress", "inspect", ck, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["finished"] is False
    assert main(["--no-progress", "inspect", ck]) == 0
    assert "in progress or interrupted" in capsys.readouterr().out

    streamed = OnlineGaussianMixture(3, random_state=0)
    for i in range(3):
        streamed.partial_fit(X[i * 1000:(i + 1) * 1000])
    streamed.save(str(tmp_path / "streamed"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnfinishedModelWarning)
        load(str(tmp_path / "streamed"), finished=True)
