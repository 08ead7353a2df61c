"""The parallel statistics drivers (``*_stats_chunks``): their sum equals the kernels run
on each chunk alone and summed as the pool sums them, in every memory layout, and each
chunk's NaN/inf and magnitude check."""

from __future__ import annotations

import numpy as np
import pytest

from streammix.kernels.checks import FLOAT64_INF_BITS, magnitude_from_bits
from streammix.execution.threads import map_reduce_streaming
from streammix.math.covariances import get_covariance_type
from streammix.math.stats import tree_sum
from tests.conftest import make_blobs
from tests.kernels.test_kernels import TYPES, random_params

BOUNDS = [(0, 700), (700, 1500), (1500, 1501), (1501, 2300)]


def layouts(X):
    """The same values as C-ordered, F-ordered and strided (non-contiguous) arrays."""
    wide = np.repeat(X, 2, axis=1)[:, ::2]
    assert not wide.flags.c_contiguous and not wide.flags.f_contiguous
    return {"C": np.ascontiguousarray(X), "F": np.asfortranarray(X), "strided": wide}


# every layout in float64, float32 in C order (each case compiles a driver, a few
# seconds on a fresh clone): all of them for diag (whose block loader spherical and
# tied share) and full (its own loader), the two dtypes for the other two
CASES = [(np.float64, "C"), (np.float64, "F"), (np.float64, "strided"), (np.float32, "C")]
TYPE_CASES = [(t, dtype, layout) for t in TYPES for dtype, layout in CASES
              if t in ("diag", "full") or layout == "C"]


@pytest.mark.parametrize("cov_type,dtype,layout", TYPE_CASES)
@pytest.mark.parametrize("weighted", [False, True])
def test_chunks_equal_the_kernel_per_chunk(cov_type, dtype, layout, weighted):
    X = make_blobs(2300, 5, 3, seed=4)[0].astype(dtype)
    params = random_params(cov_type, 3, 5)
    cov = get_covariance_type(cov_type)
    sw = np.random.default_rng(2).uniform(0, 3, len(X)) if weighted else None
    kernel = cov.stats_kernel(params)
    A = layouts(X)[layout]
    total, tops = cov.stats_chunks(params)(A, sw, BOUNDS)
    parts = [kernel(np.ascontiguousarray(X[a:b]), None if sw is None else sw[a:b])
             for a, b in BOUNDS]
    on_pool = map_reduce_streaming(lambda part: part, parts, tree_sum, max_in_flight=1)
    for field in ("s0", "s1", "s2"):
        np.testing.assert_allclose(getattr(total, field), getattr(on_pool, field),
                                   rtol=1e-12, atol=1e-9, err_msg=field)
        assert getattr(total, field).flags.c_contiguous
    assert total.loglik == pytest.approx(on_pool.loglik, rel=1e-12)
    assert total.n == pytest.approx(on_pool.n, rel=1e-14)
    assert total.centres is params.means
    if cov_type == "tied":
        np.testing.assert_array_equal(total.centre2, on_pool.centre2)
    for (a, b), top in zip(BOUNDS, tops):
        assert magnitude_from_bits(int(top)) == np.abs(X[a:b]).max()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_the_check_flags_exactly_the_chunk_with_a_bad_value(dtype, bad):
    X = make_blobs(2300, 4, 2, seed=1)[0].astype(dtype)
    X[1200, 3] = bad  # in chunk 1
    cov = get_covariance_type("diag")
    params = random_params("diag", 2, 4)
    for name, A in layouts(X).items():
        total, tops = cov.stats_chunks(params)(A, None, BOUNDS)
        assert [int(t) >= FLOAT64_INF_BITS for t in tops] == [False, True, False, False], name


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 13])
def test_rows_fold_in_the_pools_order(n):
    """fold_rows_in_order adds exactly as the pool's in-order fold does: checked with
    values whose float sums depend on the order of the additions."""
    from streammix.kernels._common import fold_rows_in_order

    rng = np.random.default_rng(n)
    F = rng.normal(size=(n, 3)) * 10.0 ** rng.integers(-8, 9, size=(n, 3))
    expected = map_reduce_streaming(lambda row: row, list(F.copy()),
                                    lambda rows: rows[0] + rows[1] if len(rows) == 2
                                    else rows[0], max_in_flight=1)
    fold_rows_in_order(F)
    np.testing.assert_array_equal(F[0], expected)


@pytest.mark.parametrize("n", [1, 511, 512, 513, 10_000, 100_000, 1_000_003])
@pytest.mark.parametrize("block", [256, 341, 512])
def test_region_chunks_are_whole_blocks_covering_the_rows(n, block):
    from streammix.math.covariances._base import (REGION_MAX_CHUNKS, REGION_MIN_CHUNK_ROWS,
                                                  region_chunks)

    chunks = region_chunks(n, block)
    assert chunks[0, 0] == 0 and chunks[-1, 1] == n
    np.testing.assert_array_equal(chunks[1:, 0], chunks[:-1, 1])  # contiguous, in order
    sizes = chunks[:, 1] - chunks[:, 0]
    assert (sizes[:-1] == sizes[0]).all() and 0 < sizes[-1] <= sizes[0]
    assert len(chunks) <= REGION_MAX_CHUNKS
    if len(chunks) > 1:
        assert sizes[0] % block == 0 and sizes[0] >= REGION_MIN_CHUNK_ROWS


@pytest.mark.parametrize("cov_type", TYPES)
def test_region_statistics_do_not_depend_on_the_thread_count(cov_type):
    """Threads take chunks as they free up, but every chunk's statistics land in its own
    row and are summed in a fixed order: 1, 2 or 3 threads give the same bits."""
    import numba

    X = make_blobs(9000, 5, 3, seed=6)[0]
    sw = np.random.default_rng(3).uniform(0, 2, len(X))
    params = random_params(cov_type, 3, 5)
    run = get_covariance_type(cov_type).stats_chunks(params)
    before = numba.get_num_threads()
    results = []
    try:
        for n_threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS),
                                 min(3, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(n_threads)
            results.append(run(X, sw))
    finally:
        numba.set_num_threads(before)
    (first, first_tops), *others = results
    assert len(first_tops) > 1  # several chunks, so the claiming order could matter
    for total, tops in others:
        for field in ("s0", "s1", "s2"):
            np.testing.assert_array_equal(getattr(total, field), getattr(first, field))
        assert (total.loglik, total.n) == (first.loglik, first.n)
        np.testing.assert_array_equal(tops, first_tops)
