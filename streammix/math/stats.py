"""Sufficient statistics of a Gaussian mixture and their algebra (add, scale, blend).

Statistics of two chunks computed under the same parameters add; that one property is
what makes chunked, distributed, out-of-core and online EM the same algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit


@dataclass
class SufficientStats:
    """Per-component statistics of some data under fixed parameters.

    s0[k] = sum_i w_i r_ik; s1[k] = sum_i w_i r_ik (x_i - centres[k]); s2 is the second
    moment in the shape the covariance type needs: 'full' (K,d,d) and 'diag' (K,d) and
    'spherical' (K,) (trace) about ``centres[k]``; 'tied' (d,d) summed over components,
    about the single ``centre2``. ``loglik`` = sum_i w_i log p(x_i), ``n`` = sum_i w_i.
    """

    covariance_type: str
    s0: np.ndarray
    s1: np.ndarray
    s2: np.ndarray
    loglik: float
    n: float
    centres: np.ndarray
    centre2: np.ndarray | None = field(default=None)

    def _check_compatible(self, other: "SufficientStats") -> None:
        if self.covariance_type != other.covariance_type:
            raise ValueError(
                f"cannot combine '{self.covariance_type}' and '{other.covariance_type}' statistics"
            )
        if self.centres is not other.centres and not np.array_equal(self.centres, other.centres):
            raise ValueError("statistics about different centres must be recentred before adding")
        if (self.centre2 is None) != (other.centre2 is None) or (
                self.centre2 is not None and not np.array_equal(self.centre2, other.centre2)):
            raise ValueError("tied statistics about different centres must be recentred first")

    def __add__(self, other: "SufficientStats") -> "SufficientStats":
        self._check_compatible(other)
        return SufficientStats(
            self.covariance_type,
            self.s0 + other.s0,
            self.s1 + other.s1,
            self.s2 + other.s2,
            self.loglik + other.loglik,
            self.n + other.n,
            self.centres,
            self.centre2,
        )

    def scaled(self, factor: float) -> "SufficientStats":
        """The statistics multiplied by ``factor`` (all of them, counts included)."""
        return SufficientStats(
            self.covariance_type,
            self.s0 * factor,
            self.s1 * factor,
            self.s2 * factor,
            self.loglik * factor,
            self.n * factor,
            self.centres,
            self.centre2,
        )

    @property
    def mean_loglik(self) -> float:
        """Average log-likelihood per (weighted) sample: scikit-learn's lower bound."""
        return self.loglik / self.n if self.n > 0 else float("-inf")


def sum_stats(parts: list[SufficientStats]) -> SufficientStats:
    """Sum a list of statistics in the given order (deterministic for a fixed order)."""
    if not parts:
        raise ValueError("no statistics to sum")
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    return total


def tree_sum(parts: list[SufficientStats], fan_in: int = 8) -> SufficientStats:
    """Sum statistics by a fixed tree of fan-in ``fan_in`` (the order a reduction uses)."""
    level = list(parts)
    while len(level) > 1:
        level = [sum_stats(level[i : i + fan_in]) for i in range(0, len(level), fan_in)]
    return level[0]


def full_to_type(stats: SufficientStats, covariance_type: str, weights: np.ndarray | None = None
                 ) -> SufficientStats:
    """Reduce 'full' statistics to what ``covariance_type`` needs (used by initialisers,
    which compute full statistics once whatever the final type)."""
    if stats.covariance_type != "full":
        raise ValueError("full_to_type expects 'full' statistics")
    s2 = stats.s2
    if covariance_type == "full":
        return stats
    if covariance_type == "diag":
        new_s2 = np.ascontiguousarray(np.diagonal(s2, axis1=1, axis2=2))
        return SufficientStats("diag", stats.s0, stats.s1, new_s2, stats.loglik, stats.n,
                               stats.centres)
    if covariance_type == "spherical":
        new_s2 = np.trace(s2, axis1=1, axis2=2).copy()
        return SufficientStats("spherical", stats.s0, stats.s1, new_s2, stats.loglik, stats.n,
                               stats.centres)
    if covariance_type == "tied":
        total = stats.s0.sum()
        if weights is None:
            weights = stats.s0 / total if total > 0 else np.full(len(stats.s0), 1 / len(stats.s0))
        centre2 = weights @ stats.centres
        delta = stats.centres - centre2  # (K, d)
        # sum_k sum_i r (x - c2)(x - c2)^T with x - c2 = (x - c_k) + delta_k
        new_s2 = s2.sum(axis=0)
        cross = stats.s1.T @ delta
        new_s2 = new_s2 + cross + cross.T + (stats.s0[:, None] * delta).T @ delta
        return SufficientStats("tied", stats.s0, stats.s1, new_s2, stats.loglik, stats.n,
                               stats.centres, centre2)
    raise ValueError(f"unknown covariance_type {covariance_type!r}")


def recentred(stats: SufficientStats, centres: np.ndarray,
              centre2: np.ndarray | None = None) -> SufficientStats:
    """The same statistics taken about new centres (exact algebra, no data needed).

    With x - c' = (x - c) + delta, delta = c - c': s1' = s1 + s0 delta and
    s2' = s2 + s1 delta^T + delta s1^T + s0 delta delta^T (its diagonal or trace for
    'diag'/'spherical'). For 'tied', the summed s2 moves from centre2 to the new
    ``centre2`` with the total first moment sum_k (s1_k + s0_k (c_k - centre2)).
    Online EM recentres its running statistics on the new means after every M-step, so
    they stay small and well-conditioned and add to the next batch's statistics.
    """
    centres = np.ascontiguousarray(centres, dtype=np.float64)
    t = stats.covariance_type
    if t in ("full", "diag") and _contiguous(stats.s0, stats.s1, stats.s2, stats.centres):
        new_s1, s2 = np.empty_like(stats.s1), np.empty_like(stats.s2)
        _recentre_moments(stats.s0, stats.s1, stats.s2.reshape(len(stats.s0), -1),
                          stats.centres, centres, new_s1, s2.reshape(len(stats.s0), -1))
        return SufficientStats(t, stats.s0, new_s1, s2, stats.loglik, stats.n, centres,
                               stats.centre2)
    delta = stats.centres - centres
    s0, s1 = stats.s0, stats.s1
    new_s1 = s1 + s0[:, None] * delta
    if t == "full":
        cross = s1[:, :, None] * delta[:, None, :]
        s2 = stats.s2 + cross + cross.transpose(0, 2, 1) + s0[:, None, None] * (
            delta[:, :, None] * delta[:, None, :])
    elif t == "diag":
        s2 = stats.s2 + 2.0 * s1 * delta + s0[:, None] * delta**2
    elif t == "spherical":
        s2 = stats.s2 + 2.0 * (s1 * delta).sum(axis=1) + s0 * (delta**2).sum(axis=1)
    elif t == "tied":
        if centre2 is None:
            raise ValueError("tied statistics need the new centre2")
        centre2 = np.asarray(centre2, dtype=np.float64)
        total = (s1 + s0[:, None] * (stats.centres - stats.centre2)).sum(axis=0)
        d2 = stats.centre2 - centre2
        s2 = stats.s2 + np.outer(total, d2) + np.outer(d2, total) + s0.sum() * np.outer(d2, d2)
        return SufficientStats(t, s0, new_s1, s2, stats.loglik, stats.n, centres, centre2)
    else:
        raise ValueError(f"unknown covariance_type {t!r}")
    return SufficientStats(t, s0, new_s1, s2, stats.loglik, stats.n, centres, stats.centre2)


def blend(running: SufficientStats, batch: SufficientStats, eta: float) -> SufficientStats:
    """Stepwise-EM update (1 - eta) * running + eta * batch (same centres required)."""
    return running.scaled(1.0 - eta) + batch.scaled(eta)


def blend_normalised(running: SufficientStats, batch: SufficientStats, eta: float
                     ) -> tuple[SufficientStats, SufficientStats]:
    """(mixed, mixed scaled back to the batch's weight) with mixed =
    blend(running, batch.scaled(1 / batch.n), eta): stepwise EM's blend of the running
    per-sample statistics with a batch's, as one pass over the arrays instead of a
    dozen numpy operations, with the same roundings in the same order (same bits)."""
    running._check_compatible(batch)
    inv_n, keep = 1.0 / batch.n, 1.0 - eta
    parts = (running.s0, running.s1, running.s2, batch.s0, batch.s1, batch.s2)
    if not _contiguous(*parts):
        mixed = blend(running, batch.scaled(inv_n), eta)
        return mixed, mixed.scaled(batch.n)
    mixed = [np.empty_like(a) for a in parts[:3]]
    rescaled = [np.empty_like(a) for a in parts[:3]]
    for r, b, m, out in zip(parts[:3], parts[3:], mixed, rescaled):
        _blend_rescale(r.reshape(-1), b.reshape(-1), inv_n, keep, eta, batch.n,
                       m.reshape(-1), out.reshape(-1))
    loglik = running.loglik * keep + (batch.loglik * inv_n) * eta
    n = running.n * keep + (batch.n * inv_n) * eta
    mix = SufficientStats(running.covariance_type, *mixed, loglik, n, running.centres,
                          running.centre2)
    back = SufficientStats(running.covariance_type, *rescaled, loglik * batch.n,
                           n * batch.n, running.centres, running.centre2)
    return mix, back


def _contiguous(*arrays: np.ndarray) -> bool:
    return all(a.flags.c_contiguous and a.dtype == np.float64 for a in arrays)


@njit(cache=True)
def _blend_rescale(r, b, inv_n, keep, eta, n, mixed, rescaled):
    """mixed = r * keep + (b * inv_n) * eta, rescaled = mixed * n, elementwise (each
    product and sum rounded as numpy rounds the same expression)."""
    for i in range(r.shape[0]):
        v = r[i] * keep + (b[i] * inv_n) * eta
        mixed[i] = v
        rescaled[i] = v * n


@njit(cache=True)
def _recentre_moments(s0, s1, s2, old, new, out1, out2):
    """``recentred`` for 'diag' (s2 (K, d)) and 'full' (s2 (K, d*d)): the numpy
    expressions of the general path, element by element, in the same order."""
    K, d = s1.shape
    full = s2.shape[1] != d
    delta = np.empty(d)
    for k in range(K):
        for i in range(d):
            delta[i] = old[k, i] - new[k, i]
            out1[k, i] = s1[k, i] + s0[k] * delta[i]
        if full:
            for i in range(d):
                for j in range(d):
                    out2[k, i * d + j] = ((s2[k, i * d + j] + s1[k, i] * delta[j])
                                          + s1[k, j] * delta[i]) + s0[k] * (delta[i] * delta[j])
        else:
            for i in range(d):
                out2[k, i] = (s2[k, i] + (2.0 * s1[k, i]) * delta[i]) + s0[k] * (delta[i] * delta[i])
