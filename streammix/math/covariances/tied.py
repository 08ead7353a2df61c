"""One covariance matrix shared by all components (scikit-learn's 'tied')."""

from __future__ import annotations

import numpy as np

from ...kernels.blas import single_threaded_blas
from ...kernels.jit import python_function
from ...kernels.linalg import batched_precision_cholesky
from ...kernels.tied import (
    tied_block_rows,
    tied_outputs,
    tied_pass_constants,
    tied_stats_chunks,
    tied_stats_run,
)
from ..params import GaussianParams
from ._base import (
    CovarianceType,
    StatsSpec,
    check_shape,
    check_square_spd,
    mixture_weights,
    new_means,
    precision_chol_from_cov,
    soft_counts,
)


def tied_centre(params: GaussianParams) -> np.ndarray:
    """The centre of the tied second moment: the mixture's mean (keeps it well-conditioned
    whatever the offset of the data)."""
    w = params.weights / params.weights.sum()
    return np.ascontiguousarray(w @ params.means)


class TiedCovariance(CovarianceType):
    name = "tied"

    def covariance_shape(self, n_components, n_features):
        return (n_features, n_features)

    def n_covariance_parameters(self, n_components, n_features):
        return n_features * (n_features + 1) / 2.0

    def m_step(self, stats, reg_covar):
        nk = soft_counts(stats)
        means, _ = new_means(stats, nk)
        # first moments about centre2: u_k = s1_k + s0_k (c_k - centre2) = nk (m_k - centre2)
        u = stats.s1 + stats.s0[:, None] * (stats.centres - stats.centre2)
        coef = 2.0 / nk - stats.s0 / nk**2
        # einsum's own loops, not a BLAS product: at d ~ 100 with many components numpy's
        # BLAS would fan out, and its threads spin on beside the next pass's kernels
        within = stats.s2 - np.einsum("ka,kb->ab", u * coef[:, None], u)
        cov = within / nk.sum()
        cov = 0.5 * (cov + cov.T)
        d = cov.shape[0]
        cov[np.arange(d), np.arange(d)] += reg_covar
        return mixture_weights(nk), means, cov

    def precision_cholesky(self, covariances, reg_covar=None):
        covariances = np.ascontiguousarray(covariances, dtype=np.float64)
        prec = np.zeros((1,) + covariances.shape)
        ok = np.zeros(1, dtype=np.bool_)
        batched_precision_cholesky(covariances[None], prec, ok)
        if ok[0]:
            return prec[0], covariances
        return precision_chol_from_cov(covariances, "the tied covariance", reg_covar)

    def precision_cholesky_from_precisions(self, precisions):
        return np.linalg.cholesky(precisions[::-1, ::-1])[::-1, ::-1].astype(np.float64)

    def precisions(self, precisions_cholesky):
        return precisions_cholesky @ precisions_cholesky.T

    def covariances_from_precision_cholesky(self, precisions_cholesky):
        return np.linalg.inv(precisions_cholesky @ precisions_cholesky.T)

    def log_det_cholesky(self, precisions_cholesky, n_features):
        return np.log(np.diagonal(precisions_cholesky)).sum()

    def validate_precisions(self, precisions, n_components, n_features):
        check_shape(precisions, (n_features, n_features), "precisions_init ('tied')")
        check_square_spd(precisions, "precisions_init ('tied')", "tied")
        return precisions

    def _white(self, params):
        """The kernels' constants: the centre, U, (mu_k - c) U, P (mu_k - c) and P."""
        centre = tied_centre(params)
        U = np.ascontiguousarray(params.precisions_cholesky, dtype=np.float64)
        means = np.ascontiguousarray(params.means, dtype=np.float64)
        white_means, linear, precision = tied_pass_constants(means, centre, U)
        return centre, U, white_means, linear, precision

    def kernel_constants(self, params):
        const = super().kernel_constants(params)
        return np.ascontiguousarray(np.broadcast_to(const, (params.n_components,)), dtype=np.float64)

    def stats_spec(self, params):
        d = params.n_features
        centre, U, white_means, linear, precision = self._white(params)
        consts = (params.means, centre, U, white_means, self.kernel_constants(params),
                  linear, precision)
        return StatsSpec(tied_stats_run, tied_stats_chunks, consts, (d, d), centre2=centre,
                         uses_blas=True, block_rows=self.region_block_rows(d))

    def region_block_rows(self, n_features):
        return int(python_function(tied_block_rows)(n_features))

    def chunk_outputs(self, X, params, want_resp):
        logprob, labels, resp = self._output_buffers(X.shape[0], params.n_components, want_resp)
        centre, U, white_means, linear, _ = self._white(params)
        with single_threaded_blas():
            tied_outputs(X, centre, U, white_means, self.kernel_constants(params), linear,
                         logprob, labels, resp, want_resp)
        return logprob, labels, resp if want_resp else None

    def sample(self, rng, params, counts):
        return np.vstack([
            rng.multivariate_normal(m, params.covariances, int(n))
            for m, n in zip(params.means, counts)
        ])
