"""A Dask array (in memory on a cluster, or read from Zarr on every pass) as a chunk
source: kernels run where the chunks are, and only statistics travel back.

Each pass builds one graph: a task per row-chunk that runs a kernel on the chunk, then a
tree of ``combine`` tasks with fan-in ``split_every`` (the shape of dask.array's own
reductions), so the client receives one small result. Parameters enter the graph as one
key, shipped to each worker once per pass, never once per task.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import dask
import numpy as np
from dask.base import tokenize
from dask.delayed import Delayed

from ..math.stats import tree_sum
from ..validation import check_finite
from .base import ChunkSource, fingerprint_digest, fingerprint_rows
from .zarr_chunks import ChunkFile, direct_chunks


def active_client():
    """The distributed Client this process uses by default, or None."""
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    try:
        return default_client()
    except ValueError:
        return None


def resolve_client(client):
    """None -> the active distributed client if any (else Dask's threaded scheduler);
    a Client -> itself; an address string ('tcp://host:8786') -> a Client connected to it."""
    if client is None:
        return active_client()
    if isinstance(client, str):
        from distributed import Client

        return Client(client, set_as_default=False)
    return client


@contextmanager
def client_scope(client):
    """resolve_client as a context: a Client made here from an address is closed after."""
    resolved = resolve_client(client)
    try:
        yield resolved
    finally:
        if isinstance(client, str) and resolved is not None:
            resolved.close()


def compute(obj, client):
    """Compute a dask collection on ``client`` or, without one, on the threaded scheduler."""
    if client is not None:
        return client.compute(obj, sync=True)
    return dask.compute(obj, scheduler="threads")[0]


def _run_chunk(X, sw, index, start, check, indexed, fn, *shared):
    """One task: read the chunk if ``X`` names a chunk file, validate it on the first
    pass, then run the kernel on it (passing the chunk's index to ``fn`` when
    ``indexed``)."""
    # every fn returns statistics or copies, never a view of X: the chunk may be decoded
    # into this thread's reused buffer
    X = X.read(reuse=True) if isinstance(X, ChunkFile) else np.asarray(X)
    if check:
        check_finite(X, what=f"chunk {index} (rows {start} to {start + X.shape[0] - 1})",
                     row_offset=start)
    sw = None if sw is None else np.asarray(sw, dtype=np.float64)
    return fn(X, sw, index, *shared) if indexed else fn(X, sw, *shared)


def _tree_layer(name: str, keys: list, combine: Callable, split_every: int) -> tuple:
    """Tasks summing ``keys`` by a tree of ``combine`` calls with fan-in ``split_every``
    (the shape of dask.array's reductions), and the key of its root."""
    layer, level, depth = {}, list(keys), 1
    while True:  # at least one combine, so a single chunk is finished like many
        nxt = []
        for j in range(0, len(level), split_every):
            key = (name, depth, j // split_every)
            layer[key] = (combine, level[j : j + split_every])
            nxt.append(key)
        level, depth = nxt, depth + 1
        if len(level) == 1:
            return layer, level[0]


class DaskSource(ChunkSource):
    """A validated 2-D float dask array (one chunk across the columns) and optional
    sample weights (a numpy or dask vector), computed on ``client`` or threads."""

    def __init__(self, X, sample_weight=None, client=None, split_every: int = 8):
        self.X = X
        self.n_samples, self.n_features = (int(s) for s in X.shape)
        self.dtype = X.dtype
        self.client = client
        self.split_every = split_every
        self.row_chunks = tuple(int(c) for c in X.chunks[0])
        self.starts = np.concatenate([[0], np.cumsum(self.row_chunks)[:-1]]).astype(int)
        # chunk files of an unmodified Zarr array are read inside the kernel's task (one
        # task per chunk, not a read task plus a kernel task: half the scheduling)
        files = direct_chunks(X)
        self.blocks = files if files is not None else list(X.to_delayed()[:, 0])
        self.sample_weight = sample_weight
        if sample_weight is None:
            self.sw_blocks = [None] * len(self.blocks)
            self._total_weight = float(self.n_samples)
        elif isinstance(sample_weight, np.ndarray):
            self.sw_blocks = [sample_weight[s : s + c]
                              for s, c in zip(self.starts, self.row_chunks)]
            self._total_weight = float(sample_weight.sum())
        else:  # a dask vector, rechunked like the rows
            sw = sample_weight.rechunk((self.row_chunks,))
            self.sw_blocks = list(sw.to_delayed())
            self._total_weight = float(compute(sw.sum(), client))
        self.checked = False
        # identifies the data in pass names: the array's graph name, and the weights
        self._token = (X.name, None if sample_weight is None else
                       (sample_weight.name if hasattr(sample_weight, "name")
                        else tokenize(sample_weight)))

    @property
    def n_chunks(self) -> int:
        return len(self.blocks)

    def _pass(self, fn, shared, indexed, combine):
        """One pass as a Delayed: a task per chunk (reading it first when it is a chunk
        file) and the tree of combines. Written as plain tasks under one name (one
        tokenize per pass: building it through dask.delayed's per-call tokenizing took
        ~100 ms per pass for 40 chunks, the workers idle meanwhile). Chunks that are
        Delayed (a dask array's blocks, perhaps persisted futures) go through
        dask.delayed, which tracks them, with the same key names. ``shared`` values are
        graph keys of their own, shipped once to each worker that needs them."""
        from dask.highlevelgraph import HighLevelGraph

        shared_d = [dask.delayed(s, pure=True) for s in shared]
        shared_keys = [d.key for d in shared_d]
        check = not self.checked
        name = "streammix-pass-" + tokenize(self._token, fn, combine, shared_keys, check,
                                            indexed, self.split_every)
        layer, parts, keys = {}, [], []
        for i, (blk, sw) in enumerate(zip(self.blocks, self.sw_blocks)):
            key = (name, 0, i)
            args = (i, int(self.starts[i]), check, indexed, fn)
            if isinstance(blk, Delayed) or isinstance(sw, Delayed):
                parts.append(dask.delayed(_run_chunk, pure=True)(
                    blk, sw, *args, *shared_d, dask_key_name=key))
            else:  # a ChunkFile (or numpy weights): literals, no dependency
                layer[key] = (_run_chunk, blk, sw, *args, *shared_keys)
            keys.append(key)
        tree, root = _tree_layer(name, keys, combine, self.split_every)
        layer.update(tree)
        graph = HighLevelGraph.from_collections(name, layer, dependencies=shared_d + parts)
        return Delayed(root, graph, layer=name)

    def map_reduce(self, fn: Callable, combine: Callable | None = None, shared: tuple = (),
                   indexed: bool = False):
        result = compute(self._pass(fn, shared, indexed, combine or tree_sum), self.client)
        self.checked = True
        return result

    def iter_chunks(self):
        for blk, sw in zip(self.blocks, self.sw_blocks):
            X = blk.read() if isinstance(blk, ChunkFile) else np.asarray(compute(blk, self.client))
            yield X, (None if sw is None else np.asarray(compute(sw, self.client)
                                                         if hasattr(sw, "compute") else sw))

    def sample_rows(self, size, rng):
        """A uniform sample without replacement. A few rows (<= 256) are read directly;
        larger samples take one pass: every row gets an i.i.d. key from a generator
        seeded by (seed, chunk index), each chunk keeps its ``size`` smallest keys, and a
        tree of merges keeps the smallest overall."""
        seed = int(rng.randint(0, 2**31 - 1))
        size = min(size, self.n_samples)
        if size <= 256:
            # a few rows: read just the chunks that hold them, no pass over the data
            idx = np.sort(np.random.default_rng(seed).choice(self.n_samples, size, replace=False))
            rows = np.asarray(compute(self.X[idx], self.client), dtype=np.float64)
            order = np.random.default_rng([seed, 1]).permutation(size)
            sw = None
            if self.sample_weight is not None:
                sw = np.asarray(self.sample_weight[idx] if isinstance(self.sample_weight, np.ndarray)
                                else compute(self.sample_weight[idx], self.client))[order]
            return rows[order], sw
        return self.map_reduce(_reservoir_chunk, _ReservoirMerge(size), shared=(seed, size),
                               indexed=True)[1:]

    @property
    def total_weight(self) -> float:
        return self._total_weight

    def fingerprint(self) -> dict:
        """Shape, dtype, chunking and a hash of 64 spread-out rows (read from the few
        chunks that hold them) and their weights."""
        idx = fingerprint_rows(self.n_samples)
        rows = np.asarray(compute(self.X[idx], self.client))
        sw = self.sample_weight
        if sw is not None:
            sw = sw[idx] if isinstance(sw, np.ndarray) else np.asarray(compute(sw[idx], self.client))
        return {"shape": [self.n_samples, self.n_features], "dtype": self.dtype.name,
                "chunks": fingerprint_digest(np.asarray(self.row_chunks)),
                "sample": fingerprint_digest(rows, sw)}


def _reservoir_chunk(X, sw, index, seed, size):
    keys = np.random.default_rng([seed, index]).random(X.shape[0])
    if X.shape[0] > size:
        keep = np.argpartition(keys, size - 1)[:size]
    else:
        keep = np.arange(X.shape[0])
    rows = np.asarray(X[keep], dtype=np.float64)
    return keys[keep], rows, (None if sw is None else sw[keep])


class _ReservoirMerge:
    """Merge (keys, rows, weights) samples keeping the ``size`` smallest keys, sorted."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, parts):
        keys = np.concatenate([p[0] for p in parts])
        rows = np.concatenate([p[1] for p in parts])
        sw = None if parts[0][2] is None else np.concatenate([p[2] for p in parts])
        order = np.argsort(keys, kind="stable")[: self.size]
        return keys[order], rows[order], (None if sw is None else sw[order])
