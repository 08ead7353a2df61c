"""Numba kernels for hard assignments: Lloyd statistics and one-hot Gaussian statistics.

Used by the k-means initialisation: Lloyd iterations map ``lloyd_stats`` over the chunks
and add the results; the initial Gaussian parameters come from ``hard_full_stats``
(responsibility 1 for the nearest centre), the same statistics a soft E-step produces.
"""

from __future__ import annotations

import numpy as np

from ._common import FASTMATH, block_rows, load_block_t
from .jit import cached, part


@part(fastmath=FASTMATH)
def _nearest(XT, b, centres, dist, best, bestd):
    """best[i] = index of the nearest centre to row i of the block, bestd its sq. distance."""
    K, d = centres.shape
    for i in range(b):
        bestd[i] = np.inf
        best[i] = 0
    for k in range(K):
        for i in range(b):
            dist[i] = 0.0
        for j in range(d):
            c = centres[k, j]
            for i in range(b):
                z = XT[j, i] - c
                dist[i] += z * z
        for i in range(b):
            if dist[i] < bestd[i]:
                bestd[i] = dist[i]
                best[i] = k


@cached(fastmath=FASTMATH)
def lloyd_stats(X, sample_weight, has_weight, centres):
    """(counts (K,), sums of x - centre (K,d), inertia) for the nearest-centre partition."""
    n, d = X.shape
    K = centres.shape[0]
    B = block_rows(d)
    XT = np.empty((d, B))
    dist = np.empty(B)
    bestd = np.empty(B)
    best = np.empty(B, dtype=np.int64)
    counts = np.zeros(K)
    sums = np.zeros((K, d))
    inertia = 0.0
    for start in range(0, n, B):
        b = min(B, n - start)
        load_block_t(X, start, b, XT)
        _nearest(XT, b, centres, dist, best, bestd)
        for i in range(b):
            w = sample_weight[start + i] if has_weight else 1.0
            k = best[i]
            counts[k] += w
            inertia += w * bestd[i]
            for j in range(d):
                sums[k, j] += w * (XT[j, i] - centres[k, j])
    return counts, sums, inertia


@cached(fastmath=FASTMATH)
def hard_full_stats(X, sample_weight, has_weight, centres):
    """Full Gaussian statistics (s0, s1, s2 about the centres) with one-hot
    responsibilities on the nearest centre."""
    n, d = X.shape
    K = centres.shape[0]
    B = block_rows(d)
    XT = np.empty((d, B))
    dist = np.empty(B)
    bestd = np.empty(B)
    best = np.empty(B, dtype=np.int64)
    z = np.empty(d)
    s0 = np.zeros(K)
    s1 = np.zeros((K, d))
    s2 = np.zeros((K, d, d))
    for start in range(0, n, B):
        b = min(B, n - start)
        load_block_t(X, start, b, XT)
        _nearest(XT, b, centres, dist, best, bestd)
        for i in range(b):
            w = sample_weight[start + i] if has_weight else 1.0
            if w == 0.0:
                continue
            k = best[i]
            s0[k] += w
            for j in range(d):
                z[j] = XT[j, i] - centres[k, j]
                s1[k, j] += w * z[j]
            for a in range(d):
                wa = w * z[a]
                for c in range(a, d):
                    s2[k, a, c] += wa * z[c]
    for k in range(K):
        for a in range(d):
            for c in range(a + 1, d):
                s2[k, c, a] = s2[k, a, c]
    return s0, s1, s2


@cached(fastmath=FASTMATH)
def assign_nearest(X, centres, labels, sqdist):
    """Index of the nearest centre (into labels) and the squared distance to it (into
    sqdist) for every row of X."""
    n, d = X.shape
    B = block_rows(d)
    XT = np.empty((d, B))
    dist = np.empty(B)
    bestd = np.empty(B)
    best = np.empty(B, dtype=np.int64)
    for start in range(0, n, B):
        b = min(B, n - start)
        load_block_t(X, start, b, XT)
        _nearest(XT, b, centres, dist, best, bestd)
        for i in range(b):
            labels[start + i] = best[i]
            sqdist[start + i] = bestd[i]
