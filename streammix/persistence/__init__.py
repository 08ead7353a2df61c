"""Checkpoints: versioned, verified, crash-safe Zarr groups of plain arrays and JSON."""

from __future__ import annotations

from .markers import enclosing_checkpoint, is_checkpoint
from .serialize import model_from_payload, model_to_payload
from .store import (
    FORMAT_VERSION,
    CheckpointWriter,
    current_version,
    list_versions,
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


def load(path, version: int | None = None, fallback: bool = False):
    """Load the estimator saved at ``path``: the version CURRENT.json points to, or
    ``version``. Every array is checked against its SHA-256; a damaged version raises
    CheckpointCorruptError naming the problem. With ``fallback=True``, the newest version
    that verifies is loaded instead (after a crash or a damaged latest version)."""
    if fallback and version is None:
        arrays, meta, _ = read_latest_good(path)
    else:
        arrays, meta, _ = read_version(path, version)
    model = model_from_payload(arrays, meta["state"])
    return model


__all__ = ["FORMAT_VERSION", "CheckpointWriter", "current_version", "enclosing_checkpoint", "is_checkpoint", "list_versions", "load",
           "read_latest_good", "read_version", "repair", "save"]
