"""The four covariance types, chosen by name as scikit-learn's ``covariance_type``."""

from __future__ import annotations

from ...errors import InvalidParameterError
from ._base import CovarianceType
from .diag import DiagCovariance
from .full import FullCovariance
from .spherical import SphericalCovariance
from .tied import TiedCovariance

COVARIANCE_TYPES: dict[str, CovarianceType] = {
    c.name: c for c in (FullCovariance(), TiedCovariance(), DiagCovariance(), SphericalCovariance())
}


def get_covariance_type(name: str) -> CovarianceType:
    """The covariance type called ``name`` ('full', 'tied', 'diag' or 'spherical')."""
    try:
        return COVARIANCE_TYPES[name]
    except (KeyError, TypeError):
        raise InvalidParameterError(
            f"covariance_type must be one of {sorted(COVARIANCE_TYPES)}; got {name!r}"
        ) from None


__all__ = ["COVARIANCE_TYPES", "CovarianceType", "get_covariance_type"]
