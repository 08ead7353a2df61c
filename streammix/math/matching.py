"""Distances between Gaussian components and the assignment that matches two mixtures.

Used to keep component labels stable: after a re-seed, across n_init restarts, when a
model is refitted against a previous one, and to follow a stream's components.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidParameterError
from .params import GaussianParams

METRICS = ("bhattacharyya", "kl", "wasserstein")


def full_covariances(params: GaussianParams) -> np.ndarray:
    """Every component's covariance as a d x d matrix, whatever the covariance type."""
    K, d = params.means.shape
    cov = params.covariances
    if cov is None:
        from .covariances import get_covariance_type

        cov = get_covariance_type(params.covariance_type).covariances_from_precision_cholesky(
            params.precisions_cholesky)
    t = params.covariance_type
    if t == "full":
        return np.asarray(cov)
    if t == "tied":
        return np.broadcast_to(cov, (K, d, d)).copy()
    if t == "diag":
        return np.stack([np.diag(c) for c in cov])
    return np.stack([np.eye(d) * c for c in cov])


def _logdet(S):
    sign, val = np.linalg.slogdet(S)
    return val if sign > 0 else np.inf


def pairwise_distances(a: GaussianParams, b: GaussianParams, metric: str = "bhattacharyya"
                       ) -> np.ndarray:
    """(K_a, K_b) closed-form distances between the components of two mixtures:
    'bhattacharyya', symmetric 'kl' (KL(p||q) + KL(q||p)) or squared 2-'wasserstein'."""
    if metric not in METRICS:
        raise InvalidParameterError(f"metric must be one of {list(METRICS)}; got {metric!r}")
    if a.n_features != b.n_features:
        raise InvalidParameterError(
            f"cannot match mixtures of {a.n_features} and {b.n_features} features"
        )
    Ca, Cb = full_covariances(a), full_covariances(b)
    d = a.n_features
    out = np.empty((a.n_components, b.n_components))
    if metric == "bhattacharyya":
        lda = [_logdet(C) for C in Ca]
        ldb = [_logdet(C) for C in Cb]
        for i in range(len(Ca)):
            for j in range(len(Cb)):
                S = 0.5 * (Ca[i] + Cb[j])
                diff = a.means[i] - b.means[j]
                maha = diff @ np.linalg.solve(S, diff)
                out[i, j] = maha / 8.0 + 0.5 * (_logdet(S) - 0.5 * (lda[i] + ldb[j]))
    elif metric == "kl":
        Ia = [np.linalg.inv(C) for C in Ca]
        Ib = [np.linalg.inv(C) for C in Cb]
        for i in range(len(Ca)):
            for j in range(len(Cb)):
                diff = a.means[i] - b.means[j]
                out[i, j] = 0.5 * (np.trace(Ib[j] @ Ca[i]) + np.trace(Ia[i] @ Cb[j]) - 2 * d
                                   + diff @ (Ia[i] + Ib[j]) @ diff)
    else:
        import scipy.linalg

        roots = [np.real(scipy.linalg.sqrtm(C)) for C in Cb]
        for i in range(len(Ca)):
            for j in range(len(Cb)):
                diff = a.means[i] - b.means[j]
                cross = np.real(scipy.linalg.sqrtm(roots[j] @ Ca[i] @ roots[j]))
                out[i, j] = diff @ diff + np.trace(Ca[i] + Cb[j] - 2 * cross)
    return np.maximum(out, 0.0)


@dataclass
class Alignment:
    """The result of matching a model's components to a reference's.

    ``permutation[k]`` is the model component that becomes component k;
    ``reference_index[k]`` the reference component it matches (-1: declared new, no
    reference component within the gate); ``distance[k]`` the matched pair's distance
    (nan when new)."""

    permutation: np.ndarray
    reference_index: np.ndarray
    distance: np.ndarray

    @property
    def new_components(self) -> np.ndarray:
        return np.flatnonzero(self.reference_index < 0)


def match_components(model: GaussianParams, reference: GaussianParams,
                     metric: str = "bhattacharyya", gate: float | None = None) -> Alignment:
    """Hungarian assignment (scipy's linear_sum_assignment) on pairwise distances.

    Position k of the result holds the model component matched to reference component k
    for every k < min(K_model, K_ref) that has a match within ``gate``; reference
    components left unmatched (gated out) get an unmatched model component (declared new),
    and the model's extra components follow. When the model has fewer components than the
    reference, matched components come first in reference order, then new ones.
    """
    D = pairwise_distances(reference, model, metric)  # (K_ref, K_model)
    from scipy.optimize import linear_sum_assignment  # imported when first needed

    rows, cols = linear_sum_assignment(D)
    K_model, K_ref = model.n_components, reference.n_components
    match = {}  # ref -> model
    for r, c in zip(rows, cols):
        if gate is None or D[r, c] <= gate:
            match[int(r)] = int(c)
    matched_models = set(match.values())
    unmatched = [c for c in range(K_model) if c not in matched_models]
    perm, ref_idx, dist = [], [], []
    if K_model >= K_ref:
        for r in range(K_ref):
            if r in match:
                perm.append(match[r]); ref_idx.append(r); dist.append(D[r, match[r]])
            else:
                perm.append(unmatched.pop(0)); ref_idx.append(-1); dist.append(np.nan)
    else:
        for r in range(K_ref):
            if r in match:
                perm.append(match[r]); ref_idx.append(r); dist.append(D[r, match[r]])
    for c in unmatched:
        if c not in perm:
            perm.append(c); ref_idx.append(-1); dist.append(np.nan)
    return Alignment(np.asarray(perm, dtype=np.int64), np.asarray(ref_idx, dtype=np.int64),
                     np.asarray(dist, dtype=np.float64))


def permute_params(params: GaussianParams, perm: np.ndarray) -> GaussianParams:
    """Parameters whose component k is the old component perm[k] (tied: shared cov)."""
    perm = np.asarray(perm)
    if sorted(perm.tolist()) != list(range(params.n_components)):
        raise InvalidParameterError(
            f"not a permutation of range({params.n_components}): {perm.tolist()}"
        )
    tied = params.covariance_type == "tied"
    cov = params.covariances
    return GaussianParams(
        params.covariance_type,
        params.weights[perm].copy(),
        np.ascontiguousarray(params.means[perm]),
        None if cov is None else (cov.copy() if tied else np.ascontiguousarray(cov[perm])),
        params.precisions_cholesky.copy() if tied
        else np.ascontiguousarray(params.precisions_cholesky[perm]),
        None if params.log_weights is None else params.log_weights[perm].copy(),
    )
