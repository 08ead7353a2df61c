"""scikit-learn-compatible estimators (thin: the numerics live in math/ and engines/)."""

from .gaussian_mixture import GaussianMixture
from .online import OnlineGaussianMixture
from .tracking import align, canonical_order, relabel

__all__ = ["GaussianMixture", "OnlineGaussianMixture", "align", "canonical_order", "relabel"]
