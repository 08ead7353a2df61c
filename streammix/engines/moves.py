"""Split, merge and birth moves for a mixture at full capacity, judged on a batch in hand.

A stream can change shape: a cluster appears when no slot is free, two clusters become
one, one becomes two, or the model started with two components on one cluster and one
on two. Stepwise EM alone cannot leave such a local optimum. The moves here change the
components' parameters directly:

- ``merge``: two components replaced by one Gaussian with their weight, mean and
  covariance (moment matching, so no data is needed);
- ``split``: a component replaced by a two-component fit to the batch points it owns;
- a birth: a component made on the batch points no component explains.

Candidates are ranked cheaply (merge pairs by Runnalls' upper bound on the KL loss of
merging, splits by the log-likelihood a two-component fit gains on the component's own
points), then the few best are judged exactly, by the batch's log-likelihood under the
whole changed mixture, with a BIC penalty for a change in the number of parameters.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ..math.covariances import CovarianceType
from ..math.params import GaussianParams


def batch_loglik(cov: CovarianceType, params: GaussianParams, X: np.ndarray,
                 sw: np.ndarray | None) -> float:
    """Total (weighted) log-likelihood of the batch under ``params``."""
    logprob, _, _ = cov.chunk_outputs(X, params, False)
    return float(logprob.sum() if sw is None else sw @ logprob)


def component_params(d: int, covariance_type: str) -> int:
    """Free parameters one component adds (weight, mean, its covariance)."""
    cov = {"full": d * (d + 1) // 2, "diag": d, "spherical": 1, "tied": 0}[covariance_type]
    return 1 + d + cov


def _full_covs(params: GaussianParams) -> np.ndarray:
    K, d = params.means.shape
    c, t = params.covariances, params.covariance_type
    if t == "full":
        return c.copy()
    if t == "diag":
        return np.stack([np.diag(v) for v in c])
    if t == "spherical":
        return np.stack([v * np.eye(d) for v in c])
    return np.broadcast_to(c, (K, d, d)).copy()


def _from_full(full: np.ndarray, covariance_type: str, tied: np.ndarray | None):
    if covariance_type == "full":
        return full
    if covariance_type == "diag":
        return np.ascontiguousarray(np.diagonal(full, axis1=1, axis2=2))
    if covariance_type == "spherical":
        return np.trace(full, axis1=1, axis2=2) / full.shape[1]
    return tied


def _make(cov: CovarianceType, t: str, weights, means, full, tied, reg_covar
          ) -> GaussianParams:
    covs = _from_full(np.asarray(full), t, tied)
    prec_chol, covs = cov.precision_cholesky(covs, reg_covar)
    w = np.asarray(weights, dtype=np.float64)
    return GaussianParams(t, w / w.sum(), np.ascontiguousarray(means, dtype=np.float64),
                          covs, np.ascontiguousarray(prec_chol))


def merge_costs(params: GaussianParams) -> list[tuple[float, int, int]]:
    """(cost, i, j) for every pair, cheapest first: Runnalls' bound on the KL loss of
    replacing the pair by its moment-matched Gaussian, 0.5 [w log|S| - wi log|Si| -
    wj log|Sj|], in nats per sample."""
    w, mu, S = params.weights, params.means, _full_covs(params)
    logdet = np.linalg.slogdet(S)[1]
    out = []
    K = len(w)
    for i in range(K):
        for j in range(i + 1, K):
            m, mean, Sm = _moments(w[i], w[j], mu[i], mu[j], S[i], S[j])
            out.append((0.5 * (m * np.linalg.slogdet(Sm)[1] - w[i] * logdet[i]
                               - w[j] * logdet[j]), i, j))
    return sorted(out)


def _moments(wi, wj, mi, mj, Si, Sj):
    w = wi + wj
    mean = (wi * mi + wj * mj) / w
    di, dj = mi - mean, mj - mean
    S = (wi * (Si + np.outer(di, di)) + wj * (Sj + np.outer(dj, dj))) / w
    return w, mean, 0.5 * (S + S.T)


def merged(cov: CovarianceType, params: GaussianParams, i: int, j: int, reg_covar: float
           ) -> GaussianParams:
    """``params`` with components i and j replaced by their moment-matched Gaussian, in
    slot i (slot j removed)."""
    t = params.covariance_type
    w, mu, S = params.weights.copy(), params.means.copy(), _full_covs(params)
    m, mean, Sm = _moments(w[i], w[j], mu[i], mu[j], S[i], S[j])
    w[i], mu[i], S[i] = m, mean, Sm
    keep = [k for k in range(len(w)) if k != j]
    return _make(cov, t, w[keep], mu[keep], S[keep],
                 params.covariances if t == "tied" else None, reg_covar)


def with_component(cov: CovarianceType, params: GaussianParams, weight: float,
                   mean: np.ndarray, full_cov: np.ndarray, reg_covar: float
                   ) -> GaussianParams:
    """``params`` with one more component (last), of ``weight`` (the others scaled)."""
    t = params.covariance_type
    w = np.append(params.weights * (1.0 - weight), weight)
    mu = np.vstack([params.means, mean])
    S = np.concatenate([_full_covs(params), full_cov[None]])
    return _make(cov, t, w, mu, S, params.covariances if t == "tied" else None, reg_covar)


def gaussian_of(points: np.ndarray, pw: np.ndarray, reg_covar: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and covariance of ``points``."""
    mean = pw @ points / pw.sum()
    Z = points - mean
    return mean, (Z * pw[:, None]).T @ Z / pw.sum() + reg_covar * np.eye(points.shape[1])


def two_component_fit(points: np.ndarray, pw: np.ndarray, covariance_type: str,
                      reg_covar: float):
    """A two-component fit to ``points`` (deterministic: started from a split along the
    principal axis), as (weights, means, full covariances, gain in total log-likelihood
    over one Gaussian); None when too few points."""
    from ..estimators.gaussian_mixture import GaussianMixture

    n, d = points.shape
    if n < max(20, 4 * (d + 1)):
        return None
    mean, S = gaussian_of(points, pw, reg_covar)
    lam, vec = np.linalg.eigh(S)
    off = 0.5 * math.sqrt(max(lam[-1], reg_covar)) * vec[:, -1]
    half = S - 0.25 * lam[-1] * np.outer(vec[:, -1], vec[:, -1]) + reg_covar * np.eye(d)
    t = "full" if covariance_type == "tied" else covariance_type
    prec = np.linalg.inv(half)
    init_prec = {"full": np.stack([prec, prec]), "diag": np.stack([1 / np.diag(half)] * 2),
                 "spherical": np.full(2, d / np.trace(half))}[t]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            g = GaussianMixture(2, covariance_type=t, reg_covar=reg_covar, max_iter=20,
                                tol=1e-4, weights_init=[0.5, 0.5],
                                means_init=np.stack([mean - off, mean + off]),
                                precisions_init=init_prec).fit(points, sample_weight=pw)
        except Exception:  # noqa: BLE001 - a degenerate local fit is no candidate
            return None
    one = GaussianParams("full", np.ones(1), mean[None], S[None],
                         np.linalg.cholesky(np.linalg.inv(S))[None])
    from ..math.covariances import get_covariance_type

    ll_one = batch_loglik(get_covariance_type("full"), one, points, pw)
    ll_two = float(pw @ g.score_samples(points))
    two_full = _full_covs(g._get_params_value())
    return g.weights_, g.means_, two_full, ll_two - ll_one


def split(cov: CovarianceType, params: GaussianParams, k: int, fit, reg_covar: float
          ) -> GaussianParams:
    """``params`` with component k replaced by the two of ``fit`` (from
    two_component_fit): the first in slot k, the second appended last."""
    t = params.covariance_type
    w2, mu2, S2, _ = fit
    w, mu, S = params.weights.copy(), params.means.copy(), _full_covs(params)
    total = w[k]
    w[k], mu[k], S[k] = total * w2[0], mu2[0], S2[0]
    return _make(cov, t, np.append(w, total * w2[1]), np.vstack([mu, mu2[1]]),
                 np.concatenate([S, S2[1][None]]),
                 params.covariances if t == "tied" else None, reg_covar)


def heavier_first(weights: np.ndarray, i: int, j: int) -> tuple[int, int]:
    """(kept, gone): a merged pair keeps the heavier component's slot (and id)."""
    return (i, j) if weights[i] >= weights[j] else (j, i)


def merge_then_split(cov: CovarianceType, params: GaussianParams, i: int, j: int, k: int,
                     fit, reg_covar: float) -> tuple[GaussianParams, GaussianParams]:
    """(the mixture after merging i and j, then that mixture with component k split by
    ``fit``): a split paid for by a merge, k not in the pair."""
    kept, gone = heavier_first(params.weights, i, j)
    after = merged(cov, params, kept, gone, reg_covar)
    return after, split(cov, after, k - (k > gone), fit, reg_covar)


def bimodal_fits(cov: CovarianceType, params: GaussianParams, X: np.ndarray,
                 w: np.ndarray, reg_covar: float, screen: int | None = None) -> list:
    """[(gain, k, fit)], best first: a two-component fit of each component's own points
    (by hard label) that gains over one Gaussian. ``screen``: fit only the (at most that
    many) components whose points look least Gaussian (kurtosis under 2.5)."""
    labels = cov.chunk_outputs(X, params, False)[1]
    owned = [(np.asarray(X[labels == k], dtype=np.float64), w[labels == k])
             for k in range(len(params.weights))]
    ks = range(len(params.weights))
    if screen is not None:
        ranked = sorted((bimodality(*owned[k]), k) for k in ks)
        ks = [k for kurtosis, k in ranked[:screen] if kurtosis < 2.5]
    fits = []
    for k in ks:
        fit = two_component_fit(*owned[k], params.covariance_type, reg_covar)
        if fit is not None and fit[3] > 0:
            fits.append((fit[3], k, fit))
    return sorted(fits, key=lambda f: -f[0])


def bimodality(points: np.ndarray, pw: np.ndarray) -> float:
    """Kurtosis of ``points`` along their principal axis: 3 for a Gaussian, towards 1
    for two separated modes (a cheap screen before a two-component fit); inf when there
    are too few points to tell."""
    if len(points) < 20:
        return float("inf")
    total = pw.sum()
    mean = pw @ points / total
    Z = points - mean
    S = (Z * pw[:, None]).T @ Z / total
    axis = np.linalg.eigh(S)[1][:, -1]
    z = Z @ axis
    m2 = pw @ z**2 / total
    return float(pw @ z**4 / total / m2**2) if m2 > 0 else float("inf")


def bic_penalty(n_params: int, n: float) -> float:
    """BIC's penalty, in nats, for ``n_params`` more free parameters on n samples."""
    return 0.5 * n_params * math.log(max(n, 2.0))
