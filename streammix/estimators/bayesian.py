"""BayesianGaussianMixture: scikit-learn's variational mixture, computed chunk by chunk
with the Gaussian mixture's kernels (see ``math.variational``)."""

from __future__ import annotations

import numbers

import numpy as np

from ..engines.variational import VariationalUpdate, data_moments, initial_posterior
from ..errors import InvalidParameterError
from ..math.covariances import get_covariance_type
from ..math.matching import match_components
from ..math.params import GaussianParams
from ..math.variational import (
    PRIOR_TYPES,
    VariationalParams,
    VariationalPrior,
    e_step_params,
    effective_components,
)
from ..validation import check_init_array
from .gaussian_mixture import GaussianMixture


def _positive_number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0 \
            or not np.isfinite(value):
        raise InvalidParameterError(
            f"The '{name}' parameter of BayesianGaussianMixture must be a float in the range "
            f"(0.0, inf) or None. Got {value!r} instead.")
    return float(value)


class BayesianGaussianMixture(GaussianMixture):
    """Variational Bayesian Gaussian mixture fitted chunk by chunk, on any input
    ``GaussianMixture`` takes (numpy, Dask, Zarr; threads or a Dask cluster).

    Parameters, attributes and methods are scikit-learn's
    ``sklearn.mixture.BayesianGaussianMixture`` (same names, defaults and meaning): a
    Dirichlet-process ('dirichlet_process', the default: a truncated stick-breaking
    prior) or Dirichlet ('dirichlet_distribution') prior on the weights lets the data
    switch off the components they do not need, so ``n_components`` is an upper bound.
    ``lower_bound_`` is the evidence lower bound as scikit-learn computes it (up to the
    same constants), not a mean log-likelihood; ``score_samples`` is scikit-learn's
    (the variational E-step's normaliser).

    Differences, all additions or documented choices, as in ``GaussianMixture``:
    ``fit(X, sample_weight=..., checkpoint=..., align_to=..., callback=...)``,
    ``chunk_size``, ``client``, ``estep_dtype`` (the opt-in float32 E-step of 'full'
    covariances, as in ``GaussianMixture``); the data-dependent prior defaults (the data's mean and
    covariance) come from one streaming pass; ``init_params='kmeans'`` runs our
    k-means; a degenerate component is repaired with a DegenerateComponentWarning
    instead of an error. With a Dirichlet process the components are ordered (the
    sticks), so restarts and ``align_to`` do not renumber them (``align_to`` is refused);
    with a Dirichlet distribution they are matched as in ``GaussianMixture``.
    For a stream, see ``OnlineBayesianGaussianMixture``.
    """

    _LOWER_BOUND_NAME = "lower bound"
    _EXTRA_FIT_KEYS = ("weight_concentration_prior_type", "weight_concentration_prior",
                       "mean_precision_prior", "degrees_of_freedom_prior")
    split_merge = None  # not offered: the prior switches components off instead

    def __init__(self, *, n_components=1, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans",
                 weight_concentration_prior_type="dirichlet_process",
                 weight_concentration_prior=None, mean_precision_prior=None, mean_prior=None,
                 degrees_of_freedom_prior=None, covariance_prior=None, random_state=None,
                 warm_start=False, verbose=0, verbose_interval=10, chunk_size=None,
                 client=None, estep_dtype=None):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.chunk_size = chunk_size
        self.client = client
        self.estep_dtype = estep_dtype

    # the initial-value parameters of GaussianMixture do not exist here
    weights_init = means_init = precisions_init = None

    @property
    def bic(self):
        raise AttributeError("BayesianGaussianMixture has no 'bic' (as in scikit-learn)")

    @property
    def aic(self):
        raise AttributeError("BayesianGaussianMixture has no 'aic' (as in scikit-learn)")

    # ------------------------------------------------------------------ validation
    def _check_parameters(self) -> None:
        super()._check_parameters()
        if self.weight_concentration_prior_type not in PRIOR_TYPES:
            raise InvalidParameterError(
                "The 'weight_concentration_prior_type' parameter of BayesianGaussianMixture "
                f"must be a str among {set(PRIOR_TYPES)}. Got "
                f"{self.weight_concentration_prior_type!r} instead.")
        for name in ("weight_concentration_prior", "mean_precision_prior"):
            if getattr(self, name) is not None:
                _positive_number(getattr(self, name), name)
        dof = self.degrees_of_freedom_prior
        if dof is not None and (isinstance(dof, bool) or not isinstance(dof, numbers.Real)):
            raise InvalidParameterError(
                f"degrees_of_freedom_prior must be a number or None; got {dof!r}")

    def _data_prior(self, source) -> VariationalPrior:
        """The priors (scikit-learn's ``_check_parameters``): the given ones checked
        against the data's shape, the data-dependent defaults from one streaming pass."""
        d = source.n_features
        t = self.covariance_type
        K = self.n_components
        wc = 1.0 / K if self.weight_concentration_prior is None \
            else float(self.weight_concentration_prior)
        mp = 1.0 if self.mean_precision_prior is None else float(self.mean_precision_prior)
        dof = self.degrees_of_freedom_prior
        if dof is None:
            dof = float(d)
        elif not dof > d - 1.0:
            raise InvalidParameterError(
                "The parameter 'degrees_of_freedom_prior' should be greater than "
                f"{d - 1}, but got {dof:.3f}.")
        mean = cov_prior = None
        if self.mean_prior is not None:
            mean = check_init_array(self.mean_prior, "mean_prior", (d,), "means")
        if self.covariance_prior is not None:
            cov_prior = self._checked_covariance_prior(d)
        if mean is None or cov_prior is None:
            data_mean, data_cov, _ = data_moments(source, full=t in ("full", "tied"))
            if mean is None:
                mean = data_mean
            if cov_prior is None:
                cov_prior = {"full": np.atleast_2d, "tied": np.atleast_2d,
                             "diag": np.asarray, "spherical": np.mean}[t](data_cov)
                if t == "spherical":
                    cov_prior = float(cov_prior)
        return VariationalPrior(self.weight_concentration_prior_type, wc, mp,
                                np.asarray(mean, dtype=np.float64), float(dof), cov_prior)

    def _checked_covariance_prior(self, d: int):
        t = self.covariance_type
        if t == "spherical":
            return _positive_number(self.covariance_prior, "covariance_prior")
        shape = (d, d) if t in ("full", "tied") else (d,)
        value = check_init_array(self.covariance_prior, "covariance_prior", shape,
                                 f"{t} covariance_prior")
        if t == "diag":
            if np.any(value <= 0.0):
                raise InvalidParameterError(f"'{t} precision' should be positive "
                                            "(covariance_prior must be positive)")
            return value
        sym = np.allclose(value, value.T)
        if not sym or np.any(np.linalg.eigvalsh(value) <= 0.0):
            raise InvalidParameterError(
                f"'{t} precision' should be symmetric, positive-definite "
                "(covariance_prior must be a symmetric positive-definite matrix)")
        return value

    def _checked_inits(self, n_features: int):
        return None, None, None

    # ------------------------------------------------------------------ fitting
    def _fit(self, X, sample_weight, align_to=None, **checkpointing):
        self._check_parameters()
        if align_to is not None and self.weight_concentration_prior_type == \
                "dirichlet_process":
            raise InvalidParameterError(
                "align_to needs weight_concentration_prior_type='dirichlet_distribution': "
                "a Dirichlet process orders its components (the sticks of its prior), so "
                "renumbering them changes the model")
        return super()._fit(X, sample_weight, align_to, **checkpointing)

    def _fit_on(self, X, sample_weight, client, **checkpointing):
        source = self._validate_fit_data(X, sample_weight, client)
        prior = self._data_prior(source)
        self._set_prior(prior)
        cov = get_covariance_type(self.covariance_type, self.estep_dtype)
        self._run(source, cov, None, None, None, **checkpointing)
        return source

    def _initial_state(self, source, cov, rng, weights_init, means_init, precisions_init):
        return initial_posterior(source, cov, self.n_components,
                                 init_params=self.init_params, reg_covar=self.reg_covar,
                                 rng=rng, prior=self._prior)

    def _update_rule(self, cov):
        return VariationalUpdate(cov, self._prior, self.reg_covar)

    def _aligned(self, state, reference):
        if self.weight_concentration_prior_type == "dirichlet_process":
            return state
        if isinstance(reference, VariationalParams):
            reference = _as_gaussian(reference)
        return state.permuted(match_components(_as_gaussian(state), reference).permutation)

    # ------------------------------------------------------------------ fitted state
    def _current_state(self) -> VariationalParams:
        """The posterior held in the public attributes (a warm start continues from
        them, so a model whose attributes came from scikit-learn continues as it would)."""
        t = self.covariance_type
        wc = self.weight_concentration_
        if self.weight_concentration_prior_type == "dirichlet_process":
            wc = np.vstack([np.asarray(wc[0], dtype=np.float64),
                            np.asarray(wc[1], dtype=np.float64)])
        dof = self.degrees_of_freedom_
        dof = np.float64(dof) if t == "tied" else np.asarray(dof, dtype=np.float64)
        cov = self.covariances_
        return VariationalParams(
            t, self.weight_concentration_prior_type, np.asarray(wc, dtype=np.float64),
            np.asarray(self.mean_precision_, dtype=np.float64),
            np.ascontiguousarray(self.means_, dtype=np.float64), dof,
            float(cov) if np.ndim(cov) == 0 else np.asarray(cov, dtype=np.float64),
            np.ascontiguousarray(self.precisions_cholesky_, dtype=np.float64))

    def _set_state(self, vp: VariationalParams) -> None:
        self.weight_concentration_ = vp.concentration_attribute()
        self.mean_precision_ = vp.mean_precision
        self.degrees_of_freedom_ = vp.degrees_of_freedom
        self._set_params_value(GaussianParams(vp.covariance_type, vp.weights, vp.means,
                                              vp.covariances, vp.precisions_cholesky))

    def _get_params_value(self) -> GaussianParams:
        """The E-step's Gaussian form of the posterior: what predict, predict_proba,
        score_samples and sample use (``sample`` only its weights, means, covariances)."""
        if not hasattr(self, "mean_precision_"):
            return super()._get_params_value()
        return e_step_params(self._current_state())

    def _permute_components(self, perm) -> None:
        if self.weight_concentration_prior_type == "dirichlet_process":
            raise InvalidParameterError(
                "the components of a Dirichlet-process mixture are ordered by its prior "
                "and cannot be renumbered")
        self._set_state(self._current_state().permuted(np.asarray(perm)))

    def _prior_arrays(self) -> dict[str, np.ndarray]:
        """The priors in effect, for a checkpoint (a loaded model holds them)."""
        p = self._prior
        return {"prior.scalars": np.array([p.weight_concentration, p.mean_precision,
                                           p.degrees_of_freedom]),
                "prior.mean": p.mean, "prior.covariance": np.asarray(p.covariance)}

    def _restore_prior(self, arrays: dict) -> None:
        wc, mp, dof = (float(v) for v in arrays["prior.scalars"])
        cov = arrays["prior.covariance"]
        cov = float(cov) if np.ndim(cov) == 0 else np.asarray(cov)
        self._set_prior(VariationalPrior(self.weight_concentration_prior_type, wc, mp,
                                         np.asarray(arrays["prior.mean"]), dof, cov))

    def _set_prior(self, prior: VariationalPrior) -> None:
        """The priors in effect, and scikit-learn's attributes that show them."""
        self._prior = prior
        self.weight_concentration_prior_ = prior.weight_concentration
        self.mean_precision_prior_ = prior.mean_precision
        self.mean_prior_ = prior.mean
        self.degrees_of_freedom_prior_ = prior.degrees_of_freedom
        self.covariance_prior_ = prior.covariance

    def effective_n_components(self, threshold: float = 0.01) -> int:
        """How many components hold more than ``threshold`` of the weight: the number
        the data use."""
        self._check_is_fitted()
        return effective_components(self.weights_, threshold)


def _as_gaussian(vp: VariationalParams) -> GaussianParams:
    return GaussianParams(vp.covariance_type, vp.weights, vp.means, vp.covariances,
                          vp.precisions_cholesky)
