"""A Dask array (in memory on a cluster, or read from Zarr on every pass) as a chunk
source: kernels run where the chunks are, and only statistics travel back.

Each pass builds one graph. Chunk files of a Zarr array (read by the tasks themselves)
and chunks already in memory (numpy, persisted on threads) are taken by *work units*:
one task per aligned run of 2**k consecutive chunks, which runs the kernel on them in a
loop, so a pass costs a task per unit, not per chunk (about 1 ms of scheduling on
threads and 4 ms on a cluster each). Chunks persisted on a cluster, which lie on many
workers, are regrouped once into units held where most of their chunks are
(``_hold_units``), so later passes run each unit where its data is. Chunks that are tasks
of their own (a dask array computed in the pass: ``from_zarr``, ``map_blocks``...) are
run by units too, each chunk's tasks executed inside its unit (``_chunk_graphs``), unless
two chunks share a task or the array holds futures: those keep a task per chunk. Either
way the
results are summed by the binary-counter fold of the
in-memory thread pool (``threads._InOrderFold``): units hand over their partial folds,
so the sum's order depends on the number of chunks only, not on the unit size, the
number of workers or which one ran what, and equals the in-memory source's with the
same chunks, bit for bit. Parameters enter the graph as one key, shipped to each worker
once per pass, never once per task.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import dask
import numpy as np
from dask.base import tokenize
from dask.delayed import Delayed

from ..errors import InvalidInputError
from ..math.stats import tree_sum
from ..validation import MAX_ABS_VALUE, check_finite
from .threads import _InOrderFold, default_n_threads
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
        import dask
        from distributed import Client

        from ..errors import ClusterConnectionError

        # how long to try: Dask's setting (DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT)
        timeout = dask.config.get("distributed.comm.timeouts.connect")
        try:
            return Client(client, set_as_default=False, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            raise ClusterConnectionError(
                f"cannot reach the Dask scheduler at {client!r} ({exc}): start one "
                "(`dask scheduler`, then `dask worker ADDRESS` on each host), check the "
                "address and that this machine reaches it, or pass client=None to run on "
                "this machine's threads; DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT sets how "
                f"long to try ({timeout})") from None
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


def read_block(blk, reuse: bool = False) -> np.ndarray:
    """A unit's chunk as an array, whatever holds it: a chunk file (``reuse`` as in
    ChunkFile.read), the tasks that compute it, or the array itself."""
    if isinstance(blk, ChunkFile):
        return blk.read(reuse=reuse)
    if isinstance(blk, _ChunkGraph):
        return blk.read()
    return np.asarray(blk)


def _run_chunk(X, sw, index, start, check, indexed, fn, *shared):
    """One task: read the chunk if ``X`` names a chunk file, validate it on the first
    pass, then run the kernel on it (passing the chunk's index to ``fn`` when
    ``indexed``)."""
    # every fn returns statistics or copies, never a view of X: the chunk may be decoded
    # into this thread's reused buffer
    X = read_block(X, reuse=True)
    if check:
        check_finite(X, what=f"chunk {index} (rows {start} to {start + X.shape[0] - 1})",
                     row_offset=start)
    sw = None if sw is None else np.asarray(sw, dtype=np.float64)
    return fn(X, sw, index, *shared) if indexed else fn(X, sw, *shared)


def _data_blocks(X) -> bool:
    """Whether every chunk of the dask array X is data in its graph (numpy arrays made
    by from_array or persist on the threaded scheduler), not a task to compute."""
    graph = X.__dask_graph__()
    keys = [k for row in X.__dask_keys__() for k in row]
    # arrays only: a key's value may also be a task, or an alias (another key, or a
    # task-spec Alias) that is no data
    return all(k in graph and isinstance(_data_value(graph[k]), np.ndarray) for k in keys)


def _data_value(node):
    """The data a graph holds under a key (a raw value, or a DataNode's)."""
    return node.value if type(node).__name__ == "DataNode" else node


class _ChunkGraph:
    """The tasks that compute one chunk of a dask array (its own, none shared with
    another chunk's but data), run inside a work unit instead of as tasks of the pass:
    ``read()`` executes them in dependency order and returns the chunk."""

    def __init__(self, key, nodes: dict, order: list):
        self.key, self.nodes, self.order = key, nodes, order

    def read(self) -> np.ndarray:
        cache: dict = {}
        for k in self.order:
            cache[k] = self.nodes[k](cache)
        return np.asarray(cache[self.key])


def _chunk_graphs(X) -> list[_ChunkGraph] | None:
    """One _ChunkGraph per row chunk of X when the chunks' tasks are independent (no
    task shared by two chunks: a shared task would be redone by every unit) and X holds
    no futures; else None (each chunk stays a task of the pass)."""
    try:
        from dask._task_spec import DataNode, GraphNode, convert_legacy_graph
    except ImportError:  # an older dask: keep a task per chunk
        return None
    try:
        from distributed import futures_of

        if futures_of(X):
            return None
    except ImportError:  # pragma: no cover - distributed is a dependency
        pass
    graph = convert_legacy_graph(dict(X.__dask_graph__()))
    if not all(isinstance(n, GraphNode) for n in graph.values()):
        return None
    owner: dict = {}
    out = []
    for row in X.__dask_keys__():
        key = row[0]
        order, seen, stack = [], set(), [(key, False)]
        while stack:  # depth-first, each node after its dependencies
            k, expanded = stack.pop()
            if expanded:
                order.append(k)
                continue
            if k in seen:
                continue
            if k not in graph:
                return None
            seen.add(k)
            stack.append((k, True))
            stack.extend((d, False) for d in graph[k].dependencies if d not in seen)
        for k in order:
            if not isinstance(graph[k], DataNode):
                if owner.setdefault(k, key) != key:
                    return None  # a task two chunks need
        out.append(_ChunkGraph(key, {k: graph[k] for k in order}, order))
    return out


class _Items:
    """A unit's chunk files (or weights) as one opaque task argument: Dask does not walk
    it (walking lists of thousands of chunk files cost ~5 us each per pass)."""

    def __init__(self, items: list):
        self.items = items


class _BadChunk:
    """A chunk's InvalidInputError (NaN/inf...), handed to ``_finish_fold`` instead of
    raised on the worker, so that the error reported is the first bad chunk's in row
    order, whichever unit failed first."""

    def __init__(self, error: Exception):
        self.error = error


def _run_chunk_checked(X, sw, index, start, check, indexed, fn, *shared):
    """``_run_chunk``, its input error as a _BadChunk."""
    try:
        return _run_chunk(X, sw, index, start, check, indexed, fn, *shared)
    except InvalidInputError as exc:
        return _BadChunk(exc)


#: a work unit gathers consecutive chunks of at most this many bytes in all into one
#: buffer for one numba call (a chunk of more than half of it runs alone, read in
#: place): small chunks then cost no Python each, and memory stays O(chunk) (a 2 MB
#: chunk takes ~2 ms of kernel, against ~30 us of Python for it alone)
RUN_BYTES = 4 * 2**20
# |x| above MAX_ABS_VALUE (NaN/inf lie higher) as a float64 bit pattern: a run whose
# kernel saw one goes the per-chunk way, which reports the first bad value exactly
_MAX_ABS_BITS = int(np.float64(MAX_ABS_VALUE).view(np.int64))


def _block_nbytes(blk) -> int | None:
    """Bytes of a unit's chunk before reading it (None: unknown until computed)."""
    if type(blk) is np.ndarray:
        return blk.nbytes
    if isinstance(blk, ChunkFile):
        return blk.rows * blk.n_features * np.dtype(blk.dtype).itemsize
    return None


def _runs(first: int, nbytes: list) -> list[tuple[int, int]]:
    """A unit's chunks cut into runs (start, size): each the largest aligned run of 2**j
    chunks (its first global index a multiple of 2**j) from where the last ended, within
    RUN_BYTES in all, so that each run is a node of the in-order fold, whatever the unit
    size (which depends on the number of workers)."""
    out, pos, n = [], 0, len(nbytes)
    while pos < n:
        size, total = 1, nbytes[pos]
        while (first + pos) % (2 * size) == 0 and pos + 2 * size <= n:
            more = sum(nbytes[pos + size:pos + 2 * size])
            if total + more > RUN_BYTES:
                break
            size, total = 2 * size, total + more
        out.append((pos, size))
        pos += size
    return out


def _run_unit_by_runs(run, blocks: list, sws: list, first: int, combine):
    """A unit's statistics pass with one numba call per run of small chunks (see
    ``_runs``; ``run`` is a covariance type's ``stats_run``): no Python per chunk, where
    the per-chunk way costs 15-60 us each. Returns the fold's stack, or None when the
    chunks cannot go this way (mixed dtypes or widths) or hold a bad value (the
    per-chunk way then reports it)."""
    if not all(type(b) is np.ndarray for b in blocks):  # (held chunks: all arrays)
        # chunks computed in the pass are sized once computed
        blocks = [b if _block_nbytes(b) is not None else read_block(b) for b in blocks]
    fold = _InOrderFold(combine)
    for pos, size in _runs(first, [_block_nbytes(b) for b in blocks]):
        X, bounds = _gather(blocks[pos:pos + size])
        if X is None:
            return None
        w = sws[pos:pos + size]  # a source's weights: all given, or none
        sw = None if w[0] is None else np.concatenate(
            [np.asarray(s, dtype=np.float64) for s in w])
        stats, tops = run(X, sw, bounds)
        if int(tops.max()) > _MAX_ABS_BITS:
            return None
        fold.push_node(size.bit_length() - 1, stats)
    return fold.stack


def _row_bounds(sizes: list[int]) -> np.ndarray:
    """(start, stop) rows of consecutive chunks of ``sizes`` rows in one buffer."""
    ends = np.cumsum(sizes)
    return np.stack([ends - np.asarray(sizes), ends], axis=1).astype(np.int64)


def _gather(part: list) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Consecutive chunks (arrays or chunk files) as one C-ordered array, and their row
    bounds in it; (None, None) when chunk files differ in dtype or width. A single
    chunk is read in place; several are copied into one buffer (arrays, whose dtype and
    width the source validated, by one concatenate; chunk files read straight in)."""
    if all(type(b) is np.ndarray for b in part):
        bounds = _row_bounds([b.shape[0] for b in part])
        return (np.ascontiguousarray(part[0]) if len(part) == 1
                else np.concatenate(part)), bounds
    files = [isinstance(b, ChunkFile) for b in part]
    bounds = _row_bounds([b.rows if f else b.shape[0] for b, f in zip(part, files)])
    if len(part) == 1:
        return np.ascontiguousarray(read_block(part[0], reuse=True)), bounds
    widths = {b.n_features if f else (b.shape[1] if b.ndim == 2 else -1)
              for b, f in zip(part, files)}
    dtypes = {np.dtype(b.dtype) for b in part}
    if len(widths) != 1 or len(dtypes) != 1 or -1 in widths:
        return None, None
    X = np.empty((int(bounds[-1, 1]), widths.pop()), dtype=dtypes.pop())
    for (b0, b1), b, f in zip(bounds, part, files):
        if f:
            b.read_into(X[b0:b1])
        else:
            X[b0:b1] = read_block(b, reuse=True)
    return X, bounds


def _run_unit(blocks, sws, first, starts, check, indexed, fn, combine, *shared):
    """One work unit: ``fn`` over consecutive chunks (``first`` is the first's index),
    folded as the in-memory pool folds them; returns the fold's stack of (level,
    partial sum) nodes, which ``_finish_fold`` continues (or the first bad chunk). A
    statistics pass runs by runs of chunks (``_run_unit_by_runs``)."""
    blocks, sws = blocks.items, sws.items
    by_runs = getattr(fn, "for_runs", None)
    if by_runs is not None and not indexed:
        stack = _run_unit_by_runs(by_runs(*shared), blocks, sws, first, combine)
        if stack is not None:
            return stack
    per_unit = getattr(fn, "for_unit", None)  # a kernel prepared once for all chunks
    if per_unit is not None and not indexed:
        fn, shared = per_unit(*shared), ()
    fold = _InOrderFold(combine)
    for j, (blk, sw) in enumerate(zip(blocks, sws)):
        result = _run_chunk_checked(blk, sw, first + j, int(starts[j]), check, indexed, fn,
                                    *shared)
        if isinstance(result, _BadChunk):
            return result
        fold.push(result)
    return fold.stack


def _run_unit_of(blocks: list, sws: list, *args):
    """``_run_unit`` on chunks that Dask hands over as lists (Delayed chunks)."""
    return _run_unit(_Items(blocks), _Items(sws), *args)


#: fan-in of the fold's task tree above the units (or chunks): no task gathers more
#: than this many partial sums (statistics of K x d x d, or reservoir samples)
FOLD_FAN_IN = 8


def _fold_group(parts: list, combine: Callable, leaves: bool) -> list:
    """One task of the fold's tree: the chunks' results (``leaves``) or the stacks of
    the groups below, in chunk order, folded on; returns the fold's stack. A group
    covers an aligned run of 8**j leaves, a power of two, so its nodes are exactly the
    nodes the fold over single chunks makes (and likewise a unit's)."""
    for part in parts:
        if isinstance(part, _BadChunk):
            return part
    fold = _InOrderFold(combine)
    for part in parts:
        if leaves:
            fold.push(part)
        else:
            for level, value in part:
                fold.push_node(level, value)
    return fold.stack


def _finish_fold(stack, combine: Callable, n_leaves: int):
    """The fold's result from the last group's stack (the first bad chunk raised). A
    single chunk is still passed through ``combine``, as the in-memory pool does."""
    if isinstance(stack, _BadChunk):
        raise stack.error
    fold = _InOrderFold(combine)
    fold.stack = list(stack)
    if n_leaves == 1:
        return combine([fold.stack[0][1]])
    return fold.result()


def _fold_tree(name: str, keys: list, combine: Callable, leaves: bool, n_leaves: int
               ) -> tuple[dict, tuple]:
    """Tasks folding ``keys`` (chunk results, or unit stacks) by groups of FOLD_FAN_IN,
    level by level, and the key of the result."""
    layer, level, depth = {}, list(keys), 1
    while True:
        nxt = []
        for j in range(0, len(level), FOLD_FAN_IN):
            key = (name, depth, j // FOLD_FAN_IN)
            layer[key] = (_fold_group, level[j:j + FOLD_FAN_IN], combine, leaves)
            nxt.append(key)
        level, depth, leaves = nxt, depth + 1, False
        if len(level) == 1:
            root = (name, depth, 0)
            layer[root] = (_finish_fold, level[0], combine, n_leaves)
            return layer, root


def unit_size(n_chunks: int, n_threads: int, units_per_thread: int = 4) -> int:
    """Chunks per work unit: the largest power of two that still gives every thread
    ``units_per_thread`` units (so a slow or lost worker holds up a small share, and
    the others take over its queued units). The bits do not depend on it."""
    size = 1
    while 2 * size <= n_chunks and \
            -(-n_chunks // (2 * size)) >= max(1, n_threads) * max(1, units_per_thread):
        size *= 2
    return size


#: work units per thread of the scheduler or cluster (a pass's units: 2**k chunks each)
UNITS_PER_THREAD = 4


class DaskSource(ChunkSource):
    """A validated 2-D float dask array (one chunk across the columns) and optional
    sample weights (a numpy or dask vector), computed on ``client`` or threads."""

    def __init__(self, X, sample_weight=None, client=None,
                 units_per_thread: int | None = None):
        self.X = X
        self.n_samples, self.n_features = (int(s) for s in X.shape)
        self.dtype = X.dtype
        self.client = client
        self.units_per_thread = units_per_thread or UNITS_PER_THREAD
        self.row_chunks = tuple(int(c) for c in X.chunks[0])
        self.starts = np.concatenate([[0], np.cumsum(self.row_chunks)[:-1]]).astype(int)
        # chunk files of an unmodified Zarr array are read inside the kernel's task (no
        # read tasks: half the scheduling)
        files = direct_chunks(X)
        self.blocks = files if files is not None else list(X.to_delayed()[:, 0])
        # chunk files, or chunks held as data by the threaded scheduler: a work unit
        # reads or takes them one at a time where it runs
        self._chunks_in_place = files is not None or (client is None and _data_blocks(X))
        if files is None and self._chunks_in_place:
            # the arrays themselves, out of the graph: a key each would cost the
            # threaded scheduler ~0.2 ms per chunk per pass
            graph = X.__dask_graph__()
            self.blocks = [_data_value(graph[row[0]]) for row in X.__dask_keys__()]
        # chunks persisted on a cluster: regrouped once into units held where most of
        # their chunks are (see _hold_units); None until the first pass
        # (weights given as a dask vector are tasks of their own: chunks stay tasks too)
        plain_weights = sample_weight is None or isinstance(sample_weight, np.ndarray)
        self._persisted = None if files is not None or client is None or not plain_weights \
            else _persisted_chunks(X, client)
        if not (self._chunks_in_place or self._persisted) and plain_weights:
            # chunks computed in the pass, each by tasks of its own: a unit runs them
            graphs = _chunk_graphs(X)
            if graphs is not None:
                self.blocks, self._chunks_in_place = graphs, True
        self._held: list | None = None
        self._held_size = 0
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
        """One pass as a Delayed: a task per work unit (or per chunk, for chunks that
        are tasks), then the fold's tree of groups of FOLD_FAN_IN. Written as plain tasks under one
        name (one tokenize per pass: building it through dask.delayed's per-call
        tokenizing took ~100 ms per pass for 40 chunks, the workers idle meanwhile).
        Chunks that are Delayed go through dask.delayed, which tracks them, with the
        same key names. ``shared`` values are graph keys of their own, shipped once to
        each worker that needs them."""
        from dask.highlevelgraph import HighLevelGraph

        shared_d = [dask.delayed(s, pure=True) for s in shared]
        shared_keys = [d.key for d in shared_d]
        check = not self.checked
        size = self.unit_size()
        held = self._held_units(size)
        name = "streammix-pass-" + tokenize(self._token, fn, combine, shared_keys, check,
                                            indexed, size)
        layer, parts, keys = {}, [], []
        for u, first in enumerate(range(0, self.n_chunks, size)):
            key = (name, 0, u)
            blks = self.blocks[first:first + size]
            sws = self.sw_blocks[first:first + size]
            # an array, not a list: Dask walks a task's list arguments element by element
            # (~1.5 us each per pass: 30 ms at 20,000 chunks), never an array's
            starts = np.asarray(self.starts[first:first + size], dtype=np.int64)
            if size == 1:
                blk, sw = blks[0], sws[0]
                args = (first, int(starts[0]), check, indexed, fn)
                if isinstance(blk, Delayed) or isinstance(sw, Delayed):
                    parts.append(dask.delayed(_run_chunk_checked, pure=True)(
                        blk, sw, *args, *shared_d, dask_key_name=key))
                else:
                    layer[key] = (_run_chunk_checked, blk, sw, *args, *shared_keys)
                keys.append(key)
                continue
            args = (first, starts, check, indexed, fn, combine)
            if held is not None:  # the unit's chunks, held together where it runs
                parts.append(dask.delayed(_run_unit, pure=True)(
                    held[u], _Items(sws), *args, *shared_d, dask_key_name=key))
            elif any(isinstance(b, Delayed) for b in blks + sws):
                parts.append(dask.delayed(_run_unit_of, pure=True)(
                    blks, sws, *args, *shared_d, dask_key_name=key))
            else:
                layer[key] = (_run_unit, _Items(blks), _Items(sws), *args, *shared_keys)
            keys.append(key)
        tree, root = _fold_tree(name, keys, combine, size == 1, self.n_chunks)
        layer.update(tree)
        graph = HighLevelGraph.from_collections(name, layer, dependencies=shared_d + parts)
        return Delayed(root, graph, layer=name)

    def unit_tasks(self, fn: Callable, *shared):
        """A Delayed of the list of ``fn(blocks, first, starts, *shared)`` over the work
        units (``blocks``: the unit's chunks as an _Items of ChunkFiles or arrays,
        ``first`` its first chunk's index, ``starts`` its chunks' first rows), in unit
        order; None when the chunks are tasks of their own (no units)."""
        size = self.unit_size()
        if size == 1 and not (self._chunks_in_place or self._persisted):
            return None
        held = self._held_units(size)
        shared_d = [dask.delayed(s, pure=True) for s in shared]
        name = "streammix-units-" + tokenize(self._token, fn, [d.key for d in shared_d],
                                             size)
        parts = []
        for u, first in enumerate(range(0, self.n_chunks, size)):
            starts = np.asarray(self.starts[first:first + size], dtype=np.int64)  # not walked
            run = self.blocks[first:first + size]
            if held is not None:
                blocks = held[u]
            elif any(isinstance(b, Delayed) for b in run):  # chunks Dask hands over
                blocks = dask.delayed(_Items, pure=True)(run)
            else:
                blocks = _Items(run)
            parts.append(dask.delayed(fn, pure=True)(blocks, first, starts, *shared_d,
                                                     dask_key_name=(name, u)))
        return dask.delayed(list, pure=True)(parts, dask_key_name=name)

    def unit_size(self) -> int:
        """Chunks per work unit: 1 while any chunk is a task of its own (a unit would
        hold all its chunks in memory at once, or pull them from other workers), else
        ``unit_size`` for the threads that run the pass. Units held on a cluster keep the
        size they were made with (the bits do not depend on it)."""
        if self._held is not None:
            return self._held_size
        if not (self._chunks_in_place or self._persisted):
            return 1
        return unit_size(self.n_chunks, self._n_threads(), self.units_per_thread)

    def _held_units(self, size: int) -> list | None:
        """For chunks persisted on the cluster: one future per unit holding its chunks
        (made on the first pass, kept for the source's life), else None."""
        if not self._persisted or size == 1:
            return None
        if self._held is None:
            self._held = _hold_units(self.client, self._persisted, size)
            self._held_size = size
        return self._held

    def _n_threads(self) -> int:
        if self.client is None:
            return default_n_threads()
        try:
            return max(1, sum(self.client.nthreads().values()))
        except Exception:  # a client that cannot tell: as many units as chunks allow
            return self.n_chunks

    def map_reduce(self, fn: Callable, combine: Callable | None = None, shared: tuple = (),
                   indexed: bool = False):
        result = compute(self._pass(fn, shared, indexed, combine or tree_sum), self.client)
        self.checked = True
        return result

    def iter_chunks(self):
        for blk, sw in zip(self.blocks, self.sw_blocks):
            X = np.asarray(compute(blk, self.client)) if isinstance(blk, Delayed) \
                else read_block(blk)
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
        # the sample is a function of (seed, size): candidates of a grid with the same
        # random_state draw the same one, and a pass over the data reads it only once
        memo = self.__dict__.setdefault("_samples", {})
        if (seed, size) not in memo:
            memo[(seed, size)] = self.map_reduce(_reservoir_chunk, _ReservoirMerge(size),
                                                 shared=(seed, size), indexed=True)[1:]
        rows, sw = memo[(seed, size)]
        return rows.copy(), None if sw is None else sw.copy()

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


def _persisted_chunks(X, client) -> list | None:
    """The futures of X's chunks, in row order, when X is persisted on ``client``'s
    cluster and nothing else is in its graph; else None."""
    try:
        from distributed import futures_of
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    keys = [row[0] for row in X.__dask_keys__()]
    futures = {f.key: f for f in futures_of(X)}
    if len(futures) != len(keys) or any(k not in futures for k in keys):
        return None
    if any(getattr(futures[k], "client", None) is not client for k in keys):
        return None
    return [futures[k] for k in keys]


def _hold(*chunks) -> _Items:
    """A unit's chunks as one object on the worker that runs it: the arrays themselves
    (no copy of those already there), opaque to Dask's size accounting, which counts
    them under their own keys."""
    return _Items([np.asarray(c) for c in chunks])


def _hold_units(client, chunks: list, size: int) -> list:
    """Regroup persisted chunks into units of ``size`` consecutive chunks, each held on
    the worker that has most of them (ties: the one given fewest units so far), so each
    pass runs a task per unit where its data is. The chunks a unit's worker lacks are
    copied to it once, here, not on every pass."""
    who_has = client.who_has(chunks)
    load: dict = {}
    held = []
    for first in range(0, len(chunks), size):
        run = chunks[first:first + size]
        votes: dict = {}
        for f in run:
            for w in who_has.get(f.key, ()):
                votes[w] = votes.get(w, 0) + 1
        worker = min(votes, key=lambda w: (-votes[w], load.get(w, 0), w)) if votes else None
        if worker is not None:
            load[worker] = load.get(worker, 0) + 1
        held.append(client.submit(_hold, *run, workers=None if worker is None else [worker],
                                  allow_other_workers=True, pure=False,
                                  key=f"streammix-unit-{tokenize(run)}"))
    return held


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
