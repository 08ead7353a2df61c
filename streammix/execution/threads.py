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
