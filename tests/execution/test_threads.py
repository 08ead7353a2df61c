"""The in-process reduction: the same tree whatever the dispatch, errors propagated."""

from __future__ import annotations

import threading

import numba
import pytest

from streammix.execution import threads
from streammix.execution.threads import map_reduce_streaming


def concat(parts):
    return "(" + "+".join(parts) + ")"


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 13])
def test_small_and_large_jobs_fold_in_the_same_tree(n, monkeypatch):
    items = [str(i) for i in range(n)]
    streamed = map_reduce_streaming(lambda x: x, items, concat, max_in_flight=1)
    monkeypatch.setenv("STREAMMIX_NUM_THREADS", "16")   # every job is "small"
    assert map_reduce_streaming(lambda x: x, items, concat) == streamed


def test_a_small_job_finishes_on_the_calling_thread_when_the_pool_is_busy(monkeypatch):
    """The caller takes items itself and does not wait for helpers that never started."""
    monkeypatch.setenv("STREAMMIX_NUM_THREADS", "2")
    pool = threads.get_pool()
    release = threading.Event()
    blockers = [pool.submit(release.wait) for _ in range(pool._max_workers)]
    try:
        names = map_reduce_streaming(lambda x: [threading.current_thread().name],
                                     list(range(5)), lambda parts: sum(parts, []))
    finally:
        release.set()
        for b in blockers:
            b.result()
    assert names == [threading.current_thread().name] * 5


@pytest.mark.parametrize("bad", [0, 1])
def test_an_error_in_any_item_is_raised_after_all_items_ran(bad, monkeypatch):
    monkeypatch.setenv("STREAMMIX_NUM_THREADS", "2")
    ran = []

    def fn(x):
        ran.append(x)
        if x == bad:
            raise KeyError(x)
        return x

    with pytest.raises(KeyError):
        map_reduce_streaming(fn, [0, 1], sum)
    assert sorted(ran) == [0, 1]
    assert threads.get_pool() is not None


def _regions_in_child(queue):
    from streammix.execution import threads as child_threads

    queue.put(child_threads.numba_regions_usable())


@pytest.mark.skipif(not threads.numba_regions_usable(), reason="no OpenMP/TBB layer")
def test_a_child_forked_after_openmp_started_uses_the_pool(monkeypatch):
    """GNU OpenMP's threads do not survive fork(): a forked child must not launch a
    region (it would hang); TBB survives, so there the child may."""
    import multiprocessing

    import numba

    monkeypatch.setenv("STREAMMIX_NUM_THREADS", "2")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_regions_in_child, args=(queue,))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert queue.get(timeout=5) is (numba.threading_layer() != "omp")


def test_regions_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("STREAMMIX_NUMBA_REGIONS", "0")
    assert not threads.numba_regions_usable()
    monkeypatch.setenv("STREAMMIX_NUMBA_REGIONS", "1")
    monkeypatch.setenv("STREAMMIX_NUM_THREADS", str(numba.config.NUMBA_NUM_THREADS + 1))
    assert not threads.numba_regions_usable()  # more threads than numba has
