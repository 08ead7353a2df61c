"""Numba kernels for diagonal covariances: per-chunk statistics and per-sample outputs.

log N = const_k - sum_j p_kj (x_j - mu_kj)^2 / 2 with p = 1/var; about 7d flops per
sample and component. A block goes one of three ways (``diag_path``, by what measured
fastest):

- LOOPS (d < 64, and d = 64 with K = 16): the block is held one sample per column and
  loops over its rows (which vectorise) give each component's distance about its own
  mean, then sum r (x - mu_k) and sum r (x - mu_k)^2 per feature with two accumulators
  (components whose responsibilities in the block are all 0 skipped, as every far
  component of well-separated data is).
- DIRECT (d >= 64, K <= 8): the block stays row-major and the loops run over each
  row's features, the moments added straight to the statistics (skipped where r = 0).
- STACKED (beyond): the distance is one dgemm per block (K x 2d times 2d x block:
  [p, -2 p m] against the stacked [y^2; y], y about the mixture mean) and the
  statistics one more dgemm against the same stack, moved to each component's mean at
  the end of the chunk (exact algebra; it loses digits in proportion to
  (|mu_k - mean| / sigma_k)^2, about 2 for components 10 sigma from the mixture mean).
  With fewer pairs d K the dgemms are too thin to pay for their calls.
"""

from __future__ import annotations

import numpy as np
from numba import prange

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


@part
def _stacked_coefficients(prec, pm):
    """PP = [prec, -2 pm] (K x 2d): the E-step's one dgemm against [y^2; y]."""
    K, d = prec.shape
    PP = np.empty((K, 2 * d))
    for k in range(K):
        for j in range(d):
            PP[k, j] = prec[k, j]
            PP[k, d + j] = -2.0 * pm[k, j]
    return PP


@part(fastmath=FASTMATH)
def _block_log_prob(XT, b, centre, PP, q, const, YY, A, LP):
    """Weighted log-probabilities LP[k, :b]; PP = [prec, -2 prec m] (``_stacked_
    coefficients``) with prec[k, j] the precision 1/var.

    With y = x - centre (the mixture mean) and m_k = mu_k - centre, the distance
    sum_j p_kj (y_j - m_kj)^2 = (p_k . y^2) - 2 (p_k m_k . y) + q_k is one dgemm over
    the block, PP (K x 2d) times YY = [y^2; y] (2d x block), instead of a hand loop;
    taking y about the mixture mean keeps the expansion accurate on data with a large
    offset.
    """
    d, B = XT.shape
    for j in range(d):
        c = centre[j]
        for i in range(B):
            y = XT[j, i] - c
            YY[j, i] = y * y
            YY[d + j, i] = y
    np.dot(PP, YY, A)
    K = PP.shape[0]
    for k in range(K):
        c = const[k]
        qk = q[k]
        for i in range(b):
            LP[k, i] = c - 0.5 * (A[k, i] + qk)


#: the kernels' three ways through a block (``diag_path``)
LOOPS, DIRECT, STACKED = 0, 1, 2


@part
def diag_path(K: int, d: int) -> int:
    """How the kernels go through a block, by what measured fastest per EM iteration
    (2 threads, against the earlier choice between DIRECT and STACKED): LOOPS below
    d = 64 (1.25-1.6x faster at d = 2..16, every K) and at d = 64, K = 16 (1.14x);
    DIRECT from d = 64 with K <= 8 (LOOPS 1.2x slower at d = 128, K = 4); STACKED
    beyond (LOOPS 1.1-1.15x slower at d = 64, K = 64 and d = 128, K = 16)."""
    if d < 64:
        return LOOPS
    if K <= 8:
        return DIRECT
    if d * K <= 1024:
        return LOOPS
    return STACKED


@part(fastmath=FASTMATH)
def _block_log_prob_rows(XB, b, means, prec, const, LP):
    """Weighted log-probabilities LP[k, :b] from the row-major block XB, one row and
    component at a time (the direct path)."""
    K, d = means.shape
    for i in range(b):
        for k in range(K):
            acc = 0.0
            for j in range(d):
                z = XB[i, j] - means[k, j]
                acc += prec[k, j] * (z * z)
            LP[k, i] = const[k] - 0.5 * acc


@part(fastmath=FASTMATH)
def _diag_stats_direct(X, sample_weight, has_weight, top, means, prec, const):
    """``_diag_stats`` by the direct path: the moments about each component's mean are
    summed as they are, row by row."""
    n, d = X.shape
    K = means.shape[0]
    B = min(block_rows(d), max(n, 1))
    XB = np.empty((B, d))
    maha = np.empty(B)
    scratch = np.empty(B)
    lse = np.empty(B)
    LP = np.empty((K, B))
    s0 = np.zeros(K)
    s1 = np.zeros((K, d))
    s2 = np.zeros((K, d))
    loglik = 0.0
    wsum = 0.0
    for start in range(0, n, B):
        b = min(B, n - start)
        load_block(X, start, b, XB)
        block_top_bits(XB, b, d, top)
        _block_log_prob_rows(XB, b, means, prec, const, LP)
        normalise_block(LP, b, lse, maha, scratch)
        ll, w = block_loglik(LP, b, sample_weight, has_weight, start, lse)
        loglik += ll
        wsum += w
        for k in range(K):
            t = 0.0
            for i in range(b):
                t += LP[k, i]
            s0[k] += t
        for i in range(b):
            for k in range(K):
                r = LP[k, i]
                if r == 0.0:
                    continue
                for j in range(d):
                    z = XB[i, j] - means[k, j]
                    rz = r * z
                    s1[k, j] += rz
                    s2[k, j] += rz * z
    return s0, s1, s2, loglik, wsum


@part(fastmath=FASTMATH)
def _block_log_prob_loops(XT, b, means, prec, const, maha, LP):
    """Weighted log-probabilities LP[k, :b] by loops over the block's rows (one sample
    per column of XT, so every inner loop vectorises), each component's distance
    taken about its own mean."""
    K, d = means.shape
    for k in range(K):
        for i in range(b):
            maha[i] = 0.0
        for j in range(d):
            m = means[k, j]
            p = prec[k, j]
            for i in range(b):
                z = XT[j, i] - m
                maha[i] += p * (z * z)
        c = const[k]
        for i in range(b):
            LP[k, i] = c - 0.5 * maha[i]


@part(fastmath=FASTMATH)
def _diag_stats_loops(X, sample_weight, has_weight, top, means, prec, const):
    """``_diag_stats`` by the transposed loops: the moments about each component's mean
    summed as they are, feature by feature over the block's rows (two accumulators
    per feature; components whose responsibilities in the block are all 0 skipped)."""
    n, d = X.shape
    K = means.shape[0]
    B = min(block_rows(d), max(n, 1))  # a small chunk: no padded block
    XT = np.empty((d, B))
    maha = np.empty(B)
    scratch = np.empty(B)
    lse = np.empty(B)
    LP = np.empty((K, B))
    s0 = np.zeros(K)
    s1 = np.zeros((K, d))
    s2 = np.zeros((K, d))
    loglik = 0.0
    wsum = 0.0
    for start in range(0, n, B):
        b = min(B, n - start)
        load_block_t(X, start, b, XT)
        block_top_bits(XT, d, b, top)
        _block_log_prob_loops(XT, b, means, prec, const, maha, LP)
        normalise_block(LP, b, lse, maha, scratch)
        ll, w = block_loglik(LP, b, sample_weight, has_weight, start, lse)
        loglik += ll
        wsum += w
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
                v = 0.0
                for i in range(b):
                    z = XT[j, i] - m
                    rz = LP[k, i] * z
                    u += rz
                    v += rz * z
                s1[k, j] += u
                s2[k, j] += v
    return s0, s1, s2, loglik, wsum


@part(fastmath=FASTMATH)
def _diag_stats(X, sample_weight, has_weight, top, means, centre, prec, pm, q, const):
    """Statistics of chunk X: (s0 (K,), s1 (K,d), s2 (K,d) diagonal, loglik, wsum).
    top[0] is raised to X's largest |x| bit pattern (``block_top_bits``)."""
    n, d = X.shape
    K = means.shape[0]
    path = diag_path(K, d)
    if path == LOOPS:
        return _diag_stats_loops(X, sample_weight, has_weight, top, means, prec, const)
    if path == DIRECT:
        return _diag_stats_direct(X, sample_weight, has_weight, top, means, prec, const)
    B = min(block_rows(d), max(n, 1))  # a small chunk: no padded block
    XT = np.zeros((d, B))
    YY = np.empty((2 * d, B))
    PP = _stacked_coefficients(prec, pm)
    A = np.empty((K, B))
    G = np.empty((K, 2 * d))
    maha = np.empty(B)
    scratch = np.empty(B)
    lse = np.empty(B)
    LP = np.empty((K, B))
    s0 = np.zeros(K)
    s1 = np.zeros((K, d))
    s2 = np.zeros((K, d))
    loglik = 0.0
    wsum = 0.0
    for start in range(0, n, B):
        b = min(B, n - start)
        load_block_t(X, start, b, XT)
        block_top_bits(XT, d, b, top)
        _block_log_prob(XT, b, centre, PP, q, const, YY, A, LP)
        normalise_block(LP, b, lse, maha, scratch)
        ll, w = block_loglik(LP, b, sample_weight, has_weight, start, lse)
        loglik += ll
        wsum += w
        for k in range(K):
            t = 0.0
            for i in range(b):
                t += LP[k, i]
            for i in range(b, B):  # a short last block: rows past b must weigh nothing
                LP[k, i] = 0.0
            s0[k] += t
        # sums of r y^2 and r y about the mixture mean: one dgemm against [y^2; y]
        np.dot(LP, YY.T, G)
        for k in range(K):
            for j in range(d):
                s2[k, j] += G[k, j]
                s1[k, j] += G[k, d + j]
    # move the moments from the mixture mean to each component's mean:
    # sum r (y - m)^2 = sum r y^2 - 2 m sum r y + s0 m^2, sum r (y - m) = sum r y - s0 m
    for k in range(K):
        for j in range(d):
            m = means[k, j] - centre[j]
            s2[k, j] = s2[k, j] - 2.0 * m * s1[k, j] + s0[k] * m * m
            s1[k, j] = s1[k, j] - s0[k] * m
    return s0, s1, s2, loglik, wsum


@cached(fastmath=FASTMATH)
def diag_outputs(X, means, centre, prec, pm, q, const, out_logprob, out_labels, out_resp,
                 want_resp):
    """Per-sample log p(x), labels and (optionally) responsibilities for chunk X."""
    n, d = X.shape
    K = means.shape[0]
    B = block_rows(d)
    path = diag_path(K, d)
    if path == DIRECT:
        XB = np.empty((B, d))
        maha = np.empty(B)
        scratch = np.empty(B)
        lse = np.empty(B)
        LP = np.empty((K, B))
        for start in range(0, n, B):
            b = min(B, n - start)
            load_block(X, start, b, XB)
            _block_log_prob_rows(XB, b, means, prec, const, LP)
            write_labels(LP, b, start, out_labels)
            normalise_block(LP, b, lse, maha, scratch)
            write_logprob_resp(LP, lse, b, start, out_logprob, out_resp, want_resp)
        return
    stacked = path == STACKED
    XT = np.zeros((d, B))
    YY = np.empty((2 * d, B) if stacked else (0, 0))
    PP = _stacked_coefficients(prec, pm)
    A = np.empty((K, B) if stacked else (0, 0))
    maha = np.empty(B)
    scratch = np.empty(B)
    lse = np.empty(B)
    LP = np.empty((K, B))
    for start in range(0, n, B):
        b = min(B, n - start)
        load_block_t(X, start, b, XT)
        if stacked:
            _block_log_prob(XT, b, centre, PP, q, const, YY, A, LP)
        else:
            _block_log_prob_loops(XT, b, means, prec, const, maha, LP)
        write_labels(LP, b, start, out_labels)
        normalise_block(LP, b, lse, maha, scratch)
        write_logprob_resp(LP, lse, b, start, out_logprob, out_resp, want_resp)


@part(parallel=True)
def _diag_stats_chunks(X, sample_weight, has_weight, bounds, consts, F, top, n_threads):
    """``_diag_stats``'s statistics of X's row chunks ``bounds[c] = (start, stop)`` in
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
            r0, r1, r2, ll, n = _diag_stats(X[start:stop], w, has_weight, top[c:c + 1],
                                           *consts)
            store_chunk_row(F, c, r0, r1, r2, ll, n)
    fold_rows_in_order(F)


@part
def _diag_stats_run(X, sample_weight, has_weight, bounds, consts, F, top):
    """``_diag_stats_chunks`` on one thread, without a parallel region (a Dask work
    unit's aligned run of chunks, on a worker thread among others): chunk c's statistics
    to row c of F, all summed into row 0 by the same in-order fold, so a run of 2**j
    chunks gives the node of the fold that the chunks pushed one by one would make."""
    for c in range(bounds.shape[0]):
        start, stop = bounds[c, 0], bounds[c, 1]
        w = sample_weight[start:stop] if has_weight else sample_weight
        r0, r1, r2, ll, n = _diag_stats(X[start:stop], w, has_weight, top[c:c + 1],
                                    *consts)
        store_chunk_row(F, c, r0, r1, r2, ll, n)
    fold_rows_in_order(F)


#: the drivers as Python calls them (cached, complete units: see jit.py); kernels call
#: the parts ``_diag_stats``, ``_diag_stats_chunks`` and ``_diag_stats_run``
diag_stats_chunks = entry(_diag_stats_chunks)
diag_stats_run = entry(_diag_stats_run)
