"""Numba kernels for a tied (shared) covariance: per-chunk statistics and outputs.

With one precision Cholesky U for all components, (x - mu_k) U = (x - c) U - (mu_k - c) U:
the second moment is needed only summed over components, so it is kept about one centre
c (the mixture mean): sum_i w_i (x_i - c)(x_i - c)^T, once per sample.

Below d = ``TIED_ROWS_MIN_D`` hand loops (one sample per column) whiten the block once
(d^2/2 per sample, not per component) and each component costs 2d. From there on the
block stays row-major and the whitening goes: with y = x - c and m_k = mu_k - c,
|(y - m_k) U|^2 = |y U|^2 - 2 y . P m_k + |m_k U|^2 (P = U U^T), and |y U|^2 is the same
for every component, so it cancels from the responsibilities: they need one dgemm of
the block against P m_k (2dK per sample), and the term enters the chunk's
log-likelihood once, as -tr(P S) / 2 of the chunk's scatter S, which the statistics
compute anyway (one dsyrk per block). The statistics pass does d^2 + O(dK) flops per
sample instead of 2 d^2. Measured per EM iteration (2 threads, with the pass's constants
computed once, ``tied_pass_constants``, and no BLAS thread spinning beside the kernels):
0.031 -> 0.012 s at 114,000 x 64, K = 4; 0.039 -> 0.015 at 50,000 x 128, K = 4;
0.137 -> 0.030 at 50,000 x 128, K = 64; at d = 16 the hand loops stay faster (40
against 46 ns per row, K = 4, one thread).
Per-sample outputs need |y U|^2 per row: one dtrmm per block.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from .blas_calls import syrk_accumulate, trmm_upper_right
from .jit import cached, entry, part
from ._common import (
    claim_next,
    block_top_bits,
    fold_rows_in_order,
    store_chunk_row,
    FASTMATH,
    block_loglik,
    block_rows,
    load_block,
    load_block_t,
    normalise_block,
    write_labels,
    write_logprob_resp,
)


#: from this many features on, the row-major expanded path (module docstring)
TIED_ROWS_MIN_D = 20


@part
def tied_block_rows(d: int) -> int:
    """Rows per block: ``block_rows`` for the hand loops, 32768 / d in [256, 1024] for
    the row-major path (whose dgemm and dsyrk need a few hundred rows to run at their
    rate)."""
    if d < TIED_ROWS_MIN_D:
        return block_rows(d)
    b = 32768 // d
    if b < 256:
        b = 256
    if b > 1024:
        b = 1024
    return b


@part(fastmath=FASTMATH)
def _block_log_prob(XT, b, centre, prec_chol, white_means, const, XC, W, maha, LP):
    """Weighted log-probabilities LP[k, :b] (hand loops, one sample per column). XC
    gets x - c, W gets (x - c) U.

    white_means[k] = (mu_k - c) U is computed once per call, outside the kernel.
    """
    d = XT.shape[0]
    K = white_means.shape[0]
    for j in range(d):
        c = centre[j]
        for i in range(b):
            XC[j, i] = XT[j, i] - c
    for j in range(d):  # W = XC U, the triangle only
        p0 = prec_chol[0, j]
        for i in range(b):
            W[j, i] = XC[0, i] * p0
        for l in range(1, j + 1):
            p = prec_chol[l, j]
            for i in range(b):
                W[j, i] += XC[l, i] * p
    for k in range(K):
        for i in range(b):
            maha[i] = 0.0
        for j in range(d):
            m = white_means[k, j]
            for i in range(b):
                z = W[j, i] - m
                maha[i] += z * z
        c = const[k]
        for i in range(b):
            LP[k, i] = c - 0.5 * maha[i]


@part(fastmath=FASTMATH)
def _load_centred(X, start, b, centre, XB, Y):
    """XB[:b] = rows [start, start + b) of X (float64); Y[:b] = XB[:b] - centre.
    Rows of XB and Y past b are zero (inert in the block's dgemm and dsyrk)."""
    B, d = XB.shape
    if b < B:
        XB[:] = 0.0
        Y[:] = 0.0
    load_block(X, start, b, XB)
    for i in range(b):
        for j in range(d):
            Y[i, j] = XB[i, j] - centre[j]


@part(fastmath=FASTMATH)
def _linear_log_prob(Y, b, linear, offset, LP):
    """LP[k, i] = offset[k] + linear[k] . y_i for the whole block (one dgemm): the
    log-probabilities without the term -|y_i U|^2 / 2 that all components share."""
    K = LP.shape[0]
    B = LP.shape[1]
    np.dot(linear, Y.T, LP)
    for k in range(K):
        a = offset[k]
        for i in range(B):
            LP[k, i] += a


@part
def _expanded_offsets(white_means, const):
    """offset[k] = const_k - |(mu_k - c) U|^2 / 2 (``_linear_log_prob``)."""
    K, d = white_means.shape
    offset = np.empty(K)
    for k in range(K):
        t = 0.0
        for j in range(d):
            t += white_means[k, j] * white_means[k, j]
        offset[k] = const[k] - 0.5 * t
    return offset


@part(fastmath=FASTMATH)
def _tied_stats_rows(X, sample_weight, has_weight, top, means, centre, prec_chol,
                     white_means, const, linear, precision):
    """``_tied_stats`` from d = TIED_ROWS_MIN_D, row-major: with y = x - c,
    |(y - m_k) U|^2 = |y U|^2 - 2 y . P m_k + |m_k U|^2 (P = U U^T, m_k = mu_k - c), and
    the first term is the same for every component, so the responsibilities need only
    one K x d dgemm per block (``linear[k] = P m_k``), no whitening; the term enters the
    log-likelihood once per chunk as -tr(P S) / 2 from the chunk's scatter
    S = sum w y y^T, which the statistics need anyway (one dsyrk per block). s1 is one
    more dgemm, moved to each component's mean at the end of the chunk."""
    n, d = X.shape
    K = means.shape[0]
    B = min(tied_block_rows(d), max(n, 1))  # a small chunk: no padded block
    XB = np.zeros((B, d))
    Y = np.zeros((B, d))
    WY = np.zeros((B, d) if has_weight else (0, d))
    LP = np.empty((K, B))
    H = np.empty((K, d))
    A = np.zeros((K, d))
    scratch1 = np.empty(B)
    scratch2 = np.empty(B)
    lse = np.empty(B)
    offset = _expanded_offsets(white_means, const)
    s0 = np.zeros(K)
    s1 = np.zeros((K, d))
    s2 = np.zeros((d, d))
    loglik = 0.0
    wsum = 0.0
    for start in range(0, n, B):
        b = min(B, n - start)
        _load_centred(X, start, b, centre, XB, Y)
        block_top_bits(XB, b, d, top)
        _linear_log_prob(Y, b, linear, offset, LP)
        normalise_block(LP, b, lse, scratch1, scratch2)
        ll, w = block_loglik(LP, b, sample_weight, has_weight, start, lse)
        loglik += ll
        wsum += w
        for k in range(K):
            t = 0.0
            for i in range(b):
                t += LP[k, i]
            for i in range(b, B):  # rows past b must weigh nothing
                LP[k, i] = 0.0
            s0[k] += t
        np.dot(LP, Y, H)
        for k in range(K):
            for j in range(d):
                A[k, j] += H[k, j]
        if has_weight:  # sum w y y^T = sum (sqrt(w) y)(sqrt(w) y)^T
            for i in range(b):
                q = math.sqrt(sample_weight[start + i])
                for j in range(d):
                    WY[i, j] = q * Y[i, j]
            syrk_accumulate(WY, b, s2)
        else:
            syrk_accumulate(Y, b, s2)
    quad = 0.0  # sum w |y U|^2 = tr(P S)
    for a in range(d):
        quad += s2[a, a] * precision[a, a]
        for c in range(a):  # dsyrk filled the lower triangle
            v = s2[a, c]
            s2[c, a] = v
            quad += 2.0 * v * precision[a, c]
    loglik -= 0.5 * quad
    for k in range(K):
        for j in range(d):
            s1[k, j] = A[k, j] - s0[k] * (means[k, j] - centre[j])
    return s0, s1, s2, loglik, wsum


@part(fastmath=FASTMATH)
def _tied_stats(X, sample_weight, has_weight, top, means, centre, prec_chol, white_means,
               const, linear, precision):
    """Statistics of chunk X: (s0 (K,), s1 (K,d) about the means, s2 (d,d) about
    ``centre``, loglik, wsum). top[0] is raised to X's largest |x| bit pattern
    (``block_top_bits``)."""
    n, d = X.shape
    if d >= TIED_ROWS_MIN_D:
        return _tied_stats_rows(X, sample_weight, has_weight, top, means, centre,
                                prec_chol, white_means, const, linear, precision)
    K = means.shape[0]
    B = min(tied_block_rows(d), max(n, 1))  # a small chunk: no padded block
    XT = np.empty((d, B))
    XC = np.empty((d, B))
    W = np.empty((d, B))
    WX = np.empty((d, B))
    maha = np.empty(B)
    scratch = np.empty(B)
    lse = np.empty(B)
    LP = np.empty((K, B))
    s0 = np.zeros(K)
    s1 = np.zeros((K, d))
    s2 = np.zeros((d, d))
    loglik = 0.0
    wsum = 0.0
    for start in range(0, n, B):
        b = min(B, n - start)
        load_block_t(X, start, b, XT)
        block_top_bits(XT, d, b, top)
        _block_log_prob(XT, b, centre, prec_chol, white_means, const, XC, W, maha, LP)
        normalise_block(LP, b, lse, maha, scratch)
        ll, w = block_loglik(LP, b, sample_weight, has_weight, start, lse)
        loglik += ll
        wsum += w
        for j in range(d):
            for i in range(b):
                WX[j, i] = sample_weight[start + i] * XC[j, i] if has_weight else XC[j, i]
        for a in range(d):
            for c in range(a, d):
                u = 0.0
                for i in range(b):
                    u += WX[a, i] * XC[c, i]
                s2[a, c] += u
        for k in range(K):
            t = 0.0
            for i in range(b):
                t += LP[k, i]
            if t == 0.0:
                continue
            s0[k] += t
            for j in range(d):
                m = means[k, j]
                u = 0.0
                for i in range(b):
                    u += LP[k, i] * (XT[j, i] - m)
                s1[k, j] += u
    for a in range(d):
        for c in range(a + 1, d):
            s2[c, a] = s2[a, c]
    return s0, s1, s2, loglik, wsum


@part(fastmath=FASTMATH)
def _tied_outputs_rows(X, centre, prec_chol, white_means, const, linear, out_logprob,
                       out_labels, out_resp, want_resp):
    """``tied_outputs`` from d = TIED_ROWS_MIN_D, row-major: the linear part of
    ``_tied_stats_rows``'s log-probabilities, and each row's |y U|^2 (one dtrmm per
    block), which per-sample log p(x) needs."""
    n, d = X.shape
    K = white_means.shape[0]
    B = tied_block_rows(d)
    XB = np.zeros((B, d))
    Y = np.zeros((B, d))
    Z = np.zeros((B, d))
    LP = np.empty((K, B))
    scratch1 = np.empty(B)
    scratch2 = np.empty(B)
    lse = np.empty(B)
    offset = _expanded_offsets(white_means, const)
    for start in range(0, n, B):
        b = min(B, n - start)
        _load_centred(X, start, b, centre, XB, Y)
        _linear_log_prob(Y, b, linear, offset, LP)
        for i in range(b):
            for j in range(d):
                Z[i, j] = Y[i, j]
        trmm_upper_right(Z, b, prec_chol)
        for i in range(b):
            q = 0.0
            for j in range(d):
                q += Z[i, j] * Z[i, j]
            scratch1[i] = 0.5 * q
        for k in range(K):
            for i in range(b):
                LP[k, i] -= scratch1[i]
        write_labels(LP, b, start, out_labels)
        normalise_block(LP, b, lse, scratch1, scratch2)
        write_logprob_resp(LP, lse, b, start, out_logprob, out_resp, want_resp)


@cached(fastmath=FASTMATH)
def tied_outputs(X, centre, prec_chol, white_means, const, linear, out_logprob, out_labels,
                 out_resp, want_resp):
    """Per-sample log p(x), labels and (optionally) responsibilities for chunk X."""
    n, d = X.shape
    if d >= TIED_ROWS_MIN_D:
        _tied_outputs_rows(X, centre, prec_chol, white_means, const, linear, out_logprob,
                           out_labels, out_resp, want_resp)
        return
    K = white_means.shape[0]
    B = tied_block_rows(d)
    XT = np.empty((d, B))
    XC = np.empty((d, B))
    W = np.empty((d, B))
    maha = np.empty(B)
    scratch = np.empty(B)
    lse = np.empty(B)
    LP = np.empty((K, B))
    for start in range(0, n, B):
        b = min(B, n - start)
        load_block_t(X, start, b, XT)
        _block_log_prob(XT, b, centre, prec_chol, white_means, const, XC, W, maha, LP)
        write_labels(LP, b, start, out_labels)
        normalise_block(LP, b, lse, maha, scratch)
        write_logprob_resp(LP, lse, b, start, out_logprob, out_resp, want_resp)


@cached
def tied_pass_constants(means, centre, U):
    """(white_means, linear, precision) for a pass under a tied precision Cholesky U:
    white_means[k] = (mu_k - c) U, linear[k] = U white_means[k] = P (mu_k - c) and
    P = U U^T. Loops, not numpy's products: at d ~ 100 those fan out to numpy's BLAS
    threads, which then spin beside the kernels for a while after each call (measured
    0.023 against 0.015 s per iteration at 50,000 x 128, K = 4, 2 cores)."""
    K, d = means.shape
    white_means = np.zeros((K, d))
    linear = np.zeros((K, d))
    precision = np.zeros((d, d))
    m = np.empty(d)
    for k in range(K):
        for j in range(d):
            m[j] = means[k, j] - centre[j]
        for l in range(d):
            v = m[l]
            for j in range(d):
                white_means[k, j] += v * U[l, j]
        for a in range(d):
            t = 0.0
            for j in range(d):
                t += U[a, j] * white_means[k, j]
            linear[k, a] = t
    for a in range(d):
        for b in range(a + 1):
            t = 0.0
            for j in range(d):
                t += U[a, j] * U[b, j]
            precision[a, b] = t
            precision[b, a] = t
    return white_means, linear, precision


@part(parallel=True)
def _tied_stats_chunks(X, sample_weight, has_weight, bounds, consts, F, top, n_threads):
    """``_tied_stats``'s statistics of X's row chunks ``bounds[c] = (start, stop)`` in
    one parallel region (online updates, small data: no thread wake-up, numba's threads
    wait spinning between regions): each thread takes the next untaken chunk
    (``claim_next``) until none is left, so a core that is slow or busy just does fewer
    chunks; chunk c's statistics go to row c of F (``store_chunk_row``) and are summed
    into row 0 in the thread pool's order (``fold_rows_in_order``), so the result does
    not depend on which thread ran which chunk. top[c] is chunk c's NaN/inf and
    magnitude check (``block_top_bits``). n_threads: numba's thread count (asked in
    Python: numba.get_num_threads in a kernel would keep it out of the cache)."""
    n_chunks = bounds.shape[0]
    taken = np.zeros(1, dtype=np.int64)
    for _ in prange(min(n_threads, n_chunks)):
        while True:
            c = claim_next(taken)
            if c >= n_chunks:
                break
            start, stop = bounds[c, 0], bounds[c, 1]
            w = sample_weight[start:stop] if has_weight else sample_weight
            r0, r1, r2, ll, n = _tied_stats(X[start:stop], w, has_weight, top[c:c + 1],
                                           *consts)
            store_chunk_row(F, c, r0, r1, r2, ll, n)
    fold_rows_in_order(F)


@part
def _tied_stats_run(X, sample_weight, has_weight, bounds, consts, F, top):
    """``_tied_stats_chunks`` on one thread, without a parallel region (a Dask work
    unit's aligned run of chunks, on a worker thread among others): chunk c's statistics
    to row c of F, all summed into row 0 by the same in-order fold, so a run of 2**j
    chunks gives the node of the fold that the chunks pushed one by one would make."""
    for c in range(bounds.shape[0]):
        start, stop = bounds[c, 0], bounds[c, 1]
        w = sample_weight[start:stop] if has_weight else sample_weight
        r0, r1, r2, ll, n = _tied_stats(X[start:stop], w, has_weight, top[c:c + 1],
                                    *consts)
        store_chunk_row(F, c, r0, r1, r2, ll, n)
    fold_rows_in_order(F)


#: the drivers as Python calls them (cached, complete units: see jit.py); kernels call
#: the parts ``_tied_stats``, ``_tied_stats_chunks`` and ``_tied_stats_run``
tied_stats_chunks = entry(_tied_stats_chunks)
tied_stats_run = entry(_tied_stats_run)
