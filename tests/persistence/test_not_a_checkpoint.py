"""Paths that never were checkpoints, and schedulers that cannot be reached, get errors
that say so (not 'corrupt', not a raw OSError)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import zarr

import streammix
from streammix import CheckpointCorruptError, CheckpointError, ClusterConnectionError


def test_loading_a_zarr_data_array_says_it_is_not_a_checkpoint(tmp_path):
    path = str(tmp_path / "data.zarr")
    z = zarr.create_array(store=path, shape=(10, 2), dtype="float64")
    z[:] = 1.0
    with pytest.raises(CheckpointError, match="not a streammix checkpoint: it is a Zarr") as e:
        streammix.load(path)
    assert not isinstance(e.value, CheckpointCorruptError)
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("x")
    with pytest.raises(CheckpointError, match="not a streammix checkpoint: it is a folder"):
        streammix.load(str(tmp_path / "folder"))


def test_a_checkpoint_without_its_pointer_is_still_called_damaged(tmp_path):
    X = np.random.default_rng(0).normal(size=(200, 2))
    ck = str(tmp_path / "ck")
    streammix.GaussianMixture(2, random_state=0).fit(X).save(ck)
    (tmp_path / "ck" / "CURRENT.json").unlink()
    with pytest.raises(CheckpointCorruptError, match="no pointer"):
        streammix.load(ck)


def test_an_unreachable_scheduler_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT", "2s")
    import dask

    dask.config.refresh()
    X = np.random.default_rng(0).normal(size=(100, 2))
    t0 = time.monotonic()
    with pytest.raises(ClusterConnectionError, match="cannot reach the Dask scheduler at "
                                                     "'tcp://127.0.0.1:9'"):
        streammix.GaussianMixture(2, client="tcp://127.0.0.1:9").fit(X)
    assert time.monotonic() - t0 < 20
    assert issubclass(ClusterConnectionError, OSError)
    monkeypatch.delenv("DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT")
    dask.config.refresh()
