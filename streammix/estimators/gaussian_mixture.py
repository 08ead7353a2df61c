"""GaussianMixture: scikit-learn's estimator, computed chunk by chunk with numba kernels."""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np

from ..engines.em import IterationInfo, run_em
from ..engines.init import INIT_METHODS, initial_params
from ..errors import ConvergenceWarning, InvalidInputError, InvalidParameterError
from ..execution.dask_source import DaskSource, client_scope, compute
from ..execution.inputs import as_source
from ..execution.numpy_source import NumpySource
from ..execution.outputs import lazy_outputs
from ..math.covariances import get_covariance_type
from ..math.params import GaussianParams
from ..validation import (
    check_array,
    check_float_param,
    check_init_array,
    check_int_param,
    check_random_state,
    check_sample_weight,
)
from ._base import EstimatorBase


class GaussianMixture(EstimatorBase):
    """Gaussian mixture fitted by exact EM over chunks of the data.

    Parameters, attributes and methods are scikit-learn's
    ``sklearn.mixture.GaussianMixture`` (same names, defaults and semantics), so that
    switching is a change of import. Differences, all additions or documented choices:

    - ``fit(X, sample_weight=...)`` weighs samples (scikit-learn has no sample_weight).
    - ``fit``/``predict``/``predict_proba``/``score_samples``/``score`` also take a
      ``dask.array.Array``, a ``zarr.Array`` or a path/URL to a Zarr array: the data are
      read chunk by chunk on every pass and never held whole; predictions on such input
      are lazy dask arrays (see ``streammix.write_predictions``).
    - ``client``: where Dask input is computed: None uses the active
      ``distributed.Client`` if there is one, else Dask's threaded scheduler in this
      process; a Client or a scheduler address ('tcp://host:8786') uses that cluster.
      In-memory numpy input always runs on the in-process thread pool.
    - ``chunk_size``: rows per chunk (default: about 4 MiB of data for numpy input, the
      array's own chunks for Dask/Zarr input). The result depends on the chunking only
      to rounding; the same chunking gives the same bits.
    - ``init_params='kmeans'`` runs our k-means (k-means++ seeds on a uniform sample of
      at most 50,000 rows, then Lloyd over all rows), not scikit-learn's KMeans, so the
      initial means differ from scikit-learn's for the same seed; 'k-means++' picks its
      seeds from the same kind of sample.
    - A component whose covariance stops being positive definite (a collapsed or empty
      component) is kept with extra diagonal loading and a DegenerateComponentWarning,
      where scikit-learn raises "ill-defined empirical covariance". An empty component
      keeps its previous mean (scikit-learn moves it to the origin).
    - ``fit`` does not run the extra final E-step scikit-learn runs (it only serves
      ``fit_predict``, which does its own prediction pass).
    """

    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans", weights_init=None,
                 means_init=None, precisions_init=None, random_state=None, warm_start=False,
                 verbose=0, verbose_interval=10, chunk_size=None, client=None):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.chunk_size = chunk_size
        self.client = client

    # ------------------------------------------------------------------ validation
    def _check_parameters(self) -> None:
        check_int_param(self.n_components, "n_components", 1)
        get_covariance_type(self.covariance_type)
        check_float_param(self.tol, "tol", 0.0)
        check_float_param(self.reg_covar, "reg_covar", 0.0)
        check_int_param(self.max_iter, "max_iter", 0)
        check_int_param(self.n_init, "n_init", 1)
        check_int_param(self.verbose_interval, "verbose_interval", 1)
        if self.init_params not in INIT_METHODS:
            raise InvalidParameterError(
                f"init_params must be one of {list(INIT_METHODS)}; got {self.init_params!r}"
            )
        if self.chunk_size is not None:
            check_int_param(self.chunk_size, "chunk_size", 1)

    def _checked_inits(self, n_features: int):
        K = self.n_components
        cov = get_covariance_type(self.covariance_type)
        weights = means = precisions = None
        if self.weights_init is not None:
            weights = check_init_array(self.weights_init, "weights_init", (K,))
            if np.any(weights < 0) or np.any(weights > 1):
                raise InvalidParameterError(
                    f"weights_init must lie in [0, 1]; got min {weights.min():.5g}, "
                    f"max {weights.max():.5g}"
                )
            if not np.isclose(weights.sum(), 1.0, rtol=0, atol=1e-8):
                raise InvalidParameterError(
                    f"weights_init must sum to 1; got sum {weights.sum():.10g}"
                )
        if self.means_init is not None:
            means = check_init_array(self.means_init, "means_init", (K, n_features))
        if self.precisions_init is not None:
            shape = cov.covariance_shape(K, n_features)
            precisions = check_init_array(self.precisions_init,
                                          f"precisions_init ('{cov.name}')", shape)
            precisions = cov.validate_precisions(precisions, K, n_features)
        return weights, means, precisions

    def _validate_fit_data(self, X, sample_weight, client):
        source = as_source(X, sample_weight, chunk_size=self.chunk_size, client=client)
        n = source.n_samples
        if n < 2:
            raise InvalidInputError(
                f"X has {n} sample; at least 2 are needed to fit a Gaussian mixture"
            )
        if n < self.n_components:
            raise InvalidInputError(
                f"X has {n} samples but n_components={self.n_components}: need "
                "n_samples >= n_components (use fewer components or more data)"
            )
        return source

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, sample_weight=None):
        """Estimate the parameters by EM (``n_init`` starts, the best lower bound kept).

        ``sample_weight`` (n_samples,), non-negative, weighs each sample's contribution
        (an integer weight is the same as repeating the row).
        """
        self._fit(X, sample_weight)
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the label of each sample under the fitted model."""
        source = self._fit(X, sample_weight)
        return self.predict(source.X)

    def _fit(self, X, sample_weight):
        self._check_parameters()
        with client_scope(self.client) as client:
            return self._fit_on(X, sample_weight, client)

    def _fit_on(self, X, sample_weight, client):
        source = self._validate_fit_data(X, sample_weight, client)
        weights_init, means_init, precisions_init = self._checked_inits(source.n_features)
        cov = get_covariance_type(self.covariance_type)
        if self.verbose and client is not None:
            print(f"Dask client: {client.scheduler.address if hasattr(client, 'scheduler') else client}"
                  f"  dashboard: {getattr(client, 'dashboard_link', 'n/a')}")
        self._run(source, cov, weights_init, means_init, precisions_init)
        return source

    def _run(self, source, cov, weights_init, means_init, precisions_init) -> None:
        """The n_init loop of scikit-learn's fit_predict on a chunk source."""
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        n_init = self.n_init if do_init else 1
        rng = check_random_state(self.random_state)
        best = None
        for init in range(n_init):
            if self.verbose:
                print(f"Initialization {init}", file=sys.stdout)
            if do_init:
                params = initial_params(
                    source, cov, self.n_components, init_params=self.init_params,
                    reg_covar=self.reg_covar, rng=rng, weights_init=weights_init,
                    means_init=means_init, precisions_init=precisions_init)
                start_lb = -np.inf
            else:
                params = self._get_params_value()
                start_lb = self.lower_bound_
            result = run_em(source, cov, params, tol=self.tol, max_iter=self.max_iter,
                            reg_covar=self.reg_covar, lower_bound=start_lb,
                            callback=self._progress if self.verbose else None)
            if self.verbose:
                state = "converged" if result.converged else "did not converge"
                print(f"Initialization {state}. lower bound {result.lower_bound:.5f}")
            if self.max_iter == 0:
                best = result
                best.lower_bound = -np.inf
            elif best is None or result.lower_bound > best.lower_bound or \
                    best.lower_bound == -np.inf:
                best = result
        if not best.converged and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                "parameters, or increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning,
            )
        self._set_params_value(best.params)
        self.converged_ = bool(best.converged)
        self.n_iter_ = int(best.n_iter)
        self.lower_bound_ = float(best.lower_bound)
        self.lower_bounds_ = [float(v) for v in best.lower_bounds]
        self.n_features_in_ = source.n_features

    def _progress(self, info: IterationInfo) -> None:
        if info.iteration % self.verbose_interval == 0:
            print(
                f"  Iteration {info.iteration:4d}  mean log-lik {info.lower_bound:.6f}  "
                f"change {info.change:.3e}  {info.seconds:.3f} s  "
                f"{info.rows_per_second:,.0f} rows/s"
            )

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
        self.precisions_ = cov.precisions(params.precisions_cholesky)

    # ------------------------------------------------------------------ inference
    def _outputs(self, X, want_resp: bool):
        """(log p, labels, responsibilities or None): numpy arrays for in-memory input,
        lazy dask arrays for Dask/Zarr input."""
        self._check_is_fitted()
        source = as_source(X, None, chunk_size=self.chunk_size, n_features=self.n_features_in_)
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
                f"n_samples must be a positive integer; got {n_samples!r}"
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

    def bic(self, X) -> float:
        """Bayesian information criterion on X (lower is better)."""
        n = self._n_rows(X)
        return -2 * self.score(X) * n + self._n_parameters() * math.log(n)

    def aic(self, X) -> float:
        """Akaike information criterion on X (lower is better)."""
        n = self._n_rows(X)
        return -2 * self.score(X) * n + 2 * self._n_parameters()
