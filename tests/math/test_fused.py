"""The one-loop numba versions of the M-step, the stepwise blend and recentring give
the same bits as the numpy expressions they replace (which still serve non-contiguous
input, and are used here as the reference)."""

from __future__ import annotations

import numpy as np
import pytest

from streammix.math.covariances import get_covariance_type
from streammix.math.stats import SufficientStats, blend, blend_normalised, recentred


def strided(a: np.ndarray) -> np.ndarray:
    """The same values in a non-contiguous array (forces the numpy path)."""
    out = np.repeat(a[..., None], 2, axis=-1)[..., 0]
    assert not out.flags.c_contiguous or out.ndim == 0
    return out


def random_stats(cov_type: str, seed: int, K: int = 7, d: int = 5, offset: float = 0.0):
    rng = np.random.default_rng(seed)
    s0 = rng.uniform(0, 100, K)
    s0[0] = 0.0                                   # an empty component
    s1 = rng.normal(size=(K, d)) * s0[:, None] * 0.1
    if cov_type == "full":
        A = rng.normal(size=(K, d, d))
        s2 = (A @ A.transpose(0, 2, 1) + np.eye(d)) * s0[:, None, None]
    else:
        s2 = rng.uniform(0.5, 2, size=(K, d)) * s0[:, None]
    centres = rng.normal(size=(K, d)) + offset
    return SufficientStats(cov_type, s0, s1, s2, float(rng.normal()), float(s0.sum()),
                           centres)


def as_strided(st: SufficientStats) -> SufficientStats:
    return SufficientStats(st.covariance_type, strided(st.s0), strided(st.s1),
                           strided(st.s2), st.loglik, st.n, strided(st.centres))


def same(a: SufficientStats, b: SufficientStats) -> None:
    for name in ("s0", "s1", "s2", "centres"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.loglik == b.loglik and a.n == b.n


@pytest.mark.parametrize("cov_type", ["full", "diag"])
@pytest.mark.parametrize("seed", range(5))
def test_m_step_bits(cov_type, seed):
    cov = get_covariance_type(cov_type)
    st = random_stats(cov_type, seed, offset=1e4 * seed)
    fast = cov.m_step(st, 1e-6)
    reference = cov.m_step(as_strided(st), 1e-6)
    for a, b in zip(fast, reference):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("cov_type", ["full", "diag"])
@pytest.mark.parametrize("seed", range(5))
def test_recentred_bits(cov_type, seed):
    st = random_stats(cov_type, seed, offset=100.0 * seed)
    new = st.centres + np.random.default_rng(seed + 9).normal(size=st.centres.shape)
    same(recentred(st, new), recentred(as_strided(st), strided(new)))


@pytest.mark.parametrize("cov_type", ["full", "diag", "spherical"])
@pytest.mark.parametrize("eta", [0.01, 0.37, 0.999])
def test_blend_normalised_bits(cov_type, eta):
    if cov_type == "spherical":
        base = random_stats("diag", 3)
        running = SufficientStats("spherical", base.s0 / base.n, base.s1 / base.n,
                                  base.s2.sum(axis=1) / base.n, -1.5, 1.0, base.centres)
        batch = SufficientStats("spherical", base.s0 * 3, base.s1 * 3, base.s2.sum(axis=1),
                                -7.0, base.n * 3, base.centres)
    else:
        batch = random_stats(cov_type, 11)
        running = batch.scaled(1.0 / batch.n)
        running = SufficientStats(cov_type, running.s0[::-1].copy(), running.s1 * 0.9,
                                  running.s2 * 1.1, -2.5, 1.0, batch.centres)
    mixed, rescaled = blend_normalised(running, batch, eta)
    reference = blend(running, batch.scaled(1.0 / batch.n), eta)
    same(mixed, reference)
    same(rescaled, reference.scaled(batch.n))
    strided_mixed, strided_rescaled = blend_normalised(as_strided(running), as_strided(batch),
                                                       eta)
    same(mixed, strided_mixed)
    same(rescaled, strided_rescaled)


def test_blend_normalised_refuses_other_centres():
    a, b = random_stats("diag", 1), random_stats("diag", 2)
    with pytest.raises(ValueError, match="recentred"):
        blend_normalised(a, b, 0.5)
