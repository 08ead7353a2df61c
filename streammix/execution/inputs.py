"""Turn what a user passes (numpy-like, dask array, zarr array, path or URL to a Zarr
array) into a validated chunk source, with errors that name the problem up front."""

from __future__ import annotations

import os

import numpy as np

from ..errors import InvalidDtypeError, InvalidInputError
from ..validation import check_array, check_sample_weight
from .dask_source import DaskSource
from .numpy_source import NumpySource
from .zarr_chunks import zarr_to_dask


def _is_dask_array(X) -> bool:
    return type(X).__module__.startswith("dask.array") and hasattr(X, "chunks")


def _is_zarr_array(X) -> bool:
    return type(X).__module__.startswith("zarr") and hasattr(X, "chunks") and hasattr(X, "shape")


def is_lazy_input(X) -> bool:
    """True for inputs whose predictions come back as a lazy dask array."""
    return _is_dask_array(X) or _is_zarr_array(X) or isinstance(X, (str, os.PathLike))


def open_zarr_array(path, what: str = "X", storage_options: dict | None = None):
    """Open a Zarr array read-only from a local path or any fsspec URL zarr can open
    (``s3://``, ``gs://``, ``http(s)://``...); ``storage_options`` go to the URL's
    filesystem (an S3 endpoint_url, key and secret...) and travel with the array to the
    workers, so every worker reads the store the way the client opened it."""
    import zarr

    path = os.fspath(path) if isinstance(path, os.PathLike) else path
    if storage_options and "://" not in str(path):
        raise InvalidInputError(f"{what}: storage_options apply to a URL (s3://, http://...); "
                                f"{str(path)!r} is a local path")
    try:
        arr = zarr.open_array(store=path, mode="r",
                              **({"storage_options": storage_options} if storage_options
                                 else {}))
    except FileNotFoundError:
        raise InvalidInputError(f"{what}: no Zarr array at {str(path)!r} (path not found)") from None
    except Exception as exc:  # a group, a non-zarr directory, a bad URL...
        raise InvalidInputError(
            f"{what}: could not open a Zarr array at {str(path)!r}: {type(exc).__name__}: {exc}"
        ) from exc
    return arr


def read_zarr(source, what: str = "X", storage_options: dict | None = None):
    """A Zarr array (a path, an fsspec URL or a ``zarr.Array``) as a dask array with one
    task per chunk, read the way ``fit`` reads it: local chunk files directly (mapped when
    uncompressed, decoded once into their buffer otherwise), anything else through
    ``dask.array.from_zarr``. Use it to persist or transform data before ``fit``, or to
    pass ``storage_options`` for a URL (``fit`` takes a plain URL too)."""
    z = (open_zarr_array(source, what, storage_options)
         if isinstance(source, (str, os.PathLike)) else source)
    if not _is_zarr_array(z):
        raise InvalidInputError(f"{what}: expected a path, URL or zarr.Array; got "
                                f"{type(source).__name__}")
    return zarr_to_dask(z)


def as_dask_array(X, what: str = "X", chunk_size: int | None = None,
                  storage_options: dict | None = None):
    """A validated 2-D float dask array (one chunk across columns) from a dask array,
    a zarr array or a path/URL; errors name the shape, dtype or chunk problem."""
    if isinstance(X, (str, os.PathLike)):
        X = open_zarr_array(X, what, storage_options)
    if _is_zarr_array(X):
        if len(X.shape) != 2:
            raise InvalidInputError(
                f"{what} must be a 2-D array (n_samples, n_features); the Zarr array has "
                f"shape {X.shape}"
            )
        X = read_zarr(X, what)
    if X.ndim != 2:
        raise InvalidInputError(
            f"{what} must be a 2-D array (n_samples, n_features); got {X.ndim}-D with shape "
            f"{X.shape}"
        )
    if any(np.isnan(c) for c in X.chunks[0]) or any(np.isnan(s) for s in X.shape):
        raise InvalidInputError(
            f"{what} has unknown chunk sizes (shape {X.shape}); call X.compute_chunk_sizes() "
            "or build it with known lengths"
        )
    kind = X.dtype.kind
    if kind != "f":
        what_kind = {"i": "an integer", "u": "an unsigned integer", "b": "a boolean",
                     "O": "an object", "U": "a string", "S": "a bytes", "c": "a complex"}
        raise InvalidDtypeError(
            f"{what} has {what_kind.get(kind, 'a non-float')} dtype ({X.dtype}); streammix "
            "reads float32 or float64 chunks without copying: convert it with "
            "X.astype('float32') (or float64)"
        )
    if X.dtype.itemsize not in (4, 8):
        X = X.astype(np.float32)
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise InvalidInputError(f"{what} is empty: shape {X.shape}")
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    if chunk_size is not None:
        X = X.rechunk({0: chunk_size})
    return X


def as_source(X, sample_weight=None, *, chunk_size: int | None = None, client=None,
              n_features: int | None = None, min_samples: int = 1, what: str = "X",
              estimator: str = "GaussianMixture"):
    """A ChunkSource for X: NumpySource for in-memory data, DaskSource otherwise."""
    if is_lazy_input(X):
        Xd = as_dask_array(X, what, chunk_size)
        n, d = (int(s) for s in Xd.shape)
        if n_features is not None and d != n_features:
            raise InvalidInputError(
                f"{what} has {d} features, but {estimator} is expecting {n_features} "
                "features as input (the number it was fitted with)"
            )
        if n < min_samples:
            raise InvalidInputError(f"{what} has {n} samples; at least {min_samples} are needed")
        sw = sample_weight
        if sw is not None and not _is_dask_array(sw):
            sw = check_sample_weight(sw, n)
        elif sw is not None and sw.shape != (n,):
            raise InvalidInputError(
                f"sample_weight has shape {sw.shape}; expected ({n},), one weight per sample"
            )
        return DaskSource(Xd, sw, client=client)
    X = check_array(X, what=what, n_features=n_features, min_samples=min_samples,
                    estimator=estimator)
    return NumpySource(X, check_sample_weight(sample_weight, X.shape[0]), chunk_size)
