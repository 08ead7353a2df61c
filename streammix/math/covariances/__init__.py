"""The four covariance types, chosen by name as scikit-learn's ``covariance_type``."""

from __future__ import annotations

import copy

import numpy as np

from ...errors import InvalidParameterError
from ._base import CovarianceType
from .diag import DiagCovariance
from .full import FullCovariance
from .spherical import SphericalCovariance
from .tied import TiedCovariance

COVARIANCE_TYPES: dict[str, CovarianceType] = {
    c.name: c for c in (FullCovariance(), TiedCovariance(), DiagCovariance(), SphericalCovariance())
}


#: the E-step precisions a fit can ask for (``estep_dtype``)
ESTEP_DTYPES = ("float64", "float32")


def _with_float32_estep(cov: CovarianceType) -> CovarianceType:
    """A copy of ``cov`` whose statistics passes run their E-step in float32."""
    out = copy.copy(cov)
    out.estep_dtype = np.float32
    return out


FLOAT32_ESTEP_TYPES: dict[str, CovarianceType] = {
    name: _with_float32_estep(c) for name, c in COVARIANCE_TYPES.items() if c.float32_estep
}


def get_covariance_type(name: str, estep_dtype: str | None = None) -> CovarianceType:
    """The covariance type called ``name`` ('full', 'tied', 'diag' or 'spherical'),
    whose statistics passes run their E-step in ``estep_dtype`` (None or 'float64', or
    'float32' for 'full': opt-in, see docs/performance.md)."""
    try:
        cov = COVARIANCE_TYPES[name]
    except (KeyError, TypeError):
        raise InvalidParameterError(
            f"covariance_type must be one of {sorted(COVARIANCE_TYPES)}; got {name!r}"
        ) from None
    if estep_dtype is None or (isinstance(estep_dtype, str) and estep_dtype == "float64"):
        return cov
    if not (isinstance(estep_dtype, str) and estep_dtype == "float32"):
        raise InvalidParameterError(
            f"estep_dtype must be None or one of {list(ESTEP_DTYPES)}; got {estep_dtype!r}")
    if name not in FLOAT32_ESTEP_TYPES:
        raise InvalidParameterError(
            f"estep_dtype='float32' is for covariance_type 'full' (its E-step is matrix "
            f"products about each component's own mean, which float32 speeds up and "
            f"keeps accurate); {name!r} has only a float64 E-step: leave estep_dtype unset")
    return FLOAT32_ESTEP_TYPES[name]


__all__ = ["COVARIANCE_TYPES", "ESTEP_DTYPES", "CovarianceType", "get_covariance_type"]
