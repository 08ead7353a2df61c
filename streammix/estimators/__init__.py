"""scikit-learn-compatible estimators (thin: the numerics live in math/ and engines/)."""

from .bayesian import BayesianGaussianMixture
from .gaussian_mixture import GaussianMixture
from .online import OnlineGaussianMixture
from .online_bayesian import OnlineBayesianGaussianMixture
from .selection import Selection, select
from .tracking import align, canonical_order, relabel

__all__ = ["BayesianGaussianMixture", "GaussianMixture", "OnlineBayesianGaussianMixture", "OnlineGaussianMixture", "Selection", "align", "canonical_order", "relabel", "select"]
