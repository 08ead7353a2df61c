"""What both estimators share once fitted: the parameter attributes, inference
(predict, predict_proba, score_samples, score, sample, bic, aic) on numpy, Dask or Zarr
input, and component permutation (the basis of label tracking)."""

from __future__ import annotations

import math

import numpy as np

from ..errors import InvalidParameterError
from ..execution.dask_source import DaskSource, client_scope, compute
from ..execution.inputs import as_source
from ..execution.outputs import lazy_outputs
from ..math.covariances import get_covariance_type
from ..math.matching import permute_params
from ..math.params import GaussianParams
from ..validation import check_init_array, check_random_state
from ._base import EstimatorBase


class MixtureMixin(EstimatorBase):
    """Fitted-model behaviour shared by GaussianMixture and OnlineGaussianMixture."""

    # ------------------------------------------------------------------ parameters
    def _get_params_value(self) -> GaussianParams:
        cov = get_covariance_type(self.covariance_type)
        prec_chol = np.ascontiguousarray(self.precisions_cholesky_, dtype=np.float64)
        covariances = getattr(self, "covariances_", None)
        return GaussianParams(cov.name, np.asarray(self.weights_, dtype=np.float64),
                              np.ascontiguousarray(self.means_, dtype=np.float64),
                              covariances, prec_chol)

    def _set_params_value(self, params: GaussianParams) -> None:
        cov = get_covariance_type(params.covariance_type)
        self.weights_ = params.weights
        self.means_ = params.means
        self.covariances_ = params.covariances
        self.precisions_cholesky_ = params.precisions_cholesky
        self._precisions = (cov, params.precisions_cholesky)  # precisions_ on first read

    @property
    def precisions_(self) -> np.ndarray:
        """Precision matrices (scikit-learn's shapes), computed from
        ``precisions_cholesky_`` when first read after the parameters changed, then kept:
        an online model changes its parameters at every batch, and for 'full' this
        product was a tenth of a small update's bookkeeping, for a value that is rarely
        read."""
        try:
            value = self.__dict__["_precisions"]
        except KeyError:
            raise AttributeError(
                f"'{type(self).__name__}' object has no attribute 'precisions_'"
            ) from None
        if isinstance(value, tuple):
            cov, prec_chol = value
            value = self.__dict__["_precisions"] = cov.precisions(prec_chol)
        return value

    @precisions_.setter
    def precisions_(self, value: np.ndarray) -> None:
        self._precisions = value

    @precisions_.deleter
    def precisions_(self) -> None:
        try:
            del self.__dict__["_precisions"]
        except KeyError:
            raise AttributeError("precisions_") from None

    def _checked_inits(self, n_features: int):
        """The user's weights_init, means_init and precisions_init, validated (shape,
        range, normalisation, positive definiteness), or None for those not given."""
        K = self.n_components
        cov = get_covariance_type(self.covariance_type)
        weights = means = precisions = None
        if self.weights_init is not None:
            weights = check_init_array(self.weights_init, "weights_init", (K,), "weights")
            if np.any(weights < 0) or np.any(weights > 1):
                raise InvalidParameterError(
                    "The parameter 'weights' should be in the range [0, 1], but got max "
                    f"value {weights.max():.5f}, min value {weights.min():.5f} "
                    "(weights_init must lie in [0, 1])"
                )
            # scikit-learn's tolerance: float32 weights sum to 1 only to float32 rounding
            atol = 1e-6 if np.asarray(self.weights_init).dtype == np.float32 else 1e-8
            if not np.isclose(weights.sum(), 1.0, rtol=0, atol=atol):
                raise InvalidParameterError(
                    "The parameter 'weights' should be normalized, but got sum(weights) = "
                    f"{weights.sum():.5f} (weights_init must sum to 1)"
                )
        if self.means_init is not None:
            means = check_init_array(self.means_init, "means_init", (K, n_features), "means")
        if self.precisions_init is not None:
            shape = cov.covariance_shape(K, n_features)
            precisions = check_init_array(self.precisions_init,
                                          f"precisions_init ('{cov.name}')", shape,
                                          f"{cov.name} precision")
            precisions = cov.validate_precisions(precisions, K, n_features)
        return weights, means, precisions

    def save(self, path, keep_last: int = 3) -> int:
        """Save this model as a new version of the checkpoint at ``path`` (a directory or
        fsspec URL; docs/checkpoints.md describes the layout). Returns the version number."""
        from ..persistence import save

        return save(self, path, keep_last=keep_last)

    def _permute_components(self, perm) -> None:
        """Reorder the components in place: component k becomes the old perm[k]."""
        self._set_params_value(permute_params(self._get_params_value(), np.asarray(perm)))

    # ------------------------------------------------------------------ inference
    def _outputs(self, X, want_resp: bool):
        """(log p, labels, responsibilities or None): numpy arrays for in-memory input,
        lazy dask arrays for Dask/Zarr input."""
        self._check_is_fitted()
        source = as_source(X, None, chunk_size=self.chunk_size, n_features=self.n_features_in_,
                           estimator=type(self).__name__)
        params = self._get_params_value()
        cov = get_covariance_type(params.covariance_type)
        if isinstance(source, DaskSource):
            return lazy_outputs(source.X, params, want_resp)
        parts = source.map_chunks(lambda Xc, _: cov.chunk_outputs(Xc, params, want_resp))
        logprob = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        resp = np.concatenate([p[2] for p in parts]) if want_resp else None
        return logprob, labels, resp

    def score_samples(self, X) -> np.ndarray:
        """Log-likelihood log p(x) of each sample under the model."""
        return self._outputs(X, False)[0]

    def score(self, X, y=None) -> float:
        """Mean log-likelihood of X under the model (computed chunk by chunk for
        Dask/Zarr input)."""
        logprob = self.score_samples(X)
        if isinstance(logprob, np.ndarray):
            return float(np.mean(logprob))
        with client_scope(self.client) as client:
            return float(compute(logprob.mean(), client))

    def predict(self, X) -> np.ndarray:
        """The most probable component of each sample."""
        return self._outputs(X, False)[1]

    def predict_proba(self, X) -> np.ndarray:
        """Posterior probability of each component for each sample (n_samples, K)."""
        return self._outputs(X, True)[2]

    def sample(self, n_samples: int = 1):
        """Draw n_samples from the fitted mixture: (X, component labels), as scikit-learn
        does (same random stream for the same random_state)."""
        self._check_is_fitted()
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) \
                or n_samples < 1:
            raise InvalidParameterError(
                f"Invalid value for 'n_samples': {n_samples} . The sampling requires at "
                f"least one sample (n_samples must be a positive integer; got {n_samples!r})"
            )
        rng = check_random_state(self.random_state)
        params = self._get_params_value()
        if params.covariances is None:
            raise InvalidParameterError("covariances_ are not set; fit the model first")
        counts = rng.multinomial(n_samples, params.weights)
        cov = get_covariance_type(params.covariance_type)
        X = cov.sample(rng, params, counts)
        y = np.concatenate([np.full(int(c), k, dtype=np.int64) for k, c in enumerate(counts)])
        return X, y

    def _n_parameters(self) -> int:
        cov = get_covariance_type(self.covariance_type)
        return cov.n_parameters(self.means_.shape[0], self.means_.shape[1])

    @staticmethod
    def _n_rows(X) -> int:
        if isinstance(X, (str, bytes)) or hasattr(X, "__fspath__"):
            from ..execution.inputs import open_zarr_array

            return int(open_zarr_array(X).shape[0])
        return int(np.shape(X)[0])

    def information_criteria(self, mean_loglik: float, n: int) -> tuple[float, float]:
        """(BIC, AIC) from the mean log-likelihood of n samples: one scoring pass serves
        both (``streammix select`` uses it)."""
        p = self._n_parameters()
        return -2 * mean_loglik * n + p * math.log(n), -2 * mean_loglik * n + 2 * p

    def bic(self, X) -> float:
        """Bayesian information criterion on X (lower is better)."""
        return self.information_criteria(self.score(X), self._n_rows(X))[0]

    def aic(self, X) -> float:
        """Akaike information criterion on X (lower is better)."""
        return self.information_criteria(self.score(X), self._n_rows(X))[1]
