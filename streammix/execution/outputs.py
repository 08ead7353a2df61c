"""Per-sample outputs (labels, responsibilities, log-density) on Dask/Zarr input: lazy
dask arrays computed chunk by chunk, a writer that streams them into Zarr, and the rule
that decides where that writer may write (never over the input, a checkpoint or anything
streammix did not write itself)."""

from __future__ import annotations

import os
from collections.abc import Iterable

import dask
import dask.array as da
import numpy as np

from ..math.covariances import get_covariance_type
from ..math.params import GaussianParams
from ..validation import check_finite


def _packed_block(X, params: GaussianParams, want_resp: bool, block_info=None):
    """[label, log p(x), responsibilities...] per row of one chunk (float64)."""
    X = np.asarray(X)
    start = block_info[0]["array-location"][0][0] if block_info else 0
    check_finite(X, what=f"chunk starting at row {start}", row_offset=start)
    cov = get_covariance_type(params.covariance_type)
    logprob, labels, resp = cov.chunk_outputs(X, params, want_resp)
    cols = [labels.astype(np.float64)[:, None], logprob[:, None]]
    if want_resp:
        cols.append(resp)
    return np.hstack(cols)


def packed_outputs(X: da.Array, params: GaussianParams, want_resp: bool) -> da.Array:
    """One lazy (n, 2 [+ K]) array: reading each chunk once serves every output."""
    width = 2 + (params.n_components if want_resp else 0)
    return da.map_blocks(_packed_block, X, dask.delayed(params, pure=True), want_resp,
                         dtype=np.float64, chunks=(X.chunks[0], (width,)))


def lazy_outputs(X: da.Array, params: GaussianParams, want_resp: bool):
    """(log p (n,), labels (n,) int64, responsibilities (n, K) or None), all lazy."""
    packed = packed_outputs(X, params, want_resp)
    labels = packed[:, 0].astype(np.int64)
    logprob = packed[:, 1]
    resp = packed[:, 2:] if want_resp else None
    return logprob, labels, resp


OUTPUT_NAMES = ("labels", "proba", "log_density")
OUTPUTS_MARKER = "streammix_outputs"  # the group attribute that makes an output ours


# ------------------------------------------------------------------ where outputs may go
def _local_path(location: str) -> str | None:
    """The local path a location names (``file://`` stripped), or None for another URL."""
    if location.startswith("file://"):
        return location[len("file://"):]
    return None if "://" in location else location


def is_inside(path: str, other: str) -> bool:
    """Whether ``path`` is ``other`` or lies inside it: local paths after resolving
    symlinks and '..', URLs compared as strings (same URL, or a key below it)."""
    a, b = _local_path(path), _local_path(other)
    if a is not None and b is not None:
        a, b = os.path.realpath(a), os.path.realpath(b)
        return a == b or a.startswith(b.rstrip(os.sep) + os.sep)
    if a is None and b is None:
        a, b = path.rstrip("/"), other.rstrip("/")
        return a == b or a.startswith(b + "/")
    return False


def _store_location(store) -> str | None:
    """A path or URL for ``store``: a string or PathLike as given, a local or fsspec zarr
    store's root; None for any other store (memory)."""
    if isinstance(store, (str, os.PathLike)):
        return os.fspath(store)
    try:
        from zarr.storage import FsspecStore, LocalStore
    except ImportError:  # pragma: no cover - zarr v3 is a dependency
        return None
    if isinstance(store, LocalStore):
        return str(store.root)
    if isinstance(store, FsspecStore):
        fs = getattr(store.fs, "sync_fs", store.fs)  # zarr wraps a sync fs for async use
        protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
        local = bool({"file", "local"} & set(protocols))
        return store.path if local else fs.unstrip_protocol(store.path)
    return None


def _zarr_location(z) -> str | None:
    """Where the zarr.Array ``z`` is stored: a local directory, a URL, or None (memory)."""
    root = _store_location(getattr(z, "store", None))
    sub = getattr(z, "path", "") or ""
    if root is None or not sub:
        return root
    return f"{root.rstrip('/')}/{sub}"


def _array_root(chunk_file: str) -> str | None:
    """The directory of the Zarr array one of whose chunk files is ``chunk_file`` (the
    nearest folder above it holding zarr.json: chunk keys are at most a few levels deep)."""
    folder = os.path.dirname(chunk_file)
    for _ in range(4):
        if os.path.exists(os.path.join(folder, "zarr.json")):
            return folder
        folder = os.path.dirname(folder)
    return None


def _dask_locations(X) -> list[str]:
    """The Zarr arrays a dask array reads, as far as its graph's layer names tell without
    walking its tasks: ``read_zarr`` layers ('zarr-chunks-*', whose tasks name chunk
    files) and ``da.from_zarr`` layers ('original-*', holding the zarr.Array)."""
    from .inputs import _is_zarr_array
    from .zarr_chunks import ChunkFile

    layers = getattr(getattr(X, "dask", None), "layers", None) or {}
    found = []
    for name, layer in layers.items():
        if name.startswith("zarr-chunks-"):
            task = next(iter(layer.values()), None)
            ref = task[1] if isinstance(task, tuple) and len(task) == 2 else None
            root = _array_root(ref.path) if isinstance(ref, ChunkFile) else None
            if root is not None:
                found.append(root)
        elif name.startswith("original-"):
            found += [loc for v in layer.values()
                      if _is_zarr_array(v) and (loc := _zarr_location(v)) is not None]
    return found


def source_locations(X) -> list[str]:
    """Where the data X are read from, when that can be told cheaply: a path or URL as
    given, a zarr.Array's store, or the Zarr arrays behind a dask array made by
    ``streammix.read_zarr`` or ``dask.array.from_zarr`` (and arrays derived from them).
    Empty for in-memory data, or a dask array whose graph no longer names its files
    (persisted)."""
    from .inputs import _is_dask_array, _is_zarr_array

    if isinstance(X, (str, os.PathLike)):
        return [os.fspath(X)]
    if _is_zarr_array(X):
        loc = _zarr_location(X)
        return [] if loc is None else [loc]
    if _is_dask_array(X):
        return _dask_locations(X)
    return []


def _group_marker(location) -> tuple[str, object]:
    """What Zarr finds at ``location``: ('missing', None), ('group', its outputs marker or
    None) or ('other', None) (an array, or something Zarr cannot read as a group)."""
    import zarr
    from zarr.errors import ContainsArrayError, NodeNotFoundError

    try:
        group = zarr.open_group(store=location, mode="r")
    except (FileNotFoundError, NodeNotFoundError):
        return "missing", None
    except (ContainsArrayError, ValueError, OSError):
        return "other", None
    return "group", group.attrs.get(OUTPUTS_MARKER)


def _url_holds_something(url: str) -> bool:
    """Whether the fsspec URL names a file or a non-empty folder (False when fsspec cannot
    tell: then Zarr's view is all there is to go by)."""
    try:
        import fsspec

        fs, path = fsspec.core.url_to_fs(url)
        return fs.isfile(path) or (fs.isdir(path) and bool(fs.ls(path)))
    except Exception:  # no such protocol, no credentials...: Zarr would say the same
        return False


def _checkpoint_below(folder: str) -> str | None:
    """A checkpoint inside ``folder`` (an earlier output's tree: a few folders), or None."""
    from ..persistence.markers import is_checkpoint

    for here, _, _ in os.walk(folder):
        if is_checkpoint(here):
            return here
    return None


def check_output_target(store, protected: Iterable = (), overwrite: bool = False, *,
                        name: str = "store", overwrite_hint: str = "overwrite=True") -> None:
    """Raise OutputExistsError unless predictions may be written at ``store``.

    The rule, checked before anything is created or deleted: outputs go to a path that
    does not exist, an empty folder, or, with ``overwrite``, an earlier streammix output
    (a Zarr group whose attributes hold ``streammix_outputs``), which is then replaced.
    Never to a ``protected`` location (what the job reads), inside one or around one;
    never to a checkpoint, inside one, or to a folder holding one; never over an existing
    file or a folder streammix did not write. For a URL what can be checked is: the URL
    of a protected location, and whatever is already there. ``name`` and
    ``overwrite_hint`` are how the caller's user spells the target and the switch (the
    CLI: outputs.path, outputs.overwrite: true), so the message says what to change.
    """
    from ..errors import OutputExistsError
    from ..persistence.markers import enclosing_checkpoint

    def refuse(problem: str) -> OutputExistsError:
        return OutputExistsError(f"{name} {shown} {problem}")

    location = _store_location(store)
    shown = repr(location if location is not None else store)
    if location is None:  # an in-memory store object: only what Zarr finds can be checked
        _check_existing(*_group_marker(store), refuse, overwrite, overwrite_hint)
        return
    for p in protected:
        p = os.fspath(p)
        if is_inside(location, p) or is_inside(p, location):
            raise refuse(f"overlaps {p!r}, which is being read: writing there would "
                         "destroy it; choose another path")
    local = _local_path(location)
    if local is None:
        kind, marker = _group_marker(location)
        if kind == "missing" and _url_holds_something(location):
            kind = "other"
        _check_existing(kind, marker, refuse, overwrite, overwrite_hint)
        return
    ck = enclosing_checkpoint(local)
    if ck is not None:
        raise refuse(("is a streammix checkpoint" if os.path.abspath(local) == ck else
                      f"lies inside the streammix checkpoint {ck!r}")
                     + ": outputs are never written into a checkpoint; choose another path")
    if not os.path.lexists(local):
        return
    if not os.path.isdir(local):
        raise refuse("is an existing file, not an earlier streammix output: refusing to "
                     "replace it; choose another path")
    if not os.listdir(local):
        return  # an empty folder: nothing to lose
    kind, marker = _group_marker(local)
    inner = _checkpoint_below(local) if kind == "group" and marker is not None else None
    if inner is not None:  # an earlier output someone put a checkpoint into
        raise refuse(f"holds the streammix checkpoint {inner!r}: replacing it would delete "
                     "the checkpoint; choose another path")
    _check_existing("other" if kind == "missing" else kind, marker, refuse, overwrite,
                    overwrite_hint)


def _check_existing(kind: str, marker, refuse, overwrite: bool,
                    overwrite_hint: str) -> None:
    """The part of the rule about what is already at the target (``kind``, ``marker`` as
    _group_marker returns them; ``refuse(problem)`` builds the error)."""
    if kind == "missing":
        return
    if kind == "other" or marker is None:
        raise refuse(f"exists and is not an earlier streammix output (no '{OUTPUTS_MARKER}' "
                     "attribute): refusing to replace it; choose another path (a new or "
                     "empty folder)")
    if not overwrite:
        raise refuse(f"holds earlier streammix outputs; set {overwrite_hint} to replace "
                     "them, or choose another path")


# ------------------------------------------------------------------ writing
def write_predictions(model, X, store, outputs=OUTPUT_NAMES, *, overwrite: bool = False,
                      client=None):
    """Write a fitted model's predictions for X into a Zarr group at ``store`` (a path or
    URL), chunk by chunk, never holding them whole.

    ``outputs`` is any of 'labels' (int64, n), 'proba' (float64, n x K responsibilities)
    and 'log_density' (float64, n: log p(x)). X may be numpy, dask, zarr or a path/URL.
    Returns the zarr group. The arrays are chunked like X's rows.

    Nothing is lost: ``store`` must be new, an empty folder, or an earlier streammix output
    (replaced only with ``overwrite=True``). It may not be the data being read (X's path,
    zarr store, or the files behind a ``read_zarr``/``from_zarr`` dask array), lie inside
    it or hold it; nor a checkpoint, anything inside one, or a folder holding one; nor an
    existing file or a folder streammix did not write. Any of these raises
    OutputExistsError before anything is created or deleted (see check_output_target).
    The group is marked as a streammix output as soon as it is created, so an interrupted
    write is recognised as ours, and replaced, on a rerun with ``overwrite=True``.
    """
    import zarr

    from ..errors import InvalidParameterError, OutputExistsError
    from .dask_source import client_scope, compute
    from .inputs import as_dask_array

    unknown = set(outputs) - set(OUTPUT_NAMES)
    if unknown or not outputs:
        raise InvalidParameterError(
            f"outputs must be a non-empty subset of {OUTPUT_NAMES}; got {tuple(outputs)}"
        )
    model._check_is_fitted()
    read_from = source_locations(X)
    if isinstance(X, np.ndarray):
        X = da.from_array(X, chunks=(max(1, min(len(X), 65536)), -1))
    Xd = as_dask_array(X)
    if Xd.shape[1] != model.n_features_in_:
        from ..errors import InvalidInputError

        raise InvalidInputError(
            f"X has {Xd.shape[1]} features, but {type(model).__name__} is expecting "
            f"{model.n_features_in_} features as input (the number it was fitted with)"
        )
    check_output_target(store, read_from + source_locations(Xd), overwrite=overwrite)
    params = model._get_params_value()
    packed = packed_outputs(Xd, params, "proba" in outputs)
    target = os.fspath(store) if isinstance(store, os.PathLike) else store
    try:
        group = zarr.open_group(store=target, mode="w" if overwrite else "w-")
    except FileExistsError:  # appeared since the check
        raise OutputExistsError(f"store {str(target)!r} was created by someone else while "
                                "the outputs were being prepared; choose another path"
                                ) from None
    group.attrs[OUTPUTS_MARKER] = list(outputs)  # ours from now on, even if interrupted
    n, K = int(Xd.shape[0]), params.n_components
    rows = int(Xd.chunks[0][0])
    sources, targets = [], []
    if "labels" in outputs:
        targets.append(group.create_array("labels", shape=(n,), chunks=(rows,), dtype="int64"))
        sources.append(packed[:, 0].astype(np.int64))
    if "log_density" in outputs:
        targets.append(group.create_array("log_density", shape=(n,), chunks=(rows,),
                                          dtype="float64"))
        sources.append(packed[:, 1])
    if "proba" in outputs:
        targets.append(group.create_array("proba", shape=(n, K), chunks=(rows, K),
                                          dtype="float64"))
        sources.append(packed[:, 2 : 2 + K])
    with client_scope(client if client is not None else getattr(model, "client", None)
                      ) as resolved:
        units = None
        if all(c == rows for c in Xd.chunks[0][:-1]) and Xd.chunks[0][-1] <= rows:
            # a task per work unit, each writing its chunks' rows (one output chunk per
            # input chunk: units never share an output chunk)
            from .dask_source import DaskSource

            units = DaskSource(Xd, client=resolved).unit_tasks(
                _write_unit, params, tuple(outputs), target,
                [t.path for t in targets])
        if units is not None:
            written = sum(compute(units, resolved))
            if written != n:  # pragma: no cover - a unit that skipped rows
                raise RuntimeError(f"wrote {written} rows of {n}")
        else:
            # one graph: each chunk of X is read once and feeds every output
            sources = [s.rechunk({0: rows}) for s in sources]
            compute(da.store(sources, targets, lock=False, compute=False), resolved)
    return group


def _write_unit(blocks, first: int, starts, params: GaussianParams,
                outputs: tuple, store, names: list[str]) -> int:
    """One work unit of write_predictions: each chunk read once, its outputs computed
    and written to the same rows of every output array; returns the rows written."""
    import zarr

    from .dask_source import read_block

    group = zarr.open_group(store=store, mode="r+")
    arrays = {name: group[name] for name in names}
    want_resp = "proba" in outputs
    cov = get_covariance_type(params.covariance_type)
    written = 0
    for blk, start in zip(blocks.items, map(int, starts)):
        X = read_block(blk, reuse=True)
        check_finite(X, what=f"chunk starting at row {start}", row_offset=start)
        logprob, labels, resp = cov.chunk_outputs(X, params, want_resp)
        stop = start + X.shape[0]
        if "labels" in arrays:
            arrays["labels"][start:stop] = labels.astype(np.int64)
        if "log_density" in arrays:
            arrays["log_density"][start:stop] = logprob
        if "proba" in arrays:
            arrays["proba"][start:stop] = resp
        written += X.shape[0]
    return written
