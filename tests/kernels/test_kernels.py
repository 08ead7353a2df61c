"""The numba kernels against a plain numpy reference, and the additivity of statistics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp

from streammix.kernels._common import exp_nonpos
from streammix.math.covariances import get_covariance_type
from streammix.math.params import GaussianParams
from streammix.math.stats import sum_stats
from tests.conftest import make_blobs

TYPES = ["full", "tied", "diag", "spherical"]


def random_params(cov_type: str, K: int, d: int, seed: int = 1) -> GaussianParams:
    rng = np.random.default_rng(seed)
    cov = get_covariance_type(cov_type)
    means = rng.normal(scale=3, size=(K, d))
    w = rng.uniform(0.2, 1, size=K)
    w /= w.sum()
    if cov_type == "full":
        A = rng.normal(size=(K, d, d)) * 0.3
        covs = A @ A.transpose(0, 2, 1) + np.eye(d)
    elif cov_type == "tied":
        A = rng.normal(size=(d, d)) * 0.3
        covs = A @ A.T + np.eye(d)
    elif cov_type == "diag":
        covs = rng.uniform(0.5, 2, size=(K, d))
    else:
        covs = rng.uniform(0.5, 2, size=K)
    prec_chol, covs = cov.precision_cholesky(covs)
    return GaussianParams(cov_type, w, np.ascontiguousarray(means), covs, prec_chol)


def reference_log_prob(X, params):
    """Weighted log-probabilities (n, K) by dense numpy, independent of the kernels."""
    K, d = params.means.shape
    out = np.empty((X.shape[0], K))
    for k in range(K):
        if params.covariance_type == "full":
            C = params.covariances[k]
        elif params.covariance_type == "tied":
            C = params.covariances
        elif params.covariance_type == "diag":
            C = np.diag(params.covariances[k])
        else:
            C = np.eye(d) * params.covariances[k]
        Z = X - params.means[k]
        sol = np.linalg.solve(C, Z.T).T
        _, logdet = np.linalg.slogdet(C)
        out[:, k] = np.log(params.weights[k]) - 0.5 * (
            d * np.log(2 * np.pi) + logdet + (Z * sol).sum(axis=1)
        )
    return out


def reference_stats(X, params, sample_weight=None):
    wlp = reference_log_prob(X, params)
    lse = logsumexp(wlp, axis=1)
    R = np.exp(wlp - lse[:, None])
    w = np.ones(len(X)) if sample_weight is None else sample_weight
    R = R * w[:, None]
    s0 = R.sum(0)
    s1 = np.stack([(R[:, k : k + 1] * (X - params.means[k])).sum(0) for k in range(len(s0))])
    s2full = np.stack([
        (R[:, k : k + 1] * (X - params.means[k])).T @ (X - params.means[k])
        for k in range(len(s0))
    ])
    return s0, s1, s2full, float((w * lse).sum()), lse, R


@pytest.mark.parametrize("cov_type", TYPES)
@pytest.mark.parametrize("d,K", [(1, 1), (2, 3), (7, 5), (15, 3), (16, 16), (33, 4),
                                 (128, 5), (70, 60)])
def test_stats_match_dense_reference(cov_type, d, K):
    X, _ = make_blobs(1500, d, 3, seed=d + K)
    params = random_params(cov_type, K, d)
    cov = get_covariance_type(cov_type)
    st = cov.chunk_stats(X, None, params)
    s0, s1, s2full, ll, _, _ = reference_stats(X, params)
    np.testing.assert_allclose(st.s0, s0, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(st.s1, s1, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(st.loglik, ll, rtol=1e-12)
    assert st.n == len(X)
    if cov_type == "full":
        np.testing.assert_allclose(st.s2, s2full, rtol=1e-9, atol=1e-9)
    elif cov_type == "diag":
        np.testing.assert_allclose(st.s2, np.diagonal(s2full, axis1=1, axis2=2), rtol=1e-9, atol=1e-9)
    elif cov_type == "spherical":
        np.testing.assert_allclose(st.s2, np.trace(s2full, axis1=1, axis2=2), rtol=1e-9, atol=1e-9)
    else:
        Z = X - st.centre2
        np.testing.assert_allclose(st.s2, Z.T @ Z, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("d", [5, 40])
def test_full_factor_that_is_not_upper_triangular(d):
    """The full kernel's dtrmm/dsyrk path (d >= 16) needs upper-triangular factors: a
    lower one (a precision's plain Cholesky factor, also a valid U with U U^T = P) takes
    the dgemm path and gives the same statistics and outputs."""
    from streammix.kernels.full import TRIANGULAR_MIN_D
    assert 5 < TRIANGULAR_MIN_D <= 40
    X, _ = make_blobs(1300, d, 3, seed=d)
    upper = random_params("full", 3, d)
    P = upper.precisions_cholesky @ upper.precisions_cholesky.transpose(0, 2, 1)
    lower = GaussianParams("full", upper.weights, upper.means, upper.covariances,
                           np.ascontiguousarray(np.linalg.cholesky(P)))
    assert not np.allclose(lower.precisions_cholesky, upper.precisions_cholesky)
    cov = get_covariance_type("full")
    a, b = cov.chunk_stats(X, None, upper), cov.chunk_stats(X, None, lower)
    s0, s1, s2full, ll, lse, _ = reference_stats(X, upper)
    for st in (a, b):
        np.testing.assert_allclose(st.s0, s0, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(st.s1, s1, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(st.s2, s2full, rtol=1e-9, atol=1e-9)
        assert np.array_equal(st.s2, st.s2.transpose(0, 2, 1))  # exactly symmetric
        assert st.loglik == pytest.approx(ll, rel=1e-12)
    for params in (upper, lower):
        logprob, labels, _ = cov.chunk_outputs(X, params, False)
        np.testing.assert_allclose(logprob, lse, rtol=1e-12)


@pytest.mark.parametrize("cov_type", TYPES)
@pytest.mark.parametrize("d,K", [(5, 6), (40, 6), (64, 4), (70, 60)])  # every path
def test_outputs_match_dense_reference(cov_type, d, K):
    X, _ = make_blobs(999, d, 3, seed=4)
    params = random_params(cov_type, K, d)
    cov = get_covariance_type(cov_type)
    logprob, labels, resp = cov.chunk_outputs(X, params, True)
    wlp = reference_log_prob(X, params)
    np.testing.assert_allclose(logprob, logsumexp(wlp, axis=1), rtol=1e-12)
    np.testing.assert_array_equal(labels, wlp.argmax(axis=1))
    np.testing.assert_allclose(resp, np.exp(wlp - logsumexp(wlp, axis=1)[:, None]),
                               rtol=1e-10, atol=3e-300)  # exp_nonpos flushes < e^-690
    # without responsibilities the same log p and labels come out
    lp2, lab2, none = cov.chunk_outputs(X, params, False)
    assert none is None
    np.testing.assert_array_equal(lp2, logprob)
    np.testing.assert_array_equal(lab2, labels)


@pytest.mark.parametrize("cov_type", TYPES)
def test_statistics_of_split_chunk_add_to_whole(cov_type):
    X, _ = make_blobs(3001, 6, 4, seed=7)
    params = random_params(cov_type, 4, 6)
    cov = get_covariance_type(cov_type)
    whole = cov.chunk_stats(X, None, params)
    cuts = [0, 1, 700, 701, 2048, 3001]
    parts = sum_stats([cov.chunk_stats(X[a:b], None, params) for a, b in zip(cuts, cuts[1:])])
    for name in ("s0", "s1", "s2"):
        np.testing.assert_allclose(getattr(parts, name), getattr(whole, name), rtol=1e-12,
                                   atol=1e-9)
    assert parts.loglik == pytest.approx(whole.loglik, rel=1e-13)
    assert parts.n == whole.n


@pytest.mark.parametrize("cov_type", TYPES)
@pytest.mark.parametrize("d", [3, 40, 100])  # 40, 100: full's and tied's BLAS paths
def test_sample_weights_equal_repetition(cov_type, d):
    X, _ = make_blobs(500, d, 2, seed=8)
    params = random_params(cov_type, 3, d)
    cov = get_covariance_type(cov_type)
    reps = np.random.default_rng(0).integers(0, 4, size=len(X))
    weighted = cov.chunk_stats(X, reps.astype(float), params)
    repeated = cov.chunk_stats(np.repeat(X, reps, axis=0), None, params)
    for name in ("s0", "s1", "s2"):
        np.testing.assert_allclose(getattr(weighted, name), getattr(repeated, name),
                                   rtol=1e-11, atol=1e-9)
    assert weighted.loglik == pytest.approx(repeated.loglik, rel=1e-12)
    assert weighted.n == reps.sum()


@pytest.mark.parametrize("cov_type", TYPES)
@pytest.mark.parametrize("order", ["C", "F"])
def test_float32_and_memory_order(cov_type, order):
    X, _ = make_blobs(800, 5, 3, seed=9)
    X32 = np.asarray(X, dtype=np.float32, order=order)
    params = random_params(cov_type, 3, 5)
    cov = get_covariance_type(cov_type)
    a = cov.chunk_stats(X32, None, params)
    b = cov.chunk_stats(np.ascontiguousarray(X32, dtype=np.float64), None, params)
    # the kernel casts each block to float64: identical to running on the cast copy
    np.testing.assert_allclose(a.s2, b.s2, rtol=1e-13, atol=1e-10)
    assert a.loglik == pytest.approx(b.loglik, rel=1e-14)


def test_vectorised_exp_is_accurate():
    from numba import njit

    @njit
    def ev(x):
        out = np.empty_like(x)
        for i in range(x.size):
            out[i] = exp_nonpos(x[i])
        return out

    x = -np.concatenate([np.linspace(0, 690, 69001), np.random.default_rng(0).exponential(3, 10000)])
    np.testing.assert_allclose(ev(x), np.exp(x), rtol=4e-16 * 8)
    # below -690 (exp < 1e-300) it flushes to exactly 0: no subnormal responsibilities
    tiny = -np.array([690.01, 708.0, 720.0, 745.0, 746.0, 1e4, np.inf])
    assert np.all(ev(tiny) == 0.0)


def test_fit_holds_every_openblas_at_one_thread_and_restores_it():
    """During a fit the kernels' BLAS and numpy's own OpenBLAS run at one thread (a
    BLAS that fanned out in the Python-side steps spins beside the kernels); after it,
    every library has the thread count it had before."""
    from streammix.kernels import blas

    if not blas.HAVE_BLAS_THREAD_CONTROL:
        pytest.skip("BLAS is not OpenBLAS")
    before = [get() for _, get in blas._ALL_SETTERS]
    X, _ = make_blobs(50_000, 8, 3, seed=1)
    from streammix import GaussianMixture

    during = []
    GaussianMixture(3, random_state=0, max_iter=3, tol=0, chunk_size=2000).fit(
        X, callback=lambda info: during.append([get() for _, get in blas._ALL_SETTERS]))
    assert len(during) == 3 and all(counts == [1] * len(before) for counts in during)
    assert [get() for _, get in blas._ALL_SETTERS] == before
    with open("/proc/self/maps") as maps:
        if any("numpy.libs" in line and "openblas" in line for line in maps):
            assert len(blas._ALL_SETTERS) == 2  # numpy's own OpenBLAS was found too


@pytest.mark.parametrize("d,K", [(2, 4), (8, 4), (16, 16), (40, 24), (64, 64)])
def test_khatri_rao_scatter_with_far_apart_components(d, K):
    """Where the full kernel sums every component's scatter in one dgemm about a centre
    (``use_khatri_rao``), components 100 standard deviations from that centre keep
    their scatter to 1e-8 of the dense reference: the shift to each component's mean
    loses digits as (distance / sigma)^2, 4 of them here."""
    from streammix.kernels.full import use_khatri_rao
    assert use_khatri_rao(K, d)
    rng = np.random.default_rng(d)
    means = rng.normal(scale=100.0, size=(K, d))
    labels = rng.integers(0, K, 3000)
    X = means[labels] + rng.normal(size=(3000, d))
    A = rng.normal(size=(K, d, d)) * 0.1
    covs = A @ A.transpose(0, 2, 1) + np.eye(d)
    cov = get_covariance_type("full")
    prec_chol, covs = cov.precision_cholesky(covs)
    params = GaussianParams("full", np.full(K, 1.0 / K), np.ascontiguousarray(means), covs,
                            prec_chol)
    st = cov.chunk_stats(X, None, params)
    s0, s1, s2full, ll, _, _ = reference_stats(X, params)
    np.testing.assert_allclose(st.s0, s0, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(st.s1, s1, rtol=1e-8, atol=1e-7)
    np.testing.assert_allclose(st.s2, s2full, rtol=1e-8, atol=1e-6)
    assert np.array_equal(st.s2, st.s2.transpose(0, 2, 1))


@pytest.mark.parametrize("d,K", [(24, 3), (64, 4), (128, 16)])
def test_tied_row_major_path_with_far_apart_components(d, K):
    """From TIED_ROWS_MIN_D the tied kernel drops the term -|(x - c) U|^2 / 2 that all
    components share from each row's log-probabilities and adds it back to the chunk's
    log-likelihood as -tr(P S) / 2; with components 100 standard deviations apart and
    the data 10,000 from the origin, the statistics and the log-likelihood stay within
    1e-9 of the dense reference, and per-sample outputs within 1e-10."""
    from streammix.kernels.tied import TIED_ROWS_MIN_D
    assert d >= TIED_ROWS_MIN_D
    rng = np.random.default_rng(d)
    means = 1e4 + rng.normal(scale=100.0, size=(K, d))
    labels = rng.integers(0, K, 2500)
    X = means[labels] + rng.normal(size=(2500, d))
    A = rng.normal(size=(d, d)) * 0.1
    cov = get_covariance_type("tied")
    prec_chol, covs = cov.precision_cholesky(A @ A.T + np.eye(d))
    params = GaussianParams("tied", np.full(K, 1.0 / K), np.ascontiguousarray(means), covs,
                            prec_chol)
    st = cov.chunk_stats(X, None, params)
    s0, s1, _, ll, lse, R = reference_stats(X, params)
    np.testing.assert_allclose(st.s0, s0, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(st.s1, s1, rtol=1e-9, atol=1e-8)
    Z = X - st.centre2
    np.testing.assert_allclose(st.s2, Z.T @ Z, rtol=1e-10, atol=1e-8)
    assert np.array_equal(st.s2, st.s2.T)
    assert st.loglik == pytest.approx(ll, rel=1e-10)
    logprob, labels_out, resp = cov.chunk_outputs(X, params, True)
    np.testing.assert_allclose(logprob, lse, rtol=1e-10)
    np.testing.assert_array_equal(labels_out, labels)
    np.testing.assert_allclose(resp, R, rtol=1e-9, atol=1e-12)
