"""The in-process thread pool that runs GIL-free kernels on chunks in parallel."""

from __future__ import annotations

import functools
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None

# A job of at most this many items per thread is shared out item by item (_map_shared).
SMALL_JOB_ITEMS_PER_THREAD = 4


def default_n_threads() -> int:
    """Threads to use: STREAMMIX_NUM_THREADS if set, else the CPUs this process may use."""
    env = os.environ.get("STREAMMIX_NUM_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    return _usable_cpus(os.getpid())


@functools.lru_cache(maxsize=4)
def _usable_cpus(pid: int) -> int:
    """CPUs this process may use, asked once per process (a system call that every
    online update made several times)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def get_pool() -> ThreadPoolExecutor:
    """A process-wide pool (created on first use; kernels release the GIL)."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(default_n_threads(), thread_name_prefix="streammix")
        return _pool


@numba.njit(cache=True, parallel=True)
def _probe_region(out):
    """A trivial parallel region: the first launch makes numba pick its threading layer."""
    for i in numba.prange(out.shape[0]):
        out[i] = i


_REGION_LAYERS = ("omp", "tbb")
_region_layer: str | None = None
_region_pid: int | None = None
_numba_threads_set = threading.local()


def numba_regions_usable() -> bool:
    """Whether a job of a few chunks may run in one numba parallel region
    (``*_stats_chunks``) instead of on the pool.

    Worth it for online updates: numba's OpenMP/TBB threads wait spinning for a while
    after a region, where the pool's workers sleep, and on a shared virtual machine a
    sleeping worker took 0.1-0.3 ms to start on each small batch, and ran its first
    part on the caller's core. Used only when numba's threading layer is 'omp' or
    'tbb' (both accept launches from several threads at once; 'workqueue' does not),
    numba has threads enough (one thread too: the same chunks in the same order, so
    the same bits whatever the thread count), the process is not
    a child forked after GNU OpenMP started (its threads do not survive a fork), and
    STREAMMIX_NUMBA_REGIONS is not "0"."""
    global _region_layer, _region_pid
    if os.environ.get("STREAMMIX_NUMBA_REGIONS", "1") == "0":
        return False
    n = default_n_threads()
    if numba.config.NUMBA_NUM_THREADS < n:
        return False
    if _region_layer is None:  # probed once per process, under the lock
        with _lock:
            if _region_layer is None:
                try:
                    _probe_region(np.zeros(2))
                    layer = numba.threading_layer()
                except Exception:  # no usable layer (e.g. no libgomp, no tbb, a bad setting)
                    layer = "none"
                _region_pid = os.getpid()
                _region_layer = layer
    if _region_layer not in _REGION_LAYERS:
        return False
    if _region_layer == "omp" and os.getpid() != _region_pid:
        return False
    if getattr(_numba_threads_set, "n", None) != n:
        numba.set_num_threads(n)  # numba's count is per calling thread
        _numba_threads_set.n = n
    return True


def map_in_order(fn, items) -> list:
    """fn over items on the pool; results in item order (so reductions are deterministic)."""
    items = list(items)
    if len(items) <= 1:
        return [fn(x) for x in items]
    return list(get_pool().map(fn, items))


def map_reduce_streaming(fn, items, combine, max_in_flight: int | None = None):
    """combine over fn(item) for items, holding O(log n) partial results, not n.

    Results are taken in item order and folded by a binary counter: two partials of
    the same level are combined into one of the next level, so the tree's shape depends
    only on the number of items (deterministic), and at most ``max_in_flight`` tasks
    (default 2 x threads) are pending at once. A small job (at most
    ``SMALL_JOB_ITEMS_PER_THREAD`` items per thread: a batch split over the cores) is
    shared instead between the calling thread, which would otherwise only wait, and
    the pool's workers (see ``_map_shared``).
    """
    items = list(items)
    if not items:
        raise ValueError("nothing to reduce")
    fold = _InOrderFold(combine)
    if len(items) == 1:
        return combine([fn(items[0])])
    if len(items) <= SMALL_JOB_ITEMS_PER_THREAD * default_n_threads():
        for result in _map_shared(fn, items):
            fold.push(result)
        return fold.result()
    pool = get_pool()
    in_flight = max_in_flight or 2 * default_n_threads()
    futures = []
    nxt = 0
    for _ in range(min(in_flight, len(items))):
        futures.append(pool.submit(fn, items[nxt]))
        nxt += 1
    done = 0
    while done < len(items):
        result = futures[done].result()
        futures[done] = None
        done += 1
        if nxt < len(items):
            futures.append(pool.submit(fn, items[nxt]))
            nxt += 1
        fold.push(result)
    return fold.result()


class _InOrderFold:
    """The binary-counter fold of ``map_reduce_streaming``: results pushed in item order
    are combined pairwise by level, so the tree depends only on how many were pushed."""

    def __init__(self, combine):
        self.combine = combine
        self.stack: list[tuple[int, object]] = []

    def push(self, value) -> None:
        self.push_node(0, value)

    def push_node(self, level: int, value) -> None:
        """Push a partial sum of 2**level consecutive results (a node of this same fold
        made elsewhere, e.g. by a work unit on a Dask worker)."""
        while self.stack and self.stack[-1][0] == level:
            _, left = self.stack.pop()
            value = self.combine([left, value])
            level += 1
        self.stack.append((level, value))

    def result(self):
        value = self.stack.pop()[1]
        while self.stack:
            value = self.combine([self.stack.pop()[1], value])
        return value


def _map_shared(fn, items) -> list:
    """fn over items, results in item order. The calling thread and up to threads - 1
    pool workers each take the next untaken item whenever they finish one: one thread
    handoff per worker rather than per item, and the load balances itself when a core
    is slow or busy with another process. Every item runs even when one raises; the
    error of the first failed item is raised once all are done."""
    n = len(items)
    results: list = [None] * n
    errors: list = [None] * n
    taken = itertools.count()  # next() is atomic under the GIL

    def drain() -> None:
        while (i := next(taken)) < n:
            try:
                results[i] = fn(items[i])
            except BaseException as exc:  # re-raised by the caller, in item order
                errors[i] = exc

    helpers = [get_pool().submit(drain) for _ in range(min(default_n_threads(), n) - 1)]
    drain()
    for helper in helpers:
        if not helper.cancel():  # a helper that never started has nothing left to do
            helper.result()
    for exc in errors:
        if exc is not None:
            raise exc
    return results
