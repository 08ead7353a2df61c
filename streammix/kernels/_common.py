"""Building blocks shared by the per-covariance-type kernels.

Every kernel walks its chunk in row blocks of ``block_rows(d)`` rows, copies the block
transposed into a float64 buffer (so float32 and C/F-ordered input cost no full copy and
inner loops run over contiguous rows, which LLVM vectorises), and keeps at most a
K x block and a d x block buffer alive: no n x K or n x d temporary ever exists.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .jit import part, python_function

# Reassociation lets LLVM vectorise the reductions over the rows of a block; results stay
# deterministic for a given chunking (same binary, same order of blocks).
FASTMATH = {"reassoc", "contract", "nsz"}
LOG_2PI = math.log(2.0 * math.pi)


@part
def block_rows(d: int) -> int:
    """Rows per block: keeps a d x block float64 buffer around 32 KiB (L1/L2-resident);
    measured best of 16/32/64 KiB at d = 16 and 64 for the full and diag kernels."""
    b = 4096 // max(d, 1)
    if b < 16:
        b = 16
    if b > 512:
        b = 512
    return b


def rows_per_block(d: int) -> int:
    """``block_rows`` for Python callers (no compile)."""
    return int(python_function(block_rows)(d))


@part
def load_block_t(X, start, b, XT):
    """Copy rows [start, start+b) of X, transposed and cast to float64, into XT[:, :b]."""
    d = X.shape[1]
    for i in range(b):
        for j in range(d):
            XT[j, i] = X[start + i, j]


@part
def load_block(X, start, b, XB):
    """Copy rows [start, start+b) of X, cast to float64, into XB[:b] (row-major: for
    the kernels whose inner loops run over features)."""
    d = X.shape[1]
    for i in range(b):
        for j in range(d):
            XB[i, j] = X[start + i, j]


_MAGNITUDE_BITS = np.int64(0x7FFF_FFFF_FFFF_FFFF)


@part
def block_top_bits(block, n0, n1, top):
    """top[0] = max(top[0], largest |x| bit pattern of block[:n0, :n1]) for a float64
    C-ordered block: the statistics kernels' NaN/inf and magnitude check, on the block
    they have just loaded into L1 (an integer max that LLVM vectorises; NaN and inf
    patterns lie at or above the pattern of +inf)."""
    bits = block.view(np.int64)
    m = top[0]
    for i in range(n0):
        for j in range(n1):
            v = bits[i, j] & _MAGNITUDE_BITS
            m = v if v > m else m
    top[0] = m


@intrinsic
def claim_next(typingctx, counter):
    """Atomically c = counter[0]; counter[0] += 1; return c (an int64 array of one
    element): how the threads of a parallel driver take the next chunk of work."""
    sig = types.int64(counter)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        one = ir.Constant(ir.IntType(64), 1)
        return builder.atomic_rmw("add", ary.data, one, "monotonic")

    return sig, codegen


@intrinsic
def _bits_to_float(typingctx, v):
    """Reinterpret an int64 as the float64 with the same bits (for 2**n in exp)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


_LOG2E = 1.4426950408889634
_LN2_HI = 0.693147180369123816490
_LN2_LO = 1.90821492927058770002e-10


@njit(inline="always", fastmath=FASTMATH)
def exp_nonpos(x):
    """exp(x) for x <= 0 to ~1 ulp, written so that LLVM vectorises it (libm's exp is a
    scalar call and was a third of the E-step). Below x = -690 (exp < 1e-300) it returns
    0: responsibilities that small change no sum a float64 can hold, and subnormal
    numbers downstream (r * z in the BLAS products) ran the full kernel 8x slower."""
    if x < -690.0:
        x = -1400.0
    n = math.floor(x * _LOG2E + 0.5)
    r = (x - n * _LN2_HI) - n * _LN2_LO
    # Taylor series to degree 13: |r| <= 0.35, truncation error < 1e-17 relative
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    ni = np.int64(n)
    n1 = ni >> 1
    n2 = ni - n1
    return p * _bits_to_float((n1 + 1023) << 52) * _bits_to_float((n2 + 1023) << 52)


@part(fastmath=FASTMATH)
def normalise_block(LP, b, lse, m, s):
    """Log-sum-exp over components of LP[:, :b] into lse; LP becomes responsibilities.

    Loops run components outside and rows inside so that every pass vectorises;
    m and s are scratch buffers of at least b entries.
    """
    K = LP.shape[0]
    for i in range(b):
        m[i] = LP[0, i]
        s[i] = 0.0
    for k in range(1, K):
        for i in range(b):
            v = LP[k, i]
            m[i] = v if v > m[i] else m[i]
    for i in range(b):
        if m[i] == -np.inf:
            m[i] = 0.0
    for k in range(K):
        for i in range(b):
            e = exp_nonpos(LP[k, i] - m[i])
            LP[k, i] = e
            s[i] += e
    for i in range(b):
        if s[i] > 0.0:
            lse[i] = m[i] + math.log(s[i])
            s[i] = 1.0 / s[i]
        else:
            # every component has zero density: log p = -inf, responsibilities even
            lse[i] = -np.inf
            s[i] = 0.0
            for k in range(K):
                LP[k, i] = 1.0 / K
    for k in range(K):
        for i in range(b):
            if s[i] > 0.0:
                LP[k, i] *= s[i]


@part
def block_loglik(LP, b, sample_weight, has_weight, start, lse):
    """(sum of w log p(x), sum of w) over the block's rows; with weights, the
    responsibilities in LP are scaled by them too (see weigh_block)."""
    if has_weight:
        wsum = 0.0
        for i in range(b):
            wsum += sample_weight[start + i]
        return weigh_block(LP, b, sample_weight, start, lse), wsum
    total = 0.0
    for i in range(b):
        total += lse[i]
    return total, float(b)


@part
def weigh_block(LP, b, sample_weight, start, lse):
    """Multiply responsibilities by the sample weights; return the weighted log-lik sum."""
    K = LP.shape[0]
    total = 0.0
    for i in range(b):
        w = sample_weight[start + i]
        if w == 0.0:
            for k in range(K):
                LP[k, i] = 0.0
            continue
        total += w * lse[i]
        if w != 1.0:
            for k in range(K):
                LP[k, i] *= w
    return total


@part
def write_labels(LP, b, start, out_labels):
    """Arg-max over components of the weighted log-probabilities LP[:, :b] (before
    normalisation, as scikit-learn does, so ties resolve the same way)."""
    K = LP.shape[0]
    for i in range(b):
        best = 0
        bv = LP[0, i]
        for k in range(1, K):
            if LP[k, i] > bv:
                bv = LP[k, i]
                best = k
        out_labels[start + i] = best


@part
def write_logprob_resp(LP, lse, b, start, out_logprob, out_resp, want_resp):
    """Write log p(x) and, if wanted, the responsibilities (LP after normalise_block)."""
    K = LP.shape[0]
    for i in range(b):
        out_logprob[start + i] = lse[i]
        if want_resp:
            for k in range(K):
                out_resp[start + i, k] = LP[k, i]


@part
def store_chunk_row(F, c, s0, s1, s2, loglik, wsum):
    """Row c of F = (s0, s1, s2 flattened, loglik, wsum): one chunk's statistics as one
    flat row, so that a parallel driver's chunks sum row by row (``fold_rows_in_order``)."""
    j = 0
    for v in (s0.ravel(), s1.ravel(), s2.ravel()):
        for i in range(v.shape[0]):
            F[c, j] = v[i]
            j += 1
    F[c, j] = loglik
    F[c, j + 1] = wsum


@part
def fold_rows_in_order(F):
    """Sum the rows of F into row 0 by the tree of the thread pool's in-order fold
    (execution.threads._InOrderFold: pairs of equal level combine as they arrive, then
    the leftovers right to left), so a job summed here adds in the same order, with
    the same IEEE additions, as on the pool."""
    n, m = F.shape
    stack = np.empty(n, dtype=np.int64)
    levels = np.empty(n, dtype=np.int64)
    top = 0
    for c in range(n):
        cur = c
        level = 0
        while top > 0 and levels[top - 1] == level:
            top -= 1
            left = stack[top]
            for j in range(m):
                F[left, j] = F[left, j] + F[cur, j]
            cur = left
            level += 1
        stack[top] = cur
        levels[top] = level
        top += 1
    top -= 1
    cur = stack[top]
    while top > 0:
        top -= 1
        left = stack[top]
        for j in range(m):
            F[left, j] = F[left, j] + F[cur, j]
        cur = left
