"""Exceptions and warnings raised by streammix.

Every error is a subclass of ``ValueError`` or ``TypeError`` (so code written for
scikit-learn's exceptions keeps working) and of ``StreammixError`` (so callers can catch
ours alone). Messages name the offending thing and say what to do.
"""

from __future__ import annotations

import importlib.util
import os
import sys


def _sklearn_exceptions():
    """scikit-learn's ``sklearn.exceptions`` when scikit-learn is installed, else None.

    Our NotFittedError and ConvergenceWarning subclass scikit-learn's, so that code and
    tests written for scikit-learn (``pytest.raises(sklearn.exceptions.NotFittedError)``,
    ``warnings.filterwarnings(category=sklearn.exceptions.ConvergenceWarning)``) treat
    ours as theirs. Importing scikit-learn costs about a second, so its exceptions module
    (a file with no imports) is loaded on its own under its own name, as
    ``import sklearn.exceptions`` would load it; scikit-learn, if imported later, uses that
    very module. scikit-learn stays an optional dependency."""
    module = sys.modules.get("sklearn.exceptions")
    if module is not None:
        return module
    try:
        spec = importlib.util.find_spec("sklearn")
        if spec is None or not spec.submodule_search_locations:
            return None
        path = os.path.join(list(spec.submodule_search_locations)[0], "exceptions.py")
        if not os.path.isfile(path):
            return None
        file_spec = importlib.util.spec_from_file_location("sklearn.exceptions", path)
        module = importlib.util.module_from_spec(file_spec)
        sys.modules["sklearn.exceptions"] = module
        file_spec.loader.exec_module(module)
        module.NotFittedError, module.ConvergenceWarning  # noqa: B018 (both must exist)
        return module
    except Exception:  # noqa: BLE001 - any failure: standalone classes, same bases
        if sys.modules.get("sklearn.exceptions") is module and module is not None:
            del sys.modules["sklearn.exceptions"]
        return None


_SK = _sklearn_exceptions()
_NOT_FITTED_BASES = (ValueError, AttributeError) if _SK is None else (_SK.NotFittedError,)
_CONVERGENCE_BASES = (UserWarning,) if _SK is None else (_SK.ConvergenceWarning,)


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


class NotFittedError(StreammixError, *_NOT_FITTED_BASES):
    """The estimator is used before it was fitted: a ValueError and an AttributeError,
    and a subclass of ``sklearn.exceptions.NotFittedError`` when scikit-learn is
    installed."""


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


class ConvergenceWarning(*_CONVERGENCE_BASES):
    """EM stopped at max_iter before the lower bound changed by less than tol (a
    UserWarning, and a subclass of ``sklearn.exceptions.ConvergenceWarning`` when
    scikit-learn is installed)."""


class ClusterConnectionError(StreammixError, OSError):
    """The Dask scheduler given as ``client`` cannot be reached."""


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
