"""Diagonal covariances, one variance vector per component (scikit-learn's 'diag')."""

from __future__ import annotations

import numpy as np
from numba import njit

from ...kernels.jit import cached
from ...kernels._common import rows_per_block
from ...kernels.diag import (_diag_stats_chunks, diag_outputs, diag_stats_chunks,
                             diag_stats_run)
from ..stats import _blend_rescale, _recentre_moments
from ._base import (
    EPS10,
    LOG_2PI,
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


@njit(cache=True)
def _diag_kernel_args(weights, means, prec_chol):
    """``DiagCovariance._kernel_args`` as one loop."""
    K, d = means.shape
    prec = np.empty((K, d))
    const = np.empty(K)
    for k in range(K):
        log_det = 0.0
        for j in range(d):
            u = prec_chol[k, j]
            prec[k, j] = u * u
            log_det += np.log(u)
        const[k] = np.log(weights[k]) + log_det - 0.5 * d * LOG_2PI
    return prec, const


@njit(cache=True)
def _diag_stepwise_step(r0, r1, r2, b0, b1, b2, inv_n, keep, eta, n, centres, reg_covar,
                        eps):
    """``CovarianceType.fused_stepwise`` for 'diag': ``_blend_rescale``, ``_diag_m_step``,
    1 / sqrt(variance) and ``_recentre_moments`` in one call."""
    K, d = r1.shape
    m0, m1, m2 = np.empty(K), np.empty((K, d)), np.empty((K, d))
    q0, q1, q2 = np.empty(K), np.empty((K, d)), np.empty((K, d))
    _blend_rescale(r0, b0, inv_n, keep, eta, n, m0, q0)
    _blend_rescale(r1.ravel(), b1.ravel(), inv_n, keep, eta, n, m1.ravel(), q1.ravel())
    _blend_rescale(r2.ravel(), b2.ravel(), inv_n, keep, eta, n, m2.ravel(), q2.ravel())
    nk, means, cov = np.empty(K), np.empty((K, d)), np.empty((K, d))
    _diag_m_step(q0, q1, q2, centres, reg_covar, eps, nk, means, cov)
    prec_chol = np.empty((K, d))
    ok = True
    for k in range(K):
        for j in range(d):
            v = cov[k, j]
            if not (v > 0.0 and v < np.inf):  # positive_variances would repair it
                ok = False
            prec_chol[k, j] = 1.0 / np.sqrt(v) if v > 0.0 else 0.0
    s1, s2 = np.empty((K, d)), np.empty((K, d))
    _recentre_moments(m0, m1, m2, centres, means, s1, s2)
    return ok, nk, means, cov, prec_chol, m0, s1, s2


@cached
def _diag_online_step(X, sw, has_w, chunks, n_threads, weights, means, prec_chol, r0, r1,
                      r2, rcentres, eta, reg_covar, eps, max_bits, F, top):
    """``CovarianceType.fused_online_step`` for 'diag': the kernel constants
    (``_diag_kernel_args``), the batch's statistics in one parallel region
    (``diag_stats_chunks``, into row 0 of F) and, unless a value is out of range
    (top > max_bits) or the batch weighs nothing, ``_diag_stepwise_step`` on them: the
    functions of the separate path, so the same bits. Returns (status: 0 stepped,
    1 not stepped, 2 a variance needs repair; then the step's arrays)."""
    prec, const = _diag_kernel_args(weights, means, prec_chol)
    _diag_stats_chunks(X, sw, has_w, chunks, (means, prec, const), F, top, n_threads)
    K, d = means.shape
    b0, b1, b2 = np.empty(K), np.empty((K, d)), np.empty((K, d))
    for k in range(K):
        b0[k] = F[0, k]
        for j in range(d):
            b1[k, j] = F[0, K + k * d + j]
            b2[k, j] = F[0, K + K * d + k * d + j]
    n = F[0, K + 2 * K * d + 1]
    if top.max() > max_bits or not n > 0.0:
        return (1, b0, b1, b2, b1, b0, b1, b2)
    ok, nk, mu, cov, pc, m0, s1, s2 = _diag_stepwise_step(
        r0, r1, r2, b0, b1, b2, 1.0 / n, 1.0 - eta, eta, n, rcentres, reg_covar, eps)
    return (0 if ok else 2, nk, mu, cov, pc, m0, s1, s2)


class DiagCovariance(CovarianceType):
    name = "diag"
    _stepwise_step = staticmethod(_diag_stepwise_step)

    def _online_step_call(self, X, sw, has_w, chunks, n_threads, params, running, eta,
                          reg_covar, max_bits, F, top):
        return _diag_online_step(X, sw, has_w, chunks, n_threads,
                                 np.ascontiguousarray(params.weights, dtype=np.float64),
                                 params.means,
                                 np.ascontiguousarray(params.precisions_cholesky,
                                                      dtype=np.float64),
                                 running.s0, running.s1, running.s2, running.centres, eta,
                                 reg_covar, EPS10, max_bits, F, top)

    def region_block_rows(self, n_features):
        return rows_per_block(n_features)

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
                f"'diag precision' should be positive: precisions_init ('diag') must be "
                f"positive; precisions_init[{k}] = "
                f"{precisions[k].tolist()!r}"
            )
        return precisions

    @staticmethod
    def _kernel_args(params):
        """(precisions, log w + log det U - d/2 log 2 pi): the kernels' constants, in
        one call (this runs at every online update, where a dozen small numpy
        operations were a tenth of it)."""
        w = params.weights
        args = _diag_kernel_args(np.ascontiguousarray(w, dtype=np.float64),
                                 params.means, np.ascontiguousarray(params.precisions_cholesky,
                                                                    dtype=np.float64))
        if params.log_weights is None:
            return args
        return (args[0], DiagCovariance().kernel_constants(params))

    def stats_spec(self, params):
        K, d = params.means.shape
        consts = (params.means, *self._kernel_args(params))
        return StatsSpec(diag_stats_run, diag_stats_chunks, consts, (K, d),
                         block_rows=self.region_block_rows(d))

    def chunk_outputs(self, X, params, want_resp):
        logprob, labels, resp = self._output_buffers(X.shape[0], params.n_components, want_resp)
        diag_outputs(X, params.means, *self._kernel_args(params), logprob, labels, resp,
                     want_resp)
        return logprob, labels, resp if want_resp else None

    def sample(self, rng, params, counts):
        d = params.n_features
        return np.vstack([
            m + rng.standard_normal(size=(int(n), d)) * np.sqrt(c)
            for m, c, n in zip(params.means, params.covariances, counts)
        ])
