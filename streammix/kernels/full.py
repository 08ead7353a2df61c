"""Numba kernels for full covariances: per-chunk statistics and per-sample outputs.

The E-step whitens x - mu_k with the upper-triangular precision Cholesky U_k
(log N = const_k - |(x - mu_k) U_k|^2 / 2) and the statistics accumulate the upper
triangle of sum r (x - mu_k)(x - mu_k)^T: about d^2 multiply-adds per sample and
component for each, which is the floor for this covariance type.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._common import (
    FASTMATH,
    block_rows,
    load_block_t,
    normalise_block,
    weigh_block,
    write_labels,
    write_logprob_resp,
)


@njit(nogil=True, cache=True, fastmath=FASTMATH)
def _centre(XT, mu, b, Z):
    d = XT.shape[0]
    for j in range(d):
        m = mu[j]
        for i in range(b):
            Z[j, i] = XT[j, i] - m


@njit(nogil=True, cache=True, fastmath=FASTMATH)
def _block_log_prob(XT, b, means, prec_chol, const, Z, acc, maha, LP):
    """Weighted log-probabilities LP[k, :b] for the block held (transposed) in XT."""
    K, d = means.shape
    for k in range(K):
        _centre(XT, means[k], b, Z)
        for i in range(b):
            maha[i] = 0.0
        for j in range(d):
            p0 = prec_chol[k, 0, j]
            for i in range(b):
                acc[i] = Z[0, i] * p0
            for l in range(1, j + 1):
                p = prec_chol[k, l, j]
                for i in range(b):
                    acc[i] += Z[l, i] * p
            for i in range(b):
                maha[i] += acc[i] * acc[i]
        c = const[k]
        for i in range(b):
            LP[k, i] = c - 0.5 * maha[i]


@njit(nogil=True, cache=True, fastmath=FASTMATH)
def full_stats(X, sample_weight, has_weight, means, prec_chol, const):
    """Statistics of chunk X: (s0 (K,), s1 (K,d), s2 (K,d,d) upper+lower, loglik, wsum).

    Moments are about the current means. ``const[k] = log w_k + log det U_k - d/2 log 2pi``.
    """
    n, d = X.shape
    K = means.shape[0]
    B = block_rows(d)
    XT = np.empty((d, B))
    Z = np.empty((d, B))
    RZ = np.empty((d, B))
    acc = np.empty(B)
    maha = np.empty(B)
    lse = np.empty(B)
    LP = np.empty((K, B))
    s0 = np.zeros(K)
    s1 = np.zeros((K, d))
    s2 = np.zeros((K, d, d))
    loglik = 0.0
    wsum = 0.0
    for start in range(0, n, B):
        b = min(B, n - start)
        load_block_t(X, start, b, XT)
        _block_log_prob(XT, b, means, prec_chol, const, Z, acc, maha, LP)
        normalise_block(LP, b, lse, acc, maha)
        if has_weight:
            loglik += weigh_block(LP, b, sample_weight, start, lse)
            for i in range(b):
                wsum += sample_weight[start + i]
        else:
            for i in range(b):
                loglik += lse[i]
            wsum += b
        for k in range(K):
            t = 0.0
            for i in range(b):
                t += LP[k, i]
            if t == 0.0:
                continue
            s0[k] += t
            _centre(XT, means[k], b, Z)
            for j in range(d):
                u = 0.0
                for i in range(b):
                    v = LP[k, i] * Z[j, i]
                    RZ[j, i] = v
                    u += v
                s1[k, j] += u
            for a in range(d):
                for c in range(a, d):
                    u = 0.0
                    for i in range(b):
                        u += RZ[a, i] * Z[c, i]
                    s2[k, a, c] += u
    for k in range(K):
        for a in range(d):
            for c in range(a + 1, d):
                s2[k, c, a] = s2[k, a, c]
    return s0, s1, s2, loglik, wsum


@njit(nogil=True, cache=True, fastmath=FASTMATH)
def full_outputs(X, means, prec_chol, const, out_logprob, out_labels, out_resp, want_resp):
    """Per-sample log p(x), labels and (optionally) responsibilities for chunk X."""
    n, d = X.shape
    K = means.shape[0]
    B = block_rows(d)
    XT = np.empty((d, B))
    Z = np.empty((d, B))
    acc = np.empty(B)
    maha = np.empty(B)
    lse = np.empty(B)
    LP = np.empty((K, B))
    for start in range(0, n, B):
        b = min(B, n - start)
        load_block_t(X, start, b, XT)
        _block_log_prob(XT, b, means, prec_chol, const, Z, acc, maha, LP)
        write_labels(LP, b, start, out_labels)
        normalise_block(LP, b, lse, acc, maha)
        write_logprob_resp(LP, lse, b, start, out_logprob, out_resp, want_resp)
