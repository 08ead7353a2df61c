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
    (default 2 x threads) are pending at once.
    """
    items = list(items)
    if not items:
        raise ValueError("nothing to reduce")
    pool = get_pool()
    in_flight = max_in_flight or 2 * default_n_threads()
    stack: list[tuple[int, object]] = []

    def push(value):
        level = 0
        while stack and stack[-1][0] == level:
            _, left = stack.pop()
            value = combine([left, value])
            level += 1
        stack.append((level, value))

    if len(items) == 1:
        return combine([fn(items[0])])
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
        push(result)
    value = stack.pop()[1]
    while stack:
        value = combine([stack.pop()[1], value])
    return value
