"""The fault campaign: every file of a checkpoint's newest version (and the pointer, and
a leftover lock) deleted, emptied, halved, bit-flipped, replaced by ``{}`` or by random
bytes. Each time ``load`` raises CheckpointCorruptError naming the version and the file,
``load(fallback=True)`` returns the previous version exactly, ``streammix inspect``
exits 4 with one line, and ``repair`` then the same fit or online fit finishes with the
bits of an undisturbed run."""

from __future__ import annotations

import json
import os
import shutil
import socket
import warnings

import numpy as np
import pytest

import streammix
from streammix import CheckpointCorruptError, GaussianMixture, OnlineGaussianMixture, load
from streammix.cli import main as cli_main
from streammix.persistence import current_version, list_versions, read_version, repair
from tests.conftest import make_blobs

pytestmark = [pytest.mark.filterwarnings("ignore::streammix.ConvergenceWarning"),
              pytest.mark.filterwarnings("ignore::streammix.UnfinishedModelWarning")]

DAMAGES = ("delete", "empty", "half", "flip", "braces", "random")


def damage(path: str, how: str, seed: int) -> None:
    """Apply one kind of damage to the file at ``path`` (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    if how == "delete":
        os.remove(path)
        return
    data = open(path, "rb").read()
    if how == "empty":
        data = b""
    elif how == "half":
        data = data[: len(data) // 2]
    elif how == "flip":
        buf = bytearray(data)
        i = int(rng.integers(len(buf)))
        buf[i] ^= 1 << int(rng.integers(8))
        data = bytes(buf)
    elif how == "braces":
        data = b"{}"
    else:
        data = rng.integers(0, 256, size=max(len(data), 16), dtype=np.uint8).tobytes()
    with open(path, "wb") as f:
        f.write(data)


class Stop(Exception):
    """Ends a fit half-way (the checkpoint then holds a fit in progress)."""


def version_files(ck: str, v: int) -> list[str]:
    root = os.path.join(ck, f"v{v:06d}")
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, fs in os.walk(root) for f in fs)


def same_arrays(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


def inspect_exit(ck: str, capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = cli_main(["--no-progress", "inspect", ck])
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


# ------------------------------------------------------------------ batch fits
X_BATCH = make_blobs(1500, 3, 3, seed=11)[0]
BATCH_KW = dict(n_components=3, covariance_type="full", tol=0.0, max_iter=9, random_state=4)


def batch_fit(ck: str | None, stop_after: int | None = None) -> GaussianMixture:
    def stop(info):
        if stop_after is not None and info.iteration == stop_after:
            raise Stop()

    return GaussianMixture(**BATCH_KW).fit(X_BATCH, checkpoint=ck, checkpoint_every=1,
                                           callback=stop)


@pytest.fixture(scope="module")
def batch_case(tmp_path_factory):
    """(template checkpoint of a fit stopped after 6 iterations, the undisturbed model)."""
    root = tmp_path_factory.mktemp("campaign-batch")
    ck = str(root / "template")
    with pytest.raises(Stop):
        batch_fit(ck, stop_after=6)
    whole = batch_fit(None)
    return ck, whole


def assert_same_fit(a: GaussianMixture, b: GaussianMixture) -> None:
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.covariances_, b.covariances_)
    np.testing.assert_array_equal(a.weights_, b.weights_)
    assert a.lower_bounds_ == b.lower_bounds_ and a.n_iter_ == b.n_iter_


@pytest.mark.parametrize("how", DAMAGES)
def test_every_file_of_the_newest_batch_version(batch_case, how, tmp_path, capsys):
    template, whole = batch_case
    newest = current_version(template)
    assert list_versions(template) == [newest - 2, newest - 1, newest]
    previous = read_version(template, newest - 1)
    files = version_files(template, newest)
    assert "MANIFEST.json" in files and "zarr.json" in files and "means/c.0.0" in files
    for i, rel in enumerate(files):
        ck = str(tmp_path / f"ck{i}")
        shutil.copytree(template, ck)
        damage(os.path.join(ck, f"v{newest:06d}", rel), how, seed=i)
        with pytest.raises(CheckpointCorruptError) as caught:
            load(ck)
        message = str(caught.value)
        assert f"version {newest}" in message and rel.split("/")[0] in message, (rel, message)
        fallback, expected = load(ck, fallback=True), load(template, version=newest - 1)
        assert fallback.n_iter_ == expected.n_iter_
        np.testing.assert_array_equal(fallback.precisions_cholesky_,
                                      expected.precisions_cholesky_)
        got = streammix.persistence.read_latest_good(ck)
        assert got[2] == newest - 1 and same_arrays(got[0], previous[0]), rel
        code, lines = inspect_exit(ck, capsys)
        assert code == 4 and len(lines) == 1 and "Traceback" not in lines[0], (rel, lines)
        assert rel.split("/")[0] in lines[0] and "streammix repair" in lines[0]
        if i % 4 == 0 or rel in ("MANIFEST.json", "zarr.json"):  # resume: a sample of files
            before, now, problems = repair(ck)
            assert (before, now) == (newest, newest - 1) and problems
            assert_same_fit(batch_fit(ck), whole)
        shutil.rmtree(ck)


@pytest.mark.parametrize("how", DAMAGES)
def test_the_pointer(batch_case, how, tmp_path, capsys):
    template, whole = batch_case
    newest = current_version(template)
    ck = str(tmp_path / "ck")
    shutil.copytree(template, ck)
    damage(os.path.join(ck, "CURRENT.json"), how, seed=1)
    with pytest.raises(CheckpointCorruptError, match="CURRENT.json"):
        load(ck)
    got = streammix.persistence.read_latest_good(ck)
    assert got[2] == newest and same_arrays(got[0], read_version(template, newest)[0])
    code, lines = inspect_exit(ck, capsys)
    assert code == 4 and len(lines) == 1 and "CURRENT.json" in lines[0], lines
    if how == "delete":  # a lost pointer: the fit continues on its own
        assert_same_fit(batch_fit(ck), whole)
    else:
        assert repair(ck)[1] == newest
        assert_same_fit(batch_fit(ck), whole)
    assert load(ck).n_iter_ == whole.n_iter_


@pytest.mark.parametrize("how", DAMAGES)
def test_a_leftover_lock(batch_case, how, tmp_path, capsys):
    """A lock left by a killed writer, then damaged: readers never look at it, and the
    next writer breaks it (with a warning) and finishes the fit."""
    template, whole = batch_case
    ck = str(tmp_path / "ck")
    shutil.copytree(template, ck)
    lock = os.path.join(ck, "LOCK")
    dead = {"host": socket.gethostname(), "pid": 2 ** 22 + 12345, "token": "x" * 32,
            "since": 0.0, "heartbeat": 0.0}
    with open(lock, "w") as f:
        json.dump(dead, f)
    damage(lock, how, seed=2)
    np.testing.assert_array_equal(load(ck).means_, load(template).means_)
    code, lines = inspect_exit(ck, capsys)
    assert code == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert_same_fit(batch_fit(ck), whole)
    assert not os.path.exists(lock)


# ------------------------------------------------------------------ online fits
X_ONLINE = make_blobs(6000, 3, 3, seed=12)[0]
BATCHES = [X_ONLINE[i : i + 500] for i in range(0, 6000, 500)]


def online_fit(ck: str | None, stop_after: int | None = None) -> OnlineGaussianMixture:
    def stream():
        for i, b in enumerate(BATCHES):
            if stop_after is not None and i == stop_after:
                raise Stop()
            yield b

    model = OnlineGaussianMixture(3, covariance_type="diag", init_size=1000, random_state=3,
                                  eta_min=0.02)
    return model.fit(stream() if stop_after is not None else BATCHES, checkpoint=ck)


@pytest.fixture(scope="module")
def online_case(tmp_path_factory):
    root = tmp_path_factory.mktemp("campaign-online")
    ck = str(root / "template")
    with pytest.raises(Stop):
        online_fit(ck, stop_after=7)
    return ck, online_fit(None)


def assert_same_online(a: OnlineGaussianMixture, b: OnlineGaussianMixture) -> None:
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.covariances_, b.covariances_)
    np.testing.assert_array_equal(a.component_ids_, b.component_ids_)
    assert a.n_samples_seen_ == b.n_samples_seen_ and a.n_updates_ == b.n_updates_


@pytest.mark.parametrize("how", DAMAGES)
def test_every_file_of_the_newest_online_version(online_case, how, tmp_path, capsys):
    template, whole = online_case
    newest = current_version(template)
    previous = read_version(template, newest - 1)
    files = version_files(template, newest)
    assert any(f.startswith("running.") for f in files) and "rng.key/c.0" in files
    for i, rel in enumerate(files):
        ck = str(tmp_path / f"ck{i}")
        shutil.copytree(template, ck)
        damage(os.path.join(ck, f"v{newest:06d}", rel), how, seed=100 + i)
        with pytest.raises(CheckpointCorruptError) as caught:
            load(ck)
        assert f"version {newest}" in str(caught.value) and rel.split("/")[0] in str(caught.value)
        got = streammix.persistence.read_latest_good(ck)
        assert got[2] == newest - 1 and same_arrays(got[0], previous[0]), rel
        assert got[1]["state"] == previous[1]["state"]
        code, lines = inspect_exit(ck, capsys)
        assert code == 4 and len(lines) == 1, (rel, lines)
        if i % 5 == 0:
            assert repair(ck)[1] == newest - 1
            assert_same_online(online_fit(ck), whole)
        shutil.rmtree(ck)
