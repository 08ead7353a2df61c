"""The opt-in float32 E-step of the full and tied kernels: single-precision products
(BLAS's s-routines) whose statistics stay within float32 rounding of the float64
kernels', on every path of both kernels, and BLAS calls that refuse mixed dtypes."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from streammix.kernels.blas_calls import syrk_accumulate, trmm_upper_right
from streammix.math.covariances import get_covariance_type
from tests.conftest import make_blobs
from tests.kernels.test_kernels import random_params

# full: d = 2 (np.dot, no Khatri-Rao), (8, 8) Khatri-Rao, 24 and 70 dtrmm/dsyrk;
# tied: 8 (float64 loops below TIED_ROWS_MIN_D), 24 and 64 the row-major products
CASES = [("full", 2, 3), ("full", 8, 8), ("full", 24, 4), ("full", 70, 3),
         ("tied", 8, 3), ("tied", 24, 4), ("tied", 64, 5)]


def scaled_errors(a, b):
    """Largest errors of b's statistics against a's: s0 and s2 relative to their
    largest entry, s1 in units of each component's spread sqrt(s0 * s2_jj), loglik
    relative."""
    diag = np.einsum("...ii->...i", a.s2)
    spread = np.sqrt(a.s0[:, None] * (diag if diag.ndim == 2 else diag[None, :]))
    return (np.abs(a.s0 - b.s0).max() / a.s0.max(),
            (np.abs(a.s1 - b.s1) / spread).max(),
            np.abs(a.s2 - b.s2).max() / np.abs(a.s2).max(),
            abs(a.loglik - b.loglik) / abs(a.loglik))


@pytest.mark.parametrize("cov_type,d,K", CASES)
@pytest.mark.parametrize("weighted", [False, True])
def test_float32_statistics_are_float64_to_single_precision(cov_type, d, K, weighted):
    # data 50 from the origin: rows are centred in float64 before they are rounded
    X = make_blobs(3001, d, K, seed=3, offset=50.0)[0]
    params = random_params(cov_type, K, d)
    params.means += 50.0
    sw = np.random.default_rng(4).uniform(0, 2, len(X)) if weighted else None
    c64, c32 = get_covariance_type(cov_type), get_covariance_type(cov_type, "float32")
    assert c32.estep_dtype is np.float32 and c64.estep_dtype is np.float64
    a = c64.stats_chunks(params)(X, sw)[0]
    b = c32.stats_chunks(params)(X, sw)[0]
    s0, s1, s2, ll = scaled_errors(a, b)
    if cov_type == "tied" and d < 20:  # the float64 loops: the same kernel
        assert (s0, s1, s2, ll) == (0, 0, 0, 0)
        return
    assert 0 < max(s0, s1, s2, ll)  # the float32 path ran
    assert s0 < 1e-5 and s1 < 1e-5 and s2 < 1e-5 and ll < 1e-6
    np.testing.assert_array_equal(b.s2, np.swapaxes(b.s2, -1, -2))  # exactly symmetric
    # the same chunks on one thread (a Dask work unit's path) fold to the same bits
    bounds = [(0, 1000), (1000, 2000), (2000, 3001)]
    run = c32.stats_run(params)(X, sw, bounds)[0]
    region = c32.stats_chunks(params)(X, sw, bounds)[0]
    for field in ("s0", "s1", "s2"):
        np.testing.assert_allclose(getattr(run, field), getattr(region, field),
                                   rtol=1e-12, atol=1e-9)


@njit
def _trmm(Z, b, U):
    trmm_upper_right(Z, b, U)


@njit
def _syrk(W, b, C):
    syrk_accumulate(W, b, C)


def test_single_precision_blas_calls_match_numpy_and_refuse_mixed_dtypes():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(40, 12)).astype(np.float32)
    U = np.triu(rng.normal(size=(12, 12))).astype(np.float32)
    want = Z[:30].astype(np.float64) @ U.astype(np.float64)
    got = Z.copy()
    _trmm(got, 30, U)
    np.testing.assert_allclose(got[:30], want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got[30:], Z[30:])  # rows past b untouched
    C = np.zeros((12, 12), np.float32)
    _syrk(Z, 30, C)
    full = Z[:30].astype(np.float64).T @ Z[:30].astype(np.float64)
    np.testing.assert_allclose(np.tril(C), np.tril(full), rtol=1e-5, atol=1e-4)
    with pytest.raises(TypingError):  # a float32 block with a float64 factor
        _trmm(Z.copy(), 30, U.astype(np.float64))
    with pytest.raises(TypingError):  # a float32 block into float64 sums
        _syrk(Z, 30, np.zeros((12, 12)))
