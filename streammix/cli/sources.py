"""The configured data source as a lazy dask array (fit, predict, score, select), and as a
sequence of not-yet-consumed batches behind a cursor (update).

Source types: ``zarr`` (a path or URL to a Zarr array), ``npy`` (a .npy file, read by
memory map, chunk by chunk), ``directory`` (every file matching ``pattern``, in name
order: .npy files or Zarr arrays, concatenated by rows) and ``parquet`` (a file or
directory dask.dataframe reads; ``columns`` picks the features, cast to float64).
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from ..errors import InvalidDtypeError, InvalidInputError
from .config import Config, ConfigError, check_source_exists


NPY_MAGIC = b"\x93NUMPY"
#: the dtype kinds source.dtype may cast (bool, integers, floats)
_CASTABLE = "buif"
_KIND_NAMES = {"i": "an integer", "u": "an unsigned integer", "b": "a boolean",
               "O": "an object", "U": "a string", "S": "a bytes", "c": "a complex",
               "V": "a structured", "M": "a datetime", "m": "a timedelta"}


def check_float_dtype(dtype, where: str) -> None:
    """Refuse data that are not floating point, the same way for every command (`fit`,
    `update`, `predict`, ...); the command line adds how source.dtype casts them."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise InvalidDtypeError(
            f"{where} has {_KIND_NAMES.get(dtype.kind, 'a non-float')} dtype ({dtype}); "
            "streammix reads float32 or float64 data")


def check_source_dtype(found, where: str, dtype: str | None) -> None:
    """Whether data of dtype ``found`` can be read: floating point, or castable to
    source.dtype (``dtype``) when it is set."""
    found = np.dtype(found)
    if dtype is None:
        check_float_dtype(found, where)
    elif found.kind not in _CASTABLE:
        raise InvalidDtypeError(f"{where} has {_KIND_NAMES.get(found.kind, 'a')} dtype "
                                f"({found}), which source.dtype: {dtype} cannot cast")


def as_float(X, where: str, dtype: str | None):
    """A lazy (dask) array of the source as floating-point data: cast to ``dtype``
    (source.dtype) chunk by chunk when it is set, else refused unless it already is."""
    check_source_dtype(X.dtype, where, dtype)
    return X if dtype is None or X.dtype == dtype else X.astype(dtype)


def _npy_rows(path: str, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) of a .npy file, read through a memory map (a task's body)."""
    return np.array(np.load(path, mmap_mode="r")[start:stop])


def npy_header(path: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from a .npy file's header, read without unpickling anything: a
    file that is not a .npy array (random bytes, a pickle, a .npz archive) or that
    holds Python objects is refused with an error naming the file."""
    from numpy.lib import format as npy_format

    try:
        with open(path, "rb") as f:
            start = f.read(len(NPY_MAGIC))
            if start != NPY_MAGIC:
                what = ("a .npz archive of several arrays (np.savez), not a single array"
                        if start[:2] == b"PK" else "no .npy header: another format, or a "
                        "damaged file")
                raise InvalidInputError(f"{path}: not a .npy array file ({what}); save the "
                                        "data with numpy.save")
            f.seek(0)
            version = npy_format.read_magic(f)
            read = (npy_format.read_array_header_1_0 if version == (1, 0)
                    else npy_format.read_array_header_2_0)
            shape, _, dtype = read(f)
    except InvalidInputError:
        raise
    except (ValueError, OSError) as exc:
        raise InvalidInputError(f"{path}: not a readable .npy array file: {exc}") from None
    if dtype.hasobject:
        raise InvalidInputError(
            f"{path}: holds Python objects (dtype {dtype}): object arrays are refused "
            "(reading them would unpickle code); save a numeric array, e.g. "
            "numpy.save(path, X.astype('float64'))")
    return shape, dtype


def _npy_shape(path: str) -> tuple[tuple[int, ...], np.dtype]:
    shape, dtype = npy_header(path)
    try:
        mm = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:  # e.g. a truncated file
        raise InvalidInputError(f"{path}: not a readable .npy array file: {exc}") from None
    return mm.shape, mm.dtype


def npy_dask_array(path: str, chunk_rows: int):
    """A .npy file as a dask array of row chunks; each task memory-maps the file, so
    the graph never carries the data (works on any worker that sees the path)."""
    import dask
    import dask.array as da

    shape, dtype = _npy_shape(path)
    if len(shape) != 2:
        raise InvalidInputError(f"{path}: expected a 2-D array (n_samples, n_features); "
                                f"got shape {shape}")
    n, d = shape
    load = dask.delayed(_npy_rows, pure=True)
    parts = [da.from_delayed(load(path, a, min(a + chunk_rows, n)),
                             shape=(min(a + chunk_rows, n) - a, d), dtype=dtype)
             for a in range(0, n, chunk_rows)]
    if not parts:
        raise InvalidInputError(f"{path}: the array has no rows")
    return da.concatenate(parts, axis=0)


def list_files(directory: str, pattern: str) -> list[str]:
    """Names in ``directory`` matching ``pattern``, in name order (the stream order)."""
    try:
        names = os.listdir(directory)
    except NotADirectoryError:
        raise InvalidInputError(f"source.path {directory!r} is not a directory") from None
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern) and not n.startswith("."))


def zarr_dask_array(path: str, what: str, dtype: str | None = None,
                    storage_options: dict | None = None):
    """A Zarr array (path or URL) as a validated dask array with one task per chunk,
    cast to ``dtype`` chunk by chunk when it is set (never read whole)."""
    from ..execution.inputs import as_dask_array, open_zarr_array, read_zarr

    z = open_zarr_array(path, what, storage_options)
    if len(z.shape) != 2:
        raise InvalidInputError(f"{what} must be a 2-D array (n_samples, n_features); the "
                                f"Zarr array has shape {z.shape}")
    return as_dask_array(as_float(read_zarr(z, what), what, dtype), what=what)


def file_array(path: str, chunk_rows: int, dtype: str | None = None):
    """One file of a directory source: a .npy file or a Zarr array, as a dask array
    (cast to ``dtype`` when set; otherwise refused unless floating point)."""
    if path.endswith(".npy"):
        return as_float(npy_dask_array(path, chunk_rows), path, dtype)
    return zarr_dask_array(path, path, dtype)


def parquet_dask_array(path: str, columns: list[str] | None, chunk_rows: int):
    """Feature columns of a parquet dataset as a float64 dask array in chunks of
    ``chunk_rows`` rows (the row groups' sizes are read first)."""
    try:
        import dask.dataframe as dd
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError("parquet sources need pandas and pyarrow: "
                          "pip install 'streammix[parquet]'") from exc
    try:
        df = dd.read_parquet(path, columns=columns)
    except (KeyError, ValueError) as exc:
        raise InvalidInputError(f"{path}: cannot read columns {columns}: {exc}") from None
    if columns is None:
        df = df.select_dtypes("number")
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    non_numeric = [c for c, t in df.dtypes.items()
                   if not is_numeric_dtype(t) or is_bool_dtype(t)]
    if non_numeric:
        raise InvalidInputError(f"{path}: columns {non_numeric} are not numeric")
    if len(df.columns) == 0:
        raise InvalidInputError(f"{path}: no numeric columns to use as features")
    return df.astype("float64").to_dask_array(lengths=True).rechunk({0: chunk_rows, 1: -1})


def open_source(cfg: Config):
    """The configured source as a lazy 2-D floating-point dask array (nothing is read
    but metadata): cast chunk by chunk to source.dtype when it is set; otherwise data
    that are not floating point are refused (InvalidDtypeError) by every command."""
    import dask.array as da

    src = cfg.source
    check_source_exists(cfg)
    kind, path, rows, dtype = src["type"], src["path"], src["chunk_rows"], src.get("dtype")
    if kind == "zarr":
        if os.path.isfile(path):
            raise InvalidInputError(f"{cfg.path}: source.path {path!r} is a file, not a Zarr "
                                    "array (a directory); for a .npy file set source.type: npy")
        return zarr_dask_array(path, f"source.path {path!r}", dtype,
                               storage_options=src.get("storage_options"))
    if kind == "npy":
        return as_float(npy_dask_array(path, rows), path, dtype)
    if kind == "parquet":
        return as_float(parquet_dask_array(path, src.get("columns"), rows), path, dtype)
    files = list_files(path, src["pattern"])
    if not files:
        raise InvalidInputError(f"{cfg.path}: source.path {path!r} holds no file matching "
                                f"{src['pattern']!r}")
    arrays = [file_array(os.path.join(path, f), rows, dtype) for f in files]
    widths = {a.shape[1] for a in arrays if a.ndim == 2}
    if len(widths) > 1 or any(a.ndim != 2 for a in arrays):
        raise InvalidInputError(f"{path}: the files do not all have the same number of "
                                f"columns ({sorted(widths)})")
    return da.concatenate(arrays, axis=0)


def persisted(X, cfg: Config, client, log):
    """X with its chunks decoded once and held in memory (in the workers' memory on a
    cluster) when source.persist is set: the EM passes then skip the re-reads."""
    if not cfg.source.get("persist"):
        return X
    import time

    from distributed import wait

    t0 = time.perf_counter()
    if client is not None:
        X = client.persist(X)
        with client.as_current():
            wait(X)
    else:
        X = X.persist(scheduler="threads")
    log.info(f"persisted {X.nbytes / 2**20:,.0f} MiB of decoded chunks in "
             f"{time.perf_counter() - t0:.1f} s", fields={"persisted_bytes": int(X.nbytes)})
    return X


# ---------------------------------------------------------------------- stream cursors
@dataclass
class Batch:
    """One update batch: where it comes from (for logs and errors), how to read it, and
    the cursor once it is consumed."""

    where: str
    rows: int
    load: Callable[[], np.ndarray]
    cursor_after: dict
    start: int = 0  # the batch's first row in its array or file


def _zarr_array(path: str):
    import zarr

    try:
        return zarr.open_array(store=path, mode="r")
    except Exception as exc:  # zarr raises several types for a non-array store
        raise InvalidInputError(f"source.path {path!r} is not a readable Zarr array: "
                                f"{exc}") from None


def check_cursor(cfg: Config, cursor: dict | None) -> None:
    """A saved cursor must belong to the configured source (same kind and path):
    otherwise its row count or file list would be applied to other data."""
    from ..errors import CheckpointMismatchError

    if not cursor:
        return
    kind, path = cursor.get("kind"), cursor.get("path")
    if kind not in (None, cfg.source["type"]) or (path is not None
                                                   and path != cfg.source["path"]):
        raise CheckpointMismatchError(
            f"run.checkpoint {cfg.run['checkpoint']!r} has consumed another source "
            f"({kind} {path!r}), not {cfg.source['type']} {cfg.source['path']!r}: use "
            "another run.checkpoint for this source")


def pending_batches(cfg: Config, cursor: dict | None) -> Iterator[Batch]:
    """The batches of data not yet consumed according to ``cursor`` (None: from the
    start), each at most run.batch_size rows. Zarr: the rows appended since the cursor.
    Directory: the rest of the current file, then the files not seen yet, in name order.
    Batch boundaries depend only on the cursor, so a rerun after a crash reads the same
    batches an uninterrupted run reads."""
    src, size, dtype = cfg.source, cfg.run["batch_size"], cfg.source.get("dtype")
    check_source_exists(cfg)
    check_cursor(cfg, cursor)
    root = src["path"]
    if src["type"] == "zarr":
        z = _zarr_array(root)
        if z.ndim != 2:
            raise InvalidInputError(f"source.path {root!r}: expected a 2-D array; "
                                    f"got shape {z.shape}")
        # refused as `fit` refuses it, before any batch is read
        check_source_dtype(z.dtype, f"source.path {root!r}", dtype)
        start = int((cursor or {}).get("rows", 0))
        if start > z.shape[0]:
            raise InvalidInputError(
                f"source.path {root!r} has {z.shape[0]} rows but {start} were already "
                "consumed: the array was replaced or truncated (use a new run.checkpoint "
                "to start over on it)")
        for a in range(start, z.shape[0], size):
            b = min(a + size, z.shape[0])
            yield Batch(f"{root} rows {a}:{b}", b - a, lambda a=a, b=b: np.asarray(z[a:b]),
                        {"kind": "zarr", "path": root, "rows": b}, a)
        return
    if src["type"] != "directory":
        raise ConfigError(f"{cfg.path}: source.type: `streammix update` reads a growing "
                          f"Zarr array or a directory of files; got {src['type']!r}")
    done = list((cursor or {}).get("files", []))
    seen = set(done)
    current, offset = (cursor or {}).get("file"), int((cursor or {}).get("row", 0))

    def cursor(files, file=None, row=0) -> dict:
        return {"kind": "directory", "path": root, "files": files, "file": file, "row": row}

    for name in list_files(root, src["pattern"]):
        if name in seen:
            continue
        path = os.path.join(root, name)
        if path.endswith(".npy"):
            shape, file_dtype = _npy_shape(path)
            reader = lambda a, b, p=path: _npy_rows(p, a, b)  # noqa: E731
        else:
            z = _zarr_array(path)
            shape, file_dtype = z.shape, z.dtype
            reader = lambda a, b, z=z: np.asarray(z[a:b])  # noqa: E731
        if len(shape) != 2:
            raise InvalidInputError(f"{path}: expected a 2-D array; got shape {shape}")
        check_source_dtype(file_dtype, path, dtype)
        start = offset if name == current else 0
        n = shape[0]
        for a in range(start, n, size):
            b = min(a + size, n)
            after = cursor(done + [name]) if b == n else cursor(list(done), name, b)
            yield Batch(f"{path} rows {a}:{b}", b - a, lambda a=a, b=b, r=reader: r(a, b),
                        after, a)
        if n == 0 or start >= n:  # an empty file: mark it seen
            yield Batch(f"{path} (empty)", 0, lambda: None, cursor(done + [name]))
        done = done + [name]
