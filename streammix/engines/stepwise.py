"""Stepwise (online) EM: Cappé & Moulines (2009), Liang & Klein (2009).

The running statistics are per-sample averages s; each batch's statistics, computed by
the same kernels as batch EM and normalised by the batch's weight, are blended in with
s <- (1 - eta_t) s + eta_t s_batch, then the M-step runs on s. After the M-step the running
statistics are recentred on the new means, so that they add to the next batch's (which
the kernels take about the current means) and stay well-conditioned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..execution.numpy_source import NumpySource
from ..kernels.checks import FLOAT64_INF_BITS, magnitude_from_bits, scan_nonfinite
from ..math.covariances import CovarianceType
from ..math.covariances.tied import tied_centre
from ..math.params import GaussianParams
from ..math.stats import SufficientStats, blend_normalised, recentred, tree_sum
from ..validation import MAX_ABS_VALUE, merge_scans, raise_if_nonfinite
from .em import m_step


def step_size(t: int, alpha: float, t0: float, eta_min: float = 0.0) -> float:
    """eta_t = (t + t0)^-alpha, floored at eta_min (t = 1 for the first update).

    0.5 < alpha <= 1 satisfies Robbins-Monro (sum eta = inf, sum eta^2 < inf) so the
    iterates converge on a stationary stream; eta_min > 0 turns that into exponential
    forgetting with a memory of about 1/eta_min batches, to follow a drifting stream.
    """
    return max(float(eta_min), float((t + t0) ** (-alpha)))


def checked_statistics(source: NumpySource, cov: CovarianceType, params: GaussianParams,
                       what: str = "X") -> SufficientStats:
    """``statistics(source, cov, params)`` for a batch whose values are not checked yet:
    each chunk task scans its own rows for NaN/inf (and overflowing magnitudes) right
    after its kernel ran on them, so the scan runs in parallel and reads rows the kernel
    has just brought into cache, instead of being a separate single-threaded pass over
    the batch from memory. (The kernels are safe on any values; statistics of a chunk
    that fails the scan are dropped.) The verdict is taken on the whole batch before
    any statistics are returned: a bad batch raises ``check_finite``'s error (count,
    first row and column) and changes nothing. The sum is ``statistics``'s, bit for
    bit (the same chunks in the same order)."""
    X = source.X
    if source.runs_in_one_region():  # the kernels check the values as they load them
        total, tops = cov.stats_chunks(params)(X, source.sample_weight)
        _raise_if_bad_tops(tops, X, what)
        return total
    kernel = cov.stats_kernel(params)

    def task(Xc, sw, index):
        stats = kernel(Xc, sw)
        count, row, col, big = scan_nonfinite(Xc)
        scan = (count, row + source.bounds[index][0] if count else -1, col, big)
        if count or big > MAX_ABS_VALUE:
            return None, scan
        return stats, scan

    stats, scan = source.map_reduce(task, combine=_combine_checked, indexed=True)
    raise_if_nonfinite(scan, X, what)
    return stats


# |x| above MAX_ABS_VALUE (and NaN/inf, whose patterns lie higher) as a float64 bit pattern
_MAX_ABS_BITS = int(np.float64(MAX_ABS_VALUE).view(np.int64))


def _raise_if_bad_tops(tops: np.ndarray, X: np.ndarray, what: str) -> None:
    """The verdict on a region's per-chunk magnitude checks: NaN/inf are counted and
    located exactly (a scan, only on failure); a finite value too large is reported."""
    top = int(tops.max())
    if top >= FLOAT64_INF_BITS:  # rejected: count and locate the bad values exactly
        raise_if_nonfinite(scan_nonfinite(X), X, what)
    raise_if_nonfinite((0, -1, -1, magnitude_from_bits(top)), X, what)


def _combine_checked(parts: list) -> tuple[SufficientStats | None, tuple]:
    """Sum of (statistics, scan) pairs of consecutive chunks, in order; no statistics
    once any chunk was rejected."""
    scan = parts[0][1]
    for _, later in parts[1:]:
        scan = merge_scans(scan, later)
    if any(stats is None for stats, _ in parts):
        return None, scan
    return tree_sum([stats for stats, _ in parts]), scan


def stats_from_params(cov: CovarianceType, params: GaussianParams, total: float,
                      reg_covar: float) -> SufficientStats:
    """Per-sample statistics that the M-step maps back to ``params`` (first moments zero
    about the means, second moments = (covariance - reg_covar) * count): the running
    state of a model known only by its parameters (given inits, a re-seed)."""
    K, d = params.means.shape
    s0 = params.weights * total
    s1 = np.zeros((K, d))
    covs = params.covariances
    if covs is None:
        covs = cov.covariances_from_precision_cholesky(params.precisions_cholesky)
    t = params.covariance_type
    if t == "full":
        s2 = (covs - reg_covar * np.eye(d)) * s0[:, None, None]
        return SufficientStats(t, s0, s1, s2, 0.0, total, params.means)
    if t == "diag":
        return SufficientStats(t, s0, s1, (covs - reg_covar) * s0[:, None], 0.0, total,
                               params.means)
    if t == "spherical":
        return SufficientStats(t, s0, s1, (covs - reg_covar) * d * s0, 0.0, total, params.means)
    centre2 = tied_centre(params)
    dm = params.means - centre2
    s2 = (covs - reg_covar * np.eye(d)) * s0.sum() + (dm * s0[:, None]).T @ dm
    return SufficientStats(t, s0, s1, s2, 0.0, total, params.means, centre2)


@dataclass
class StepwiseResult:
    params: GaussianParams
    running: SufficientStats
    eta: float


def stepwise_update(cov: CovarianceType, running: SufficientStats | None,
                    batch: SufficientStats, eta: float, reg_covar: float) -> StepwiseResult:
    """One stepwise-EM update from a batch's (unnormalised) statistics.

    The M-step runs on the running statistics scaled back to the batch's weight, so that
    with eta = 1 it is exactly the M-step of batch EM on that batch (the 10 eps that
    scikit-learn adds to the soft counts then has the same relative size).
    """
    if running is None or eta >= 1.0:
        mixed = batch.scaled(1.0 / batch.n)
        rescaled = mixed.scaled(batch.n)
    else:
        fused = cov.fused_stepwise(running, batch, eta, reg_covar)
        if fused is not None:  # the same steps as below in one numba call
            return StepwiseResult(fused[0], fused[1], eta)
        mixed, rescaled = blend_normalised(running, batch, eta)
    params = m_step(cov, rescaled, reg_covar)
    centre2 = tied_centre(params) if params.covariance_type == "tied" else None
    return StepwiseResult(params, recentred(mixed, params.means, centre2), eta)


def stepwise_batch_update(source: NumpySource, cov: CovarianceType, params: GaussianParams,
                          running: SufficientStats | None, eta: float, reg_covar: float,
                          what: str = "X") -> tuple[SufficientStats, StepwiseResult | None]:
    """(batch statistics, the update) for a batch whose values are not checked yet:
    ``checked_statistics`` then ``stepwise_update``, or, for a batch that runs in one
    numba region and a type with a fused step, both in one call
    (``CovarianceType.fused_online_step``: the same bits). A bad batch raises before
    anything is returned; the update is None when the batch weighs nothing."""
    if running is not None and source.runs_in_one_region():
        fused = cov.fused_online_step(source.X, source.sample_weight, params, running, eta,
                                      reg_covar, _MAX_ABS_BITS)
        if fused is not None:
            batch, tops, stepped = fused
            _raise_if_bad_tops(tops, source.X, what)
            if not batch.n > 0:
                return batch, None
            if stepped is not None:
                return batch, StepwiseResult(stepped[0], stepped[1], eta)
            # a covariance needs repair: the general path repairs it, with its warning
            return batch, stepwise_update(cov, running, batch, eta, reg_covar)
    batch = checked_statistics(source, cov, params, what)
    if not batch.n > 0:
        return batch, None
    return batch, stepwise_update(cov, running, batch, eta, reg_covar)


def split_component(cov: CovarianceType, params: GaussianParams, dead: int, heavy: int,
                    reg_covar: float) -> GaussianParams:
    """Re-seed component ``dead`` by splitting component ``heavy`` along its principal
    axis: the two halves sit at mean +- sqrt(lambda)/2 v with half the weight each, and
    their variance along v shrinks by lambda/4 (the share the split explains)."""
    K, d = params.means.shape
    t = params.covariance_type
    covs = params.covariances.copy()
    if t == "full":
        lam, vec = np.linalg.eigh(covs[heavy])
    elif t == "tied":
        lam, vec = np.linalg.eigh(covs)
    elif t == "diag":
        j = int(np.argmax(covs[heavy]))
        lam, vec = np.array([covs[heavy][j]]), np.eye(d)[:, [j]]
    else:
        lam, vec = np.array([covs[heavy]]), np.eye(d)[:, [0]]
    v, l1 = vec[:, -1], float(lam[-1])
    offset = 0.5 * np.sqrt(max(l1, reg_covar)) * v
    means = params.means.copy()
    weights = params.weights.copy()
    means[dead] = means[heavy] + offset
    means[heavy] = means[heavy] - offset
    weights[dead] = weights[heavy] = 0.5 * (weights[heavy] + weights[dead])
    weights /= weights.sum()
    if t == "full":
        shrunk = covs[heavy] - 0.25 * l1 * np.outer(v, v)
        covs[heavy] = covs[dead] = 0.5 * (shrunk + shrunk.T)
    elif t == "diag":
        j = int(np.argmax(v))
        covs[heavy][j] -= 0.25 * l1
        covs[dead] = covs[heavy]
    elif t == "spherical":
        covs[dead] = covs[heavy]
    prec_chol, covs = cov.precision_cholesky(covs, reg_covar)
    return GaussianParams(t, weights, np.ascontiguousarray(means), covs,
                          np.ascontiguousarray(prec_chol))
