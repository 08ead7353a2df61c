"""Versioned, verified, crash-safe checkpoints as a Zarr v3 group.

Layout of a checkpoint at ROOT (every part readable with plain zarr and json):

    ROOT/zarr.json            the root group; attrs["streammix"] = {"kind": "checkpoint"}
    ROOT/v000007/             one complete version: a zarr group of plain arrays whose
                              attrs hold the JSON state, and MANIFEST.json, the size and
                              SHA-256 of every other file of the version (written last)
    ROOT/CURRENT.json         the pointer: {"version": 7, "manifest_sha256": ...},
                              replaced atomically, last
    ROOT/LOCK                 the writer lock while a writer is active
    ROOT/staging/             versions being written (local paths), renamed when durable

A save writes the new version's files under staging/, makes them durable (fdatasync of
every file, fsync of every folder), renames the folder to vNNNNNN, then replaces
CURRENT.json, and only then deletes versions older than the last ``keep_last`` (keeping
the newest finished model as long as the kept ones hold none). A crash at any point
leaves CURRENT.json on the previous complete version. A load checks the pointer's digest
of the manifest, the manifest's own digest, then every file against it, before it
interprets a byte. No pickle anywhere: loading parses JSON and reads numeric arrays, so
an untrusted checkpoint can at worst fail to load.
"""

from __future__ import annotations

import json
import os
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
from . import version_format as fmt
from .lock import CheckpointLock, dead_temporary
from .markers import foreign_entries, is_checkpoint_root_group, lists_a_checkpoint
from .storage import Storage

FORMAT_VERSION = 2
POINTER = "CURRENT.json"
_VERSION_RE = re.compile(r"^v(\d{6,})$")
#: leftovers of a killed writer (pointer and lock temporaries) older than this are removed
_STALE_TMP_SECONDS = 60.0

#: called between writing a version and committing the pointer (tests use it to kill a
#: process in the middle of a save)
before_commit: Callable[[], None] | None = None


def _shown(path) -> str:
    """A checkpoint path as messages show it (a str, not a PosixPath repr)."""
    return os.fspath(path) if isinstance(path, os.PathLike) else str(path)


def version_name(v: int) -> str:
    return f"v{v:06d}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def is_finished_state(state: dict) -> bool:
    """Whether a version's state is a finished model: fitted, and not a batch fit whose
    progress says it is still running (or was interrupted)."""
    prog = state.get("fit_progress")
    if not state.get("fitted") or (prog is not None and not prog.get("done")):
        return False
    # an online model's fit() over data marks its passes in the cursor (partial_fit
    # updates and stream cursors carry no "pass": every update is a finished model)
    cursor = (state.get("online") or {}).get("cursor")
    return not (isinstance(cursor, dict) and "pass" in cursor and not cursor.get("done"))


def list_versions(path) -> list[int]:
    """The version numbers present at ``path`` (complete or not), ascending."""
    st = Storage(path)
    return sorted(int(m.group(1)) for m in map(_VERSION_RE.match, st.listdir()) if m)


def _pointer_document(version: int, manifest_digest: str, finished: bool, **extra) -> str:
    body = {"version": version, "format_version": FORMAT_VERSION,
            "manifest_sha256": manifest_digest, "finished": finished,
            "written_at": _now(), **extra}
    return json.dumps({**body, "digest": fmt.sha256(fmt.canonical_json(body))})


def read_pointer(path) -> dict | None:
    """The pointer document, or None when there is none; CheckpointCorruptError when it
    is damaged (not JSON, no version, or not matching its own digest)."""
    st = Storage(path)
    data = st.read_bytes(POINTER)
    if data is None:
        return None
    where = f"checkpoint {_shown(path)!r}"
    try:
        doc = json.loads(data)
        version = int(doc["version"])
        if version < 1:
            raise ValueError("version < 1")
        if "digest" in doc:  # format 2; format 1 pointers carried no digest
            body = {k: v for k, v in doc.items() if k != "digest"}
            if fmt.sha256(fmt.canonical_json(body)) != doc["digest"]:
                raise ValueError("it does not match its own digest")
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise CheckpointCorruptError(
            f"{where}: the pointer file {POINTER} is damaged ({exc}); versions on disk: "
            f"{list_versions(path)}; `streammix repair` (or persistence.repair) points it "
            "at the newest version that verifies"
        ) from None
    return doc


def current_version(path) -> int | None:
    """The version CURRENT.json points to, or None when there is no pointer."""
    doc = read_pointer(path)
    return None if doc is None else int(doc["version"])


class CheckpointWriter:
    """Writes successive versions of one checkpoint, holding its lock throughout.

    A writer that created the checkpoint's folder and committed nothing removes what it
    made when it closes (a first fit that fails leaves no empty checkpoint behind)."""

    def __init__(self, path, keep_last: int = 3, lock: bool = True):
        if keep_last < 1:
            raise CheckpointError("keep_last must be at least 1")
        self.path = path
        self.storage = Storage(path)
        self.keep_last = keep_last
        self._made_root = self.storage.local and not os.path.exists(self.storage.root)
        names = self.storage.listdir()
        self._created = not names  # nothing of a checkpoint there yet
        self._refuse_a_foreign_folder(path, names)
        self.committed: list[int] = []
        self.lock = None
        try:
            self.storage.makedirs()
            if lock and self.storage.local:
                self.lock = CheckpointLock(self.storage.root)
                self.lock.acquire()
            self._ensure_root_group()
            self._remove_leftovers()
        except OSError as exc:
            self.close()
            raise CheckpointError(
                f"checkpoint {_shown(path)!r}: cannot be opened for writing ({exc})"
                + self._still_holds()) from exc
        except BaseException:
            self.close()
            raise

    def _refuse_a_foreign_folder(self, path, names: list[str]) -> None:
        """A checkpoint goes to a new or empty folder, or to a checkpoint: never into a
        folder of someone else's files (its versions and pruning would mix with them,
        and a report or predictions could no longer tell it from a checkpoint)."""
        if not names or lists_a_checkpoint(names):
            return
        if "zarr.json" in names:
            if is_checkpoint_root_group(self.storage.read_bytes("zarr.json")):
                return  # a checkpoint that holds no version yet
            names = [*names, "zarr.json (another Zarr group or array)"]
        others = foreign_entries(names)
        if others:
            shown = ", ".join(repr(n) for n in others[:3]) + (", ..." if len(others) > 3
                                                              else "")
            raise CheckpointError(
                f"checkpoint {_shown(path)!r} is a folder holding files that are not a "
                f"streammix checkpoint's ({shown}): refusing to write a checkpoint among "
                "them; choose a new or empty folder")

    def _still_holds(self) -> str:
        try:
            v = current_version(self.path)
        except CheckpointError:
            v = None
        return "" if v is None else f"; the checkpoint still holds version {v}"

    def _ensure_root_group(self) -> None:
        st = self.storage
        if st.read_bytes("zarr.json") is None:
            st.write_text_atomic(json.dumps(fmt.group_metadata(
                {"streammix": {"kind": "checkpoint", "format_version": FORMAT_VERSION}})),
                "zarr.json")

    def _remove_leftovers(self) -> None:
        """Temporaries of killed writers: staged versions and pointer temporaries (only a
        lock holder writes those), and lock temporaries older than a minute."""
        st = self.storage
        if not st.local:
            return
        for leftover in st.listdir("staging"):
            st.remove_tree("staging", leftover)
        now = time.time()
        for name in st.listdir():
            if not name.endswith(".tmp"):
                continue
            full = st.path(name)
            try:
                old = now - os.path.getmtime(full) > _STALE_TMP_SECONDS
            except OSError:
                continue
            if name.startswith((POINTER + ".", "zarr.json.")) or dead_temporary(name) or old:
                st.remove(name)  # only a lock holder writes the pointer and root group

    def close(self) -> None:
        if self._created and not self.committed and not list_versions(self.path):
            self._remove_own_files()
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        if self._made_root and not self.committed:
            try:
                os.rmdir(self.storage.root)  # only if nothing else is in it
            except OSError:
                pass

    def _remove_own_files(self) -> None:
        st = self.storage
        if st.local:
            st.remove_tree("staging")
            st.remove("zarr.json")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def save(self, arrays: dict[str, np.ndarray], attrs: dict) -> int:
        """Write a complete new version, make it durable, commit the pointer, prune;
        returns the new version number. On failure (disk full, permissions...) the
        previous version stays current and CheckpointError says why."""
        st = self.storage
        if self.lock is not None:
            self.lock.heartbeat()
        existing = list_versions(self.path)
        version = (existing[-1] if existing else 0) + 1
        name = version_name(version)
        finished = is_finished_state(attrs)
        arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        meta = {"format_version": FORMAT_VERSION, "library_version": __version__,
                "version": version, "written_at": _now(), "finished": finished,
                "state": attrs}
        try:
            files = fmt.encode_version(arrays, {"streammix": meta})
        except (TypeError, ValueError) as exc:  # not plain JSON: nothing written
            raise CheckpointError(f"checkpoint {_shown(self.path)!r}: the model's state cannot be "
                                  f"saved ({exc})") from None
        manifest = fmt.manifest_for(files, {"format_version": FORMAT_VERSION,
                                            "version": version, "finished": finished})
        staging = ("staging", f"{name}-{uuid.uuid4().hex[:8]}") if st.local else (name,)
        try:
            if st.local:
                st.write_files_durably(files + [(fmt.MANIFEST, manifest)], *staging)
                st.rename(staging, (name,))
            else:  # in place; the manifest last, the pointer after it
                st.write_files_durably(files, name)
                st.write_files_durably([(fmt.MANIFEST, manifest)], name)
        except OSError as exc:
            if st.local:
                st.remove_tree(*staging)
            raise CheckpointError(
                f"checkpoint {_shown(self.path)!r}: could not write version {version} ({exc})"
                + (self._still_holds() or "; nothing was committed")
            ) from exc
        if before_commit is not None:
            before_commit()
        self._commit(version, fmt.sha256(manifest), finished)
        self.committed.append(version)
        self._prune(version)
        return version

    def _commit(self, version: int, manifest_digest: str, finished: bool, **extra) -> None:
        try:
            self.storage.write_text_atomic(
                _pointer_document(version, manifest_digest, finished, **extra), POINTER)
        except OSError as exc:
            raise CheckpointError(
                f"checkpoint {_shown(self.path)!r}: version {version} was written but the pointer "
                f"{POINTER} could not be replaced ({exc})"
                + (self._still_holds() or "; nothing was committed")
            ) from exc

    def recommit(self, version: int, **extra) -> None:
        """Point CURRENT.json at an existing version that verifies (after a lost or
        damaged pointer), under this writer's lock."""
        manifest = self.storage.read_bytes(version_name(version), fmt.MANIFEST)
        if manifest is None:  # a format 1 version: no manifest to pin
            _, meta, _ = read_version(self.path, version)
            finished, digest = is_finished_state(meta["state"]), ""
        else:
            info = fmt.parse_manifest(manifest, f"checkpoint {_shown(self.path)!r} version {version}")
            finished, digest = bool(info.get("finished")), fmt.sha256(manifest)
        self._commit(version, digest, finished, **extra)

    def resume(self) -> tuple[dict[str, np.ndarray], dict, int] | None:
        """What a fit or an update continues from: the pointer's version (a damaged one
        raises CheckpointCorruptError, for `repair` to handle); without a pointer, the
        newest version that verifies, and the pointer is restored to it; None for a
        checkpoint with no version."""
        if read_pointer(self.path) is not None:
            return read_version(self.path)
        if not list_versions(self.path):
            return None
        arrays, meta, v = read_latest_good(self.path)
        self.recommit(v, restored=True)
        return arrays, meta, v

    def _prune(self, current: int) -> None:
        st = self.storage
        kept = [v for v in list_versions(self.path) if v > current - self.keep_last]
        older = [v for v in list_versions(self.path) if v <= current - self.keep_last]
        spare = None
        if older and not any(_manifest_says_finished(st, v) for v in kept):
            spare = next((v for v in reversed(older) if _manifest_says_finished(st, v)), None)
        for v in older:
            if v != spare:  # out of the listing in one step, then deleted
                trash = ("staging", f"pruned-{version_name(v)}-{uuid.uuid4().hex[:8]}")
                st.discard_tree(trash, version_name(v))


def _manifest_says_finished(st: Storage, v: int) -> bool:
    data = st.read_bytes(version_name(v), fmt.MANIFEST)
    if data is None:
        return False
    try:
        return bool(json.loads(data).get("finished"))
    except (ValueError, AttributeError, UnicodeDecodeError):
        return False


def _check_meta(meta, where: str) -> dict:
    """The version's streammix attributes, checked for what every reader relies on."""
    if not isinstance(meta, dict) or not isinstance(meta.get("state"), dict):
        raise CheckpointCorruptError(f"{where}: not a streammix checkpoint version (no "
                                     "state in its attributes)")
    version = meta.get("format_version")
    if not isinstance(version, int):
        raise CheckpointCorruptError(f"{where}: format_version missing or not an integer")
    if version > FORMAT_VERSION:
        raise CheckpointVersionError(
            f"{where} was written in checkpoint format {version} (streammix "
            f"{meta.get('library_version')}), newer than format {FORMAT_VERSION} that this "
            f"streammix {__version__} reads; upgrade streammix to load it"
        )
    return meta


def _raise_if_not_a_checkpoint(st: Storage, path) -> None:
    """A clear error for a path that never was a checkpoint (a Zarr data array, another
    folder), instead of calling it a damaged one."""
    from .markers import is_checkpoint_root_group

    if list_versions(path) or is_checkpoint_root_group(st.read_bytes("zarr.json")):
        return
    what = ("a Zarr array or group (data?)" if st.exists("zarr.json")
            else "a folder no fit or save wrote")
    raise CheckpointError(
        f"{_shown(path)!r} is not a streammix checkpoint: it is {what}. Give the path a "
        "fit(checkpoint=...), save() or a CLI job's checkpoint wrote")


def read_version(path, version: int | None = None) -> tuple[dict[str, np.ndarray], dict, int]:
    """(arrays, metadata, version number) of one verified version: ``version`` or the one
    CURRENT.json points to. Raises CheckpointCorruptError naming the version and file."""
    st = Storage(path)
    if not st.exists():
        raise CheckpointError(f"no checkpoint at {_shown(path)!r}")
    expected_manifest = None
    if version is None:
        pointer = read_pointer(path)
        if pointer is None:
            _raise_if_not_a_checkpoint(st, path)
            raise CheckpointCorruptError(
                f"checkpoint {_shown(path)!r} has no pointer {POINTER} (never committed, or removed); "
                f"versions on disk: {list_versions(path)}; load one with load(path, version=N) "
                "or load(path, fallback=True)"
            )
        version = int(pointer["version"])
        expected_manifest = pointer.get("manifest_sha256") or None
    name = version_name(version)
    if not st.exists(name):
        raise CheckpointCorruptError(
            f"checkpoint {_shown(path)!r}: version {version} does not exist; versions on disk: "
            f"{list_versions(path)}"
        )
    where = f"checkpoint {_shown(path)!r} version {version}"
    manifest = st.read_bytes(name, fmt.MANIFEST)
    if manifest is None:
        legacy = _legacy_format(st, name)
        if legacy:
            arrays, meta = _read_format1(st.path(name), where)
            return arrays, meta, version
        raise CheckpointCorruptError(f"{where}: file {fmt.MANIFEST} is missing")
    if expected_manifest is not None and fmt.sha256(manifest) != expected_manifest:
        raise CheckpointCorruptError(f"{where}: file {fmt.MANIFEST} does not match the "
                                     f"digest recorded in {POINTER} (damaged or modified)")
    info = fmt.parse_manifest(manifest, where)
    if isinstance(info.get("format_version"), int) and info["format_version"] > FORMAT_VERSION:
        _check_meta({"format_version": info["format_version"], "state": {}}, where)
    if info.get("version") != version:
        raise CheckpointCorruptError(f"{where}: file {fmt.MANIFEST} belongs to version "
                                     f"{info.get('version')} (copied or moved)")
    files = {}
    for rel, entry in info["files"].items():
        if not isinstance(rel, str) or ".." in rel.split("/") or rel.startswith("/"):
            raise CheckpointCorruptError(f"{where}: file {fmt.MANIFEST} lists a path "
                                         f"outside the version: {rel!r}")
        data = st.read_bytes(name, *rel.split("/"))
        fmt.check_file(rel, data, entry, where)
        files[rel] = data
    arrays, attrs = fmt.decode_version(files, where)
    meta = _check_meta(attrs.get("streammix"), where)
    return arrays, meta, version


def _legacy_format(st: Storage, name: str) -> bool:
    """Whether a version without a manifest says it was written in format 1."""
    data = st.read_bytes(name, "zarr.json")
    try:
        return json.loads(data)["attributes"]["streammix"]["format_version"] == 1
    except (TypeError, ValueError, KeyError, UnicodeDecodeError):
        return False


def _read_format1(target: str, where: str) -> tuple[dict[str, np.ndarray], dict]:
    """A version written by streammix before manifests: every array checked against its
    SHA-256 (its metadata is not covered; a re-save upgrades it)."""
    import hashlib

    import zarr

    try:
        group = zarr.open_group(store=target, mode="r")
        meta = _check_meta(group.attrs.get("streammix"), where)
        expected = meta["checksums"]
        present = set(group.array_keys())
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointCorruptError(f"{where}: cannot be opened ({type(exc).__name__}: "
                                     f"{exc})") from None
    missing = sorted(set(expected) - present)
    if missing:
        raise CheckpointCorruptError(f"{where}: arrays missing: {missing}")
    arrays = {}
    for k, digest in expected.items():
        try:
            a = np.ascontiguousarray(group[k][...])
        except Exception as exc:  # truncated or undecodable chunk file
            raise CheckpointCorruptError(
                f"{where}: array {k!r} cannot be read ({type(exc).__name__}: {exc})"
            ) from None
        h = hashlib.sha256()
        h.update(f"{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
        if h.hexdigest() != digest:
            raise CheckpointCorruptError(
                f"{where}: array {k!r} does not match its checksum (modified or damaged)"
            )
        arrays[k] = a
    return arrays, meta


def read_latest_good(path, finished: bool = False) -> tuple[dict[str, np.ndarray], dict, int]:
    """The newest version that verifies (with ``finished``: that holds a finished model),
    trying the pointer's version first, then the others from the newest: the documented
    fallback after a damaged latest version or a lost pointer."""
    errors = []
    cur = None
    try:
        cur = current_version(path)
    except CheckpointCorruptError as exc:
        errors.append(str(exc))
    newest_first = list(reversed(list_versions(path)))
    if finished:  # the newest finished one in the committed history (not past the pointer)
        candidates = [v for v in newest_first if cur is None or v <= cur]
    else:  # the pointer's version first
        candidates = ([cur] if cur is not None else []) + [v for v in newest_first if v != cur]
    for v in candidates:
        try:
            arrays, meta, got = read_version(path, v)
        except CheckpointVersionError:
            raise
        except CheckpointError as exc:
            errors.append(str(exc))
            continue
        if finished and not is_finished_state(meta["state"]):
            errors.append(f"version {v} holds a fit in progress")
            continue
        return arrays, meta, got
    what = "finished model" if finished else "loadable version"
    raise CheckpointCorruptError(
        f"no {what} in checkpoint {_shown(path)!r}: " + " | ".join(errors or ["empty"])
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
        raise CheckpointError(f"no checkpoint at {_shown(path)!r}")
    with CheckpointWriter(path, keep_last=1_000_000) as writer:
        try:
            before = current_version(path)
            pointer_ok = True
        except CheckpointCorruptError:
            before, pointer_ok = None, False
        problems = []
        for v in reversed(list_versions(path)):
            try:
                read_version(path, v)
                if v == before:  # the pointer's own check (its manifest digest)
                    read_version(path)
            except CheckpointVersionError:
                raise
            except CheckpointError as exc:
                problems.append(str(exc))
                continue
            if v != before or not pointer_ok:
                writer.recommit(v, repaired=True)
            return before, v, problems
    raise CheckpointCorruptError(f"no version of checkpoint {_shown(path)!r} verifies: "
                                 + " | ".join(problems or ["no versions"]))
