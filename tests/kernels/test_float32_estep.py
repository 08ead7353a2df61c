"""The opt-in float32 E-step of the full kernel: single-precision products (BLAS's
s-routines) whose statistics stay within float32 rounding of the float64 kernel's, on
each of its paths, far from the origin and with components far apart; and BLAS calls
that refuse mixed dtypes."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from streammix.kernels.blas_calls import syrk_accumulate, trmm_upper_right
from streammix.kernels.full import full_block_rows, use_khatri_rao
from streammix.math.covariances import get_covariance_type
from tests.conftest import make_blobs
from tests.kernels.test_kernels import random_params

# (d, K): np.dot below d = 16 (8, 3); (8, 8) and (2, 3) would take the Khatri-Rao
# scatter in float64, which float32 does not use; dtrmm/dsyrk from d = 16 (24, 70)
CASES = [(2, 3), (8, 3), (8, 8), (24, 4), (70, 3)]


def float32_kernel():
    """'full' with a float32 E-step at every shape (the estimator keeps float64 where
    float32 does not pay: ``pass_dtype``; the kernel itself takes any)."""
    cov = copy.copy(get_covariance_type("full", "float32"))
    cov.pass_dtype = lambda K, d: np.float32
    return cov


def test_float32_is_used_where_it_pays():
    c32 = get_covariance_type("full", "float32")
    assert c32.estep_dtype is np.float32
    assert c32.pass_dtype(4, 16) is np.float32 and c32.pass_dtype(4, 128) is np.float32
    assert c32.pass_dtype(32, 32) is np.float32  # Khatri-Rao in float64, slower
    assert c32.pass_dtype(16, 16) is np.float64  # Khatri-Rao in float64, faster
    assert c32.pass_dtype(4, 2) is np.float64
    assert get_covariance_type("full").pass_dtype(4, 128) is np.float64


def scaled_errors(a, b):
    """Largest errors of b's statistics against a's: s0 and s2 relative to their
    largest entry, s1 in units of each component's spread sqrt(s0 * s2_jj), loglik
    relative."""
    spread = np.sqrt(a.s0[:, None] * np.einsum("kii->ki", a.s2))
    return (np.abs(a.s0 - b.s0).max() / a.s0.max(),
            (np.abs(a.s1 - b.s1) / spread).max(),
            np.abs(a.s2 - b.s2).max() / np.abs(a.s2).max(),
            abs(a.loglik - b.loglik) / abs(a.loglik))


@pytest.mark.parametrize("d,K", CASES)
@pytest.mark.parametrize("weighted", [False, True])
def test_float32_statistics_are_float64_to_single_precision(d, K, weighted):
    # data 50 from the origin: rows are centred in float64 before they are rounded
    X = make_blobs(3001, d, K, seed=3, offset=50.0)[0]
    params = random_params("full", K, d)
    params.means += 50.0
    sw = np.random.default_rng(4).uniform(0, 2, len(X)) if weighted else None
    c64, c32 = get_covariance_type("full"), float32_kernel()
    a = c64.stats_chunks(params)(X, sw)[0]
    b = c32.stats_chunks(params)(X, sw)[0]
    s0, s1, s2, ll = scaled_errors(a, b)
    assert 0 < max(s0, s1, s2, ll)  # the float32 path ran
    assert s0 < 1e-5 and s1 < 1e-5 and s2 < 1e-5 and ll < 1e-6
    np.testing.assert_array_equal(b.s2, np.swapaxes(b.s2, -1, -2))  # exactly symmetric
    # chunks of 1.5 blocks leave a short block in each: the rows past its end must
    # weigh nothing in float32 as in float64
    B = full_block_rows(d)
    bounds = [(0, B + B // 2), (B + B // 2, 3001)]
    short64 = c64.stats_chunks(params)(X, sw, bounds)[0]
    short32 = c32.stats_chunks(params)(X, sw, bounds)[0]
    assert max(scaled_errors(short64, short32)) < 1e-5
    assert max(scaled_errors(a, short64)) < 1e-12
    # the same chunks on one thread (a Dask work unit's path) fold to the same bits
    run = c32.stats_run(params)(X, sw, bounds)[0]
    for field in ("s0", "s1", "s2"):
        np.testing.assert_array_equal(getattr(run, field), getattr(short32, field))


@pytest.mark.parametrize("separation", [3.0, 1000.0])
def test_float32_moments_do_not_degrade_with_separation(separation):
    """Each component's moments are about its own mean in float32 too (no Khatri-Rao
    moments about a shared centre, which would lose digits as separation^2)."""
    rng = np.random.default_rng(5)
    d, K = 8, 8
    assert use_khatri_rao(K, d)  # float64 would take the Khatri-Rao scatter here
    centres = rng.normal(size=(K, d)) * separation
    labels = rng.integers(0, K, 4000)
    X = centres[labels] + rng.normal(size=(4000, d))
    params = random_params("full", K, d)
    params.means[:] = centres + 0.05
    a = get_covariance_type("full").stats_chunks(params)(X, None)[0]
    b = float32_kernel().stats_chunks(params)(X, None)[0]
    assert max(scaled_errors(a, b)) < 1e-5


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
