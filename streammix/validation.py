"""Input validation: turn whatever the user passed into a usable 2-D float array, or
raise an error of ours that names the problem and the fix."""

from __future__ import annotations

import numbers

import numpy as np

from .errors import InvalidDtypeError, InvalidInputError, InvalidParameterError
from .kernels.checks import scan_nonfinite


def _describe_nonfinite(count: int, row: int, col: int, value: float, what: str,
                        row_offset: int = 0) -> str:
    kind = "NaN" if np.isnan(value) else ("inf" if value > 0 else "-inf")
    return (
        f"{what} contains {count} NaN or infinite value{'s' if count != 1 else ''}; the first is "
        f"{kind} at row {row + row_offset}, column {col}. Remove or impute them."
    )


# Squares of larger values overflow float64 (about 1.3e154): such data must be rescaled.
MAX_ABS_VALUE = 1e150


def check_finite(X: np.ndarray, what: str = "X", row_offset: int = 0) -> None:
    """Raise InvalidInputError naming the count and first position of NaN/inf in X, or
    values so large that their squares overflow."""
    raise_if_nonfinite(scan_nonfinite(X), X, what, row_offset)


def merge_scans(first: tuple[int, int, int, float], second: tuple[int, int, int, float]
                ) -> tuple[int, int, int, float]:
    """One ``scan_nonfinite`` result for two row blocks, ``first`` above ``second``, both
    with rows numbered in the same frame: counts add, the first position is the earliest,
    the largest magnitude is the larger. Lets chunks be scanned in parallel and judged
    as one array."""
    head = first if first[0] else second
    return first[0] + second[0], head[1], head[2], max(first[3], second[3])


def raise_if_nonfinite(scan: tuple[int, int, int, float], X: np.ndarray, what: str = "X",
                       row_offset: int = 0) -> None:
    """``check_finite``'s verdict on a scan of X (``scan_nonfinite``, or chunk scans
    combined by ``merge_scans``): the same errors, raised after the scan."""
    count, row, col, big = scan
    if count:
        raise InvalidInputError(
            _describe_nonfinite(count, row, col, float(X[row, col]), what, row_offset)
        )
    if big > MAX_ABS_VALUE:
        raise InvalidInputError(
            f"{what} has values as large as {big:.3g} in magnitude; their squares overflow "
            "float64. Rescale the data (e.g. divide by its standard deviation)."
        )


def check_array(X, *, what: str = "X", n_features: int | None = None,
                estimator: str = "GaussianMixture",
                min_samples: int = 1, allow_nd_check: bool = True,
                finite: bool = True) -> np.ndarray:
    """Validate a data matrix: 2-D, numeric, non-empty, finite, right feature count.

    float32 and float64 arrays come back as they are (no copy, any memory order); other
    numeric dtypes (ints, bools, float16) are converted to float64. ``finite=False``
    skips the NaN/inf scan, for a caller that scans the values itself while it reads
    them (online updates scan each chunk in its kernel task) and calls
    ``raise_if_nonfinite`` before it uses any result.
    """
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise InvalidDtypeError(
            f"{what} is a sparse matrix; Gaussian mixtures need dense data (call .toarray())"
        )
    if not isinstance(X, np.ndarray):
        try:
            X = np.asarray(X)
        except Exception as exc:  # ragged lists and the like
            raise InvalidInputError(f"{what} could not be read as an array: {exc}") from exc
    if X.dtype.kind in "OUSV" or X.dtype.kind == "c" or X.dtype.kind == "M" or X.dtype.kind == "m":
        if X.dtype.kind == "O":
            try:
                X = X.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise InvalidDtypeError(
                    f"{what} has dtype object with non-numeric entries ({exc}); expected "
                    "numbers (float32 or float64)"
                ) from None
        elif X.dtype.kind == "c":
            raise InvalidDtypeError(
                f"{what} has dtype {X.dtype}: Complex data not supported; expected float32 "
                "or float64"
            )
        else:
            raise InvalidDtypeError(
                f"{what} has dtype {X.dtype}, which is not a real number type; expected "
                "float32 or float64 (ints and bools are converted)"
            )
    if X.ndim != 2:
        hint = ""
        if X.ndim == 1:
            hint = (" Reshape your data either using X.reshape(-1, 1) if it holds one "
                    "feature, or X.reshape(1, -1) if it holds one sample.")
        elif X.ndim == 0:
            hint = " A scalar is not a data set."
        raise InvalidInputError(
            f"{what} must be a 2-D array (n_samples, n_features); got {X.ndim}-D with shape "
            f"{X.shape}.{hint}"
        )
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    n, d = X.shape
    if n == 0 or d == 0:
        found = "0 sample(s)" if n == 0 else "0 feature(s)"
        raise InvalidInputError(
            f"{what} is empty: found {found} (shape={X.shape}) while a minimum of 1 is "
            "required; need at least one sample and one feature"
        )
    if n_features is not None and d != n_features:
        raise InvalidInputError(
            f"{what} has {d} features, but {estimator} is expecting {n_features} features "
            "as input (the number it was fitted with)"
        )
    if n < min_samples:
        raise InvalidInputError(
            f"{what} has {n} sample{'s' if n != 1 else ''}; at least {min_samples} "
            f"{'are' if min_samples != 1 else 'is'} needed"
        )
    if finite:
        check_finite(X, what)
    return X


def check_sample_weight(sample_weight, n_samples: int) -> np.ndarray | None:
    """Validate sample weights: 1-D, length n, finite, non-negative, not all zero."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Number):
        sample_weight = np.full(n_samples, float(sample_weight))
    sw = np.asarray(sample_weight)
    if sw.dtype.kind not in "fiub":
        raise InvalidDtypeError(f"sample_weight has dtype {sw.dtype}; expected numbers")
    sw = np.ascontiguousarray(sw, dtype=np.float64)
    if sw.ndim != 1 or sw.shape[0] != n_samples:
        raise InvalidInputError(
            f"sample_weight has shape {sw.shape}; expected ({n_samples},), one weight per sample"
        )
    if not np.all(np.isfinite(sw)):
        bad = int(np.flatnonzero(~np.isfinite(sw))[0])
        raise InvalidInputError(f"sample_weight has a NaN or infinite value at index {bad}")
    if np.any(sw < 0):
        bad = int(np.flatnonzero(sw < 0)[0])
        raise InvalidInputError(
            f"sample_weight must be non-negative; sample_weight[{bad}] = {float(sw[bad])!r}"
        )
    if not np.any(sw > 0):
        raise InvalidInputError("sample_weight is zero everywhere; nothing to fit")
    return sw


def check_int_param(value, name: str, low: int, high: float | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidParameterError(f"{name} must be an integer; got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise InvalidParameterError(f"{name} must be {bound}; got {value}")
    return int(value)


def check_float_param(value, name: str, low: float, *, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(f"{name} must be a number; got {value!r}")
    value = float(value)
    if not np.isfinite(value) or (value <= low if strict else value < low):
        raise InvalidParameterError(
            f"{name} must be a finite number {'>' if strict else '>='} {low}; got {value}"
        )
    return value


def check_init_array(value, name: str, shape: tuple[int, ...], sk_name: str | None = None
                     ) -> np.ndarray:
    """A user-given initial parameter as a finite float64 array of the expected shape.
    A wrong shape is reported in scikit-learn's words (``sk_name``: the name its message
    uses, such as 'weights' for weights_init), then ours."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name} must be numeric; got {value!r}") from None
    if arr.shape != shape:
        raise InvalidParameterError(
            f"The parameter '{sk_name or name}' should have the shape of {shape}, but got "
            f"{arr.shape} ({name} must be an array of shape {shape})")
    if not np.all(np.isfinite(arr)):
        raise InvalidParameterError(f"{name} contains NaN or infinite values")
    return arr


def check_random_state(seed) -> np.random.RandomState:
    """A RandomState from None, an int or a RandomState (scikit-learn's convention)."""
    if seed is None or seed is np.random:
        return np.random.mtrand._rand
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return np.random.RandomState(int(seed))
    if isinstance(seed, np.random.RandomState):
        return seed
    raise InvalidParameterError(
        f"random_state must be None, an int or a numpy RandomState; got {seed!r}"
    )
