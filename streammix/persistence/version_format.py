"""The bytes of one checkpoint version: a Zarr v3 group of uncompressed single-chunk
arrays, and a manifest that covers every one of its files.

A version is written as plain files (no zarr calls on the hot path: a save of a small
model costs a few files, not zarr's per-array machinery) and stays readable with plain
``zarr.open_group``. Its ``MANIFEST.json`` lists every file with its size and SHA-256
and carries a digest of that list; it is written last and checked first, so array data,
array metadata and the group's attributes (the JSON state) are all verified before any
of them is interpreted. A version that passes is then parsed defensively: anything
unexpected is a ``CheckpointCorruptError`` naming the version and the file, never a
raw zarr, JSON or numpy error.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np

from ..errors import CheckpointCorruptError

MANIFEST = "MANIFEST.json"
GROUP_META = "zarr.json"
#: dtypes a checkpoint stores (zarr v3 data type names = numpy names)
ALLOWED_DTYPES = {"float64", "float32", "int64", "int32", "uint32", "bool", "uint8"}
#: one file per chunk key at the array's root ("c.0.0"), not nested folders ("c/0/0")
_CHUNK_KEY_ENCODING = {"name": "default", "configuration": {"separator": "."}}


def sha256(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(doc) -> bytes:
    """The one byte form of a JSON document that digests are taken over."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def chunk_key(ndim: int) -> str:
    """The file name of the single chunk of an array with ``ndim`` dimensions."""
    return ".".join(["c"] + ["0"] * max(ndim, 1)) if ndim else "c"


def _fill_value(dtype: np.dtype):
    return False if dtype.kind == "b" else (0.0 if dtype.kind == "f" else 0)


def array_metadata(a: np.ndarray) -> dict:
    """The zarr v3 ``zarr.json`` of an uncompressed array stored as one chunk."""
    codec: dict = {"name": "bytes"}
    if a.dtype.itemsize > 1:
        codec["configuration"] = {"endian": "little"}
    return {"zarr_format": 3, "node_type": "array", "shape": list(a.shape),
            "data_type": a.dtype.name,
            "chunk_grid": {"name": "regular",
                           "configuration": {"chunk_shape": [max(1, n) for n in a.shape]}},
            "chunk_key_encoding": _CHUNK_KEY_ENCODING, "fill_value": _fill_value(a.dtype),
            "codecs": [codec], "attributes": {}, "storage_transformers": []}


def group_metadata(attributes: dict) -> dict:
    return {"zarr_format": 3, "node_type": "group", "attributes": attributes}


def encode_version(arrays: dict[str, np.ndarray], attributes: dict
                   ) -> list[tuple[str, bytes]]:
    """(relative path, bytes) of every file of a version, data and metadata first; the
    manifest is not among them (see ``manifest_for``)."""
    files: list[tuple[str, bytes]] = []
    for name, a in arrays.items():
        if a.dtype.name not in ALLOWED_DTYPES:
            raise CheckpointCorruptError(f"array {name!r} has dtype {a.dtype}, not storable")
        if not _valid_name(name):
            raise CheckpointCorruptError(f"array name {name!r} cannot be stored")
        little = a.astype(a.dtype.newbyteorder("<"), copy=False) if a.dtype.byteorder == ">" \
            else a
        if a.size:
            files.append((f"{name}/{chunk_key(a.ndim)}", np.ascontiguousarray(little).tobytes()))
        files.append((f"{name}/zarr.json", json.dumps(array_metadata(a)).encode()))
    files.append((GROUP_META, json.dumps(group_metadata(attributes)).encode()))
    return files


def manifest_for(files: list[tuple[str, bytes]], info: dict) -> bytes:
    """The manifest of ``files``: each one's size and SHA-256, ``info`` (version,
    format, finished...), and a digest over all of it."""
    body = {**info, "files": {path: [len(data), sha256(data)] for path, data in files}}
    return json.dumps({**body, "digest": sha256(canonical_json(body))},
                      sort_keys=True).encode()


def parse_manifest(data: bytes, where: str) -> dict:
    """The manifest's content, after checking its own digest."""
    try:
        doc = json.loads(data)
        body = {k: v for k, v in doc.items() if k != "digest"}
        ok = isinstance(doc["digest"], str) and isinstance(body["files"], dict) and all(
            isinstance(p, str) and isinstance(e, list) and len(e) == 2
            for p, e in body["files"].items())
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        ok = False
    if not ok:
        raise CheckpointCorruptError(f"{where}: file {MANIFEST} is unreadable (damaged)")
    if sha256(canonical_json(body)) != doc["digest"]:
        raise CheckpointCorruptError(f"{where}: file {MANIFEST} does not match its own "
                                     "digest (damaged or modified)")
    return body


def check_file(path: str, data: bytes | None, entry: list, where: str) -> None:
    """Raise unless ``data`` (None: the file is missing) is the file the manifest lists."""
    if data is None:
        raise CheckpointCorruptError(f"{where}: file {path} is missing")
    size, digest = entry
    if len(data) != size:
        raise CheckpointCorruptError(f"{where}: file {path} has {len(data)} bytes, the "
                                     f"manifest says {size} (truncated or damaged)")
    if sha256(data) != digest:
        raise CheckpointCorruptError(f"{where}: file {path} does not match its checksum in "
                                     f"the manifest (damaged or modified)")


def decode_version(files: dict[str, bytes], where: str) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, group attributes) from a version's verified files."""
    group = _json(files, GROUP_META, where)
    if group.get("node_type") != "group" or not isinstance(group.get("attributes"), dict):
        raise CheckpointCorruptError(f"{where}: file {GROUP_META} is not a zarr group")
    arrays = {}
    for path in files:
        if path.endswith("/zarr.json"):
            name = path[: -len("/zarr.json")]
            arrays[name] = _decode_array(files, name, where)
    return arrays, group["attributes"]


def _json(files: dict[str, bytes], path: str, where: str) -> dict:
    try:
        doc = json.loads(files[path])
    except KeyError:
        raise CheckpointCorruptError(f"{where}: file {path} is missing") from None
    except (ValueError, UnicodeDecodeError):
        raise CheckpointCorruptError(f"{where}: file {path} is not JSON") from None
    if not isinstance(doc, dict):
        raise CheckpointCorruptError(f"{where}: file {path} is not a JSON object")
    return doc


def _decode_array(files: dict[str, bytes], name: str, where: str) -> np.ndarray:
    meta_path = f"{name}/zarr.json"
    meta = _json(files, meta_path, where)
    try:
        shape = tuple(int(n) for n in meta["shape"])
        dtype = np.dtype(meta["data_type"])
        ok = (meta.get("node_type") == "array" and dtype.name in ALLOWED_DTYPES
              and all(n >= 0 for n in shape)
              and meta["chunk_grid"]["configuration"]["chunk_shape"]
              == [max(1, n) for n in shape]
              and meta["chunk_key_encoding"] == _CHUNK_KEY_ENCODING
              and [c["name"] for c in meta["codecs"]] == ["bytes"]
              and meta["codecs"][0].get("configuration", {}).get("endian", "little")
              == "little")
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        ok = False
    if not ok:
        raise CheckpointCorruptError(f"{where}: file {meta_path} is not the metadata of an "
                                     "array streammix writes (damaged or modified)")
    size = math.prod(shape)
    if size == 0:
        return np.zeros(shape, dtype=dtype)
    chunk = files.get(f"{name}/{chunk_key(len(shape))}")
    if chunk is None or len(chunk) != size * dtype.itemsize:
        raise CheckpointCorruptError(f"{where}: array {name!r}: its chunk file "
                                     f"{name}/{chunk_key(len(shape))} is missing or has the "
                                     "wrong size")
    return np.frombuffer(chunk, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)


def _valid_name(name: str) -> bool:
    parts = name.split("/")
    return bool(name) and len(parts) == 1 and not name.startswith("__") \
        and name not in (".", "..") and name != MANIFEST and name != GROUP_META
