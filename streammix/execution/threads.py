"""The in-process thread pool that runs GIL-free kernels on chunks in parallel."""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

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
        level = 0
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
