"""Per-sample outputs (labels, responsibilities, log-density) on Dask/Zarr input: lazy
dask arrays computed chunk by chunk, and a writer that streams them into Zarr."""

from __future__ import annotations

import os

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


def write_predictions(model, X, store, outputs=OUTPUT_NAMES, *, overwrite: bool = False,
                      client=None):
    """Write a fitted model's predictions for X into a Zarr group at ``store`` (a path or
    URL), chunk by chunk, never holding them whole.

    ``outputs`` is any of 'labels' (int64, n), 'proba' (float64, n x K responsibilities)
    and 'log_density' (float64, n: log p(x)). X may be numpy, dask, zarr or a path/URL.
    Returns the zarr group. The arrays are chunked like X's rows.
    """
    import zarr

    from ..errors import InvalidParameterError
    from .dask_source import client_scope, compute
    from .inputs import as_dask_array

    unknown = set(outputs) - set(OUTPUT_NAMES)
    if unknown or not outputs:
        raise InvalidParameterError(
            f"outputs must be a non-empty subset of {OUTPUT_NAMES}; got {tuple(outputs)}"
        )
    model._check_is_fitted()
    if isinstance(X, np.ndarray):
        X = da.from_array(X, chunks=(max(1, min(len(X), 65536)), -1))
    Xd = as_dask_array(X)
    if Xd.shape[1] != model.n_features_in_:
        from ..errors import InvalidInputError

        raise InvalidInputError(
            f"X has {Xd.shape[1]} features, but {type(model).__name__} is expecting "
            f"{model.n_features_in_} features as input (the number it was fitted with)"
        )
    params = model._get_params_value()
    packed = packed_outputs(Xd, params, "proba" in outputs)
    group = zarr.open_group(store=os.fspath(store) if isinstance(store, os.PathLike) else store,
                            mode="w" if overwrite else "w-")
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
    # one graph: each chunk of X is read once and feeds every output
    sources = [s.rechunk({0: rows}) for s in sources]
    stored = da.store(sources, targets, lock=False, compute=False)
    with client_scope(client if client is not None else getattr(model, "client", None)
                      ) as resolved:
        compute(stored, resolved)
    group.attrs["streammix_outputs"] = list(outputs)
    return group
