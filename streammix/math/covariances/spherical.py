"""One variance per component (scikit-learn's 'spherical': the mean of the diagonal)."""

from __future__ import annotations

import numpy as np

from ...errors import InvalidParameterError
from ...kernels._common import rows_per_block
from ...kernels.spherical import (spherical_outputs, spherical_stats_chunks,
                                  spherical_stats_run)
from ._base import (
    CovarianceType,
    StatsSpec,
    check_shape,
    mixture_weights,
    new_means,
    positive_variances,
    soft_counts,
)


class SphericalCovariance(CovarianceType):
    name = "spherical"

    def covariance_shape(self, n_components, n_features):
        return (n_components,)

    def n_covariance_parameters(self, n_components, n_features):
        return n_components

    def m_step(self, stats, reg_covar):
        nk = soft_counts(stats)
        means, delta = new_means(stats, nk)
        d = means.shape[1]
        shrink = 2.0 - stats.s0 / nk
        cov = (stats.s2 / nk - shrink * (delta**2).sum(axis=1)) / d + reg_covar
        return mixture_weights(nk), means, cov

    def precision_cholesky(self, covariances, reg_covar=None):
        cov = positive_variances(covariances, reg_covar)
        return 1.0 / np.sqrt(cov), cov

    def precision_cholesky_from_precisions(self, precisions):
        return np.sqrt(precisions).astype(np.float64)

    def precisions(self, precisions_cholesky):
        return precisions_cholesky**2

    def covariances_from_precision_cholesky(self, precisions_cholesky):
        return 1.0 / precisions_cholesky**2

    def log_det_cholesky(self, precisions_cholesky, n_features):
        return n_features * np.log(precisions_cholesky)

    def validate_precisions(self, precisions, n_components, n_features):
        check_shape(precisions, (n_components,), "precisions_init ('spherical')")
        bad = np.flatnonzero(~(precisions > 0).reshape(n_components, -1).all(axis=1))
        if len(bad):
            k = int(bad[0])
            raise InvalidParameterError(
                f"'spherical precision' should be positive: precisions_init ('spherical') "
                f"must be positive; precisions_init[{k}] = "
                f"{precisions[k].tolist()!r}"
            )
        return precisions

    def stats_spec(self, params):
        prec = np.ascontiguousarray(params.precisions_cholesky**2)
        consts = (params.means, prec, self.kernel_constants(params))
        return StatsSpec(spherical_stats_run, spherical_stats_chunks, consts,
                         (params.n_components,), block_rows=rows_per_block(params.n_features))

    def chunk_outputs(self, X, params, want_resp):
        logprob, labels, resp = self._output_buffers(X.shape[0], params.n_components, want_resp)
        prec = np.ascontiguousarray(params.precisions_cholesky**2)
        spherical_outputs(X, params.means, prec, self.kernel_constants(params),
                          logprob, labels, resp, want_resp)
        return logprob, labels, resp if want_resp else None

    def sample(self, rng, params, counts):
        d = params.n_features
        return np.vstack([
            m + rng.standard_normal(size=(int(n), d)) * np.sqrt(c)
            for m, c, n in zip(params.means, params.covariances, counts)
        ])
