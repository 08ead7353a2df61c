"""OnlineBayesianGaussianMixture: stochastic variational inference (Hoffman et al. 2013)
for the Bayesian Gaussian mixture, on the online mixture's streaming machinery."""

from __future__ import annotations

import numpy as np

from ..engines.em import run_em, statistics
from ..engines.moves import gaussian_of
from ..engines.stepwise import checked_statistics, step_size
from ..engines.variational import VariationalUpdate, initial_posterior
from ..errors import InvalidParameterError
from ..execution.numpy_source import NumpySource
from ..math.covariances import get_covariance_type
from ..math.covariances.tied import tied_centre
from ..math.params import GaussianParams
from ..math.stats import SufficientStats, blend_normalised, recentred
from ..math.variational import (
    e_step_params,
    effective_components,
    m_step,
)
from ..validation import check_float_param
from .bayesian import BayesianGaussianMixture
from .online import OnlineGaussianMixture


class OnlineBayesianGaussianMixture(OnlineGaussianMixture):
    """Bayesian Gaussian mixture (Dirichlet-process or Dirichlet prior on the weights)
    kept up to date from a stream by stochastic variational inference.

    Each ``partial_fit(X)`` runs the variational E-step on the batch with the same
    kernels as ``BayesianGaussianMixture``, blends the batch's per-sample statistics
    into running ones with step rho_t = max(eta_min, (t + t0)^-alpha) (the SVI step
    (t + tau)^-kappa with tau = t0, kappa = alpha), and sets the global variational
    parameters to the variational M-step on the running statistics scaled to the
    stream's size N. Because the posterior's natural parameters are the prior's plus
    linear functions of the statistics, this is exactly the natural-gradient step of
    SVI on them (``lambda <- (1 - rho) lambda + rho (prior + N/|B| batch statistics)``).

    A sibling class, not a mode of ``BayesianGaussianMixture``: a stream needs the online
    mixture's state (running statistics, step count, the stream cursor in checkpoints,
    component ids and events, ``streammix update``), which batch fits do not have, and
    ``fit`` means one pass over a stream here but variational EM to convergence there.

    Parameters: those of ``BayesianGaussianMixture`` for the model and its priors
    (n_components, covariance_type, reg_covar, weight_concentration_prior_type,
    weight_concentration_prior, mean_precision_prior, mean_prior,
    degrees_of_freedom_prior, covariance_prior, random_state, verbose, chunk_size); those
    of ``OnlineGaussianMixture`` for the stream (alpha, t0, eta_min, init_size,
    init_params, novelty_fraction). The data-dependent prior defaults come from the
    initial buffer (a stream has no whole to take them from).

    init_em_iter : int, default 100. Variational iterations on the initial buffer (tol
        1e-3; a buffer of a few thousand rows converges in tens): the prior switches off
        the components the buffer does not need before the stream's size makes it weak.
    total_samples : float or None (default). N, the size of the stream the posterior
        stands for. None: the rows seen so far, and with eta_min > 0 at most the
        memory of the forgetting, (mean batch size) / eta_min rows.
    min_weight : float, default 0.01 / n_components. Components whose weight the prior
        has switched off below it are reused: when a batch holds at least
        novelty_fraction of points no component explains, the lightest switched-off
        component is re-seeded on them (events 'death' and 'birth', a new component id).

    Attributes: those of ``BayesianGaussianMixture`` (``weights_``, ``means_``,
    ``covariances_``, ``precisions_``, ``precisions_cholesky_``, ``weight_concentration_``,
    ``mean_precision_``, ``degrees_of_freedom_``, the priors with a trailing underscore)
    and of ``OnlineGaussianMixture`` (``n_updates_``, ``n_samples_seen_``, ``eta_``,
    ``lower_bound_`` and ``lower_bounds_``: the mean of ``score_samples`` over the batch
    before its update, ``component_ids_``, ``events_``).
    """

    MOVE_EVERY = OnlineGaussianMixture.MOVE_EVERY
    max_components = None
    split_merge = False
    weights_init = means_init = precisions_init = None

    def __init__(self, n_components=1, *, covariance_type="full", reg_covar=1e-6,
                 weight_concentration_prior_type="dirichlet_process",
                 weight_concentration_prior=None, mean_precision_prior=None, mean_prior=None,
                 degrees_of_freedom_prior=None, covariance_prior=None, alpha=0.6, t0=2.0,
                 eta_min=0.0, total_samples=None, init_size=None, init_params="k-means++",
                 init_em_iter=100, min_weight=None, novelty_fraction=0.02, random_state=None,
                 verbose=0, chunk_size=None):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.alpha = alpha
        self.t0 = t0
        self.eta_min = eta_min
        self.total_samples = total_samples
        self.init_size = init_size
        self.init_params = init_params
        self.init_em_iter = init_em_iter
        self.min_weight = min_weight
        self.novelty_fraction = novelty_fraction
        self.random_state = random_state
        self.verbose = verbose
        self.chunk_size = chunk_size

    _CHECKED_PARAMS = ("n_components", "covariance_type", "reg_covar", "alpha", "t0",
                       "eta_min", "init_size", "init_params", "init_em_iter", "min_weight",
                       "novelty_fraction", "chunk_size", "weight_concentration_prior_type",
                       "weight_concentration_prior", "mean_precision_prior",
                       "degrees_of_freedom_prior", "total_samples")

    def _check_parameters_now(self) -> None:
        super()._check_parameters_now()
        self._as_batch()._check_parameters()
        if self.total_samples is not None:
            check_float_param(self.total_samples, "total_samples", 0.0, strict=True)

    def _as_batch(self) -> BayesianGaussianMixture:
        """A batch estimator with this model's priors: it checks them and computes them
        from the initial buffer."""
        return BayesianGaussianMixture(
            n_components=self.n_components, covariance_type=self.covariance_type,
            reg_covar=self.reg_covar,
            weight_concentration_prior_type=self.weight_concentration_prior_type,
            weight_concentration_prior=self.weight_concentration_prior,
            mean_precision_prior=self.mean_precision_prior, mean_prior=self.mean_prior,
            degrees_of_freedom_prior=self.degrees_of_freedom_prior,
            covariance_prior=self.covariance_prior)

    # the posterior in the public attributes, as in the batch estimator
    _current_state = BayesianGaussianMixture._current_state
    _set_state = BayesianGaussianMixture._set_state
    _prior_arrays = BayesianGaussianMixture._prior_arrays
    _restore_prior = BayesianGaussianMixture._restore_prior
    _set_prior = BayesianGaussianMixture._set_prior
    effective_n_components = BayesianGaussianMixture.effective_n_components

    def _get_params_value(self) -> GaussianParams:
        if not hasattr(self, "mean_precision_"):
            return super()._get_params_value()
        return e_step_params(self._current_state())

    bic = BayesianGaussianMixture.bic
    aic = BayesianGaussianMixture.aic

    # ------------------------------------------------------------------ initialisation
    def _initialise_from_buffer(self) -> None:
        X = np.concatenate(self._buffer)
        sw = np.concatenate(self._buffer_weights)
        sw = None if np.all(sw == 1.0) else sw
        if X.shape[0] < self.n_components:
            return  # keep buffering
        d = X.shape[1]
        cov = get_covariance_type(self.covariance_type)
        source = NumpySource(X, sw)
        batch_model = self._as_batch()
        prior = batch_model._data_prior(source)
        self._begin(d)
        self._set_prior(prior)
        vp = initial_posterior(source, cov, self.n_components, init_params=self.init_params,
                               reg_covar=self.reg_covar, rng=self._rng, prior=prior)
        update = VariationalUpdate(cov, prior, self.reg_covar)
        if self.init_em_iter:
            vp = run_em(source, cov, vp, tol=1e-3, max_iter=self.init_em_iter,
                        reg_covar=self.reg_covar, update=update).params
        e = e_step_params(vp)
        batch = statistics(source, cov, e)
        self.n_samples_seen_ = float(batch.n)
        self._batch_rows = float(batch.n)
        mixed = batch.scaled(1.0 / batch.n)
        self._commit(cov, mixed, batch.n)
        self.lower_bound_ = batch.mean_loglik
        del self._buffer, self._buffer_weights
        self._track_switches(np.ones(self.n_components))

    def _track_switches(self, before: np.ndarray) -> int:
        """Events for components the prior switched off ('death': the id stays with the
        idle slot) and for idle slots the data brought back ('birth' with a new id: it
        is new structure, not the cluster the slot once held)."""
        threshold = self._min_weight()
        was_on, now_on = before >= threshold, self.weights_ >= threshold
        for j in np.flatnonzero(was_on & ~now_on):
            self._event("death", component_id=int(self.component_ids_[j]),
                        weight=float(self.weights_[j]),
                        reason=f"switched off by the prior (weight below {threshold:.3g})")
        for j in np.flatnonzero(~was_on & now_on):
            new_id = self._new_id()
            self.component_ids_[j] = new_id
            self._event("birth", component_id=new_id, reason="revived by new data",
                        weight=float(self.weights_[j]))
        return int(np.sum(~was_on & now_on))

    def _reset(self) -> None:
        super()._reset()
        for name in ("weight_concentration_", "mean_precision_", "degrees_of_freedom_",
                     "_prior"):
            self.__dict__.pop(name, None)

    def _begin(self, d: int) -> None:
        super()._begin(d)
        self._batch_rows = 0.0

    def _stream_size(self, batch_n: float) -> float:
        """N: ``total_samples``, else the rows seen so far (with forgetting, at most
        its memory in rows)."""
        if self.total_samples is not None:
            return float(self.total_samples)
        n = self.n_samples_seen_
        if self.eta_min > 0:
            n = min(n, max(self._batch_rows, batch_n) / self.eta_min)
        return max(n, batch_n)

    def _commit(self, cov, mixed: SufficientStats, batch_n: float) -> None:
        """The posterior from running per-sample statistics ``mixed`` (the M-step on
        them scaled to the stream's size), then the statistics recentred where the next
        batch's are taken (the new posterior's E-step means)."""
        N = self._stream_size(batch_n)
        vp = m_step(cov, mixed.scaled(N / mixed.n), self._prior, self.reg_covar)
        e = e_step_params(vp)
        centre2 = tied_centre(e) if cov.name == "tied" else None
        self._running = recentred(mixed, e.means, centre2)
        self._set_state(vp)

    # ------------------------------------------------------------------ updates
    def _update(self, X, sw) -> None:
        """One SVI step; the model changes only at the end, after every step that could
        fail, so a failed update leaves it as it was."""
        cov = get_covariance_type(self.covariance_type)
        before = self._get_params_value()
        source = self._batch_source(X, sw)
        t = self.n_updates_ + 1
        eta = step_size(t, self.alpha, self.t0, self.eta_min)
        batch = checked_statistics(source, cov, before)
        if not batch.n > 0:
            return
        mixed, _ = blend_normalised(self._running, batch, eta)
        saved = self.__dict__.copy()
        try:
            self.n_samples_seen_ += float(batch.n)
            self._batch_rows = float(batch.n) if not self._batch_rows else \
                0.9 * self._batch_rows + 0.1 * float(batch.n)
            self._commit(cov, mixed, batch.n)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise
        self.n_updates_ = t
        self.eta_ = eta
        self.lower_bound_ = batch.mean_loglik
        self.lower_bounds_.append(batch.mean_loglik)
        if not self._track_switches(before.weights):  # no idle slot took the new data
            self._after_update(X, sw, before)
        self._history.record(t, self.component_ids_, self.weights_)
        if self.verbose and t % max(1, int(self.verbose)) == 0:
            print(f"  update {t:6d}  rho {eta:.4f}  batch mean score {batch.mean_loglik:.6f}"
                  f"  effective K {effective_components(self.weights_)}")

    def _revive_dead_components(self) -> None:
        """Nothing to revive: the prior switches components off on purpose; they are
        reused when new structure appears (``_after_update``)."""

    def _after_update(self, X, sw, before: GaussianParams) -> None:
        """Reuse a switched-off component for points no component explains, checked
        only when the batch's score dropped (as for the online mixture's births)."""
        h = self.lower_bounds_
        recent = np.asarray(h[-21:-1])
        sudden = len(recent) < 5 or h[-1] < recent.mean() - max(4 * recent.std(), 0.02)
        if not sudden:
            return
        threshold = self._min_weight()
        off = np.flatnonzero(self.weights_ < threshold)
        on = np.flatnonzero(before.weights >= threshold)
        if not len(off) or not len(on):
            return
        # novel for the components in use (an idle one, broad and nearly weightless,
        # would explain anything a little); the first idle slot is the best placed
        # on a Dirichlet process's sticks
        found = self._novel_points(X, sw, _subset(before, on))
        if found is not None:
            self._reseed(int(off[0]), found)

    def _reseed(self, j: int, found) -> None:
        """Give switched-off component j the novel points: its running statistics
        become theirs (at their share of the batch), then the posterior is recomputed."""
        pts, pw, share = found
        cov = get_covariance_type(self.covariance_type)
        run = self._running
        mean, scatter = gaussian_of(pts, pw, 0.0)
        s0, s1, s2 = run.s0.copy(), run.s1.copy(), run.s2.copy()
        others = np.arange(len(s0)) != j
        scale = (1.0 - share) / max(float(s0[others].sum()), 1e-300) * float(run.s0.sum())
        s0[others] *= scale
        s1[others] *= scale
        delta = mean - run.centres[j]
        t = cov.name
        total = float(run.s0.sum())
        s0[j] = share * total
        s1[j] = s0[j] * delta
        if t == "tied":  # the shared scatter, about its centre, takes the points' share
            c = mean - run.centre2
            s2 = (1.0 - share) * s2 + s0[j] * (scatter + np.outer(c, c))
        else:  # component j's second moment about its centre, in the type's shape
            s2[others] *= scale
            about = {"full": lambda M: M, "diag": np.diag, "spherical": np.trace}[t]
            s2[j] = s0[j] * about(scatter + np.outer(delta, delta))
        mixed = SufficientStats(t, s0, s1, s2, run.loglik, run.n, run.centres, run.centre2)
        self._commit(cov, mixed, float(len(pts)))
        old_id = int(self.component_ids_[j])
        new_id = self._new_id()
        self.component_ids_[j] = new_id
        self._event("death", component_id=old_id, weight=0.0,
                    reason="switched off by the prior; reused for novel points")
        self._event("birth", component_id=new_id, reason="novel points", share=share,
                    n_points=int(len(pts)))

    # ------------------------------------------------------------------ tracking
    def _permute_components(self, perm) -> None:
        """Renumber the components: their running statistics and ids move, and the
        posterior is recomputed from them (for a Dirichlet process the sticks' order is
        part of the prior, so the weights change slightly with the order)."""
        perm = np.asarray(perm)
        if sorted(perm.tolist()) != list(range(self.n_components)):
            raise InvalidParameterError(
                f"not a permutation of range({self.n_components}): {perm.tolist()}")
        cov = get_covariance_type(self.covariance_type)
        run = self._running
        mixed = SufficientStats(run.covariance_type, run.s0[perm].copy(),
                                np.ascontiguousarray(run.s1[perm]),
                                run.s2.copy() if run.covariance_type == "tied"
                                else np.ascontiguousarray(run.s2[perm]),
                                run.loglik, run.n, np.ascontiguousarray(run.centres[perm]),
                                run.centre2)
        self.component_ids_ = self.component_ids_[perm]
        self._commit(cov, mixed, self._batch_rows or 1.0)


def _subset(params: GaussianParams, keep: np.ndarray) -> GaussianParams:
    """The mixture of components ``keep`` only (its E-step constants unchanged)."""
    tied = params.covariance_type == "tied"
    return GaussianParams(
        params.covariance_type, params.weights[keep], np.ascontiguousarray(params.means[keep]),
        params.covariances if tied else np.ascontiguousarray(params.covariances[keep]),
        params.precisions_cholesky if tied
        else np.ascontiguousarray(params.precisions_cholesky[keep]),
        None if params.log_weights is None else params.log_weights[keep].copy())


__all__ = ["OnlineBayesianGaussianMixture"]
