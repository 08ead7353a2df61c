"""Variational inference for Bayesian Gaussian mixtures on any chunk source: the
data-dependent priors from one streaming pass, the initial posterior, and the update
``run_em`` iterates (the kernels' pass, then the variational M-step and the evidence
lower bound on the summed statistics; see ``math.variational``)."""

from __future__ import annotations

import numpy as np

from ..execution.base import ChunkSource
from ..math.covariances import CovarianceType, get_covariance_type
from ..math.params import GaussianParams
from ..math.stats import SufficientStats
from ..math.variational import (
    VariationalParams,
    VariationalPrior,
    e_step_params,
    lower_bound,
    m_step,
)
from .em import check_single_precision_stats, statistics
from .init import initial_stats


def data_moments(source: ChunkSource, full: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """(mean (d,), covariance with ddof=1 ((d, d) if ``full`` else its diagonal (d,)),
    total weight) of the data in one pass of the kernels with a single component, about a
    centre taken from a few rows (so that a large offset costs no digits). With sample
    weights the covariance divides by their sum minus 1 (frequency weights)."""
    d = source.n_features
    rows, _ = source.sample_rows(min(source.n_samples, 256), np.random.RandomState(0))
    centre = np.ascontiguousarray(np.asarray(rows, dtype=np.float64).mean(axis=0)[None])
    name = "full" if full else "diag"
    prec_chol = np.eye(d)[None] if full else np.ones((1, d))
    one = GaussianParams(name, np.ones(1), centre, None, np.ascontiguousarray(prec_chol))
    stats = statistics(source, get_covariance_type(name), one)
    n = float(stats.s0[0])
    s1 = stats.s1[0]
    mean = centre[0] + s1 / n
    if full:
        cov = (stats.s2[0] - np.outer(s1, s1) / n) / (n - 1.0)
        cov = 0.5 * (cov + cov.T)
    else:
        cov = (stats.s2[0] - s1 * s1 / n) / (n - 1.0)
    return mean, cov, n


def initial_posterior(source: ChunkSource, cov: CovarianceType, n_components: int, *,
                      init_params: str, reg_covar: float, rng: np.random.RandomState,
                      prior: VariationalPrior) -> VariationalParams:
    """scikit-learn's ``_initialize``: the variational M-step on the statistics of the
    initial responsibilities ``init_params`` gives."""
    stats = initial_stats(source, cov, n_components, init_params=init_params, rng=rng)
    return m_step(cov, stats, prior, reg_covar)


class VariationalUpdate:
    """What ``run_em`` iterates for a Bayesian mixture: the kernels run on the
    posterior's E-step form (``e_step_params``), the M-step is the variational one and
    the lower bound is scikit-learn's evidence lower bound."""

    def __init__(self, cov: CovarianceType, prior: VariationalPrior, reg_covar: float):
        self.cov, self.prior, self.reg_covar = cov, prior, reg_covar
        self._last: tuple[VariationalParams, GaussianParams] | None = None

    def kernel_params(self, vp: VariationalParams) -> GaussianParams:
        e = e_step_params(vp)
        self._last = (vp, e)
        return e

    def step(self, stats: SufficientStats, vp: VariationalParams
             ) -> tuple[VariationalParams, float]:
        e = self._last[1] if self._last is not None and self._last[0] is vp \
            else e_step_params(vp)
        check_single_precision_stats(self.cov, stats)
        new = m_step(self.cov, stats, self.prior, self.reg_covar)
        return new, lower_bound(self.cov, stats, e, new)
