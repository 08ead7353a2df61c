"""Versioned, verified, crash-safe checkpoints as a Zarr v3 group.

Layout of a checkpoint at ROOT (every part readable with plain zarr and json):

    ROOT/zarr.json            the root group; attrs["streammix"] = {"kind": "checkpoint"}
    ROOT/v000007/             one complete version: a zarr group of plain arrays, its
                              attrs hold the JSON state and a SHA-256 per array
    ROOT/CURRENT.json         the pointer: {"version": 7, ...}, replaced atomically, last
    ROOT/LOCK                 the writer lock while a writer is active
    ROOT/staging/             versions being written (local paths), renamed when verified

A save writes the new version under staging/, re-reads it and checks every checksum,
renames it to vNNNNNN, then replaces CURRENT.json, and only then deletes versions older
than the last ``keep_last``. A crash at any point leaves CURRENT.json on the previous
complete version. No pickle anywhere: loading parses JSON and reads numeric arrays, so
an untrusted checkpoint can at worst fail to load.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from typing import Callable

import numpy as np

from .._version import __version__
from ..errors import (
    CheckpointCorruptError,
    CheckpointError,
    CheckpointVersionError,
)
from .lock import CheckpointLock
from .storage import Storage

FORMAT_VERSION = 1
POINTER = "CURRENT.json"
_VERSION_RE = re.compile(r"^v(\d{6,})$")
_ALLOWED_DTYPES = {"float64", "float32", "int64", "int32", "uint32", "bool", "uint8"}

#: called between writing a version and committing the pointer (tests use it to kill a
#: process in the middle of a save)
before_commit: Callable[[], None] | None = None


def version_name(v: int) -> str:
    return f"v{v:06d}"


def array_checksum(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    h = hashlib.sha256()
    h.update(f"{a.dtype.str}|{a.shape}|".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def list_versions(path) -> list[int]:
    """The version numbers present at ``path`` (complete or not), ascending."""
    st = Storage(path)
    return sorted(int(m.group(1)) for m in map(_VERSION_RE.match, st.listdir()) if m)


def current_version(path) -> int | None:
    """The version CURRENT.json points to, or None when there is no pointer."""
    st = Storage(path)
    if not st.exists(POINTER):
        return None
    try:
        doc = json.loads(st.read_text(POINTER))
        return int(doc["version"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointCorruptError(
            f"checkpoint {path!r}: the pointer {POINTER} is unreadable ({exc}); "
            f"versions on disk: {list_versions(path)}; load one with load(path, version=N)"
        ) from None


class CheckpointWriter:
    """Writes successive versions of one checkpoint, holding its lock throughout."""

    def __init__(self, path, keep_last: int = 3, lock: bool = True):
        if keep_last < 1:
            raise CheckpointError("keep_last must be at least 1")
        self.path = path
        self.storage = Storage(path)
        self.keep_last = keep_last
        self.storage.makedirs()
        self._ensure_root_group()
        self.lock = CheckpointLock(self.storage.root) if (lock and self.storage.local) else None
        if self.lock is not None:
            self.lock.acquire()

    def _ensure_root_group(self) -> None:
        import zarr

        if not self.storage.exists("zarr.json"):
            root = zarr.open_group(store=self.storage.root, mode="a", zarr_format=3)
            root.attrs["streammix"] = {"kind": "checkpoint", "format_version": FORMAT_VERSION}

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def save(self, arrays: dict[str, np.ndarray], attrs: dict) -> int:
        """Write a complete new version, verify it, commit the pointer, prune; returns
        the new version number."""
        import zarr

        st = self.storage
        if self.lock is not None:
            self.lock.heartbeat()
        existing = list_versions(self.path)
        version = (existing[-1] if existing else 0) + 1
        name = version_name(version)
        checksums = {}
        arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        for k, a in arrays.items():
            if a.dtype.name not in _ALLOWED_DTYPES:
                raise CheckpointError(f"array {k!r} has dtype {a.dtype}, not storable")
            checksums[k] = array_checksum(a)
        meta = {
            "format_version": FORMAT_VERSION,
            "library_version": __version__,
            "version": version,
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "checksums": checksums,
            "state": attrs,
        }
        json.dumps(meta)  # fail early (nothing written) if the state is not plain JSON
        if st.local:
            staging = ("staging", f"{name}-{uuid.uuid4().hex[:8]}")
            st.makedirs(*staging)
            target = st.path(*staging)
        else:
            target = st.path(name)
        group = zarr.open_group(store=target, mode="w", zarr_format=3)
        for k, a in arrays.items():
            z = group.create_array(k, shape=a.shape, dtype=a.dtype,
                                   chunks=tuple(max(1, n) for n in a.shape))
            if a.size:
                z[...] = a
        group.attrs["streammix"] = meta
        _verify_group(zarr.open_group(store=target, mode="r"), f"{self.path}:{name}")
        if st.local:
            st.rename(staging, (name,))
        if before_commit is not None:
            before_commit()
        st.write_text_atomic(json.dumps({"version": version, "format_version": FORMAT_VERSION,
                                         "written_at": meta["written_at"]}), POINTER)
        self._prune(version)
        return version

    def _prune(self, current: int) -> None:
        st = self.storage
        for v in list_versions(self.path):
            if v <= current - self.keep_last:
                st.remove_tree(version_name(v))
        if st.local:
            for leftover in st.listdir("staging"):
                st.remove_tree("staging", leftover)


def _verify_group(group, where: str) -> tuple[dict[str, np.ndarray], dict]:
    """Read every array of a version group and check it against its recorded checksum."""
    meta = group.attrs.get("streammix")
    if not isinstance(meta, dict) or "checksums" not in meta:
        raise CheckpointCorruptError(f"{where}: not a streammix checkpoint version (no metadata)")
    fmt = meta.get("format_version")
    if not isinstance(fmt, int):
        raise CheckpointCorruptError(f"{where}: format_version missing or not an integer")
    if fmt > FORMAT_VERSION:
        raise CheckpointVersionError(
            f"{where} was written in checkpoint format {fmt} (streammix "
            f"{meta.get('library_version')}), newer than format {FORMAT_VERSION} that this "
            f"streammix {__version__} reads; upgrade streammix to load it"
        )
    arrays = {}
    expected = meta["checksums"]
    present = set(group.array_keys())
    missing = sorted(set(expected) - present)
    if missing:
        raise CheckpointCorruptError(f"{where}: arrays missing: {missing}")
    for k, digest in expected.items():
        try:
            a = group[k][...]
        except Exception as exc:  # truncated or undecodable chunk file
            raise CheckpointCorruptError(
                f"{where}: array {k!r} cannot be read ({type(exc).__name__}: {exc})"
            ) from None
        a = np.asarray(a)
        if array_checksum(a) != digest:
            raise CheckpointCorruptError(
                f"{where}: array {k!r} does not match its checksum (modified or damaged)"
            )
        arrays[k] = a
    return arrays, meta


def read_version(path, version: int | None = None) -> tuple[dict[str, np.ndarray], dict, int]:
    """(arrays, metadata, version number) of one verified version: ``version`` or the one
    CURRENT.json points to. Raises CheckpointCorruptError naming what is wrong."""
    import zarr

    st = Storage(path)
    if not st.exists():
        raise CheckpointError(f"no checkpoint at {path!r}")
    if version is None:
        version = current_version(path)
        if version is None:
            raise CheckpointCorruptError(
                f"checkpoint {path!r} has no pointer {POINTER} (never committed, or removed); "
                f"versions on disk: {list_versions(path)}; load one with load(path, version=N) "
                "or load(path, fallback=True)"
            )
    name = version_name(version)
    if not st.exists(name):
        raise CheckpointCorruptError(
            f"checkpoint {path!r}: version {version} does not exist; versions on disk: "
            f"{list_versions(path)}"
        )
    where = f"checkpoint {path!r} version {version}"
    try:
        group = zarr.open_group(store=st.path(name), mode="r")
    except Exception as exc:
        raise CheckpointCorruptError(f"{where}: cannot be opened ({type(exc).__name__}: {exc})"
                                     ) from None
    arrays, meta = _verify_group(group, where)
    return arrays, meta, version


def read_latest_good(path) -> tuple[dict[str, np.ndarray], dict, int]:
    """The newest version that verifies, trying the pointer first, then older versions:
    the documented fallback after a corrupted latest version."""
    errors = []
    candidates = []
    try:
        cur = current_version(path)
        if cur is not None:
            candidates.append(cur)
    except CheckpointCorruptError as exc:
        errors.append(str(exc))
    candidates += [v for v in reversed(list_versions(path)) if v not in candidates]
    for v in candidates:
        try:
            return read_version(path, v)
        except CheckpointVersionError:
            raise
        except CheckpointError as exc:
            errors.append(str(exc))
    raise CheckpointCorruptError(
        f"no loadable version in checkpoint {path!r}: " + " | ".join(errors or ["empty"])
    )


def repair(path) -> tuple[int | None, int, list[str]]:
    """Point CURRENT.json at the newest version that verifies, under the writer's lock:
    the way out after a damaged latest version or a lost pointer (a fit or an update
    then resumes from that version). Damaged versions stay on disk for inspection.
    Returns (the version pointed to before, or None; the version pointed to now; the
    problems found in the versions skipped). Raises CheckpointCorruptError if no version
    verifies."""
    st = Storage(path)
    if not st.exists() or not (list_versions(path) or st.exists(POINTER)):
        raise CheckpointError(f"no checkpoint at {path!r}")
    with CheckpointWriter(path, keep_last=1_000_000):
        try:
            before = current_version(path)
        except CheckpointCorruptError:
            before = None
        problems = []
        for v in reversed(list_versions(path)):
            try:
                read_version(path, v)
            except CheckpointVersionError:
                raise
            except CheckpointError as exc:
                problems.append(str(exc))
                continue
            if v != before:
                st.write_text_atomic(json.dumps({"version": v, "format_version": FORMAT_VERSION,
                                                 "written_at": time.strftime(
                                                     "%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                                 "repaired": True}), POINTER)
            return before, v, problems
    raise CheckpointCorruptError(f"no version of checkpoint {path!r} verifies: "
                                 + " | ".join(problems or ["no versions"]))
