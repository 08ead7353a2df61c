"""The batch EM loop: one pass over the source per iteration (E-step and statistics in
the kernels, summed by the source's reduction), then the M-step on the sums.

It follows scikit-learn's ``fit_predict`` loop exactly: the lower bound of iteration t is
the mean log-likelihood under the parameters *before* its M-step, convergence is
``|change| < tol``, and the best of ``n_init`` runs is the one with the highest final
lower bound.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import InvalidInputError
from ..execution.base import ChunkSource
from ..math.covariances import CovarianceType
from ..math.params import GaussianParams
from ..math.stats import SufficientStats, tree_sum


@dataclass
class IterationInfo:
    """What a progress callback receives after each EM iteration."""

    iteration: int
    lower_bound: float
    change: float
    seconds: float
    rows_per_second: float


@dataclass
class EMResult:
    params: GaussianParams
    lower_bound: float
    lower_bounds: list[float] = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False


def statistics(source: ChunkSource, cov: CovarianceType, params: GaussianParams
               ) -> SufficientStats:
    """One E-step pass: the summed statistics of the whole source under ``params``.
    A small in-memory source runs in one numba region, cut into ``region_chunks``
    (the same sums to rounding as on the pool)."""
    if source.runs_in_one_region():
        total, _ = cov.stats_chunks(params)(source.X, source.sample_weight)
        return total
    return source.map_reduce(_chunk_stats, shared=(cov, params))


def _chunk_stats(X, sw, cov: CovarianceType, params: GaussianParams) -> SufficientStats:
    return cov.chunk_stats(X, sw, params)


# a work unit's many chunks: ``_chunk_stats`` as fn(X, sw), the kernel's constants derived
# from the parameters once per unit, not once per chunk (the same numbers); see
# execution.dask_source._run_unit
_chunk_stats.for_unit = lambda cov, params: cov.stats_kernel(params)
# ... and by runs of consecutive chunks, one numba call each (``stats_run``; see
# execution.dask_source._run_unit_by_runs)
_chunk_stats.for_runs = lambda cov, params: cov.stats_run(params)


def statistics_many(source: ChunkSource, covs, params_list: list[GaussianParams]
                    ) -> list[SufficientStats]:
    """``statistics`` under several parameters in one pass: each chunk is read (and
    decoded) once and every candidate's kernel runs on it while it is in cache. Each
    candidate's sum is the one its own pass gives, bit for bit (the same kernel on the
    same chunks, folded by the same tree). ``covs``: one covariance type for all, or
    one per candidate."""
    if not isinstance(covs, (list, tuple)):
        covs = [covs] * len(params_list)
    if len(params_list) == 1 or source.runs_in_one_region():
        return [statistics(source, c, p) for c, p in zip(covs, params_list)]
    return source.map_reduce(_chunk_stats_many, combine=combine_many,
                             shared=(list(covs), list(params_list)))


def _chunk_stats_many(X, sw, covs, params_list) -> list[SufficientStats]:
    return [c.chunk_stats(X, sw, p) for c, p in zip(covs, params_list)]


def combine_many(parts: list[list[SufficientStats]]) -> list[SufficientStats]:
    """The fold's combine for lists of per-candidate statistics: candidate by candidate,
    as each candidate's own pass combines them."""
    return [tree_sum([p[i] for p in parts]) for i in range(len(parts[0]))]


def _kernels_many(covs, params_list):
    kernels = [c.stats_kernel(p) for c, p in zip(covs, params_list)]
    return lambda X, sw: [k(X, sw) for k in kernels]


def _runs_many(covs, params_list):
    runs = [c.stats_run(p) for c, p in zip(covs, params_list)]

    def run(X, sw, bounds):
        out = [r(X, sw, bounds) for r in runs]
        return [s for s, _ in out], out[0][1]

    return run


_chunk_stats_many.for_unit = _kernels_many
_chunk_stats_many.for_runs = _runs_many


def m_step(cov: CovarianceType, stats: SufficientStats, reg_covar: float) -> GaussianParams:
    """Parameters from summed statistics (degenerate components repaired with a warning)."""
    check_single_precision_stats(cov, stats)
    weights, means, covariances = cov.m_step(stats, reg_covar)
    prec_chol, covariances = cov.precision_cholesky(covariances, reg_covar)
    return GaussianParams(cov.name, weights, np.ascontiguousarray(means), covariances,
                          np.ascontiguousarray(prec_chol))


def check_single_precision_stats(cov: CovarianceType, stats: SufficientStats) -> None:
    """Refuse the statistics of a float32 E-step that overflowed (the data, or their
    distances from the means, too large for single precision) before an M-step turns
    them into a model (a float64 E-step has nothing to check)."""
    if cov.estep_dtype is np.float64:
        return
    if not (np.isfinite(stats.loglik) and np.isfinite(stats.s1).all()
            and np.isfinite(stats.s2).all()):
        raise InvalidInputError(
            "the float32 E-step overflowed: a statistic is not finite, because some of "
            "the data's distances from the component means (or their squares) pass "
            "single precision's 3.4e38. Use the default estep_dtype (float64) or "
            "rescale the data.")


class GaussianUpdate:
    """Maximum-likelihood EM: the kernels run on the parameters themselves, the M-step is
    ``m_step`` and the lower bound is the mean log-likelihood of the pass."""

    def __init__(self, cov: CovarianceType, reg_covar: float):
        self.cov, self.reg_covar = cov, reg_covar

    def kernel_params(self, params: GaussianParams) -> GaussianParams:
        return params

    def step(self, stats: SufficientStats, params: GaussianParams
             ) -> tuple[GaussianParams, float]:
        """(parameters after the M-step, lower bound of the iteration)."""
        return m_step(self.cov, stats, self.reg_covar), stats.mean_loglik


def run_em(source: ChunkSource, cov: CovarianceType, params: GaussianParams, *,
           tol: float, max_iter: int, reg_covar: float, lower_bound: float = -np.inf,
           callback: Callable[[IterationInfo], None] | None = None, start_iter: int = 0,
           lower_bounds: list[float] | None = None,
           on_iteration: Callable[[EMResult], None] | None = None,
           update=None) -> EMResult:
    """Iterate EM from ``params`` for at most ``max_iter`` iterations.

    ``start_iter``/``lower_bounds``/``lower_bound`` resume a run that stopped after
    iteration ``start_iter`` (a checkpoint); ``on_iteration(result)`` sees the state after
    every iteration (params after the M-step), e.g. to save it. ``update`` says what the
    kernels run on and what the M-step and lower bound are (``GaussianUpdate`` by
    default; ``engines.variational.VariationalUpdate`` for a Bayesian mixture, whose
    ``params`` are then its variational posterior)."""
    if update is None:
        update = GaussianUpdate(cov, reg_covar)
    result = EMResult(params=params, lower_bound=lower_bound,
                      lower_bounds=list(lower_bounds or []), n_iter=start_iter)
    if max_iter == 0 or start_iter >= max_iter:
        return result
    for n_iter in range(start_iter + 1, max_iter + 1):
        t0 = time.perf_counter()
        prev = lower_bound
        stats = statistics(source, cov, update.kernel_params(params))
        params, lower_bound = update.step(stats, params)
        result.lower_bounds.append(lower_bound)
        change = lower_bound - prev
        if callback is not None:
            dt = time.perf_counter() - t0
            callback(IterationInfo(n_iter, lower_bound, change, dt,
                                   source.n_samples / dt if dt > 0 else float("inf")))
        result.n_iter = n_iter
        result.params = params
        result.lower_bound = lower_bound
        if abs(change) < tol:
            result.converged = True
        if on_iteration is not None:
            on_iteration(result)
        if result.converged:
            break
    return result


def run_em_many(source: ChunkSource, cov, starts: list, *, tol: float,
                max_iter: int, reg_covar: float, updates: list | None = None
                ) -> list[EMResult]:
    """``run_em`` from several starts at once (``n_init`` restarts, a grid of
    candidates of the same type and K): every iteration is one pass
    (``statistics_many``) for all the candidates still running; a candidate that
    converges drops out. Each result is, bit for bit, what ``run_em`` gives from its
    start alone. ``cov``: one covariance type for all, or one per start; ``updates``:
    one update rule per start (default: EM)."""
    covs = list(cov) if isinstance(cov, (list, tuple)) else [cov] * len(starts)
    updates = updates or [GaussianUpdate(c, reg_covar) for c in covs]
    results = [EMResult(params=p, lower_bound=-np.inf) for p in starts]
    live = list(range(len(starts))) if max_iter > 0 else []
    for n_iter in range(1, max_iter + 1):
        if not live:
            break
        kernel_params = [updates[i].kernel_params(results[i].params) for i in live]
        stats = statistics_many(source, [covs[i] for i in live], kernel_params)
        still = []
        for i, st in zip(live, stats):
            res = results[i]
            prev = res.lower_bound
            res.params, res.lower_bound = updates[i].step(st, res.params)
            res.lower_bounds.append(res.lower_bound)
            res.n_iter = n_iter
            if abs(res.lower_bound - prev) < tol:
                res.converged = True
            else:
                still.append(i)
        live = still
    return results
