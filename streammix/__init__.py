"""streammix: Gaussian mixture models for data larger than memory, on one machine or a
Dask cluster, with scikit-learn's API."""

from ._version import __version__
from .errors import (
    CheckpointCorruptError,
    CheckpointError,
    CheckpointLockedError,
    CheckpointMismatchError,
    CheckpointVersionError,
    ClusterConnectionError,
    ConvergenceWarning,
    DegenerateComponentWarning,
    InvalidDtypeError,
    InvalidInputError,
    InvalidParameterError,
    NotFittedError,
    OutputExistsError,
    StreammixError,
    UnfinishedModelWarning,
)
from .estimators import BayesianGaussianMixture, GaussianMixture, OnlineBayesianGaussianMixture, OnlineGaussianMixture, Selection, align, canonical_order, relabel, select
from .execution.inputs import read_zarr
from .execution.outputs import write_predictions
from .persistence import load

__all__ = [
    "CheckpointCorruptError",
    "CheckpointError",
    "CheckpointLockedError",
    "CheckpointMismatchError",
    "CheckpointVersionError",
    "ClusterConnectionError",
    "ConvergenceWarning",
    "DegenerateComponentWarning",
    "BayesianGaussianMixture",
    "GaussianMixture",
    "InvalidDtypeError",
    "InvalidInputError",
    "InvalidParameterError",
    "NotFittedError",
    "OnlineBayesianGaussianMixture",
    "OnlineGaussianMixture",
    "OutputExistsError",
    "StreammixError",
    "UnfinishedModelWarning",
    "__version__",
    "align",
    "canonical_order",
    "load",
    "read_zarr",
    "relabel",
    "select",
    "Selection",
    "write_predictions",
]
