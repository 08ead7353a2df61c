"""Checkpoints: versioned, verified, crash-safe Zarr groups of plain arrays and JSON."""

from __future__ import annotations

import warnings

from ..errors import CheckpointError, UnfinishedModelWarning
from .markers import enclosing_checkpoint, is_checkpoint
from .serialize import model_from_payload, model_to_payload
from .store import (
    FORMAT_VERSION,
    CheckpointWriter,
    current_version,
    is_finished_state,
    list_versions,
    read_pointer,
    read_latest_good,
    read_version,
    repair,
)


def save(model, path, keep_last: int = 3) -> int:
    """Save a fitted estimator as a new version of the checkpoint at ``path`` (a local
    directory or fsspec URL); returns the version number. Older versions beyond
    ``keep_last`` are deleted once the new one is committed."""
    arrays, state = model_to_payload(model)
    with CheckpointWriter(path, keep_last=keep_last) as writer:
        return writer.save(arrays, state)


def load(path, version: int | None = None, fallback: bool = False, finished: bool = False):
    """Load the estimator saved at ``path``: the version CURRENT.json points to, or
    ``version``. Every file of the version (array data, array metadata, attributes) is
    checked against its manifest first; a damaged version raises CheckpointCorruptError
    naming the version and the file. With ``fallback=True``, the newest version that
    verifies is loaded instead (after a crash, a damaged latest version or a lost
    pointer). With ``finished=True``, the newest version holding a finished model (not a
    fit still running or interrupted). A model that is not finished is returned with an
    UnfinishedModelWarning."""
    if finished and version is None:
        arrays, meta, v = read_latest_good(path, finished=True)
    elif fallback and version is None:
        arrays, meta, v = read_latest_good(path)
    else:
        arrays, meta, v = read_version(path, version)
    model = model_from_payload(arrays, meta["state"])
    if finished and not is_finished_state(meta["state"]):
        raise CheckpointError(f"checkpoint {path!r} version {v} does not hold a finished "
                              "model (a fit in progress or interrupted)")
    if not is_finished_state(meta["state"]):
        warnings.warn(unfinished_message(path, v, meta["state"]), UnfinishedModelWarning,
                      stacklevel=2)
    return model


def unfinished_message(path, version: int, state: dict) -> str:
    """Why the model of a version is not a finished fit, and how to get one."""
    if not state.get("fitted"):
        what = "a model that is not fitted yet (an online model still buffering rows)"
    elif state.get("fit_progress") is None:  # an online model's fit() over data
        cursor = (state.get("online") or {}).get("cursor") or {}
        what = (f"an online fit in progress or interrupted (pass {cursor.get('pass', 0) + 1}, "
                f"after batch {cursor.get('batch')}): not a finished fit")
    else:
        prog = state.get("fit_progress") or {}
        what = (f"a fit in progress or interrupted (restart {prog.get('init', 0)}, iteration "
                f"{state.get('n_iter')}): its last iterate, not a finished fit")
    return (f"checkpoint {path!r} version {version} holds {what}; load(path, finished=True) "
            "gives the newest finished model")


__all__ = ["FORMAT_VERSION", "CheckpointWriter", "current_version", "enclosing_checkpoint", "is_finished_state", "is_checkpoint", "list_versions", "load", "read_pointer",
           "read_latest_good", "read_version", "repair", "save"]
