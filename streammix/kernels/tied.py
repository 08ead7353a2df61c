"""Numba kernels for a tied (shared) covariance: per-chunk statistics and outputs.

With one precision Cholesky U for all components, (x - mu_k) U = (x - c) U - (mu_k - c) U:
the block is whitened once (d^2/2 per sample, not per component) and each component
costs 2d. The second moment is needed only summed over components, so it is kept about
one centre c (the mixture mean): sum_i w_i (x_i - c)(x_i - c)^T, again once per sample.

Both are hand loops below d = ``TIED_BLAS_MIN_D``; from there on they are BLAS's dtrmm
and dsyrk (``blas_calls``) on blocks of 256 rows: at d = 128 an iteration over 50,000
rows took 0.054 s instead of 0.063 (K = 16) and 0.14-0.16 instead of 0.18 (K = 64). At
d = 64 the BLAS path measured 20-50% slower (its larger blocks leave L1 for the
per-component loops), hence the threshold. ``tied_block_rows`` gives the rows per
block of either path.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from .blas_calls import syrk_accumulate_t, trmm_upper_right_t
from .jit import cached, entry, part
from ._common import (
    claim_next,
    block_top_bits,
    fold_rows_in_order,
    store_chunk_row,
    FASTMATH,
    block_loglik,
    block_rows,
    load_block_t,
    normalise_block,
    write_labels,
    write_logprob_resp,
)


#: from this many features on, whitening and scatter by BLAS (module docstring)
TIED_BLAS_MIN_D = 96


@part
def tied_block_rows(d: int) -> int:
    """Rows per block: ``block_rows`` for the hand loops, 32768 / d in [256, 1024] for
    the BLAS path (which needs a few hundred rows to run at its rate)."""
    if d < TIED_BLAS_MIN_D:
        return block_rows(d)
    b = 32768 // d
    if b < 256:
        b = 256
    if b > 1024:
        b = 1024
    return b


@part(fastmath=FASTMATH)
def _block_log_prob(XT, b, centre, prec_chol, white_means, const, XC, W, maha, LP):
    """Weighted log-probabilities LP[k, :b]. XC gets x - c, W gets (x - c) U.

    white_means[k] = (mu_k - c) U is computed once per call, outside the kernel.
    """
    d = XT.shape[0]
    K = white_means.shape[0]
    for j in range(d):
        c = centre[j]
        for i in range(b):
            XC[j, i] = XT[j, i] - c
    if d >= TIED_BLAS_MIN_D:  # W = XC U by dtrmm in place
        for j in range(d):
            for i in range(b):
                W[j, i] = XC[j, i]
        trmm_upper_right_t(W, b, prec_chol)
    else:  # W = XC U by hand, the triangle only
        for j in range(d):
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
def _tied_stats(X, sample_weight, has_weight, top, means, centre, prec_chol, white_means,
               const):
    """Statistics of chunk X: (s0 (K,), s1 (K,d) about the means, s2 (d,d) about
    ``centre``, loglik, wsum). top[0] is raised to X's largest |x| bit pattern
    (``block_top_bits``)."""
    n, d = X.shape
    K = means.shape[0]
    B = min(tied_block_rows(d), max(n, 1))  # a small chunk: no padded block
    blas = d >= TIED_BLAS_MIN_D
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
        if blas:  # sum w (x - c)(x - c)^T = sum (sqrt(w)(x - c))(...)^T: dsyrk
            if has_weight:
                for j in range(d):
                    for i in range(b):
                        WX[j, i] = math.sqrt(sample_weight[start + i]) * XC[j, i]
                syrk_accumulate_t(WX, b, s2)
            else:
                syrk_accumulate_t(XC, b, s2)
        else:
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
            if blas:  # dsyrk filled the lower triangle
                s2[a, c] = s2[c, a]
            else:
                s2[c, a] = s2[a, c]
    return s0, s1, s2, loglik, wsum


@cached(fastmath=FASTMATH)
def tied_outputs(X, centre, prec_chol, white_means, const, out_logprob, out_labels,
                 out_resp, want_resp):
    """Per-sample log p(x), labels and (optionally) responsibilities for chunk X."""
    n, d = X.shape
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
