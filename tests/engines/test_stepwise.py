"""Statistics of a few in-memory chunks: one numba parallel region or the thread pool,
the same statistics to rounding and the same verdict on bad values."""

from __future__ import annotations

import numpy as np
import pytest

from streammix import OnlineGaussianMixture
from streammix.engines.em import statistics
from streammix.engines.stepwise import checked_statistics
from streammix.errors import InvalidInputError
from streammix.execution import threads
from streammix.execution.numpy_source import NumpySource
from streammix.math.covariances import get_covariance_type
from tests.conftest import make_blobs
from tests.kernels.test_kernels import TYPES, random_params

needs_regions = pytest.mark.skipif(not threads.numba_regions_usable(),
                                   reason="numba has no OpenMP/TBB threading layer here")


@pytest.fixture
def two_threads(monkeypatch):
    monkeypatch.setenv("STREAMMIX_NUM_THREADS", "2")


def both_paths(monkeypatch, fn):
    """fn() with numba regions, then on the pool (STREAMMIX_NUMBA_REGIONS=0)."""
    monkeypatch.setenv("STREAMMIX_NUMBA_REGIONS", "1")
    with_regions = fn()
    monkeypatch.setenv("STREAMMIX_NUMBA_REGIONS", "0")
    on_pool = fn()
    monkeypatch.delenv("STREAMMIX_NUMBA_REGIONS")
    return with_regions, on_pool


def assert_stats_close(a, b):
    for field in ("s0", "s1", "s2"):
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=1e-12,
                                   atol=1e-9)
    assert a.loglik == pytest.approx(b.loglik, rel=1e-12)
    assert a.n == b.n


@needs_regions
def test_small_sources_run_in_one_region(two_threads, monkeypatch):
    X = make_blobs(4000, 3, 2, seed=0)[0]
    assert NumpySource(X, None, 2000).runs_in_one_region()
    assert not NumpySource(X, None, 100).runs_in_one_region()  # 40 chunks: the pool
    monkeypatch.setenv("STREAMMIX_NUMBA_REGIONS", "0")
    assert not NumpySource(X, None, 2000).runs_in_one_region()
    monkeypatch.setenv("STREAMMIX_NUMBA_REGIONS", "1")
    monkeypatch.setenv("STREAMMIX_NUM_THREADS", "1")  # one thread too: the bits of two
    assert NumpySource(X, None, 2000).runs_in_one_region()


@needs_regions
@pytest.mark.parametrize("cov_type", TYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_region_and_pool_statistics_agree(cov_type, weighted, two_threads, monkeypatch):
    X = make_blobs(5001, 4, 3, seed=3)[0]
    sw = np.random.default_rng(0).uniform(0.1, 2, len(X)) if weighted else None
    cov, params = get_covariance_type(cov_type), random_params(cov_type, 3, 4)
    for fn in (statistics, checked_statistics):
        region, pool = both_paths(monkeypatch,
                                  lambda: fn(NumpySource(X, sw, 1700), cov, params))
        assert_stats_close(region, pool)


@needs_regions
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_bad_values_give_the_same_error_on_both_paths(dtype, bad, two_threads, monkeypatch):
    X = make_blobs(3000, 3, 2, seed=1)[0].astype(dtype)
    X[2222, 1] = bad
    X[2500, 0] = bad
    cov, params = get_covariance_type("full"), random_params("full", 2, 3)
    messages = []
    for setting in ("1", "0"):
        monkeypatch.setenv("STREAMMIX_NUMBA_REGIONS", setting)
        with pytest.raises(InvalidInputError) as info:
            checked_statistics(NumpySource(X, None, 1500), cov, params, what="batch")
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert "2 " in messages[0] and "2222" in messages[0]


@needs_regions
def test_overflowing_magnitudes_are_rejected_on_both_paths(two_threads, monkeypatch):
    X = make_blobs(3000, 3, 2, seed=1)[0]
    X[10, 2] = 1e200
    cov, params = get_covariance_type("diag"), random_params("diag", 2, 3)
    for setting in ("1", "0"):
        monkeypatch.setenv("STREAMMIX_NUMBA_REGIONS", setting)
        with pytest.raises(InvalidInputError, match="as large as 1e\\+200"):
            checked_statistics(NumpySource(X, None, 1500), cov, params)


@needs_regions
@pytest.mark.parametrize("cov_type", TYPES)
def test_partial_fit_agrees_on_both_paths(cov_type, two_threads, monkeypatch):
    X = make_blobs(30_000, 5, 4, seed=2)[0]

    def run():
        model = OnlineGaussianMixture(4, covariance_type=cov_type, random_state=0,
                                      init_size=3000)
        for s in range(0, len(X), 3000):
            model.partial_fit(X[s:s + 3000])
        return model

    region, pool = both_paths(monkeypatch, run)
    np.testing.assert_allclose(region.means_, pool.means_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(region.covariances_, pool.covariances_, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(region.lower_bounds_, pool.lower_bounds_, rtol=1e-11)


@needs_regions
def test_same_bits_run_to_run(two_threads):
    X = make_blobs(8000, 4, 3, seed=5)[0]
    cov, params = get_covariance_type("diag"), random_params("diag", 3, 4)
    a = checked_statistics(NumpySource(X, None, 4000), cov, params)
    b = checked_statistics(NumpySource(X, None, 4000), cov, params)
    for field in ("s0", "s1", "s2"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.loglik == b.loglik


def _two_steps(cov_type, X):
    from streammix.engines.stepwise import stepwise_update

    cov, params = get_covariance_type(cov_type), random_params(cov_type, 3, X.shape[1])
    first = stepwise_update(cov, None, statistics(NumpySource(X[:3000]), cov, params), 1.0,
                            1e-6)
    batch = statistics(NumpySource(X[3000:]), cov, first.params)
    return cov, first, batch


@pytest.mark.parametrize("cov_type", TYPES)
def test_the_fused_step_is_the_general_step_bit_for_bit(cov_type):
    from streammix.engines.em import m_step
    from streammix.math.stats import blend_normalised, recentred

    X = make_blobs(6000, 5, 3, seed=0)[0]
    cov, first, batch = _two_steps(cov_type, X)
    fused = cov.fused_stepwise(first.running, batch, 0.3, 1e-6)
    if cov_type in ("tied", "spherical"):
        assert fused is None  # no fused step: the general path runs
        return
    mixed, rescaled = blend_normalised(first.running, batch, 0.3)
    params = m_step(cov, rescaled, 1e-6)
    running = recentred(mixed, params.means, None)
    for field in ("weights", "means", "covariances", "precisions_cholesky"):
        np.testing.assert_array_equal(getattr(fused[0], field), getattr(params, field))
    for field in ("s0", "s1", "s2", "centres"):
        np.testing.assert_array_equal(getattr(fused[1], field), getattr(running, field))
    assert (fused[1].loglik, fused[1].n) == (running.loglik, running.n)


@pytest.mark.parametrize("cov_type", ["diag", "full"])
def test_a_collapsing_component_leaves_the_fused_step_to_the_repairing_path(cov_type):
    from streammix.engines.stepwise import stepwise_update
    from streammix.errors import DegenerateComponentWarning

    X = make_blobs(6000, 5, 3, seed=0)[0]
    cov, first, batch = _two_steps(cov_type, X)
    batch.s2[0] = 0.0  # component 0: no spread at all, and reg_covar = 0 below
    first.running.s2[0] = 0.0
    assert cov.fused_stepwise(first.running, batch, 0.5, 0.0) is None
    with pytest.warns(DegenerateComponentWarning, match="component 0"):
        result = stepwise_update(cov, first.running, batch, 0.5, 0.0)
    assert np.isfinite(result.params.precisions_cholesky).all()


@needs_regions
@pytest.mark.parametrize("cov_type", ["diag", "full"])
@pytest.mark.parametrize("weighted", [False, True])
def test_fused_online_step_gives_the_bits_of_the_separate_path(cov_type, weighted,
                                                               two_threads, monkeypatch):
    """partial_fit's one-call update (statistics in a region + stepwise step) against
    the same update as two calls (checked_statistics, then stepwise_update)."""
    X = make_blobs(12_000, 4, 3, seed=8)[0]
    sw = np.random.default_rng(5).uniform(0.5, 2.0, len(X)) if weighted else None
    cov = get_covariance_type(cov_type)
    calls = []
    fused = type(cov).fused_online_step

    def counting(self, *args, **kwargs):
        out = fused(self, *args, **kwargs)
        calls.append(out is not None and out[2] is not None)
        return out

    def run():
        model = OnlineGaussianMixture(n_components=3, covariance_type=cov_type,
                                      init_size=2000, random_state=0)
        for s in range(0, len(X), 2000):
            model.partial_fit(X[s:s + 2000], sample_weight=None if sw is None
                              else sw[s:s + 2000])
        return model

    monkeypatch.setattr(type(cov), "fused_online_step", counting)
    one_call = run()
    assert sum(calls) >= 4  # the updates after initialisation took the fused step
    monkeypatch.setattr(type(cov), "fused_online_step", lambda self, *a, **k: None)
    two_calls = run()
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_",
                 "lower_bounds_"):
        np.testing.assert_array_equal(getattr(one_call, name), getattr(two_calls, name),
                                      err_msg=name)
    for field in ("s0", "s1", "s2"):
        np.testing.assert_array_equal(getattr(one_call._running, field),
                                      getattr(two_calls._running, field))
    assert (one_call._running.loglik, one_call._running.n) == (
        two_calls._running.loglik, two_calls._running.n)
