"""Numba kernels for full covariances: per-chunk statistics and per-sample outputs.

The E-step whitens x - mu_k with the upper-triangular precision Cholesky U_k
(log N = const_k - |(x - mu_k) U_k|^2 / 2) and the statistics accumulate
sum r (x - mu_k)(x - mu_k)^T. Both are matrix products over a block of rows
(block x d times d x d), so they go to BLAS: at 5-10x the rate of the best hand loop
(measured 75-100 GFLOP/s on 2 cores against 8-15 at d = 16..64). From d = 16
(``TRIANGULAR_MIN_D``) the whitening is a dtrmm in place and the scatter a dsyrk of
sqrt(r)(x - mu_k) (``blas_calls``): half the flops of dgemm each, at 1.1-1.6x its
equivalent rate; measured 0.40 s against 0.60 per iteration at n = 200,000, d = 64,
K = 16, and 0.30 against 0.52 at d = 128 (2-core EPYC). Below d = 16, or when a U_k is
not upper triangular (a factor given from outside), dgemm (numba's np.dot) does both.
Callers hold BLAS at one thread while the kernels run (``blas.single_threaded_blas``):
the kernels already run one per core.

With many components for the dimension (``use_khatri_rao``: d <= KR_MAX_D and 2K >= d)
the scatter of every component is one dgemm per block instead of K small dsyrk/dgemm
calls: with y = x - c about a centre c (the mean of the component means), the block's
products y_a y_b (a <= b, the Khatri-Rao rows, P = d(d+1)/2 of them) are formed once,
and R (K x block) times them gives sum r y y^T for all K at once; sum r y is a second
dgemm, and the moments move to each component's mean at the end of the chunk (exact
algebra that loses digits in proportion to |mu_k - c|^2 / sigma_k^2, as diag's). The
K calls' overhead and K passes over the block are gone: measured 1.4-3.3x faster on
this half of the kernel at d = 16, K = 8..64, 1.2-2.1x at d = 32, K = 16..64 (one
thread, blocks of 512-1024 rows); with fewer components it measured slower. Per EM
iteration (2 threads): 0.038 -> 0.023 s at 1,400,000 x 2, K = 4; 0.032 -> 0.016 at
80,000 x 4, K = 64; 0.031 -> 0.023 at 106,000 x 16, K = 16; 0.060 -> 0.034 at
50,000 x 16, K = 64; 0.088 -> 0.064 at 30,000 x 32, K = 64.

The opt-in float32 E-step (``GaussianMixture(estep_dtype='float32')``) passes U_k in
float32: each row is centred on mu_k in float64, then rounded, and the whitening and
the scatter run in single precision (strmm, ssyrk, or sgemm below d = 16: about twice
the double-precision rate); a block's scatter goes through a float32 d x d scratch and
is added to the float64 statistics, so sums over a chunk stay float64. It never takes
the Khatri-Rao scatter, whose moments about one centre would lose float32's digits as
|mu_k - c|^2 / sigma^2 (the estimator keeps float64 where that scatter is faster:
``FullCovariance.pass_dtype``), and responsibilities below 2^-100 are flushed to 0 so
no subnormal float32 reaches BLAS. Per-sample outputs stay float64.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange, types
from numba.extending import overload

from .blas_calls import syrk_accumulate, trmm_upper_right
from .jit import cached, entry, part
from ._common import (
    claim_next,
    block_top_bits,
    fold_rows_in_order,
    store_chunk_row,
    FASTMATH,
    block_loglik,
    load_block,
    normalise_block,
    write_labels,
    write_logprob_resp,
)

FULL_BLOCK_ELEMS = 32768
#: from this many features on, the triangular/symmetric BLAS routines (module docstring)
TRIANGULAR_MIN_D = 16
#: the Khatri-Rao scatter up to this many features (its P x block buffer, P = d(d+1)/2,
#: grows as d^2: 8.5 MB at d = 64)
KR_MAX_D = 64


@part
def use_khatri_rao(K: int, d: int) -> bool:
    """Whether the scatter is one dgemm of the Khatri-Rao rows for every component
    (module docstring): where it measured faster, 2K >= d up to d = 48 and K >= d up
    to KR_MAX_D (one thread, the whole statistics pass: 1.2-2x at d = 2..16 with
    K >= d/2, 1.15x at d = 64, K = 64; slower at d = 16, K = 4 and d = 32, K = 8)."""
    if d <= 48:
        return 2 * K >= d
    return d <= KR_MAX_D and K >= d


@part(fastmath=FASTMATH)
def _khatri_rao_block(XB, centre, YT, KRT):
    """YT = (XB - centre)^T (d x block) and its Khatri-Rao rows KRT[p] = y_a y_b for
    a <= b in row-major upper-triangle order (P x block): inner loops over the block's
    rows, which LLVM vectorises."""
    B, d = XB.shape
    for i in range(B):
        for j in range(d):
            YT[j, i] = XB[i, j] - centre[j]
    p = 0
    for a in range(d):
        for c in range(a, d):
            for i in range(B):
                KRT[p, i] = YT[a, i] * YT[c, i]
            p += 1


@part
def _khatri_rao_moments(s0, A, T, means, centre, s1, s2):
    """s1 and s2 about each component's mean from the moments about the centre:
    A[k] = sum r y and T[k] = the upper triangle of sum r y y^T (y = x - centre),
    sum r (y - m)(y - m)^T = sum r y y^T - A m^T - m A^T + s0 m m^T with m = mu_k - c."""
    K, d = means.shape
    m = np.empty(d)
    for k in range(K):
        for j in range(d):
            m[j] = means[k, j] - centre[j]
            s1[k, j] = A[k, j] - s0[k] * m[j]
        p = 0
        for a in range(d):
            for c in range(a, d):
                v = T[k, p] - A[k, a] * m[c] - m[a] * A[k, c] + s0[k] * m[a] * m[c]
                s2[k, a, c] = v
                s2[k, c, a] = v
                p += 1


def is_float32(a):
    """Whether array a is float32 (a constant of the compiled kernel: the opt-in
    float32 E-step passes its factors in float32)."""


@overload(is_float32)
def _is_float32_typed(a):
    answer = a.dtype == types.float32
    return lambda a: answer


#: responsibilities below this are 0 in a float32 E-step (2^-100, about 8e-31): they
#: change no float32 sum, and r, sqrt(r) z and r z stay clear of float32's subnormal
#: range (below 1.2e-38), which runs BLAS several times slower
FLUSH32 = 7.888609052210118e-31


@part
def flush_small(LP, b):
    """LP[:, :b] below FLUSH32 set to 0 (a float32 E-step's responsibilities)."""
    K = LP.shape[0]
    for k in range(K):
        for i in range(b):
            if LP[k, i] < FLUSH32:
                LP[k, i] = 0.0


@part
def full_block_rows(d: int) -> int:
    """Rows per block for the BLAS kernel: larger than the hand-loop kernels' blocks,
    because BLAS's efficiency needs a few hundred rows (a 32 x 128 block ran at 9
    GFLOP/s where a 256 x 128 one runs several times faster; dtrmm and dsyrk gain
    up to 512 rows)."""
    b = FULL_BLOCK_ELEMS // max(d, 1)
    if b < 256:
        b = 256
    if b > 1024:
        b = 1024
    return b


@part(fastmath=FASTMATH)
def _centre_rows(XB, mu, b, Z):
    d = XB.shape[1]
    for i in range(b):
        for j in range(d):
            Z[i, j] = XB[i, j] - mu[j]


@part
def use_triangular(prec_chol):
    """Whether the dtrmm/dsyrk path applies: d >= TRIANGULAR_MIN_D and every factor is
    upper triangular (ours always are; a factor set from outside may not be)."""
    K, d, _ = prec_chol.shape
    if d < TRIANGULAR_MIN_D:
        return False
    for k in range(K):
        for a in range(1, d):
            for c in range(a):
                if prec_chol[k, a, c] != 0.0:
                    return False
    return True


@part(fastmath=FASTMATH)
def _block_log_prob(XB, b, means, prec_chol, const, Z, Y, LP, tri):
    """Weighted log-probabilities LP[k, :b] for the block held in XB[:b] (rows); tri:
    ``use_triangular(prec_chol)`` (whiten in place in Z by dtrmm, else dgemm into Y)."""
    K, d = means.shape
    for k in range(K):
        _centre_rows(XB, means[k], b, Z)
        if tri:
            trmm_upper_right(Z, b, prec_chol[k])
            W = Z
        else:
            np.dot(Z, prec_chol[k], Y)
            W = Y
        c = const[k]
        for i in range(b):
            m = 0.0
            for j in range(d):
                m += W[i, j] * W[i, j]
            LP[k, i] = c - 0.5 * m


def _scatter_add(W, b, s2k, C):
    """s2k += W[:b]^T W[:b], lower triangle (the tri path's dsyrk); a float32 W goes
    through ssyrk into the d x d scratch C, added to the float64 s2k per block."""


@overload(_scatter_add)
def _scatter_add_typed(W, b, s2k, C):
    if W.dtype == s2k.dtype:
        def into_sum(W, b, s2k, C):
            syrk_accumulate(W, b, s2k)
        return into_sum

    def through_scratch(W, b, s2k, C):
        C[:] = 0.0
        syrk_accumulate(W, b, C)
        for a in range(C.shape[0]):
            for c in range(a + 1):
                s2k[a, c] += C[a, c]
    return through_scratch


@part(fastmath=FASTMATH)
def _full_stats(X, sample_weight, has_weight, top, means, prec_chol, const):
    """Statistics of chunk X: (s0 (K,), s1 (K,d), s2 (K,d,d), loglik, wsum).

    Moments are about the current means. ``const[k] = log w_k + log det U_k - d/2 log 2pi``.
    top[0] is raised to X's largest |x| bit pattern (``block_top_bits``).
    The products run in prec_chol's dtype: float64, or float32 for the opt-in float32
    E-step (rows centred in float64 and then rounded; sums over a block of float32
    products added to float64 statistics), module docstring.
    """
    n, d = X.shape
    K = means.shape[0]
    ft = prec_chol.dtype
    B = min(full_block_rows(d), max(n, 1))  # a small chunk: no padded block
    XB = np.zeros((B, d))
    Z = np.zeros((B, d), ft)
    RZ = np.zeros((B, d), ft)
    Y = np.empty((B, d), ft)
    G = np.empty((d, d), ft)
    C = np.empty((d, d), ft)
    scratch1 = np.empty(B)
    scratch2 = np.empty(B)
    lse = np.empty(B)
    LP = np.empty((K, B))
    s0 = np.zeros(K)
    s1 = np.zeros((K, d))
    s2 = np.zeros((K, d, d))
    loglik = 0.0
    wsum = 0.0
    tri = use_triangular(prec_chol)
    f32 = is_float32(prec_chol)
    # a float32 E-step takes every moment about its own component's mean: the
    # Khatri-Rao moments about one centre, moved to each mean, would lose float32's
    # digits in proportion to |mu_k - c|^2 / sigma^2
    kr = use_khatri_rao(K, d) and not f32
    P = d * (d + 1) // 2 if kr else 0
    centre = np.zeros(d)
    for k in range(K):
        for j in range(d):
            centre[j] += means[k, j] / K
    # the Khatri-Rao buffers: float64 whatever ft (a float32 E-step never takes it)
    YT = np.zeros((d, B) if kr else (0, 0))
    KRT = np.zeros((P, B) if kr else (0, 0))
    T = np.zeros((K, P))
    GT = np.empty((K, P))
    A = np.zeros((K, d) if kr else (0, 0))
    H = np.empty((K, d) if kr else (0, 0))
    for start in range(0, n, B):
        b = min(B, n - start)
        if b < B:  # last, short block: zero the tail so BLAS sees finite, inert rows
            XB[:] = 0.0
            Z[:] = 0.0
            RZ[:] = 0.0
        load_block(X, start, b, XB)
        block_top_bits(XB, b, d, top)
        _block_log_prob(XB, b, means, prec_chol, const, Z, Y, LP, tri)
        normalise_block(LP, b, lse, scratch1, scratch2)
        ll, w = block_loglik(LP, b, sample_weight, has_weight, start, lse)
        loglik += ll
        wsum += w
        if f32:
            flush_small(LP, b)
        if kr:  # every component's scatter in one dgemm (module docstring)
            for k in range(K):
                t = 0.0
                for i in range(b):
                    t += LP[k, i]
                for i in range(b, B):  # rows past b must weigh nothing
                    LP[k, i] = 0.0
                s0[k] += t
            _khatri_rao_block(XB, centre, YT, KRT)
            np.dot(LP, KRT.T, GT)
            np.dot(LP, YT.T, H)
            for k in range(K):
                for p in range(P):
                    T[k, p] += GT[k, p]
                for j in range(d):
                    A[k, j] += H[k, j]
            continue
        for k in range(K):
            t = 0.0
            for i in range(b):
                t += LP[k, i]
            if t == 0.0:
                continue
            s0[k] += t
            _centre_rows(XB, means[k], b, Z)
            if tri:  # sum r z z^T = W^T W, W = sqrt(r) z: dsyrk, lower triangle
                for i in range(b):
                    r = LP[k, i]
                    q = math.sqrt(r)
                    for j in range(d):
                        RZ[i, j] = q * Z[i, j]
                        s1[k, j] += r * Z[i, j]
                _scatter_add(RZ, b, s2[k], C)
                continue
            for i in range(b):
                r = LP[k, i]
                for j in range(d):
                    RZ[i, j] = r * Z[i, j]
            for i in range(b):
                for j in range(d):
                    s1[k, j] += RZ[i, j]
            np.dot(RZ.T, Z, G)
            for a in range(d):
                for c in range(d):
                    s2[k, a, c] += G[a, c]
    if kr:
        _khatri_rao_moments(s0, A, T, means, centre, s1, s2)
        return s0, s1, s2, loglik, wsum
    for k in range(K):
        for a in range(d):
            for c in range(a + 1, d):
                if tri:  # dsyrk filled the lower triangle only
                    s2[k, a, c] = s2[k, c, a]
                else:  # exact symmetry (BLAS may round the triangles differently)
                    v = 0.5 * (s2[k, a, c] + s2[k, c, a])
                    s2[k, a, c] = v
                    s2[k, c, a] = v
    return s0, s1, s2, loglik, wsum


@cached(fastmath=FASTMATH)
def full_outputs(X, means, prec_chol, const, out_logprob, out_labels, out_resp, want_resp):
    """Per-sample log p(x), labels and (optionally) responsibilities for chunk X."""
    n, d = X.shape
    K = means.shape[0]
    B = full_block_rows(d)
    XB = np.zeros((B, d))
    Z = np.zeros((B, d))
    Y = np.empty((B, d))
    scratch1 = np.empty(B)
    scratch2 = np.empty(B)
    lse = np.empty(B)
    LP = np.empty((K, B))
    tri = use_triangular(prec_chol)
    for start in range(0, n, B):
        b = min(B, n - start)
        if b < B:
            XB[:] = 0.0
        load_block(X, start, b, XB)
        _block_log_prob(XB, b, means, prec_chol, const, Z, Y, LP, tri)
        write_labels(LP, b, start, out_labels)
        normalise_block(LP, b, lse, scratch1, scratch2)
        write_logprob_resp(LP, lse, b, start, out_logprob, out_resp, want_resp)


@part(parallel=True)
def _full_stats_chunks(X, sample_weight, has_weight, bounds, consts, F, top, n_threads):
    """``_full_stats``'s statistics of X's row chunks ``bounds[c] = (start, stop)`` in
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
            r0, r1, r2, ll, n = _full_stats(X[start:stop], w, has_weight, top[c:c + 1],
                                           *consts)
            store_chunk_row(F, c, r0, r1, r2, ll, n)
    fold_rows_in_order(F)


@part
def _full_stats_run(X, sample_weight, has_weight, bounds, consts, F, top):
    """``_full_stats_chunks`` on one thread, without a parallel region (a Dask work
    unit's aligned run of chunks, on a worker thread among others): chunk c's statistics
    to row c of F, all summed into row 0 by the same in-order fold, so a run of 2**j
    chunks gives the node of the fold that the chunks pushed one by one would make."""
    for c in range(bounds.shape[0]):
        start, stop = bounds[c, 0], bounds[c, 1]
        w = sample_weight[start:stop] if has_weight else sample_weight
        r0, r1, r2, ll, n = _full_stats(X[start:stop], w, has_weight, top[c:c + 1],
                                    *consts)
        store_chunk_row(F, c, r0, r1, r2, ll, n)
    fold_rows_in_order(F)


#: the drivers as Python calls them (cached, complete units: see jit.py); kernels call
#: the parts ``_full_stats``, ``_full_stats_chunks`` and ``_full_stats_run``
full_stats_chunks = entry(_full_stats_chunks)
full_stats_run = entry(_full_stats_run)
