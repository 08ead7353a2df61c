"""Initial parameters: scikit-learn's four ``init_params`` methods on any chunk source.

Each method produces 'full' statistics of some (hard or soft) responsibilities; the
covariance type's own M-step turns them into parameters, exactly as scikit-learn's
``_initialize`` does with its responsibility matrix (weights nk / n_samples).
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidParameterError
from ..execution.base import ChunkSource
from ..kernels.kmeans import hard_full_stats
from ..math.covariances import CovarianceType
from ..math.params import GaussianParams
from ..math.stats import SufficientStats, full_to_type, tree_sum
from .kmeans import kmeans, kmeans_plusplus

INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data")
_EMPTY = np.empty(0)


def _point_stats(points: np.ndarray) -> SufficientStats:
    """Statistics of one-hot responsibilities on K single points (one per component)."""
    K, d = points.shape
    return SufficientStats("full", np.ones(K), np.zeros((K, d)), np.zeros((K, d, d)), 0.0,
                           float(K), np.ascontiguousarray(points))


def _hard_chunk(X, sw, centres):
    s0, s1, s2 = hard_full_stats(X, _EMPTY if sw is None else sw, sw is not None, centres)
    return SufficientStats("full", s0, s1, s2, 0.0, 0.0, centres)


def _kmeans_stats(source: ChunkSource, K: int, rng) -> SufficientStats:
    centres, _, _ = kmeans(source, K, rng)
    return source.map_reduce(_hard_chunk, tree_sum, shared=(centres,))


def _resp_stats(X, sw, resp, centres):
    """Full statistics of given responsibilities on one chunk (numpy, init only)."""
    X = np.asarray(X, dtype=np.float64)
    resp = resp / resp.sum(axis=1)[:, None]
    if sw is not None:
        resp = resp * sw[:, None]
    Z = X - centres[0]
    s0 = resp.sum(axis=0)
    s1 = resp.T @ Z
    s2 = np.stack([(Z * resp[:, k : k + 1]).T @ Z for k in range(resp.shape[1])])
    return SufficientStats("full", s0, s1, s2, 0.0, 0.0, centres)


def _random_chunk(X, sw, index, seed, centres):
    resp = np.random.default_rng([seed, index]).random((X.shape[0], centres.shape[0]))
    return _resp_stats(X, sw, resp, centres)


def _random_stats(source: ChunkSource, K: int, rng) -> SufficientStats:
    """Uniform random responsibilities, normalised per row, centred on a sample mean.

    In memory they are drawn chunk by chunk in row order: the same stream of numbers as
    scikit-learn's one n x K draw. Elsewhere each chunk draws from a generator seeded by
    (random_state, chunk index), in parallel and deterministic for a given chunking."""
    d = source.n_features
    if source.sequential_passes_are_cheap:
        total = None
        centres = None
        for X, sw in source.iter_chunks():
            if centres is None:
                centres = np.ascontiguousarray(
                    np.broadcast_to(np.asarray(X, np.float64).mean(axis=0), (K, d)))
            part = _resp_stats(X, sw, rng.uniform(size=(X.shape[0], K)), centres)
            total = part if total is None else total + part
        return total
    seed = int(rng.randint(0, 2**31 - 1))
    sample, _ = source.sample_rows(1000, rng)
    centres = np.ascontiguousarray(np.broadcast_to(sample.mean(axis=0), (K, d)))
    return source.map_reduce(_random_chunk, tree_sum, shared=(seed, centres), indexed=True)


def initial_stats(source: ChunkSource, cov: CovarianceType, n_components: int, *,
                  init_params: str, rng: np.random.RandomState) -> SufficientStats:
    """The statistics of the initial responsibilities that ``init_params`` gives (as
    scikit-learn's ``_initialize_parameters`` computes them), in ``cov``'s shape."""
    K = n_components
    if init_params == "kmeans":
        stats = _kmeans_stats(source, K, rng)
    elif init_params == "k-means++":
        sample, sw = source.sample_rows(max(50_000, K), rng)
        stats = _point_stats(sample[kmeans_plusplus(sample, K, rng, sw)])
    elif init_params == "random_from_data":
        sample, _ = source.sample_rows(K, rng)
        stats = _point_stats(sample)
    elif init_params == "random":
        stats = _random_stats(source, K, rng)
    else:
        raise InvalidParameterError(
            f"init_params must be one of {list(INIT_METHODS)}; got {init_params!r}"
        )
    return full_to_type(stats, cov.name)


def initial_params(source: ChunkSource, cov: CovarianceType, n_components: int, *,
                   init_params: str, reg_covar: float, rng: np.random.RandomState,
                   weights_init: np.ndarray | None = None,
                   means_init: np.ndarray | None = None,
                   precisions_init: np.ndarray | None = None) -> GaussianParams:
    """Initial GaussianParams, following scikit-learn's ``_initialize_parameters``:
    the responsibilities come from ``init_params`` unless all three ``*_init`` are given,
    and any given ``*_init`` replaces the corresponding computed value. The computed
    weights are normalised to sum to 1 (see below)."""
    K = n_components
    weights = means = covariances = None
    if weights_init is None or means_init is None or precisions_init is None:
        stats = initial_stats(source, cov, K, init_params=init_params, rng=rng)
        _, means, covariances = cov.m_step(stats, reg_covar)
        # scikit-learn divides nk by n_samples, which for the two point-based methods
        # leaves weights summing to K / n; we normalise so that every initial model is a
        # proper mixture (the responsibilities are the same either way).
        nk = stats.s0 + 10 * np.finfo(np.float64).eps
        weights = nk / nk.sum()
    if weights_init is not None:
        weights = np.asarray(weights_init, dtype=np.float64)
    if means_init is not None:
        means = np.asarray(means_init, dtype=np.float64)
    means = np.ascontiguousarray(means)
    if precisions_init is None:
        prec_chol, covariances = cov.precision_cholesky(covariances, reg_covar)
    else:
        prec_chol = cov.precision_cholesky_from_precisions(np.asarray(precisions_init, np.float64))
        covariances = cov.covariances_from_precision_cholesky(prec_chol)
    return GaussianParams(cov.name, np.ascontiguousarray(weights), means, covariances,
                          np.ascontiguousarray(prec_chol))
