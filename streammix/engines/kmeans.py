"""k-means for initialisation on any chunk source, without materialising the data.

Seeding is k-means|| (Bahmani et al. 2012, "Scalable K-Means++"): one uniform first
centre, ``rounds`` rounds that each sample every row independently with probability
l * w * D^2 / phi (l = 2K by default), the candidates weighted by the rows they attract,
then weighted k-means++ and Lloyd on the candidates (a few hundred points, in memory).
Lloyd iterations then run over the whole source through the same map-reduce as EM.
Every random draw comes from generators seeded by (random_state, round, chunk index), so
the result is deterministic for a given chunking.
"""

from __future__ import annotations

import math

import numpy as np

from ..execution.base import ChunkSource
from ..kernels.kmeans import assign_nearest, lloyd_stats

_EMPTY = np.empty(0)


def kmeans_plusplus(sample: np.ndarray, n_clusters: int, rng: np.random.RandomState,
                    sample_weight: np.ndarray | None = None) -> np.ndarray:
    """Indices of ``n_clusters`` seeds in ``sample`` by greedy k-means++ (Arthur &
    Vassilvitskii 2007, with 2 + log K local trials per seed as scikit-learn does),
    weighted by ``sample_weight`` when given."""
    m = sample.shape[0]
    w = np.ones(m) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if not w.sum() > 0:  # a sample that missed every weighted row: fall back to uniform
        w = np.ones(m)
    n_trials = 2 + int(math.log(n_clusters))
    sq_norms = np.einsum("ij,ij->i", sample, sample)

    def sqdist(idx):
        d = sq_norms[idx][:, None] - 2.0 * sample[idx] @ sample.T + sq_norms[None, :]
        return np.maximum(d, 0.0)

    p = w / w.sum()
    first = int(rng.choice(m, p=p))
    chosen = [first]
    closest = sqdist(np.array([first]))[0]
    pot = float((w * closest).sum())
    for _ in range(1, n_clusters):
        if pot <= 0.0:
            # every point coincides with a seed: take any unchosen row
            rest = np.setdiff1d(np.arange(m), chosen)
            cand = int(rest[rng.randint(len(rest))]) if len(rest) else chosen[-1]
            chosen.append(cand)
            continue
        r = rng.uniform(size=n_trials) * pot
        cand = np.searchsorted(np.cumsum(w * closest), r)
        cand = np.clip(cand, None, m - 1)
        dist = np.minimum(closest[None, :], sqdist(cand))
        pots = (dist * w[None, :]).sum(axis=1)
        best = int(np.argmin(pots))
        chosen.append(int(cand[best]))
        closest = dist[best]
        pot = float(pots[best])
    return np.asarray(chosen)


# ---------------------------------------------------------------- map functions
def _weights(sw, n):
    return np.ones(n) if sw is None else sw


def _moments_chunk(X, sw, centre):
    """(sum w, sum w (x - c), sum w (x - c)^2) per feature about a reference point."""
    w = _weights(sw, X.shape[0])
    Z = np.asarray(X, dtype=np.float64) - centre
    return np.concatenate([[w.sum()], w @ Z, w @ (Z * Z)])


def _sqdist(X, centres):
    """Squared distance from every row of X to its nearest centre."""
    dist = np.empty(X.shape[0])
    assign_nearest(X, centres, np.empty(X.shape[0], dtype=np.int64), dist)
    return dist


def _cost_chunk(X, sw, centres):
    """sum_i w_i D^2(x_i, centres)."""
    return float(_weights(sw, X.shape[0]) @ _sqdist(X, centres))


def _oversample_chunk(X, sw, index, centres, phi, oversampling, seed, round_):
    """Rows drawn independently with probability min(1, l w D^2 / phi)."""
    dist = _sqdist(X, centres)
    p = np.minimum(1.0, oversampling * _weights(sw, X.shape[0]) * dist / phi)
    u = np.random.default_rng([seed, round_, index]).random(X.shape[0])
    return np.asarray(X[u < p], dtype=np.float64).reshape(-1, X.shape[1])


def _lloyd_chunk(X, sw, centres):
    return lloyd_stats(X, _EMPTY if sw is None else sw, sw is not None, centres)


def _sum(parts):
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    return total


def _sum_tuples(parts):
    return tuple(_sum([p[i] for p in parts]) for i in range(len(parts[0])))


def _concat(parts):
    return np.concatenate(parts, axis=0)


def lloyd_pass(source: ChunkSource, centres: np.ndarray):
    """(counts (K,), sums of x - centre (K,d), inertia) over the whole source."""
    return source.map_reduce(_lloyd_chunk, _sum_tuples, shared=(np.ascontiguousarray(centres),))


# ---------------------------------------------------------------- in-memory helpers
def _weighted_lloyd(points, weights, centres, max_iter=100):
    """Lloyd on a small weighted point set held in memory (the k-means|| candidates)."""
    centres = np.ascontiguousarray(centres, dtype=np.float64)
    labels = np.empty(points.shape[0], dtype=np.int64)
    for _ in range(max_iter):
        assign_nearest(points, centres, labels, np.empty(points.shape[0]))
        counts = np.bincount(labels, weights=weights, minlength=len(centres))
        sums = np.zeros_like(centres)
        np.add.at(sums, labels, points * weights[:, None])
        new = centres.copy()
        ok = counts > 0
        new[ok] = sums[ok] / counts[ok, None]
        if np.array_equal(new, centres):
            break
        centres = new
    return centres


def kmeans_parallel_seeds(source: ChunkSource, n_clusters: int, rng: np.random.RandomState,
                          *, rounds: int = 5, oversampling: float | None = None
                          ) -> tuple[np.ndarray, float]:
    """k-means|| seeds: (K centres, mean feature variance of the data)."""
    K = n_clusters
    ell = float(oversampling if oversampling is not None else 2 * K)
    seed = int(rng.randint(0, 2**31 - 1))
    first, _ = source.sample_rows(1, rng)
    c0 = np.ascontiguousarray(first[:1])
    mom = source.map_reduce(_moments_chunk, _sum, shared=(c0[0],))
    n, s1, s2 = mom[0], mom[1:1 + c0.shape[1]], mom[1 + c0.shape[1]:]
    variance = float(np.mean(s2 / n - (s1 / n) ** 2)) if n > 0 else 0.0
    phi = float(s2.sum())
    candidates = c0
    for r in range(rounds):
        if phi <= 0.0:
            break
        new = source.map_reduce(_oversample_chunk, _concat,
                                shared=(candidates, phi, ell, seed, r), indexed=True)
        if len(new):
            candidates = np.ascontiguousarray(np.vstack([candidates, new]))
        if r + 1 < rounds:
            phi = source.map_reduce(_cost_chunk, _sum, shared=(candidates,))
    if len(candidates) < K:
        extra, _ = source.sample_rows(K, rng)
        candidates = np.ascontiguousarray(np.vstack([candidates, extra]))
    counts, _, _ = lloyd_pass(source, candidates)
    keep = counts > 0
    if keep.sum() >= K:
        candidates, counts = candidates[keep], counts[keep]
    else:  # fewer distinct attractors than K (e.g. duplicated data): keep them all
        counts = np.maximum(counts, 1e-12)
    seeds = kmeans_plusplus(candidates, K, rng, counts)
    centres = _weighted_lloyd(candidates, counts, candidates[seeds])
    return centres, variance


def kmeans(source: ChunkSource, n_clusters: int, rng: np.random.RandomState, *,
           max_iter: int = 30, tol: float = 1e-4) -> tuple[np.ndarray, float, int]:
    """(centres, inertia, iterations): k-means|| seeds, then Lloyd over the whole source
    until the centres move (in total squared distance) less than ``tol`` times the mean
    feature variance, scikit-learn's rule, or ``max_iter`` passes (each pass reads all
    the data; k-means|| seeds are good, and EM refines what Lloyd leaves). An empty
    cluster keeps its centre."""
    centres, variance = kmeans_parallel_seeds(source, n_clusters, rng)
    tol_abs = tol * variance
    inertia = np.inf
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        counts, sums, inertia = lloyd_pass(source, centres)
        nonempty = counts > 0
        new = centres.copy()
        new[nonempty] += sums[nonempty] / counts[nonempty, None]
        moved = float(((new - centres) ** 2).sum())
        centres = np.ascontiguousarray(new)
        if moved <= tol_abs:
            break
    return centres, float(inertia), n_iter
