"""The parallel statistics drivers (``*_stats_chunks``): per-chunk results equal the
kernel run on each chunk alone, in every memory layout, and the per-chunk NaN/inf scan."""

from __future__ import annotations

import numpy as np
import pytest

from streammix.kernels.checks import magnitude_from_bits, magnitude_scan_args
from streammix.math.covariances import get_covariance_type
from tests.conftest import make_blobs
from tests.kernels.test_kernels import TYPES, random_params

BOUNDS = [(0, 700), (700, 1500), (1500, 1501), (1501, 2300)]


def layouts(X):
    """The same values as C-ordered, F-ordered and strided (non-contiguous) arrays."""
    wide = np.repeat(X, 2, axis=1)[:, ::2]
    assert not wide.flags.c_contiguous and not wide.flags.f_contiguous
    return {"C": np.ascontiguousarray(X), "F": np.asfortranarray(X), "strided": wide}


# every layout in float64; float32 in C order only (each case compiles a driver)
CASES = [(np.float64, "C"), (np.float64, "F"), (np.float64, "strided"), (np.float32, "C")]


@pytest.mark.parametrize("cov_type", TYPES)
@pytest.mark.parametrize("dtype,layout", CASES)
@pytest.mark.parametrize("weighted", [False, True])
def test_chunks_equal_the_kernel_per_chunk(cov_type, dtype, layout, weighted):
    X = make_blobs(2300, 5, 3, seed=4)[0].astype(dtype)
    params = random_params(cov_type, 3, 5)
    cov = get_covariance_type(cov_type)
    sw = np.random.default_rng(2).uniform(0, 3, len(X)) if weighted else None
    kernel = cov.stats_kernel(params)
    for name, A in [(layout, layouts(X)[layout])]:
        parts, tops = cov.stats_chunks(params)(A, sw, BOUNDS, True)
        assert len(parts) == len(BOUNDS)
        for (a, b), part, top in zip(BOUNDS, parts, tops):
            ref = kernel(np.ascontiguousarray(X[a:b]), None if sw is None else sw[a:b])
            for field in ("s0", "s1", "s2"):
                np.testing.assert_allclose(getattr(part, field), getattr(ref, field),
                                           rtol=1e-12, atol=1e-9, err_msg=f"{name} {field}")
            assert part.loglik == pytest.approx(ref.loglik, rel=1e-12)
            assert part.n == pytest.approx(ref.n, rel=1e-14)
            assert part.centres is params.means
            if cov_type == "tied":
                np.testing.assert_array_equal(part.centre2, ref.centre2)
            assert magnitude_from_bits(int(top), A.dtype) == np.abs(X[a:b]).max()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_scan_flags_exactly_the_chunk_with_a_bad_value(dtype, bad):
    X = make_blobs(2300, 4, 2, seed=1)[0].astype(dtype)
    X[1200, 3] = bad  # in chunk 1
    cov = get_covariance_type("diag")
    params = random_params("diag", 2, 4)
    _, _, inf_bits = magnitude_scan_args(X)
    for name, A in layouts(X).items():
        parts, tops = cov.stats_chunks(params)(A, None, BOUNDS, True)
        assert [int(t) >= inf_bits for t in tops] == [False, True, False, False], name
        assert np.isfinite(parts[0].s1).all()  # the kernels stay safe on any values


def test_without_scan_the_tops_are_zero():
    X = make_blobs(500, 3, 2, seed=1)[0]
    cov = get_covariance_type("full")
    _, tops = cov.stats_chunks(random_params("full", 2, 3))(X, None, [(0, 250), (250, 500)],
                                                             False)
    assert tops.tolist() == [0, 0]
