"""Variational Bayesian Gaussian mixtures (scikit-learn's ``BayesianGaussianMixture``) as
functions of the sufficient statistics.

The variational posterior is a Dirichlet (or a Dirichlet process's stick-breaking Betas)
on the weights and a Gaussian-Wishart on each component. Its updates are linear in the
statistics our kernels produce (soft counts, first and second moments), and its E-step
is a Gaussian mixture's with other per-component constants, so the same kernels, the
same reductions and the same exactness serve it. The formulas and their order follow
scikit-learn's ``_bayesian_mixture.py`` (Bishop 2006, ch. 10; Blei & Jordan 2006).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .covariances import CovarianceType
from .covariances._base import soft_counts
from .params import GaussianParams
from .stats import SufficientStats

PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")


def _special():
    import scipy.special  # (not at import: Dask workers never need it)

    return scipy.special


@dataclass
class VariationalPrior:
    """The priors, in scikit-learn's names without the trailing underscore: a float
    weight concentration, a float mean precision, the prior mean (d,), the degrees of
    freedom, and the covariance prior ((d, d) full/tied, (d,) diag, float spherical)."""

    prior_type: str
    weight_concentration: float
    mean_precision: float
    mean: np.ndarray
    degrees_of_freedom: float
    covariance: np.ndarray | float


@dataclass
class VariationalParams:
    """The variational posterior (scikit-learn's fitted attributes): weight_concentration
    ((K,) for a Dirichlet distribution; (2, K), the Beta parameters of each stick, for a
    Dirichlet process), mean_precision (K,), means (K, d), degrees_of_freedom ((K,), or
    a float for 'tied'), covariances normalised by the degrees of freedom, and their
    precision Cholesky factors."""

    covariance_type: str
    prior_type: str
    weight_concentration: np.ndarray
    mean_precision: np.ndarray
    means: np.ndarray
    degrees_of_freedom: np.ndarray | float
    covariances: np.ndarray
    precisions_cholesky: np.ndarray

    @property
    def n_components(self) -> int:
        return int(self.means.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.means.shape[1])

    @property
    def weights(self) -> np.ndarray:
        """The expected weights, computed as scikit-learn's ``_set_parameters`` does."""
        c = self.weight_concentration
        if self.prior_type == "dirichlet_process":
            total = c[0] + c[1]
            tmp = c[1] / total
            w = c[0] / total * np.hstack((1, np.cumprod(tmp[:-1])))
            return w / np.sum(w)
        return c / np.sum(c)

    def concentration_attribute(self):
        """weight_concentration_ as scikit-learn holds it: a tuple of two arrays for a
        Dirichlet process, one array for a Dirichlet distribution."""
        c = self.weight_concentration
        return (c[0], c[1]) if self.prior_type == "dirichlet_process" else c

    def permuted(self, perm: np.ndarray) -> "VariationalParams":
        """Component k becomes the old perm[k]. Exact only for a Dirichlet distribution
        (a Dirichlet process's sticks are ordered: callers do not permute those)."""
        tied = self.covariance_type == "tied"
        c = self.weight_concentration
        return VariationalParams(
            self.covariance_type, self.prior_type,
            c[:, perm].copy() if c.ndim == 2 else c[perm].copy(),
            self.mean_precision[perm].copy(), np.ascontiguousarray(self.means[perm]),
            self.degrees_of_freedom if tied else self.degrees_of_freedom[perm].copy(),
            self.covariances.copy() if tied else np.ascontiguousarray(self.covariances[perm]),
            self.precisions_cholesky.copy() if tied
            else np.ascontiguousarray(self.precisions_cholesky[perm]))

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.weight_concentration": np.asarray(self.weight_concentration),
                f"{prefix}.mean_precision": self.mean_precision,
                f"{prefix}.means": self.means,
                f"{prefix}.degrees_of_freedom": np.atleast_1d(
                    np.asarray(self.degrees_of_freedom, dtype=np.float64)),
                f"{prefix}.covariances": np.asarray(self.covariances),
                f"{prefix}.precisions_cholesky": self.precisions_cholesky}

    @classmethod
    def from_arrays(cls, arrays: dict, prefix: str, covariance_type: str, prior_type: str
                    ) -> "VariationalParams":
        dof = np.asarray(arrays[f"{prefix}.degrees_of_freedom"], dtype=np.float64)
        cov = arrays[f"{prefix}.covariances"]
        return cls(covariance_type, prior_type,
                   np.asarray(arrays[f"{prefix}.weight_concentration"], dtype=np.float64),
                   np.asarray(arrays[f"{prefix}.mean_precision"], dtype=np.float64),
                   np.ascontiguousarray(arrays[f"{prefix}.means"], dtype=np.float64),
                   np.float64(dof[0]) if covariance_type == "tied" else dof,
                   float(cov) if np.ndim(cov) == 0 else np.asarray(cov),
                   np.ascontiguousarray(arrays[f"{prefix}.precisions_cholesky"],
                                        dtype=np.float64))


def expected_log_weights(vp: VariationalParams) -> np.ndarray:
    """E[log pi_k] under the posterior (scikit-learn's ``_estimate_log_weights``)."""
    digamma = _special().digamma
    c = vp.weight_concentration
    if vp.prior_type == "dirichlet_process":
        digamma_sum = digamma(c[0] + c[1])
        digamma_a = digamma(c[0])
        digamma_b = digamma(c[1])
        return digamma_a - digamma_sum + np.hstack((0, np.cumsum(digamma_b - digamma_sum)[:-1]))
    return digamma(c) - digamma(np.sum(c))


def e_step_params(vp: VariationalParams) -> GaussianParams:
    """The Gaussian mixture whose responsibilities are the variational E-step's: the
    means and precision Cholesky factors of the posterior, with log weights E[log pi_k]
    + (E[log det Lambda_k] - d / beta_k) / 2 - d/2 log nu_k (scikit-learn's
    ``_estimate_log_prob`` + ``_estimate_log_weights``, the Gaussian part unchanged)."""
    d = vp.n_features
    dof = vp.degrees_of_freedom
    log_lambda = d * np.log(2.0) + np.sum(
        _special().digamma(0.5 * (dof - np.arange(0, d)[:, np.newaxis])), 0)
    log_w = (expected_log_weights(vp) - 0.5 * d * np.log(dof)
             + 0.5 * (log_lambda - d / vp.mean_precision))
    return GaussianParams(vp.covariance_type, vp.weights, vp.means, vp.covariances,
                          vp.precisions_cholesky,
                          np.ascontiguousarray(log_w, dtype=np.float64))


def m_step(cov: CovarianceType, stats: SufficientStats, prior: VariationalPrior,
           reg_covar: float) -> VariationalParams:
    """The variational M-step from summed statistics: scikit-learn's
    ``_estimate_weights``, ``_estimate_means`` and ``_estimate_precisions`` on the
    (nk, xk, sk) that its ``_estimate_gaussian_parameters`` computes from the
    responsibilities (a covariance that is not positive definite is repaired with a
    DegenerateComponentWarning, as in ``GaussianMixture``)."""
    nk = soft_counts(stats)
    _, xk, sk = cov.m_step(stats, reg_covar)
    K, d = xk.shape
    if prior.prior_type == "dirichlet_process":
        concentration = np.vstack((1.0 + nk, prior.weight_concentration
                                   + np.hstack((np.cumsum(nk[::-1])[-2::-1], 0))))
    else:
        concentration = prior.weight_concentration + nk
    mean_precision = prior.mean_precision + nk
    means = (prior.mean_precision * prior.mean + nk[:, np.newaxis] * xk) \
        / mean_precision[:, np.newaxis]
    diff = xk - prior.mean
    t = cov.name
    if t == "full":
        dof = prior.degrees_of_freedom + nk
        covariances = np.empty((K, d, d))
        for k in range(K):
            covariances[k] = (prior.covariance + nk[k] * sk[k] + nk[k] * prior.mean_precision
                              / mean_precision[k] * np.outer(diff[k], diff[k]))
        covariances /= dof[:, np.newaxis, np.newaxis]
    elif t == "tied":
        dof = prior.degrees_of_freedom + nk.sum() / K
        covariances = (prior.covariance + sk * nk.sum() / K + prior.mean_precision / K
                       * np.dot((nk / mean_precision) * diff.T, diff))
        covariances /= dof
    elif t == "diag":
        dof = prior.degrees_of_freedom + nk
        covariances = prior.covariance + nk[:, np.newaxis] * (
            sk + (prior.mean_precision / mean_precision)[:, np.newaxis] * np.square(diff))
        covariances /= dof[:, np.newaxis]
    else:
        dof = prior.degrees_of_freedom + nk
        covariances = prior.covariance + nk * (
            sk + prior.mean_precision / mean_precision * np.mean(np.square(diff), 1))
        covariances /= dof
    prec_chol, covariances = cov.precision_cholesky(covariances, reg_covar)
    return VariationalParams(t, prior.prior_type, concentration, mean_precision,
                             np.ascontiguousarray(means), dof, covariances,
                             np.ascontiguousarray(prec_chol))


def responsibility_entropy_sum(cov: CovarianceType, stats: SufficientStats,
                               params: GaussianParams) -> float:
    """sum_i w_i sum_k r_ik log r_ik of the pass that produced ``stats`` under
    ``params``, from the statistics alone: with log r_ik = c_k - D_ik / 2 - log p_i
    (c_k the kernel's constants, D_ik the Mahalanobis distance), it is
    sum_k s0_k c_k - tr(P_k Q_k) / 2 - loglik, where Q_k = sum_i w_i r_ik
    (x_i - mu_k)(x_i - mu_k)^T is the second moment about the E-step's means that the
    statistics hold. No per-sample work: the kernels stay the Gaussian mixture's."""
    const = cov.kernel_constants(params)
    U = params.precisions_cholesky
    t = stats.covariance_type
    if t == "full":
        P = np.einsum("kij,klj->kil", U, U)
        maha = float(np.einsum("kij,kij->", P, stats.s2))
    elif t in ("diag", "spherical"):  # precisions U^2 against s2 (spherical: its trace)
        maha = float(np.sum(U * U * stats.s2))
    else:
        e = params.means - stats.centre2
        Q = stats.s2 - (e.T @ stats.s1 + stats.s1.T @ e + (e * stats.s0[:, None]).T @ e)
        maha = float(np.sum((U @ U.T) * Q))
    return float(stats.s0 @ const) - 0.5 * maha - float(stats.loglik)


def _log_wishart_norm(dof, log_det_precisions_chol, n_features):
    """scikit-learn's ``_log_wishart_norm`` (without its constant log pi term)."""
    gammaln = _special().gammaln
    return -(dof * log_det_precisions_chol + dof * n_features * 0.5 * math.log(2.0)
             + np.sum(gammaln(0.5 * (dof - np.arange(n_features)[:, np.newaxis])), 0))


def lower_bound(cov: CovarianceType, stats: SufficientStats, e_params: GaussianParams,
                vp: VariationalParams) -> float:
    """scikit-learn's evidence lower bound (``_compute_lower_bound``): the entropy term
    of the responsibilities of the pass under ``e_params``, the normalisers of the
    posterior ``vp`` after the M-step on its statistics (up to the same constants)."""
    special = _special()
    d = vp.n_features
    log_det = cov.log_det_cholesky(vp.precisions_cholesky, d) \
        - 0.5 * d * np.log(vp.degrees_of_freedom)
    if vp.covariance_type == "tied":
        log_wishart = vp.n_components * float(
            np.sum(_log_wishart_norm(vp.degrees_of_freedom, log_det, d)))
    else:
        log_wishart = np.sum(_log_wishart_norm(vp.degrees_of_freedom, log_det, d))
    c = vp.weight_concentration
    if vp.prior_type == "dirichlet_process":
        log_norm_weight = -np.sum(special.betaln(c[0], c[1]))
    else:
        log_norm_weight = special.gammaln(np.sum(c)) - np.sum(special.gammaln(c))
    entropy = responsibility_entropy_sum(cov, stats, e_params)
    return float(-entropy - log_wishart - log_norm_weight
                 - 0.5 * d * np.sum(np.log(vp.mean_precision)))


def effective_components(weights: np.ndarray, threshold: float = 0.01) -> int:
    """How many components carry more than ``threshold`` of the weight."""
    return int(np.sum(np.asarray(weights) > threshold))
