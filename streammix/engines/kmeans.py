"""k-means for initialisation: k-means++ seeding on a uniform sample, then Lloyd
iterations over the whole source through the same map-reduce as EM."""

from __future__ import annotations

import math

import numpy as np

from ..execution.base import ChunkSource
from ..kernels.kmeans import lloyd_stats, nearest_labels

_EMPTY = np.empty(0)


def kmeans_plusplus(sample: np.ndarray, n_clusters: int, rng: np.random.RandomState,
                    sample_weight: np.ndarray | None = None) -> np.ndarray:
    """Indices of ``n_clusters`` seeds in ``sample`` by greedy k-means++ (Arthur &
    Vassilvitskii 2007, with 2 + log K local trials per seed as scikit-learn does),
    weighted by ``sample_weight`` when given."""
    m = sample.shape[0]
    w = np.ones(m) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
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


def _lloyd_pass(source: ChunkSource, centres: np.ndarray):
    def fn(X, sw):
        return lloyd_stats(X, _EMPTY if sw is None else sw, sw is not None, centres)

    def combine(parts):
        counts = sum(p[0] for p in parts)
        sums = sum(p[1] for p in parts)
        inertia = sum(p[2] for p in parts)
        return counts, sums, inertia

    return source.map_reduce(fn, combine)


def kmeans(source: ChunkSource, n_clusters: int, rng: np.random.RandomState, *,
           max_iter: int = 300, tol: float = 1e-4, sample_size: int = 50_000
           ) -> tuple[np.ndarray, float, int]:
    """(centres, inertia, iterations): k-means++ on a uniform sample of ``sample_size``
    rows, then Lloyd on the full source until the centres move less than ``tol`` times
    the mean feature variance (scikit-learn's rule). Empty clusters are moved to the
    sample points farthest from their centre."""
    sample, sw = source.sample_rows(max(sample_size, n_clusters), rng)
    seeds = kmeans_plusplus(sample, n_clusters, rng, sw)
    centres = np.ascontiguousarray(sample[seeds])
    var = sample.var(axis=0).mean() if sample.shape[0] > 1 else 0.0
    tol_abs = tol * var
    inertia = np.inf
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        counts, sums, inertia = _lloyd_pass(source, centres)
        shift = np.zeros_like(centres)
        nonempty = counts > 0
        shift[nonempty] = sums[nonempty] / counts[nonempty, None]
        new = centres + shift
        empty = np.flatnonzero(~nonempty)
        if len(empty):
            labels = np.empty(sample.shape[0], dtype=np.int64)
            nearest_labels(sample, np.ascontiguousarray(new), labels)
            far = np.argsort(-((sample - new[labels]) ** 2).sum(axis=1))
            new[empty] = sample[far[: len(empty)]]
        moved = float(((new - centres) ** 2).sum())
        centres = np.ascontiguousarray(new)
        if moved <= tol_abs and not len(empty):
            break
    return centres, float(inertia), n_iter
