"""Exceptions and warnings raised by streammix.

Every error is a subclass of ``ValueError`` or ``TypeError`` (so code written for
scikit-learn's exceptions keeps working) and of ``StreammixError`` (so callers can catch
ours alone). Messages name the offending thing and say what to do.
"""

from __future__ import annotations


class StreammixError(Exception):
    """Base class of every error streammix raises on purpose."""


class InvalidInputError(StreammixError, ValueError):
    """The data handed to fit/predict/score is unusable (shape, NaN/inf, too few rows...)."""


class InvalidDtypeError(StreammixError, TypeError, ValueError):
    """The data is not real numbers (strings, objects, complex, sparse...). Both a
    TypeError and a ValueError, so code catching either (scikit-learn raises ValueError
    for most of these) keeps working."""


class InvalidParameterError(StreammixError, ValueError):
    """A constructor or init parameter is out of range or has the wrong shape."""


class NotFittedError(StreammixError, ValueError, AttributeError):
    """The estimator is used before it was fitted (compatible with scikit-learn's)."""


class OutputExistsError(StreammixError, ValueError):
    """An output path would replace something streammix must not destroy: the data being
    read, a checkpoint, a folder or file streammix did not write, or an earlier output
    when ``overwrite`` is not set."""


class UnfinishedModelWarning(UserWarning):
    """A checkpoint version holds a fit that is still running or was interrupted: the
    model loaded is its last iterate, not a finished fit."""


class DegenerateComponentWarning(UserWarning):
    """A component collapsed (its covariance was not positive definite) and was kept
    regularised with extra diagonal loading instead of stopping the fit."""


class ConvergenceWarning(UserWarning):
    """EM stopped at max_iter before the lower bound changed by less than tol."""


class CheckpointError(StreammixError, ValueError):
    """A checkpoint cannot be read, written or resumed (base of the checkpoint errors)."""


class CheckpointCorruptError(CheckpointError):
    """A checkpoint version is truncated, partial, tampered with or not a checkpoint."""


class CheckpointVersionError(CheckpointError):
    """The checkpoint was written in a newer format than this streammix understands."""


class CheckpointLockedError(CheckpointError):
    """Another writer holds the checkpoint's lock."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint belongs to a different fit (other data or other parameters)."""
