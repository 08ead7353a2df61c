"""Numba kernels for diagonal covariances: per-chunk statistics and per-sample outputs.

log N = const_k - sum_j p_kj (x_j - mu_kj)^2 / 2 with p = 1/var; about 7d flops per
sample and component, each component's distance and moments taken about its own mean
(exact: no expansion that loses digits far from the origin). A block goes one of two
ways (``use_direct``, by what measured fastest):

- below d = 64 it is held one sample per column, and loops over its rows (which
  vectorise) give the distances, then sum r (x - mu_k) and sum r (x - mu_k)^2 per
  feature with two accumulators (components whose responsibilities in the block are
  all 0 skipped, as every far component of well-separated data is);
- from d = 64 it stays row-major and the loops run over the features of four rows at a
  time: each component's mean and precision are loaded once for the four rows, and the
  statistics are loaded and stored once per four rows (a group of rows whose
  responsibilities for a component are all 0 skipped).

An expansion of the distance into two dgemms per block (K x 2d against the stacked
[y^2; y]) was the path for large d K; the row-major loops measured 1.15-1.8x faster at
every size tried (up to d = 128, K = 256 and d = 256, K = 64), and it was removed.
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


#: from this many features on, the row-major loops (``use_direct``)
DIRECT_MIN_D = 64


@part
def use_direct(K: int, d: int) -> bool:
    """True where the kernels keep the block row-major (from d = 64), False where they
    transpose it (below). Per EM iteration (2 threads), the row-major loops four rows
    at a time against the transposed loops and the stacked dgemms that were here
    before: 1.3-1.8x faster at d = 64 and 128 for K = 4..64, 1.5x at d = 128, K = 256
    and 1.8x at d = 256, K = 64; 1.06-1.34x slower at d = 16..32."""
    return d >= DIRECT_MIN_D


@part(fastmath=FASTMATH)
def _block_log_prob_rows(XB, b, means, prec, const, LP):
    """Weighted log-probabilities LP[k, :b] from the row-major block XB (the direct
    path), four rows at a time: each component's mean and precision are loaded once
    for the four, which keep four accumulators."""
    K, d = means.shape
    i = 0
    while i + 4 <= b:
        for k in range(K):
            a0 = 0.0
            a1 = 0.0
            a2 = 0.0
            a3 = 0.0
            for j in range(d):
                m = means[k, j]
                p = prec[k, j]
                z0 = XB[i, j] - m
                z1 = XB[i + 1, j] - m
                z2 = XB[i + 2, j] - m
                z3 = XB[i + 3, j] - m
                a0 += p * (z0 * z0)
                a1 += p * (z1 * z1)
                a2 += p * (z2 * z2)
                a3 += p * (z3 * z3)
            c = const[k]
            LP[k, i] = c - 0.5 * a0
            LP[k, i + 1] = c - 0.5 * a1
            LP[k, i + 2] = c - 0.5 * a2
            LP[k, i + 3] = c - 0.5 * a3
        i += 4
    while i < b:
        for k in range(K):
            acc = 0.0
            for j in range(d):
                z = XB[i, j] - means[k, j]
                acc += prec[k, j] * (z * z)
            LP[k, i] = const[k] - 0.5 * acc
        i += 1


@part(fastmath=FASTMATH)
def _direct_moments(XB, b, means, LP, s1, s2):
    """s1[k] += sum r (x - mu_k), s2[k] += sum r (x - mu_k)^2 over the block's rows,
    four rows at a time: one load and one store of s1[k] and s2[k] per four rows, not
    per row (a group whose four responsibilities are 0 is skipped)."""
    K, d = means.shape
    i = 0
    while i + 4 <= b:
        for k in range(K):
            r0 = LP[k, i]
            r1 = LP[k, i + 1]
            r2 = LP[k, i + 2]
            r3 = LP[k, i + 3]
            if r0 == 0.0 and r1 == 0.0 and r2 == 0.0 and r3 == 0.0:
                continue
            for j in range(d):
                m = means[k, j]
                z0 = XB[i, j] - m
                z1 = XB[i + 1, j] - m
                z2 = XB[i + 2, j] - m
                z3 = XB[i + 3, j] - m
                q0 = r0 * z0
                q1 = r1 * z1
                q2 = r2 * z2
                q3 = r3 * z3
                s1[k, j] += (q0 + q1) + (q2 + q3)
                s2[k, j] += (q0 * z0 + q1 * z1) + (q2 * z2 + q3 * z3)
        i += 4
    while i < b:
        for k in range(K):
            r = LP[k, i]
            if r == 0.0:
                continue
            for j in range(d):
                z = XB[i, j] - means[k, j]
                rz = r * z
                s1[k, j] += rz
                s2[k, j] += rz * z
        i += 1


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
        _direct_moments(XB, b, means, LP, s1, s2)
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
def _diag_stats(X, sample_weight, has_weight, top, means, prec, const):
    """Statistics of chunk X: (s0 (K,), s1 (K,d), s2 (K,d) diagonal, loglik, wsum).
    top[0] is raised to X's largest |x| bit pattern (``block_top_bits``)."""
    K, d = means.shape
    if use_direct(K, d):
        return _diag_stats_direct(X, sample_weight, has_weight, top, means, prec, const)
    return _diag_stats_loops(X, sample_weight, has_weight, top, means, prec, const)


@cached(fastmath=FASTMATH)
def diag_outputs(X, means, prec, const, out_logprob, out_labels, out_resp, want_resp):
    """Per-sample log p(x), labels and (optionally) responsibilities for chunk X."""
    n, d = X.shape
    K = means.shape[0]
    B = block_rows(d)
    direct = use_direct(K, d)
    XB = np.empty((B, d) if direct else (0, 0))
    XT = np.empty((0, 0) if direct else (d, B))
    maha = np.empty(B)
    scratch = np.empty(B)
    lse = np.empty(B)
    LP = np.empty((K, B))
    for start in range(0, n, B):
        b = min(B, n - start)
        if direct:
            load_block(X, start, b, XB)
            _block_log_prob_rows(XB, b, means, prec, const, LP)
        else:
            load_block_t(X, start, b, XT)
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
