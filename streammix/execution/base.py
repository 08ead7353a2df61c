"""The interface every data source offers to the engines."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Iterator

import numpy as np


class ChunkSource(ABC):
    """Rows of a data set, visited chunk by chunk.

    Engines only ever call ``map_reduce`` (statistics), ``iter_chunks`` (ordered passes
    such as seeded random initialisation), ``sample_rows`` (a uniform sample) and
    ``map_outputs`` (per-sample predictions), so a source can be in memory, on disk or on
    a cluster. ``fn`` receives (X_chunk, sample_weight_chunk_or_None).
    """

    n_samples: int
    n_features: int
    dtype: np.dtype

    #: True when ``iter_chunks`` is as cheap as a parallel pass (in-memory data)
    sequential_passes_are_cheap = False

    def runs_in_one_region(self) -> bool:
        """Whether statistics passes go to one numba parallel region over ``self.X`` and
        ``self.bounds`` (a few in-memory chunks; see NumpySource) instead of map_reduce."""
        return False

    @abstractmethod
    def map_reduce(self, fn: Callable, combine: Callable | None = None, shared: tuple = (),
                   indexed: bool = False):
        """combine([fn(X, sw, [chunk_index,] *shared) for every chunk]) in a fixed
        reduction order (combine defaults to summing statistics; it may be applied in a
        tree, so it must accept a list of its own outputs). ``shared`` values are sent
        to the workers once per call; ``fn`` and ``combine`` must be picklable."""

    @abstractmethod
    def iter_chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """The chunks in row order, one at a time."""

    @abstractmethod
    def sample_rows(self, size: int, rng: np.random.RandomState
                    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``size`` distinct rows drawn uniformly (float64) and their sample weights."""

    @property
    @abstractmethod
    def total_weight(self) -> float:
        """Sum of the sample weights (n_samples when unweighted)."""


def fingerprint_rows(n_samples: int, k: int = 64) -> np.ndarray:
    """Deterministic, spread-out row indices used to fingerprint a data set cheaply."""
    return np.unique(np.linspace(0, n_samples - 1, num=min(k, n_samples)).astype(np.int64))


def fingerprint_digest(*arrays) -> str:
    import hashlib

    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()
