"""Bad input gets a clear error: an exception class of ours (streammix.errors, which also
subclass ValueError/TypeError) whose message names the problem and its key facts.

Also: what must be accepted (ints, bools, float32 in C and F order) is accepted."""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.sparse as sp

import streammix
from streammix import GaussianMixture
from streammix.errors import (
    InvalidDtypeError,
    InvalidInputError,
    InvalidParameterError,
    NotFittedError,
    StreammixError,
)
from streammix.validation import check_array

COV_TYPES = ["full", "tied", "diag", "spherical"]
N, D, K = 40, 3, 2


def _data(n=N, d=D, seed=0, dtype=np.float64):
    rng = np.random.RandomState(seed)
    X = np.vstack([rng.randn(n // 2, d), rng.randn(n - n // 2, d) + 6.0])
    return X.astype(dtype)


@pytest.fixture(scope="module")
def X():
    return _data()


@pytest.fixture(scope="module")
def fitted(X):
    return GaussianMixture(K, random_state=0).fit(X)


def _raises(cls, fn, *args, **kwargs) -> str:
    """Call fn, require an exception of our class `cls`, return its message."""
    with pytest.raises(StreammixError) as info:
        fn(*args, **kwargs)
    err = info.value
    assert isinstance(err, cls), f"expected {cls.__name__}, got {type(err).__name__}: {err}"
    # ours are also the standard exception types, so code written for scikit-learn works
    if issubclass(cls, InvalidDtypeError):
        assert isinstance(err, TypeError)
    else:
        assert isinstance(err, ValueError)
    return str(err)


# --------------------------------------------------------------------------- NaN / inf
@pytest.mark.parametrize(
    "bad, count, row, col, kind",
    [
        ({(4, 2): np.nan}, 1, 4, 2, "NaN"),
        ({(4, 2): np.nan, (7, 0): np.inf, (9, 1): -np.inf}, 3, 4, 2, "NaN"),
        ({(11, 1): np.inf, (30, 0): np.nan}, 2, 11, 1, "inf"),
        ({(0, 0): -np.inf}, 1, 0, 0, "-inf"),
        # the first in row order, not in the order the values were written
        ({(25, 0): np.nan, (3, 2): np.nan}, 2, 3, 2, "NaN"),
    ],
)
def test_nonfinite_in_fit_names_count_and_first_position(X, bad, count, row, col, kind):
    Xb = X.copy()
    for (i, j), v in bad.items():
        Xb[i, j] = v
    msg = _raises(InvalidInputError, GaussianMixture(K, random_state=0).fit, Xb)
    assert re.search(rf"\b{count} NaN or infinite value", msg), msg
    assert f"row {row}, column {col}" in msg, msg
    assert re.search(rf"(^|\s){re.escape(kind)} at row", msg), msg


def test_nonfinite_count_is_exact_for_many_values(X):
    Xb = np.tile(X, (5, 1))  # 200 x 3
    Xb[50:, 1] = np.nan  # 150 NaN
    Xb[120, 2] = np.inf  # + 1
    msg = _raises(InvalidInputError, GaussianMixture(K).fit, Xb)
    assert "151 NaN or infinite values" in msg, msg
    assert "row 50, column 1" in msg, msg


@pytest.mark.parametrize("layout", ["F", "strided_rows", "strided_cols", "float32"])
def test_nonfinite_position_whatever_the_memory_layout(layout):
    base = _data(n=60, d=4)
    if layout == "strided_rows":
        base[2 * 13, 3] = np.nan
        base[2 * 20, 0] = np.nan
        Xb = base[::2]  # rows 13 and 20 of the view
        expect = (2, 13, 3)
    elif layout == "strided_cols":
        base[8, 2] = np.inf  # column 1 of the view
        base[5, 1] = np.nan  # not in the view
        Xb = base[:, ::2]
        expect = (1, 8, 1)
    else:
        Xb = np.asfortranarray(base) if layout == "F" else base.astype(np.float32)
        Xb[9, 0] = np.nan
        Xb[4, 3] = np.nan  # earlier in row order, later in column (F) order
        expect = (2, 4, 3)
    count, row, col = expect
    msg = _raises(InvalidInputError, GaussianMixture(1).fit, Xb)
    assert re.search(rf"\b{count} NaN or infinite value", msg), msg
    assert f"row {row}, column {col}" in msg, msg


def test_nonfinite_row_is_global_when_fitting_in_small_chunks(X):
    Xb = np.tile(X, (3, 1))  # 120 rows, chunks of 16
    Xb[97, 1] = np.nan
    msg = _raises(InvalidInputError, GaussianMixture(K, chunk_size=16).fit, Xb)
    assert "1 NaN or infinite value" in msg and "row 97, column 1" in msg, msg


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score", "score_samples"])
def test_nonfinite_at_predict_time(fitted, X, method):
    Xb = X[:10].copy()
    Xb[6, 1] = np.inf
    Xb[8, 0] = np.nan
    msg = _raises(InvalidInputError, getattr(fitted, method), Xb)
    assert "2 NaN or infinite values" in msg and "row 6, column 1" in msg, msg


# --------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("shape", [(N,), (N, D, 1), (2, N // 2, D)])
def test_not_two_dimensional_in_fit(X, shape):
    Xb = X[:, 0] if len(shape) == 1 else X.reshape(shape)
    msg = _raises(InvalidInputError, GaussianMixture(K).fit, Xb)
    assert "2-D" in msg and f"{len(shape)}-D" in msg and str(Xb.shape) in msg, msg
    if len(shape) == 1:
        assert "reshape(-1, 1)" in msg, msg  # says how to fix it


def test_scalar_input(X):
    msg = _raises(InvalidInputError, GaussianMixture(1).fit, 3.0)
    assert "2-D" in msg and "0-D" in msg, msg


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score", "score_samples"])
def test_one_dimensional_at_predict_time(fitted, X, method):
    msg = _raises(InvalidInputError, getattr(fitted, method), X[0])
    assert "2-D" in msg and "1-D" in msg and "reshape" in msg, msg


@pytest.mark.parametrize("n, k", [(3, 5), (4, 5), (9, 10)])
def test_fewer_samples_than_components(X, n, k):
    msg = _raises(InvalidInputError, GaussianMixture(k).fit, X[:n])
    # scikit-learn's wording
    assert f"n_components = {k}, n_samples = {n}" in msg, msg


def test_a_single_sample_cannot_be_fitted(X):
    msg = _raises(InvalidInputError, GaussianMixture(1).fit, X[:1])
    assert "1 sample" in msg and "2" in msg, msg


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score", "score_samples",
                                    "bic", "aic"])
@pytest.mark.parametrize("d_new", [2, 5])
def test_feature_count_differs_from_fit(fitted, X, method, d_new):
    Xb = np.hstack([X, X])[:, :d_new]
    msg = _raises(InvalidInputError, getattr(fitted, method), Xb)
    assert f"{d_new} features" in msg and f"{D} features" in msg, msg
    assert fitted.n_features_in_ == D


def test_feature_count_is_checked_against_the_latest_fit(X):
    gm = GaussianMixture(1, random_state=0).fit(X)
    gm.fit(X[:, :2])
    assert gm.n_features_in_ == 2
    msg = _raises(InvalidInputError, gm.predict, X)
    assert "3 features" in msg and "2 features" in msg, msg


# --------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize(
    "make, dtype_text",
    [
        (lambda X: X.astype(str), "<U"),
        (lambda X: X.astype("S8"), "S8"),
        (lambda X: X + 1j, "complex128"),
        (lambda X: (X + 1j).astype(np.complex64), "complex64"),
        (lambda X: np.zeros(X.shape, dtype="datetime64[s]"), "datetime64"),
        (lambda X: np.zeros(X.shape, dtype="timedelta64[s]"), "timedelta64"),
    ],
    ids=["str", "bytes", "complex128", "complex64", "datetime", "timedelta"],
)
def test_non_numeric_dtype(X, make, dtype_text):
    Xb = make(X)
    msg = _raises(InvalidDtypeError, GaussianMixture(K).fit, Xb)
    assert dtype_text in msg and "dtype" in msg, msg


def test_object_array_with_strings(X):
    Xb = X.astype(object)
    Xb[5, 1] = "a string"
    msg = _raises(InvalidDtypeError, GaussianMixture(K).fit, Xb)
    assert "object" in msg and "non-numeric" in msg, msg


def test_list_of_strings(X):
    msg = _raises(InvalidDtypeError, GaussianMixture(1).fit, [["a", "b"], ["c", "d"], ["e", "f"]])
    assert "dtype" in msg, msg


def test_ragged_list():
    msg = _raises(InvalidInputError, GaussianMixture(1).fit, [[1.0, 2.0], [3.0]])
    assert "could not be read as an array" in msg, msg


@pytest.mark.parametrize("method", ["predict", "score_samples"])
def test_non_numeric_at_predict_time(fitted, X, method):
    msg = _raises(InvalidDtypeError, getattr(fitted, method), X + 1j)
    assert "complex" in msg, msg


# --------------------------------------------------------------------------- empty
@pytest.mark.parametrize("shape", [(0, 3), (5, 0), (0, 0)])
def test_empty_array_in_fit(shape):
    msg = _raises(InvalidInputError, GaussianMixture(1).fit, np.empty(shape))
    assert "empty" in msg and str(shape) in msg, msg


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score_samples"])
def test_empty_array_at_predict_time(fitted, method):
    msg = _raises(InvalidInputError, getattr(fitted, method), np.empty((0, D)))
    assert "empty" in msg and "(0, 3)" in msg, msg


# --------------------------------------------------------------------------- sparse
@pytest.mark.parametrize("fmt", ["csr_matrix", "csc_matrix", "coo_matrix", "csr_array"])
def test_sparse_input_in_fit(X, fmt):
    Xs = getattr(sp, fmt)(X)
    msg = _raises(InvalidDtypeError, GaussianMixture(K).fit, Xs)
    assert "sparse" in msg and "toarray" in msg, msg


def test_sparse_input_at_predict_time(fitted, X):
    msg = _raises(InvalidDtypeError, fitted.predict, sp.csr_matrix(X))
    assert "sparse" in msg, msg


# --------------------------------------------------------------------------- inits
@pytest.mark.parametrize("weights", [[1.0], [0.2, 0.3, 0.5], [[0.5, 0.5]]])
def test_weights_init_bad_shape(X, weights):
    msg = _raises(InvalidParameterError, GaussianMixture(K, weights_init=weights).fit, X)
    got = str(np.shape(weights))
    assert "weights_init" in msg and got in msg and f"({K},)" in msg, msg


def test_weights_init_not_summing_to_one(X):
    msg = _raises(InvalidParameterError, GaussianMixture(K, weights_init=[0.3, 0.3]).fit, X)
    assert "weights_init" in msg and "sum to 1" in msg and "0.6" in msg, msg


@pytest.mark.parametrize("weights, shown", [([1.5, -0.5], "-0.5"), ([-0.25, 1.25], "1.25")])
def test_weights_init_out_of_unit_interval(X, weights, shown):
    msg = _raises(InvalidParameterError, GaussianMixture(K, weights_init=weights).fit, X)
    assert "weights_init" in msg and "[0, 1]" in msg and shown in msg, msg


@pytest.mark.parametrize("name", ["weights_init", "means_init"])
def test_init_with_nan(X, name):
    value = [np.nan, 0.5] if name == "weights_init" else np.full((K, D), np.nan)
    msg = _raises(InvalidParameterError, GaussianMixture(K, **{name: value}).fit, X)
    assert name in msg and "NaN" in msg, msg


def test_weights_init_not_numeric(X):
    msg = _raises(InvalidParameterError, GaussianMixture(K, weights_init=["a", "b"]).fit, X)
    assert "weights_init" in msg and "numeric" in msg, msg


@pytest.mark.parametrize("shape", [(K + 1, D), (K, D - 1), (K * D,), (1, K, D)])
def test_means_init_bad_shape(X, shape):
    msg = _raises(InvalidParameterError, GaussianMixture(K, means_init=np.zeros(shape)).fit, X)
    assert "means_init" in msg and str(shape) in msg and f"({K}, {D})" in msg, msg


_PREC_SHAPES = {"full": (K, D, D), "tied": (D, D), "diag": (K, D), "spherical": (K,)}
_BAD_PREC_SHAPES = {
    "full": [(K, D), (K + 1, D, D), (D, D), (K, D, D - 1)],
    "tied": [(K, D, D), (D + 1, D + 1), (D,)],
    "diag": [(K,), (K + 1, D), (K, D + 1), (K, D, D)],
    "spherical": [(K, D), (K + 1,), ()],
}


@pytest.mark.parametrize(
    "cov_type, shape",
    [(c, s) for c, shapes in _BAD_PREC_SHAPES.items() for s in shapes],
)
def test_precisions_init_bad_shape(X, cov_type, shape):
    prec = np.ones(shape)
    gm = GaussianMixture(K, covariance_type=cov_type, precisions_init=prec)
    msg = _raises(InvalidParameterError, gm.fit, X)
    assert "precisions_init" in msg and cov_type in msg, msg
    assert str(shape) in msg and str(_PREC_SHAPES[cov_type]) in msg, msg


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_precisions_init_with_nan(X, cov_type):
    prec = np.full(_PREC_SHAPES[cov_type], np.nan)
    gm = GaussianMixture(K, covariance_type=cov_type, precisions_init=prec)
    msg = _raises(InvalidParameterError, gm.fit, X)
    assert "precisions_init" in msg and "NaN" in msg, msg


_INDEFINITE = np.array([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # eigenvalue -1
_SINGULAR = np.diag([1.0, 1.0, 0.0])  # positive semi-definite only (eigenvalue 0)
_ASYMMETRIC = np.eye(3) + np.triu(np.ones((3, 3)), 1)


@pytest.mark.parametrize(
    "bad, words",
    [(_INDEFINITE, ["positive definite", "-1"]), (-np.eye(3), ["positive definite"]),
     (_SINGULAR, ["positive definite"]), (np.zeros((3, 3)), ["positive definite"]),
     (_ASYMMETRIC, ["symmetric"])],
    ids=["indefinite", "negative", "singular", "zero", "asymmetric"],
)
def test_full_precisions_init_not_positive_definite(X, bad, words):
    prec = np.stack([np.eye(D), bad])  # component 1 is the bad one
    gm = GaussianMixture(K, covariance_type="full", precisions_init=prec)
    msg = _raises(InvalidParameterError, gm.fit, X)
    assert "precisions_init[1]" in msg, msg  # names the component
    for w in words:
        assert w in msg, msg


@pytest.mark.parametrize(
    "bad, words",
    [(_INDEFINITE, ["positive definite", "-1"]), (-np.eye(3), ["positive definite"]),
     (_SINGULAR, ["positive definite"]), (_ASYMMETRIC, ["symmetric"])],
    ids=["indefinite", "negative", "singular", "asymmetric"],
)
def test_tied_precisions_init_not_positive_definite(X, bad, words):
    gm = GaussianMixture(K, covariance_type="tied", precisions_init=bad)
    msg = _raises(InvalidParameterError, gm.fit, X)
    assert "precisions_init" in msg and "tied" in msg, msg
    for w in words:
        assert w in msg, msg


@pytest.mark.parametrize("cov_type", ["diag", "spherical"])
@pytest.mark.parametrize("value", [0.0, -2.0])
def test_diag_spherical_precisions_init_not_positive(X, cov_type, value):
    prec = np.ones(_PREC_SHAPES[cov_type])
    prec[1] = value  # component 1 is the bad one
    gm = GaussianMixture(K, covariance_type=cov_type, precisions_init=prec)
    msg = _raises(InvalidParameterError, gm.fit, X)
    assert "precisions_init" in msg and cov_type in msg and "positive" in msg, msg
    # like the 'full' message (precisions_init[1]), it should say which component
    assert re.search(r"precisions_init\[1\]|component 1", msg), msg


# --------------------------------------------------------------------------- sample_weight
def test_negative_sample_weight(X):
    sw = np.ones(N)
    sw[17] = -2.5
    msg = _raises(InvalidInputError, GaussianMixture(K).fit, X, sample_weight=sw)
    assert "non-negative" in msg and "17" in msg and "-2.5" in msg, msg


def test_negative_sample_weight_message_shows_a_plain_number(X):
    sw = np.ones(N)
    sw[17] = -2.5
    msg = _raises(InvalidInputError, GaussianMixture(K).fit, X, sample_weight=sw)
    assert "sample_weight[17] = -2.5" in msg, msg  # not "= np.float64(-2.5)"


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nonfinite_sample_weight(X, value):
    sw = np.ones(N)
    sw[23] = value
    msg = _raises(InvalidInputError, GaussianMixture(K).fit, X, sample_weight=sw)
    assert "sample_weight" in msg and "NaN or infinite" in msg and "23" in msg, msg


@pytest.mark.parametrize("shape", [(N - 1,), (N + 1,), (N, 1), (1, N)])
def test_sample_weight_wrong_shape(X, shape):
    msg = _raises(InvalidInputError, GaussianMixture(K).fit, X, sample_weight=np.ones(shape))
    assert "sample_weight" in msg and str(shape) in msg and f"({N},)" in msg, msg


def test_sample_weight_all_zero(X):
    msg = _raises(InvalidInputError, GaussianMixture(K).fit, X, sample_weight=np.zeros(N))
    assert "sample_weight" in msg and "zero" in msg, msg


def test_sample_weight_not_numeric(X):
    msg = _raises(InvalidDtypeError, GaussianMixture(K).fit, X, sample_weight=["a"] * N)
    assert "sample_weight" in msg and "dtype" in msg, msg


# --------------------------------------------------------------------------- parameters
@pytest.mark.parametrize(
    "params, words",
    [
        (dict(n_components=0), ["n_components", "0"]),
        (dict(n_components=-3), ["n_components", "-3"]),
        (dict(n_components=1.5), ["n_components", "integer", "1.5"]),
        (dict(n_components=True), ["n_components", "integer"]),
        (dict(covariance_type="bogus"), ["covariance_type", "'bogus'", "full", "tied", "diag",
                                          "spherical"]),
        (dict(covariance_type=None), ["covariance_type", "None"]),
        (dict(tol=-1e-3), ["tol", "-0.001"]),
        (dict(tol=np.nan), ["tol", "nan"]),
        (dict(tol="x"), ["tol", "number"]),
        (dict(reg_covar=-1e-6), ["reg_covar", "-1e-06"]),
        (dict(reg_covar=np.inf), ["reg_covar", "inf"]),
        (dict(init_params="bogus"), ["init_params", "'bogus'", "kmeans", "k-means++", "random",
                                     "random_from_data"]),
        (dict(n_init=0), ["n_init", "0"]),
        (dict(max_iter=-1), ["max_iter", "-1"]),
        (dict(max_iter=2.5), ["max_iter", "integer"]),
        (dict(verbose_interval=0), ["verbose_interval", "0"]),
        (dict(random_state="seed"), ["random_state", "'seed'"]),
        (dict(chunk_size=0), ["chunk_size", "0"]),
    ],
    ids=lambda v: str(v) if isinstance(v, dict) else "",
)
def test_invalid_constructor_parameter(X, params, words):
    gm = GaussianMixture(**{"n_components": K, **params})  # scikit-learn: no checks in __init__
    msg = _raises(InvalidParameterError, gm.fit, X)
    for w in words:
        assert w in msg, msg


def test_set_params_unknown_name():
    msg = _raises(InvalidParameterError, GaussianMixture().set_params, n_component=2)
    assert "'n_component'" in msg and "n_components" in msg, msg


# --------------------------------------------------------------------------- not fitted
@pytest.mark.parametrize(
    "method, args",
    [("predict", ("X",)), ("predict_proba", ("X",)), ("score", ("X",)),
     ("score_samples", ("X",)), ("bic", ("X",)), ("aic", ("X",)), ("sample", (5,))],
)
def test_not_fitted(X, method, args):
    args = tuple(X if a == "X" else a for a in args)
    gm = GaussianMixture(K)
    msg = _raises(NotFittedError, getattr(gm, method), *args)
    assert not hasattr(gm, "means_")
    assert "not fitted" in msg and "fit" in msg and "GaussianMixture" in msg, msg
    with pytest.raises(AttributeError):  # scikit-learn's NotFittedError is one too
        getattr(GaussianMixture(K), method)(*args)


def test_errors_are_exported_at_top_level():
    assert streammix.InvalidInputError is InvalidInputError
    assert issubclass(streammix.InvalidDtypeError, TypeError)
    assert issubclass(streammix.InvalidInputError, ValueError)
    assert issubclass(streammix.InvalidParameterError, ValueError)
    assert issubclass(streammix.NotFittedError, ValueError)
    assert issubclass(streammix.InvalidDtypeError, ValueError)  # like scikit-learn


# --------------------------------------------------------------------------- accepted
@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_int_input_is_converted(cov_type):
    Xi = np.round(_data(n=60) * 10).astype(np.int64)
    a = GaussianMixture(K, covariance_type=cov_type, random_state=0).fit(Xi)
    b = GaussianMixture(K, covariance_type=cov_type, random_state=0).fit(Xi.astype(np.float64))
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-12)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-12)
    np.testing.assert_array_equal(a.predict(Xi), b.predict(Xi.astype(np.float64)))
    assert np.isfinite(a.score(Xi))


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.uint16, np.float16])
def test_small_numeric_dtypes_become_float64(dtype):
    Xs = (np.abs(_data(n=30)) * 5).astype(dtype)
    out = check_array(Xs)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, Xs.astype(np.float64))


def test_bool_input_is_converted():
    rng = np.random.RandomState(3)
    Xb = rng.rand(50, 3) > 0.5
    gm = GaussianMixture(2, covariance_type="diag", random_state=0).fit(Xb)
    ref = GaussianMixture(2, covariance_type="diag", random_state=0).fit(Xb.astype(float))
    np.testing.assert_allclose(gm.means_, ref.means_, rtol=1e-12)
    assert np.all(np.isfinite(gm.predict_proba(Xb)))


def test_lists_and_numeric_object_arrays_are_accepted(X):
    ref = GaussianMixture(K, random_state=0).fit(X)
    for Xa in (X.tolist(), X.astype(object)):
        gm = GaussianMixture(K, random_state=0).fit(Xa)
        np.testing.assert_allclose(gm.means_, ref.means_, rtol=1e-12)
        np.testing.assert_array_equal(gm.predict(Xa), ref.predict(X))


@pytest.mark.parametrize("order", ["C", "F"])
def test_float32_accepted_without_a_copy(X, order):
    X32 = np.asarray(X, dtype=np.float32, order=order)
    out = check_array(X32)
    assert out is X32  # no conversion, no copy
    for cov_type in COV_TYPES:
        gm = GaussianMixture(K, covariance_type=cov_type, random_state=0).fit(X32)
        ref = GaussianMixture(K, covariance_type=cov_type, random_state=0).fit(
            X32.astype(np.float64))
        assert gm.means_.dtype == np.float64  # accumulated in float64
        np.testing.assert_allclose(gm.means_, ref.means_, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(gm.predict(X32), ref.predict(X32.astype(np.float64)))


@pytest.mark.parametrize("order", ["C", "F"])
def test_float64_accepted_without_a_copy(X, order):
    Xo = np.asarray(X, order=order)
    assert check_array(Xo) is Xo


def test_fortran_order_gives_the_same_fit(X):
    a = GaussianMixture(K, random_state=0).fit(np.ascontiguousarray(X))
    b = GaussianMixture(K, random_state=0).fit(np.asfortranarray(X))
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-12)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-10, atol=1e-14)


def test_predict_accepts_another_float_dtype_than_fit(fitted, X):
    p64 = fitted.predict_proba(X)
    p32 = fitted.predict_proba(X.astype(np.float32))
    np.testing.assert_allclose(p32, p64, atol=1e-4)
