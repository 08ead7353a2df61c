"""streammix.GaussianMixture as a scikit-learn estimator: clone, get/set_params, Pipeline,
model selection, and scikit-learn's own estimator checks.

Every check scikit-learn's `check_estimator` runs must pass, except those listed in
EXPECTED_FAILED_CHECKS with a reason; the tests fail both when a listed check starts
passing (remove it from the dict) and when an unlisted one starts failing.
"""

from __future__ import annotations

import inspect
import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError as SkNotFittedError
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import check_estimator, parametrize_with_checks
from sklearn.utils.validation import check_is_fitted

from streammix import BayesianGaussianMixture, ConvergenceWarning, GaussianMixture
from streammix.errors import InvalidParameterError, NotFittedError

COV_TYPES = ["full", "tied", "diag", "spherical"]

# check name -> why streammix fails it (one line each).
EXPECTED_FAILED_CHECKS: dict[str, str] = {}
# Only with more than one component:
EXPECTED_FAILED_CHECKS_MULTI_COMPONENT = {
    "check_sample_weight_equivalence_on_dense_data":
        "the random init (k-means||/k-means++ seeding, row sampling) draws rows, so repeating "
        "a row is not the same draw as weighing it; with a fixed init weights are exact "
        "(test_integer_weights_equal_repeated_rows_with_a_fixed_init)",
}


def expected_failed_checks(estimator) -> dict[str, str]:
    expected = dict(EXPECTED_FAILED_CHECKS)
    if estimator.n_components > 1:
        expected.update(EXPECTED_FAILED_CHECKS_MULTI_COMPONENT)
    return expected


ESTIMATORS = [
    *(GaussianMixture(n_components=1, covariance_type=c, max_iter=5, random_state=0)
      for c in COV_TYPES),
    GaussianMixture(n_components=2, covariance_type="full", max_iter=5, random_state=0),
    BayesianGaussianMixture(n_components=2, covariance_type="diag", max_iter=5,
                            random_state=0),
]


# --------------------------------------------------------------------------- check_estimator
@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks,
                         xfail_strict=True)
def test_sklearn_estimator_checks(estimator, check):
    """One test per scikit-learn check; a listed check that passes is a strict XPASS."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=repr)
def test_check_estimator_fails_exactly_the_listed_checks(estimator):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        results = check_estimator(estimator, on_fail=None, on_skip=None)
    ran = {r["check_name"] for r in results}
    failed = {r["check_name"]: r["exception"] for r in results if r["status"] == "failed"}
    expected = expected_failed_checks(estimator)
    assert len(ran) > 30, f"suspiciously few checks ran: {sorted(ran)}"
    unexpected = {k: f"{type(v).__name__}: {v}" for k, v in failed.items() if k not in expected}
    now_passing = sorted(set(expected) - set(failed))
    assert not unexpected, f"checks that newly fail: {unexpected}"
    assert not now_passing, (
        f"checks listed as failing now pass, remove them from the dict: {now_passing}")


# --------------------------------------------------------------------------- clone & params
def _data(seed=0, n=150):
    rng = np.random.RandomState(seed)
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    X = np.vstack([rng.randn(n // 3, 2) * [1.0, 0.5] + c for c in centres])
    return X * [3.0, 50.0] + [10.0, -200.0]  # unscaled features, for the Pipeline test


def test_constructor_matches_scikit_learn():
    ours = inspect.signature(GaussianMixture.__init__).parameters
    theirs = inspect.signature(SkGaussianMixture.__init__).parameters
    for name, p in theirs.items():
        if name == "self":
            continue
        assert name in ours, f"missing parameter {name}"
        assert ours[name].kind == p.kind, name
        assert ours[name].default == p.default, (name, ours[name].default, p.default)
    # our additions (chunk_size, ...) are keyword-only and off by default (None), so
    # code written for scikit-learn sees scikit-learn's behaviour
    extra = set(ours) - set(theirs) - {"self"}
    assert "chunk_size" in extra
    for name in extra:
        assert ours[name].kind == inspect.Parameter.KEYWORD_ONLY, name
        assert ours[name].default is None, name


def test_get_params_lists_every_constructor_parameter():
    gm = GaussianMixture(3, covariance_type="diag", reg_covar=1e-3, random_state=7)
    params = gm.get_params()
    names = [n for n in inspect.signature(GaussianMixture.__init__).parameters if n != "self"]
    assert sorted(params) == sorted(names)
    assert params["n_components"] == 3 and params["covariance_type"] == "diag"
    assert params["reg_covar"] == 1e-3 and params["random_state"] == 7
    assert params["tol"] == 1e-3 and params["max_iter"] == 100  # defaults
    assert gm.get_params(deep=False) == params


def test_set_params_round_trip():
    src = GaussianMixture(4, covariance_type="tied", tol=1e-5, n_init=2, init_params="random",
                          means_init=np.zeros((4, 2)), warm_start=True, chunk_size=64)
    dst = GaussianMixture()
    assert dst.set_params(**src.get_params()) is dst
    a, b = src.get_params(), dst.get_params()
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray):
            np.testing.assert_array_equal(a[k], b[k])
        else:
            assert a[k] == b[k], k
    # and back to the defaults
    dst.set_params(**GaussianMixture().get_params())
    assert dst.n_components == 1 and dst.means_init is None and dst.chunk_size is None


def test_set_params_changes_what_fit_does():
    X = _data()
    gm = GaussianMixture(random_state=0).set_params(n_components=3, covariance_type="diag")
    gm.fit(X)
    assert gm.means_.shape == (3, 2) and gm.covariances_.shape == (3, 2)
    with pytest.raises(InvalidParameterError, match="n_component"):
        gm.set_params(n_component=2)  # a typo is an error, as in scikit-learn
    assert isinstance(InvalidParameterError("x"), ValueError)


def test_clone_unfitted():
    means = np.array([[0.0, 0.0], [1.0, 1.0]])
    gm = GaussianMixture(2, covariance_type="spherical", means_init=means, random_state=3)
    c = clone(gm)
    assert type(c) is GaussianMixture and c is not gm
    assert c.n_components == 2 and c.covariance_type == "spherical" and c.random_state == 3
    np.testing.assert_array_equal(c.means_init, means)
    assert not hasattr(c, "means_")


def test_clone_of_a_fitted_model_is_unfitted_and_refits_identically():
    X = _data()
    gm = GaussianMixture(3, random_state=0).fit(X)
    c = clone(gm)
    assert not hasattr(c, "means_") and not hasattr(c, "n_features_in_")
    with pytest.raises(NotFittedError):
        c.predict(X)
    c.fit(X)
    np.testing.assert_array_equal(c.means_, gm.means_)
    np.testing.assert_array_equal(c.covariances_, gm.covariances_)


def test_repr_shows_non_default_parameters():
    r = repr(GaussianMixture(3, covariance_type="diag"))
    assert r == "GaussianMixture(n_components=3, covariance_type='diag')", r
    assert repr(GaussianMixture()) == "GaussianMixture()"


def test_pickle_round_trip_of_a_fitted_model():
    X = _data()
    gm = GaussianMixture(3, covariance_type="tied", random_state=0).fit(X)
    back = pickle.loads(pickle.dumps(gm))
    np.testing.assert_array_equal(back.predict_proba(X), gm.predict_proba(X))
    assert back.score(X) == gm.score(X)


def test_sklearn_check_is_fitted_and_tags():
    gm = GaussianMixture(2)
    with pytest.raises(SkNotFittedError):
        check_is_fitted(gm)
    gm.fit(_data())
    check_is_fitted(gm)  # does not raise
    tags = get_tags(gm)
    assert tags.estimator_type == "density_estimator"
    assert tags.requires_fit and not tags.input_tags.allow_nan and not tags.input_tags.sparse


# --------------------------------------------------------------------------- Pipeline
@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_pipeline_after_standard_scaler(cov_type):
    X = _data()
    pipe = Pipeline([("scale", StandardScaler()),
                     ("gmm", GaussianMixture(3, covariance_type=cov_type, random_state=0))])
    assert pipe.fit(X) is pipe
    Z = StandardScaler().fit_transform(X)
    direct = GaussianMixture(3, covariance_type=cov_type, random_state=0).fit(Z)

    np.testing.assert_allclose(pipe.named_steps["gmm"].means_, direct.means_, rtol=1e-10)
    np.testing.assert_array_equal(pipe.predict(X), direct.predict(Z))
    np.testing.assert_allclose(pipe.predict_proba(X), direct.predict_proba(Z), atol=1e-12)
    np.testing.assert_allclose(pipe.score_samples(X), direct.score_samples(Z), rtol=1e-10)
    assert pipe.score(X) == pytest.approx(direct.score(Z), rel=1e-12)
    # the three blobs are found through the pipeline
    assert sorted(np.bincount(pipe.predict(X), minlength=3)) == [50, 50, 50]
    # fit_predict through the pipeline too
    np.testing.assert_array_equal(clone(pipe).fit_predict(X), direct.predict(Z))


def test_pipeline_routes_sample_weight_to_the_mixture():
    X = _data()
    sw = np.random.RandomState(1).randint(0, 4, size=len(X)).astype(float)
    pipe = Pipeline([("scale", StandardScaler()), ("gmm", GaussianMixture(3, random_state=0))])
    pipe.fit(X, gmm__sample_weight=sw)
    Z = StandardScaler().fit_transform(X)
    direct = GaussianMixture(3, random_state=0).fit(Z, sample_weight=sw)
    np.testing.assert_allclose(pipe.named_steps["gmm"].means_, direct.means_, rtol=1e-10)
    np.testing.assert_allclose(pipe.score(X), direct.score(Z), rtol=1e-12)


def test_grid_search_uses_score_to_choose_n_components():
    X = _data()
    cv = KFold(3, shuffle=True, random_state=0)  # the rows are sorted by blob
    search = GridSearchCV(GaussianMixture(random_state=0), {"n_components": [1, 3]}, cv=cv)
    search.fit(StandardScaler().fit_transform(X))
    assert search.best_params_ == {"n_components": 3}
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_estimator_.means_.shape == (3, 2)


# --------------------------------------------------------------------------- sample_weight
@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_integer_weights_equal_repeated_rows_with_a_fixed_init(cov_type):
    """Why check_sample_weight_equivalence may fail only through the init: with the init
    fixed, integer weights and repeated rows give the same fit."""
    rng = np.random.RandomState(0)
    X = _data() / [3.0, 50.0]
    sw = rng.randint(0, 4, size=len(X))
    K, d = 3, 2
    prec = {"full": np.stack([np.eye(d)] * K), "tied": np.eye(d),
            "diag": np.ones((K, d)), "spherical": np.ones(K)}[cov_type]
    init = dict(weights_init=np.full(K, 1 / K), means_init=X[[0, 60, 120]],
                precisions_init=prec)
    kw = dict(covariance_type=cov_type, tol=0.0, max_iter=10, **init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        weighted = GaussianMixture(K, **kw).fit(X, sample_weight=sw.astype(float))
        repeated = GaussianMixture(K, **kw).fit(np.repeat(X, sw, axis=0))
    np.testing.assert_allclose(weighted.weights_, repeated.weights_, rtol=1e-9)
    np.testing.assert_allclose(weighted.means_, repeated.means_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(weighted.covariances_, repeated.covariances_, rtol=1e-9,
                               atol=1e-12)
    assert weighted.lower_bound_ == pytest.approx(repeated.lower_bound_, rel=1e-9)


# --------------------------------------------------------------------------- exceptions
def test_our_exceptions_are_scikit_learns():
    """Code written for scikit-learn catches ours: NotFittedError and ConvergenceWarning
    subclass scikit-learn's (and stay ValueError/AttributeError and UserWarning)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning

    assert issubclass(NotFittedError, SkNotFittedError)
    assert issubclass(NotFittedError, (ValueError, AttributeError))
    assert issubclass(ConvergenceWarning, SkConvergenceWarning)
    assert issubclass(ConvergenceWarning, UserWarning)
    with pytest.raises(SkNotFittedError):
        GaussianMixture(2).predict(_data())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=SkConvergenceWarning)
        GaussianMixture(2, max_iter=1, random_state=0).fit(_data())  # silenced


def test_importing_streammix_does_not_import_scikit_learn():
    """Only scikit-learn's exceptions file is loaded (under its own name, so a later
    ``import sklearn`` uses the same classes): importing scikit-learn costs ~1 s."""
    import subprocess
    import sys

    code = (
        "import sys, streammix\n"
        "assert 'sklearn' not in sys.modules and 'sklearn.base' not in sys.modules\n"
        "import sklearn.exceptions, sklearn.mixture\n"
        "assert sklearn.exceptions.NotFittedError in streammix.NotFittedError.__mro__\n"
        "from sklearn.utils.validation import check_is_fitted\n"
        "try:\n"
        "    check_is_fitted(sklearn.mixture.GaussianMixture())\n"
        "except streammix.NotFittedError:\n"
        "    raise SystemExit('ours is not theirs')\n"
        "except sklearn.exceptions.NotFittedError:\n"
        "    print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.mark.parametrize("kwargs", [
    dict(weights_init=[[0.5], [0.5]]),
    dict(weights_init=[1.5, -0.5]),
    dict(weights_init=[0.3, 0.3]),
    dict(means_init=np.zeros((3, 2))),
    dict(precisions_init=np.ones((2, 3, 3))),
    dict(precisions_init=np.array([[[1.0, 2.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]])),
    dict(precisions_init=-np.ones((2, 2)), covariance_type="diag"),
    dict(precisions_init=np.array([1.0, -1.0]), covariance_type="spherical"),
    dict(precisions_init=-np.eye(2), covariance_type="tied"),
])
def test_bad_inits_are_reported_in_scikit_learns_words(kwargs):
    """scikit-learn's message comes first (code matches on it); our hint follows."""
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    X = _data()[:, :2]
    with pytest.raises(ValueError) as theirs:
        SkGaussianMixture(2, **kwargs).fit(X)
    with pytest.raises(InvalidParameterError) as ours:
        GaussianMixture(2, **kwargs).fit(X)
    # (scikit-learn swaps the max and min values of the range message: ours are right)
    expected = str(theirs.value).rstrip(".").split(" but got max value")[0]
    assert str(ours.value).startswith(expected), (str(ours.value), str(theirs.value))
