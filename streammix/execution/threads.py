"""The in-process thread pool that runs GIL-free kernels on chunks in parallel."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


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
    (default 2 x threads) are pending at once. A job of no more items than threads (a
    small batch split over the cores) runs its first item on the calling thread, which
    would otherwise only wait: one thread handoff fewer per call.
    """
    items = list(items)
    if not items:
        raise ValueError("nothing to reduce")
    fold = _InOrderFold(combine)
    if len(items) == 1:
        return combine([fn(items[0])])
    if len(items) <= default_n_threads():
        for result in _map_with_caller(fn, items):
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


def _map_with_caller(fn, items) -> list:
    """fn over items, items[1:] on the pool and items[0] on the calling thread; results
    in item order. Waits for every pool task even when one raises, so no task outlives
    the call."""
    futures = [get_pool().submit(fn, x) for x in items[1:]]
    try:
        first = fn(items[0])
    finally:
        rest = [_result_or_error(f) for f in futures]
    results = [first]
    for value, error in rest:
        if error is not None:
            raise error
        results.append(value)
    return results


def _result_or_error(future) -> tuple[object, BaseException | None]:
    try:
        return future.result(), None
    except BaseException as exc:  # re-raised by the caller, in item order
        return None, exc
