"""Full covariance matrices, one per component (scikit-learn's 'full')."""

from __future__ import annotations

import numpy as np
from numba import njit

from ...kernels.full import (_full_stats_chunks, full_block_rows, full_outputs,
                             full_stats_chunks, full_stats_run, use_khatri_rao)
from ...kernels.blas import single_threaded_blas
from ...kernels.jit import cached, python_function
from ...kernels.linalg import batched_precision_cholesky
from ..stats import _blend_rescale, _recentre_moments
from ._base import (
    EPS10,
    CovarianceType,
    StatsSpec,
    check_shape,
    check_square_spd,
    mixture_weights,
    new_means,
    precision_chol_from_cov,
    soft_counts,
)


@njit(cache=True)
def _full_m_step(s0, s1, s2, centres, reg_covar, eps, nk, means, cov):
    """The numpy M-step below as one loop (the same roundings in the same order, so
    the same bits), without its K x d x d temporaries: it runs at every online update."""
    K, d = s1.shape
    delta = np.empty(d)
    for k in range(K):
        n = s0[k] + eps
        nk[k] = n
        shrink = 2.0 - s0[k] / n
        for i in range(d):
            delta[i] = s1[k, i] / n
            means[k, i] = centres[k, i] + delta[i]
        for i in range(d):
            for j in range(d):
                cov[k, i, j] = s2[k, i, j] / n - shrink * (delta[i] * delta[j])
            cov[k, i, i] += reg_covar


@njit(cache=True)
def _full_stepwise_step(r0, r1, r2, b0, b1, b2, inv_n, keep, eta, n, centres, reg_covar,
                        eps):
    """``CovarianceType.fused_stepwise`` for 'full': ``_blend_rescale``, ``_full_m_step``,
    ``batched_precision_cholesky`` and ``_recentre_moments`` in one call."""
    K, d = r1.shape
    m0, m1, m2 = np.empty(K), np.empty((K, d)), np.empty((K, d, d))
    q0, q1, q2 = np.empty(K), np.empty((K, d)), np.empty((K, d, d))
    _blend_rescale(r0, b0, inv_n, keep, eta, n, m0, q0)
    _blend_rescale(r1.ravel(), b1.ravel(), inv_n, keep, eta, n, m1.ravel(), q1.ravel())
    _blend_rescale(r2.ravel(), b2.ravel(), inv_n, keep, eta, n, m2.ravel(), q2.ravel())
    nk, means, cov = np.empty(K), np.empty((K, d)), np.empty((K, d, d))
    _full_m_step(q0, q1, q2, centres, reg_covar, eps, nk, means, cov)
    prec_chol = np.zeros((K, d, d))
    good = np.zeros(K, dtype=np.bool_)
    batched_precision_cholesky(cov, prec_chol, good)
    s1, s2 = np.empty((K, d)), np.empty((K, d, d))
    _recentre_moments(m0, m1, m2.reshape(K, d * d), centres, means, s1, s2.reshape(K, d * d))
    return good.all(), nk, means, cov, prec_chol, m0, s1, s2


@cached
def _full_online_step(X, sw, has_w, chunks, n_threads, means, prec_chol, const, r0, r1, r2,
                      rcentres, eta, reg_covar, eps, max_bits, F, top):
    """``CovarianceType.fused_online_step`` for 'full': the batch's statistics in one
    parallel region (``full_stats_chunks``, into row 0 of F) and, unless a value is out
    of range (top > max_bits) or the batch weighs nothing, ``_full_stepwise_step`` on
    them: the functions of the separate path, so the same bits. Returns (status:
    0 stepped, 1 not stepped, 2 a covariance needs repair; then the step's arrays)."""
    _full_stats_chunks(X, sw, has_w, chunks, (means, prec_chol, const), F, top, n_threads)
    K, d = means.shape
    b0, b1, b2 = np.empty(K), np.empty((K, d)), np.empty((K, d, d))
    o2 = K + K * d
    for k in range(K):
        b0[k] = F[0, k]
        for i in range(d):
            b1[k, i] = F[0, K + k * d + i]
            for j in range(d):
                b2[k, i, j] = F[0, o2 + (k * d + i) * d + j]
    n = F[0, o2 + K * d * d + 1]
    if top.max() > max_bits or not n > 0.0:
        return (1, b0, b1, b2, b2, b0, b1, b2)
    ok, nk, mu, cov, pc, m0, s1, s2 = _full_stepwise_step(
        r0, r1, r2, b0, b1, b2, 1.0 / n, 1.0 - eta, eta, n, rcentres, reg_covar, eps)
    return (0 if ok else 2, nk, mu, cov, pc, m0, s1, s2)


class FullCovariance(CovarianceType):
    name = "full"
    float32_estep = True
    _stepwise_step = staticmethod(_full_stepwise_step)

    def _online_step_call(self, X, sw, has_w, chunks, n_threads, params, running, eta,
                          reg_covar, max_bits, F, top):
        return _full_online_step(X, sw, has_w, chunks, n_threads, params.means,
                                 params.precisions_cholesky, self.kernel_constants(params),
                                 running.s0, running.s1, running.s2, running.centres, eta,
                                 reg_covar, EPS10, max_bits, F, top)

    def pass_dtype(self, n_components: int, n_features: int) -> type:
        """The E-step's dtype for K x d: ``estep_dtype``, except that a float32 E-step
        stays float64 below d = 32 where float64 takes the Khatri-Rao scatter (K >= d/2):
        float32 takes every moment about its component's own mean, and the K products
        per block measured slower than float64's single one there (0.40-0.96x per
        iteration at d = 2..16; 1.27x faster at d = 32, K = 32)."""
        kr = python_function(use_khatri_rao)(n_components, n_features)
        if self.estep_dtype is np.float32 and kr and n_features < 32:
            return np.float64
        return self.estep_dtype

    def region_block_rows(self, n_features):
        return int(python_function(full_block_rows)(n_features))

    def covariance_shape(self, n_components, n_features):
        return (n_components, n_features, n_features)

    def n_covariance_parameters(self, n_components, n_features):
        return n_components * n_features * (n_features + 1) / 2.0

    def m_step(self, stats, reg_covar):
        if all(a.flags.c_contiguous and a.dtype == np.float64
               for a in (stats.s0, stats.s1, stats.s2, stats.centres)):
            nk, means = np.empty_like(stats.s0), np.empty_like(stats.s1)
            cov = np.empty_like(stats.s2)
            _full_m_step(stats.s0, stats.s1, stats.s2, stats.centres, reg_covar, EPS10,
                         nk, means, cov)
            return mixture_weights(nk), means, cov
        nk = soft_counts(stats)
        means, delta = new_means(stats, nk)
        # sum r (y - delta)(y - delta)^T / nk with y = x - centre, s1 = nk * delta
        shrink = 2.0 - stats.s0 / nk
        cov = stats.s2 / nk[:, None, None] - shrink[:, None, None] * (
            delta[:, :, None] * delta[:, None, :]
        )
        d = means.shape[1]
        idx = np.arange(d)
        cov[:, idx, idx] += reg_covar
        return mixture_weights(nk), means, cov

    def precision_cholesky(self, covariances, reg_covar=None):
        K, d, _ = covariances.shape
        covariances = np.ascontiguousarray(covariances, dtype=np.float64)
        prec = np.zeros_like(covariances)
        ok = np.zeros(K, dtype=np.bool_)
        batched_precision_cholesky(covariances, prec, ok)
        cov_out = covariances
        for k in np.flatnonzero(~ok):
            ck = covariances[k]
            prec[k], fixed = precision_chol_from_cov(ck, f"component {k}", reg_covar)
            if fixed is not ck:
                if cov_out is covariances:
                    cov_out = covariances.copy()
                cov_out[k] = fixed
        return prec, cov_out

    def precision_cholesky_from_precisions(self, precisions):
        out = np.empty_like(precisions, dtype=np.float64)
        for k in range(precisions.shape[0]):
            flipped = precisions[k][::-1, ::-1]
            out[k] = np.linalg.cholesky(flipped)[::-1, ::-1]
        return out

    def precisions(self, precisions_cholesky):
        return np.einsum("kij,klj->kil", precisions_cholesky, precisions_cholesky)

    def covariances_from_precision_cholesky(self, precisions_cholesky):
        return np.stack([np.linalg.inv(p @ p.T) for p in precisions_cholesky])

    def log_det_cholesky(self, precisions_cholesky, n_features):
        return np.log(np.diagonal(precisions_cholesky, axis1=1, axis2=2)).sum(axis=1)

    def validate_precisions(self, precisions, n_components, n_features):
        check_shape(precisions, (n_components, n_features, n_features), "precisions_init ('full')")
        for k in range(n_components):
            check_square_spd(precisions[k], f"precisions_init[{k}] ('full')", "full")
        return precisions

    def stats_spec(self, params):
        K, d = params.means.shape
        # the E-step's products run in prec_chol's dtype (estep_dtype: float64 or float32)
        prec_chol = np.ascontiguousarray(params.precisions_cholesky,
                                         dtype=self.pass_dtype(K, d))
        consts = (params.means, prec_chol, self.kernel_constants(params))
        return StatsSpec(full_stats_run, full_stats_chunks, consts, (K, d, d), uses_blas=True,
                         block_rows=self.region_block_rows(d))

    def chunk_outputs(self, X, params, want_resp):
        logprob, labels, resp = self._output_buffers(X.shape[0], params.n_components, want_resp)
        with single_threaded_blas():
            full_outputs(X, params.means, params.precisions_cholesky,
                         self.kernel_constants(params), logprob, labels, resp, want_resp)
        return logprob, labels, resp if want_resp else None

    def sample(self, rng, params, counts):
        return np.vstack([
            rng.multivariate_normal(m, c, int(n))
            for m, c, n in zip(params.means, params.covariances, counts)
        ])
