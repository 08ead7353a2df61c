"""Component identity across models: align one model's components to a reference's,
relabel a model by a permutation, and put components in a canonical display order."""

from __future__ import annotations

import copy

import numpy as np

from ..errors import InvalidParameterError
from ..math.matching import Alignment, match_components


def _params_of(model):
    if not hasattr(model, "means_"):
        from ..errors import NotFittedError

        raise NotFittedError(f"{type(model).__name__} is not fitted; nothing to align")
    return model._get_params_value()


def align(model, reference, metric: str = "bhattacharyya", gate: float | None = None,
          return_details: bool = False):
    """The permutation ``p`` that best matches ``model``'s components to ``reference``'s.

    ``relabel(model, p)`` then has its component k matched to ``reference``'s component k
    (for every k below both models' K whose best match lies within ``gate``). Matching is
    the Hungarian algorithm on a closed-form distance between Gaussians: 'bhattacharyya'
    (default), symmetric 'kl' or squared 2-'wasserstein'. Pairs farther apart than
    ``gate`` are declared new; components beyond the reference's K follow, in their
    order. Works with GaussianMixture and OnlineGaussianMixture (and mixes of them).
    With ``return_details=True`` returns an ``Alignment`` (permutation, reference_index
    with -1 for new components, distance) instead of the bare permutation.
    """
    result: Alignment = match_components(_params_of(model), _params_of(reference), metric, gate)
    return result if return_details else result.permutation


def relabel(model, p):
    """A copy of ``model`` whose component k is the old component ``p[k]``: weights,
    means, covariances, precisions, component ids and (online) running statistics move
    together, so predictions are relabelled consistently."""
    p = np.asarray(p, dtype=np.int64)
    _params_of(model)
    if sorted(p.tolist()) != list(range(model.means_.shape[0])):
        raise InvalidParameterError(
            f"p must be a permutation of range({model.means_.shape[0]}); got {p.tolist()}"
        )
    out = copy.deepcopy(model)
    out._permute_components(p)
    return out


def canonical_order(model, by: str = "weight") -> np.ndarray:
    """A permutation for display: 'weight' (heaviest first) or 'mean' (by the first
    coordinate of the mean, ascending). Apply it with ``relabel``."""
    params = _params_of(model)
    if by == "weight":
        return np.argsort(-params.weights, kind="stable")
    if by == "mean":
        return np.lexsort(params.means.T[::-1])
    raise InvalidParameterError(f"by must be 'weight' or 'mean'; got {by!r}")
