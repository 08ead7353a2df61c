"""scikit-learn-compatible estimators (thin: the numerics live in math/ and engines/)."""

from .gaussian_mixture import GaussianMixture

__all__ = ["GaussianMixture"]
