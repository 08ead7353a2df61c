"""Diagonal covariances, one variance vector per component (scikit-learn's 'diag')."""

from __future__ import annotations

import numpy as np
from numba import njit

from ...kernels.blas import single_threaded_blas
from ...kernels.diag import diag_outputs, diag_stats, diag_stats_chunks
from ._base import (
    EPS10,
    CovarianceType,
    StatsSpec,
    check_shape,
    mixture_weights,
    new_means,
    positive_variances,
    soft_counts,
)
from ...errors import InvalidParameterError


def _fast_m_step_inputs(stats) -> bool:
    return all(a.flags.c_contiguous and a.dtype == np.float64
               for a in (stats.s0, stats.s1, stats.s2, stats.centres))


@njit(cache=True)
def _diag_m_step(s0, s1, s2, centres, reg_covar, eps, nk, means, cov):
    """The numpy M-step below as one loop (the same roundings in the same order, so
    the same bits), without a dozen small temporaries: it runs at every online update."""
    K, d = s1.shape
    for k in range(K):
        n = s0[k] + eps
        nk[k] = n
        shrink = 2.0 - s0[k] / n
        for j in range(d):
            delta = s1[k, j] / n
            means[k, j] = centres[k, j] + delta
            cov[k, j] = (s2[k, j] / n - shrink * (delta * delta)) + reg_covar


class DiagCovariance(CovarianceType):
    name = "diag"

    def covariance_shape(self, n_components, n_features):
        return (n_components, n_features)

    def n_covariance_parameters(self, n_components, n_features):
        return n_components * n_features

    def m_step(self, stats, reg_covar):
        if _fast_m_step_inputs(stats):
            nk, means = np.empty_like(stats.s0), np.empty_like(stats.s1)
            cov = np.empty_like(stats.s2)
            _diag_m_step(stats.s0, stats.s1, stats.s2, stats.centres, reg_covar, EPS10,
                         nk, means, cov)
            return mixture_weights(nk), means, cov
        nk = soft_counts(stats)
        means, delta = new_means(stats, nk)
        shrink = 2.0 - stats.s0 / nk
        cov = stats.s2 / nk[:, None] - shrink[:, None] * delta**2 + reg_covar
        return mixture_weights(nk), means, cov

    def precision_cholesky(self, covariances, reg_covar=None):
        cov = positive_variances(covariances, reg_covar)
        return 1.0 / np.sqrt(cov), cov

    def precision_cholesky_from_precisions(self, precisions):
        return np.sqrt(precisions).astype(np.float64)

    def precisions(self, precisions_cholesky):
        return precisions_cholesky**2

    def covariances_from_precision_cholesky(self, precisions_cholesky):
        return 1.0 / precisions_cholesky**2

    def log_det_cholesky(self, precisions_cholesky, n_features):
        return np.log(precisions_cholesky).sum(axis=1)

    def validate_precisions(self, precisions, n_components, n_features):
        check_shape(precisions, (n_components, n_features), "precisions_init ('diag')")
        bad = np.flatnonzero(~(precisions > 0).reshape(n_components, -1).all(axis=1))
        if len(bad):
            k = int(bad[0])
            raise InvalidParameterError(
                f"precisions_init ('diag') must be positive; precisions_init[{k}] = "
                f"{precisions[k].tolist()!r}"
            )
        return precisions

    @staticmethod
    def _expanded(params):
        """(centre, precisions, precision * (mean - centre), sum of p (mean - centre)^2):
        the E-step's distance expanded about the mixture mean (see kernels/diag.py)."""
        from .tied import tied_centre

        centre = tied_centre(params)
        prec = np.ascontiguousarray(params.precisions_cholesky**2)
        m = params.means - centre
        pm = np.ascontiguousarray(prec * m)
        q = np.ascontiguousarray((pm * m).sum(axis=1))
        return centre, prec, pm, q

    def stats_spec(self, params):
        K, d = params.means.shape
        consts = (params.means, *self._expanded(params), self.kernel_constants(params))
        return StatsSpec(diag_stats, diag_stats_chunks, consts, (K, d), uses_blas=True)

    def chunk_outputs(self, X, params, want_resp):
        logprob, labels, resp = self._output_buffers(X.shape[0], params.n_components, want_resp)
        with single_threaded_blas():
            diag_outputs(X, params.means, *self._expanded(params),
                         self.kernel_constants(params), logprob, labels, resp, want_resp)
        return logprob, labels, resp if want_resp else None

    def sample(self, rng, params, counts):
        d = params.n_features
        return np.vstack([
            m + rng.standard_normal(size=(int(n), d)) * np.sqrt(c)
            for m, c, n in zip(params.means, params.covariances, counts)
        ])
