"""An in-memory array visited in row chunks on the thread pool."""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..math.stats import tree_sum
from .base import ChunkSource, fingerprint_digest, fingerprint_rows
from .threads import (
    SMALL_JOB_ITEMS_PER_THREAD,
    default_n_threads,
    map_in_order,
    map_reduce_streaming,
    numba_regions_usable,
)

# A chunk of about 4 MiB: enough work to amortise a task (~10 us) many times over, small
# enough that per-chunk buffers stay in cache and 2+ threads balance well.
DEFAULT_CHUNK_BYTES = 4 << 20


def default_chunk_rows(n_features: int, itemsize: int) -> int:
    return max(1024, DEFAULT_CHUNK_BYTES // max(1, n_features * itemsize))


class NumpySource(ChunkSource):
    """A validated 2-D float32/float64 array and optional sample weights.

    The chunking depends only on (n_samples, n_features, dtype, chunk_rows), so the same
    data give the same bits whatever the number of threads.
    """

    def __init__(self, X: np.ndarray, sample_weight: np.ndarray | None = None,
                 chunk_rows: int | None = None):
        self.X = X
        self.sample_weight = sample_weight
        self.n_samples, self.n_features = X.shape
        self.dtype = X.dtype
        self.chunk_rows = int(chunk_rows or default_chunk_rows(self.n_features, X.dtype.itemsize))
        self.bounds = [
            (s, min(s + self.chunk_rows, self.n_samples))
            for s in range(0, self.n_samples, self.chunk_rows)
        ]

    def _chunk(self, bounds):
        s, e = bounds
        sw = None if self.sample_weight is None else self.sample_weight[s:e]
        return self.X[s:e], sw

    def map_reduce(self, fn: Callable, combine: Callable | None = None, shared: tuple = (),
                   indexed: bool = False):
        combine = combine or tree_sum
        per_unit = getattr(fn, "for_unit", None)
        if per_unit is not None and not indexed:
            # a kernel prepared once for the pass (as a Dask work unit does): the
            # constants a statistics kernel derives from the parameters are numpy
            # products that, redone in every chunk's task, hold the GIL and start
            # numpy's BLAS threads beside the running kernels (2x the pass at d = 128)
            kernel = per_unit(*shared)
            return map_reduce_streaming(lambda b: kernel(*self._chunk(b)), self.bounds,
                                        combine)
        if indexed:
            return map_reduce_streaming(lambda ib: fn(*self._chunk(ib[1]), ib[0], *shared),
                                        list(enumerate(self.bounds)), combine)
        return map_reduce_streaming(lambda b: fn(*self._chunk(b), *shared), self.bounds,
                                    combine)

    def runs_in_one_region(self) -> bool:
        """Whether a statistics pass over this array runs in one numba parallel region
        (a few chunks: an online batch, a small data set) rather than on the pool."""
        if not 0 < len(self.bounds) <= SMALL_JOB_ITEMS_PER_THREAD * default_n_threads():
            return False  # empty, or enough chunks to keep the pool busy
        if self.X.dtype.kind != "f" or self.X.dtype.itemsize not in (4, 8):
            return False
        return numba_regions_usable()

    def map_chunks(self, fn: Callable) -> list:
        """fn(X_chunk, sw_chunk) for every chunk, in row order."""
        return map_in_order(lambda b: fn(*self._chunk(b)), self.bounds)

    sequential_passes_are_cheap = True

    def iter_chunks(self):
        for b in self.bounds:
            yield self._chunk(b)

    def sample_rows(self, size, rng):
        size = min(size, self.n_samples)
        idx = rng.choice(self.n_samples, size=size, replace=False)
        sw = None if self.sample_weight is None else self.sample_weight[idx]
        return np.asarray(self.X[idx], dtype=np.float64), sw

    @property
    def total_weight(self) -> float:
        if self.sample_weight is None:
            return float(self.n_samples)
        return float(self.sample_weight.sum())

    def fingerprint(self) -> dict:
        """Shape, dtype, chunking and a hash of 64 spread-out rows (and their weights):
        enough to tell a checkpoint's data from other data without reading it all."""
        idx = fingerprint_rows(self.n_samples)
        sw = None if self.sample_weight is None else self.sample_weight[idx]
        return {"shape": [self.n_samples, self.n_features], "dtype": self.dtype.name,
                "chunks": fingerprint_digest(np.diff([b[0] for b in self.bounds] + [self.n_samples])),
                "sample": fingerprint_digest(self.X[idx], sw)}
