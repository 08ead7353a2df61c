"""OnlineGaussianMixture: stepwise EM from a stream of batches, with component identities
that stay stable from one update to the next and from one run to the next."""

from __future__ import annotations

import math
import numbers
import time

import numpy as np

from ..engines import moves
from ..engines.em import run_em, statistics
from ..engines.init import initial_params
from ..engines.stepwise import (
    split_component,
    stats_from_params,
    step_size,
    stepwise_batch_update,
    stepwise_update,
)
from ..errors import InvalidInputError, InvalidParameterError, StreammixError
from ..execution.numpy_source import NumpySource
from ..execution.threads import default_n_threads
from ..math.covariances import get_covariance_type
from ..math.params import GaussianParams
from ..persistence.cadence import SaveCadence
from ..validation import (
    check_array,
    check_finite,
    check_float_param,
    check_int_param,
    check_random_state,
    check_sample_weight,
)
from ._mixture import MixtureMixin

ONLINE_INIT_METHODS = ("k-means++", "kmeans", "random", "random_from_data")


class OnlineGaussianMixture(MixtureMixin):
    """Gaussian mixture kept up to date from a stream by stepwise EM.

    Each ``partial_fit(X)`` computes the batch's statistics with the same kernels as
    batch EM, blends them into running per-sample statistics with step
    eta_t = max(eta_min, (t + t0)^-alpha), and runs the M-step (Cappé & Moulines 2009;
    Liang & Klein 2009).

    Parameters (scikit-learn's names where they apply):

    n_components, covariance_type, reg_covar, weights_init, means_init,
    precisions_init, random_state, verbose: as in ``GaussianMixture``.

    alpha : float in (0.5, 1], default 0.6. Step-size decay. 0.6 is the middle of the
        range Liang & Klein found best for stepwise EM: fast enough early, and still a
        Robbins-Monro schedule (sum eta = inf, sum eta^2 < inf) so the model converges on
        a stationary stream.
    t0 : float >= 0, default 2.0. Offset: the first update uses eta = (1 + t0)^-alpha
        (0.52 by default), so the first batch does not erase the initialisation. With
        alpha = 1 and t0 = 0 the first step is exactly one batch-EM iteration.
    eta_min : float in [0, 1), default 0. Floor on the step (a forgetting rate): with
        eta_min > 0 the model forgets exponentially, with a memory of about 1/eta_min
        batches, and follows a drifting stream.
    init_size : int, default max(1000, 10 * n_components * n_features). Samples buffered
        before initialising (when not all three ``*_init`` are given). The first calls
        only buffer; once init_size samples are held, the model is initialised on them
        with ``init_params`` and refined by ``init_em_iter`` batch EM iterations on the
        buffer, whose statistics become the running statistics. Then stepwise updates
        begin. If all three ``*_init`` are given, no buffering: the first batch is already
        a stepwise update.
    init_params : {'k-means++', 'kmeans', 'random', 'random_from_data'}, default
        'k-means++'.
    init_em_iter : int, default 10.
        Batch EM iterations on the initial buffer (tol 1e-3).
    min_weight : float, default 0.01 / n_components. A component whose weight falls below
        it is dead: it is re-seeded by splitting the heaviest component along its
        principal axis (a new component id, events 'death' and 'split').
    max_components : int, default n_components. With max_components > n_components the
        model may grow: when a batch holds at least ``novelty_fraction`` of points that lie
        outside every component's 99.99% ellipsoid, a new component is born on them.
    novelty_fraction : float, default 0.02.
        (See max_components.)
    split_merge : bool, default True. Let the stream change shape at full capacity: when
        a batch holds novel points and no slot is free, the most redundant pair of
        components is merged (moment-matched) and a component is born on the novel
        points; a component whose points show two modes is split (into a free slot, or
        while a redundant pair is merged); a redundant pair may be merged alone; a dead
        component is removed. A move is made only when it pays more than 2% of a nat
        per sample of the batch (BIC-penalised for a change in the number of
        components), and not within 10 updates of the last. Cheap when nothing
        happens: novelty is checked only when the batch's log-likelihood drops, and
        splits and merges are searched on a schedule whose gap doubles (10 to 640
        updates) while none is found, and at once after a drop or a steady decline.
        Events 'merge', 'split', 'birth', 'death'.
    chunk_size : rows per kernel task inside a batch (default: the batch split evenly
        over the threads).

    Regularisation: reg_covar on the diagonal, as in batch EM, keeps every covariance
    positive definite however small a component's share becomes; no extra shrinkage prior
    is needed because components under ``min_weight`` are re-seeded before their
    statistics degenerate (and a collapsed covariance is repaired with diagonal loading
    and a DegenerateComponentWarning, as in batch EM).

    Attributes: ``weights_``, ``means_``, ``covariances_``, ``precisions_``,
    ``precisions_cholesky_``, ``n_features_in_``, ``n_updates_`` (stepwise updates done),
    ``n_samples_seen_``, ``eta_`` (last step), ``lower_bound_`` (mean log-likelihood of the
    last batch before its update), ``lower_bounds_`` (that value for every update),
    ``component_ids_`` (persistent integer id of each component, never reused),
    ``events_`` (births, deaths, splits, with the update count).
    """

    def __init__(self, n_components=1, *, covariance_type="full", reg_covar=1e-6, alpha=0.6,
                 t0=2.0, eta_min=0.0, init_size=None, init_params="k-means++",
                 init_em_iter=10, weights_init=None, means_init=None, precisions_init=None,
                 min_weight=None, max_components=None, novelty_fraction=0.02,
                 split_merge=True, random_state=None, verbose=0, chunk_size=None):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.alpha = alpha
        self.t0 = t0
        self.eta_min = eta_min
        self.init_size = init_size
        self.init_params = init_params
        self.init_em_iter = init_em_iter
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.min_weight = min_weight
        self.max_components = max_components
        self.novelty_fraction = novelty_fraction
        self.split_merge = split_merge
        self.random_state = random_state
        self.verbose = verbose
        self.chunk_size = chunk_size

    # ------------------------------------------------------------------ validation
    _CHECKED_PARAMS = ("n_components", "covariance_type", "reg_covar", "alpha", "t0",
                       "eta_min", "init_size", "init_params", "init_em_iter", "min_weight",
                       "max_components", "novelty_fraction", "split_merge", "chunk_size")

    def _check_parameters(self) -> None:
        """Validate the constructor parameters; skipped when they are the ones that last
        passed (partial_fit runs this on every batch, and its dozen checks were a few
        percent of a small update)."""
        values = tuple([getattr(self, name) for name in self._CHECKED_PARAMS])
        types = tuple(map(type, values))
        passed = self.__dict__.get("_checked_parameters")
        # same types as values that passed, so all scalars: == is safe and exact
        if passed is not None and passed[0] == types and passed[1] == values:
            return
        self._check_parameters_now()
        scalars = all(isinstance(v, (numbers.Number, str, type(None))) for v in values)
        self._checked_parameters = (types, values) if scalars else None

    def _check_parameters_now(self) -> None:
        check_int_param(self.n_components, "n_components", 1)
        get_covariance_type(self.covariance_type)
        check_float_param(self.reg_covar, "reg_covar", 0.0)
        alpha = check_float_param(self.alpha, "alpha", 0.0)
        if not 0.5 < alpha <= 1.0:
            raise InvalidParameterError(
                f"alpha must be in (0.5, 1] (Robbins-Monro step sizes); got {alpha}"
            )
        check_float_param(self.t0, "t0", 0.0)
        eta_min = check_float_param(self.eta_min, "eta_min", 0.0)
        if eta_min >= 1.0:
            raise InvalidParameterError(f"eta_min must be in [0, 1); got {eta_min}")
        if self.init_size is not None:
            check_int_param(self.init_size, "init_size", 1)
        if self.init_params not in ONLINE_INIT_METHODS:
            raise InvalidParameterError(
                f"init_params must be one of {list(ONLINE_INIT_METHODS)}; got "
                f"{self.init_params!r}"
            )
        check_int_param(self.init_em_iter, "init_em_iter", 0)
        if self.min_weight is not None:
            mw = check_float_param(self.min_weight, "min_weight", 0.0)
            if mw >= 1.0 / self.n_components:
                raise InvalidParameterError(
                    f"min_weight must be below 1 / n_components = {1 / self.n_components:.4g}"
                )
        if self.max_components is not None:
            check_int_param(self.max_components, "max_components", self.n_components)
        nf = check_float_param(self.novelty_fraction, "novelty_fraction", 0.0, strict=True)
        if nf >= 1.0:
            raise InvalidParameterError(f"novelty_fraction must be in (0, 1); got {nf}")
        if not isinstance(self.split_merge, (bool, np.bool_)):
            raise InvalidParameterError(
                f"split_merge must be True or False; got {self.split_merge!r}")
        if self.chunk_size is not None:
            check_int_param(self.chunk_size, "chunk_size", 1)

    @property
    def _initialised(self) -> bool:
        return hasattr(self, "means_")

    # ------------------------------------------------------------------ public API
    def partial_fit(self, X, y=None, sample_weight=None):
        """Update the model with one batch (stepwise EM), or buffer it until ``init_size``
        samples allow initialisation. An empty batch is a no-op. A batch with NaN/inf, a
        wrong feature count or bad weights is rejected whole and the model is unchanged."""
        self._check_parameters()
        if hasattr(X, "shape") and len(X.shape) == 2 and X.shape[0] == 0:
            if hasattr(self, "n_features_in_") and X.shape[1] != self.n_features_in_:
                check_array(np.zeros((1, X.shape[1])), n_features=self.n_features_in_,
                            estimator=type(self).__name__)
            return self
        if isinstance(X, (list, tuple)) and len(X) == 0:
            return self
        n_features = getattr(self, "n_features_in_", None)
        if n_features is None and getattr(self, "_buffer", None):
            n_features = self._buffer[0].shape[1]
        if not self._initialised:
            X = check_array(X, n_features=n_features, estimator=type(self).__name__)
            self._buffer_batch(X, check_sample_weight(sample_weight, X.shape[0]))
            return self
        # the NaN/inf scan is left to the update's kernels (see stepwise_batch_update)
        X = check_array(X, n_features=n_features, finite=False,
                        estimator=type(self).__name__)
        try:
            sw = check_sample_weight(sample_weight, X.shape[0])
        except StreammixError:
            check_finite(X)  # bad values are reported before bad weights, as in fit
            raise
        self._update(X, sw)
        return self

    def fit(self, source, y=None, n_passes: int = 1, shuffle: bool = False,
            checkpoint=None, checkpoint_every: int = 1, keep_last: int = 3,
            checkpoint_interval: float | None = None):
        """Start afresh and learn from ``source``: an iterable of 2-D arrays (batches),
        a dask array, a zarr array or a path/URL to one (one batch per row-chunk), or a
        single in-memory array (split into batches of ``init_size`` rows). ``n_passes``
        passes over it; ``shuffle`` visits the batches of each pass in an order drawn
        from random_state (sequences and arrays only; an iterator is read in order).

        ``checkpoint``: save the model and the stream cursor (pass, batch) every
        ``checkpoint_every`` batches and at the end. Calling fit again with the same
        checkpoint resumes after the last saved batch: after a crash every batch is
        counted exactly once (the batches after the last save are redone from the state
        saved before them). A finished checkpoint returns at once.
        ``checkpoint_interval`` (seconds): save no sooner than that after the last save,
        nor before 20 times the last save's duration (None: every ``checkpoint_every``
        batches exactly). A checkpoint whose pointer was lost continues from its newest
        version that verifies.
        """
        self._check_parameters()
        check_int_param(n_passes, "n_passes", 1)
        check_int_param(checkpoint_every, "checkpoint_every", 1)
        if checkpoint_interval is not None:
            check_float_param(checkpoint_interval, "checkpoint_interval", 0.0)
        rng = check_random_state(self.random_state)
        loaders = self._batch_loaders(source)
        n = len(loaders) if loaders is not None else None
        orders = [list(rng.permutation(n)) if (shuffle and n is not None) else None
                  for _ in range(n_passes)]
        if shuffle and n is None:
            raise InvalidParameterError(
                "shuffle=True needs a list/tuple of batches or an array; an iterator can "
                "only be read in order"
            )
        writer = None
        start_pass, start_batch = 0, 0
        self._reset()
        cadence = SaveCadence(checkpoint_every, checkpoint_interval)
        if checkpoint is not None:
            from ..persistence import CheckpointWriter
            writer = CheckpointWriter(checkpoint, keep_last=keep_last)
            try:
                found = writer.resume()
                if found is not None:
                    start_pass, start_batch = self._restore_for_resume(checkpoint, n_passes,
                                                                       found)
            except BaseException:
                writer.close()
                raise
        try:
            for p in range(start_pass, n_passes):
                batches = self._ordered_batches(source, loaders, orders[p])
                for b, load in enumerate(batches):
                    if p == start_pass and b < start_batch:
                        continue
                    self.partial_fit(load())
                    self.stream_cursor_ = {"pass": p, "batch": b + 1, "done": False}
                    if cadence.step() and writer is not None:
                        started = time.monotonic()
                        self._save_with(writer)
                        cadence.saved(started)
            self._finish_init_if_buffered()
            self.stream_cursor_ = {"pass": n_passes, "batch": 0, "done": True}
            if writer is not None:
                self._save_with(writer)
        finally:
            if writer is not None:
                writer.close()
        return self

    def _save_with(self, writer) -> None:
        from ..persistence import model_to_payload

        writer.save(*model_to_payload(self))

    def _restore_for_resume(self, checkpoint, n_passes, found) -> tuple[int, int]:
        """Load the checkpoint's state (``found``: arrays, metadata, version) into self;
        return the (pass, batch) to resume at."""
        from ..errors import CheckpointMismatchError
        from ..persistence import model_from_payload

        saved = model_from_payload(found[0], found[1]["state"])
        if type(saved) is not type(self):
            raise CheckpointMismatchError(
                f"checkpoint {checkpoint!r} holds a {type(saved).__name__}, not an "
                "OnlineGaussianMixture"
            )
        mine = {k: v for k, v in self.get_params().items() if not k.endswith("_init")}
        theirs = {k: v for k, v in saved.get_params().items() if not k.endswith("_init")}
        diffs = [k for k in mine if k not in ("verbose", "chunk_size")
                 and not _same_value(mine[k], theirs[k])]
        if diffs:
            raise CheckpointMismatchError(
                f"checkpoint {checkpoint!r} was written with other parameters ({diffs}); "
                "use another path or the same parameters"
            )
        self.__dict__.update({k: v for k, v in saved.__dict__.items()
                              if k not in self.get_params()})
        cursor = getattr(saved, "stream_cursor_", None) or {"pass": 0, "batch": 0}
        if cursor.get("done"):
            return n_passes, 0
        return int(cursor["pass"]), int(cursor["batch"])

    # ------------------------------------------------------------------ batches
    def _batch_loaders(self, source):
        """A list of zero-argument loaders (one per batch) for indexable sources, so that
        skipped batches are never read; None for one-shot iterables."""
        from ..execution.inputs import as_dask_array, is_lazy_input

        if is_lazy_input(source):
            Xd = as_dask_array(source)
            starts = np.concatenate([[0], np.cumsum(Xd.chunks[0])]).astype(int)
            return [(lambda a=a, b=b: np.asarray(Xd[a:b].compute(scheduler="threads")))
                    for a, b in zip(starts[:-1], starts[1:])]
        if isinstance(source, np.ndarray):
            size = self._init_size(source.shape[1] if source.ndim == 2 else 1)
            return [(lambda a=a: source[a:a + size]) for a in range(0, len(source), size)]
        if isinstance(source, (list, tuple)):
            return [(lambda x=x: x) for x in source]
        return None

    @staticmethod
    def _ordered_batches(source, loaders, order):
        if loaders is None:
            return ((lambda x=x: x) for x in source)
        if order is None:
            return loaders
        return [loaders[i] for i in order]

    def _init_size(self, d: int) -> int:
        if self.init_size is not None:
            return int(self.init_size)
        return max(1000, 10 * self.n_components * d)

    def _reset(self) -> None:
        for name in ("weights_", "means_", "covariances_", "precisions_",
                     "precisions_cholesky_", "n_features_in_", "_running", "_buffer",
                     "_buffer_weights", "stream_cursor_"):
            if hasattr(self, name):
                delattr(self, name)

    def _buffer_batch(self, X, sw) -> None:
        if not hasattr(self, "_buffer"):
            self._buffer, self._buffer_weights = [], []
        if self._all_inits_given():
            self._start_from_inits(X.shape[1])
            self._update(X, sw)
            return
        self._buffer.append(np.array(X, dtype=np.float64))
        self._buffer_weights.append(np.ones(len(X)) if sw is None else sw)
        if sum(len(b) for b in self._buffer) >= self._init_size(X.shape[1]):
            self._initialise_from_buffer()

    def _finish_init_if_buffered(self) -> None:
        """At the end of fit: initialise on what was buffered if the stream was short."""
        if not self._initialised and getattr(self, "_buffer", None):
            n = sum(len(b) for b in self._buffer)
            if n < self.n_components:
                raise InvalidInputError(
                    f"the stream held {n} samples but n_components={self.n_components}: "
                    "need n_samples >= n_components to initialise"
                )
            self._initialise_from_buffer()

    def _all_inits_given(self) -> bool:
        return (self.weights_init is not None and self.means_init is not None
                and self.precisions_init is not None)

    # ------------------------------------------------------------------ initialisation
    def _begin(self, d: int) -> None:
        self.n_features_in_ = d
        self.n_updates_ = 0
        self.n_samples_seen_ = 0.0
        self.eta_ = None
        self.lower_bound_ = -np.inf
        self.lower_bounds_ = []
        self.component_ids_ = np.arange(self.n_components, dtype=np.int64)
        self.events_ = [{"update": 0, "event": "birth", "component_id": int(i),
                         "reason": "initialisation"} for i in range(self.n_components)]
        self._next_id = self.n_components
        self._rng = check_random_state(self.random_state)
        self._history = WeightHistory()
        self._search = {"at": self.MOVE_EVERY, "gap": self.MOVE_EVERY, "loglik": -np.inf}

    def _start_from_inits(self, d: int) -> None:
        cov = get_covariance_type(self.covariance_type)
        w, m, p = self._checked_inits(d)
        prec_chol = cov.precision_cholesky_from_precisions(p)
        params = GaussianParams(cov.name, w.copy(), np.ascontiguousarray(m),
                                cov.covariances_from_precision_cholesky(prec_chol), prec_chol)
        self._begin(d)
        self._set_params_value(params)
        # the given parameters count as the running state, so the first step blends with
        # them by eta_1 as documented (with eta_1 = 1 it is one batch-EM iteration)
        self._set_running_from_params()

    def _initialise_from_buffer(self) -> None:
        X = np.concatenate(self._buffer)
        sw = np.concatenate(self._buffer_weights)
        sw = None if np.all(sw == 1.0) else sw
        if X.shape[0] < self.n_components:
            return  # keep buffering
        d = X.shape[1]
        cov = get_covariance_type(self.covariance_type)
        self._begin(d)
        w, m, p = self._checked_inits(d)
        source = NumpySource(X, sw)
        params = initial_params(source, cov, self.n_components, init_params=self.init_params,
                                reg_covar=self.reg_covar, rng=self._rng, weights_init=w,
                                means_init=m, precisions_init=p)
        if self.init_em_iter:
            params = run_em(source, cov, params, tol=1e-3, max_iter=self.init_em_iter,
                            reg_covar=self.reg_covar).params
        batch = statistics(source, cov, params)
        result = stepwise_update(cov, None, batch, 1.0, self.reg_covar)
        self._running = result.running
        self._set_params_value(result.params)
        self.n_samples_seen_ = float(batch.n)
        self.lower_bound_ = batch.mean_loglik
        del self._buffer, self._buffer_weights
        self._revive_dead_components()

    # ------------------------------------------------------------------ updates
    def _batch_source(self, X, sw) -> NumpySource:
        rows = self.chunk_size or max(1024, math.ceil(X.shape[0] / default_n_threads()))
        return NumpySource(X, sw, rows)

    def _update(self, X, sw) -> None:
        """One stepwise update; all state changes happen at the end, after every step
        that could fail, so a failed update leaves the model as it was."""
        cov = get_covariance_type(self.covariance_type)
        params = self._get_params_value()
        source = self._batch_source(X, sw)
        t = self.n_updates_ + 1
        eta = step_size(t, self.alpha, self.t0, self.eta_min)
        batch, result = stepwise_batch_update(source, cov, params, self._running, eta,
                                              self.reg_covar)
        if result is None:  # the batch weighs nothing
            return
        # commit
        self._running = result.running
        self._set_params_value(result.params)
        self.n_updates_ = t
        self.eta_ = eta
        self.n_samples_seen_ += float(batch.n)
        self.lower_bound_ = batch.mean_loglik
        self.lower_bounds_.append(batch.mean_loglik)
        self._revive_dead_components()
        self._after_update(X, sw, params)
        self._history.record(t, self.component_ids_, self.weights_)
        if self.verbose and t % max(1, int(self.verbose)) == 0:
            print(f"  update {t:6d}  eta {eta:.4f}  batch mean log-lik {batch.mean_loglik:.6f}"
                  f"  K {len(self.weights_)}")

    def _max_components(self) -> int:
        return self.n_components if self.max_components is None else int(self.max_components)

    def _min_weight(self) -> float:
        K = len(self.weights_)
        return 0.01 / K if self.min_weight is None else float(self.min_weight)

    def _event(self, event: str, **info) -> None:
        self.events_.append({"update": int(self.n_updates_), "event": event, **info})

    def _new_id(self) -> int:
        i = self._next_id
        self._next_id += 1
        return i

    def _set_running_from_params(self) -> None:
        cov = get_covariance_type(self.covariance_type)
        self._running = stats_from_params(cov, self._get_params_value(), 1.0, self.reg_covar)

    def _revive_dead_components(self) -> None:
        """Re-seed every component under min_weight by splitting the heaviest one; with
        split_merge, remove it instead (its slot free for a birth; a split, if the data
        ask for one, is found by the moves)."""
        threshold = self._min_weight()
        if len(self.weights_) < 2 or self.weights_.min() >= threshold:
            return  # the common case, without the loop's array work
        if self.split_merge:
            self._remove_dead_components(threshold)
            return
        cov = get_covariance_type(self.covariance_type)
        changed = False
        for _ in range(len(self.weights_)):
            dead = np.flatnonzero(self.weights_ < threshold)
            if not len(dead) or len(self.weights_) < 2:
                break
            j = int(dead[0])
            heavy = int(np.argmax(self.weights_))
            old_id = int(self.component_ids_[j])
            params = split_component(cov, self._get_params_value(), j, heavy, self.reg_covar)
            self._set_params_value(params)
            new_id = self._new_id()
            self.component_ids_[j] = new_id
            self._event("death", component_id=old_id, weight=float(self.weights_[j]),
                        reason=f"weight below min_weight={threshold:.3g}")
            self._event("split", component_id=int(self.component_ids_[heavy]),
                        new_component_id=new_id)
            self._event("birth", component_id=new_id, reason="split",
                        parent_id=int(self.component_ids_[heavy]))
            changed = True
        if changed:
            self._set_running_from_params()

    def _after_update(self, X, sw, before: GaussianParams) -> None:
        """Births and moves after a committed update. Cheap unless the batch asks: the
        batch's points are checked for novelty only when its log-likelihood fell (a
        sudden drop), against the model that saw it (``before``: an update may already
        have stretched a neighbour over new points); moves are searched on a schedule
        whose gap doubles while nothing is found (10 to 640 updates), and at once after
        a drop or a sustained decline of the log-likelihood."""
        h = self.lower_bounds_
        recent = np.asarray(h[-21:-1])
        sudden = len(recent) < 5 or h[-1] < recent.mean() - max(4 * recent.std(), 0.02)
        full = len(self.weights_) >= self._max_components()
        novel = None
        if sudden and (not full or self.split_merge):
            novel = self._novel_points(X, sw, before)
        if novel is not None and not full:
            self._birth(novel)
            return
        if not self.split_merge or len(self.weights_) < 2:
            return
        t = self.n_updates_
        state = self._search
        declined = len(h) >= 5 and np.mean(h[-5:]) < state["loglik"] - max(
            0.05, 2 * float(np.std(h[-5:])))
        search = t >= state["at"] or sudden or declined
        if novel is None and not search:
            return
        moved = self._maybe_move(X, sw, novel if full else None, search)
        if search or moved:
            state["gap"] = self.MOVE_EVERY if moved or sudden or declined \
                else min(2 * state["gap"], self.MAX_SEARCH_GAP)
            state["at"] = t + state["gap"]
            state["loglik"] = float(np.mean(h[-5:]))

    def _novel_points(self, X, sw, params: GaussianParams | None = None):
        """(points, weights, share) of the batch's points no component of ``params``
        (default: the model's) explains (outside every component's 99.99% ellipsoid),
        when they are at least novelty_fraction of the batch; else None."""
        cov = get_covariance_type(self.covariance_type)
        params = self._get_params_value() if params is None else params
        d = params.n_features
        logprob, _, _ = cov.chunk_outputs(X, params, False)
        log_det = np.broadcast_to(cov.log_det_cholesky(params.precisions_cholesky, d),
                                  (params.n_components,))
        from scipy.stats import chi2  # (85 MB of RSS: imported only when needed)

        # log p(x) below this implies Mahalanobis^2 > chi2_{0.9999}(d) for every component
        log_w = np.log(params.weights) if params.log_weights is None else params.log_weights
        tau = np.min(log_w + log_det - 0.5 * d * math.log(2 * math.pi)
                     - 0.5 * chi2.ppf(0.9999, d))
        novel = logprob < tau
        w = np.ones(len(X)) if sw is None else sw
        share = float(w[novel].sum() / w.sum())
        if share < self.novelty_fraction or novel.sum() < max(2 * d, 10):
            return None
        return np.asarray(X[novel], dtype=np.float64), w[novel], share

    def _remove_dead_components(self, threshold: float) -> None:
        """Drop the components under ``threshold`` (at least one component stays)."""
        params = self._get_params_value()
        dead = [j for j in np.flatnonzero(params.weights < threshold)]
        keep = [j for j in range(len(params.weights)) if j not in dead]
        if not keep:
            keep = [int(np.argmax(params.weights))]
            dead = [j for j in dead if j != keep[0]]
        for j in dead:
            self._event("death", component_id=int(self.component_ids_[j]),
                        weight=float(params.weights[j]),
                        reason=f"weight below min_weight={threshold:.3g}")
        w = params.weights[keep]
        t = params.covariance_type
        covs = params.covariances if t == "tied" else params.covariances[keep]
        prec = params.precisions_cholesky if t == "tied" else params.precisions_cholesky[keep]
        self._set_params_value(GaussianParams(t, w / w.sum(),
                                              np.ascontiguousarray(params.means[keep]),
                                              covs, prec))
        self.component_ids_ = self.component_ids_[keep]
        self._set_running_from_params()

    def _birth(self, found) -> None:
        """Add a component on the novel points ``found`` (see _novel_points)."""
        pts, pw, share = found
        cov = get_covariance_type(self.covariance_type)
        params = self._get_params_value()
        d = params.n_features
        mean, full_cov = moves.gaussian_of(pts, pw, self.reg_covar)
        t = params.covariance_type
        if t == "full":
            new_cov = np.concatenate([params.covariances, full_cov[None]])
        elif t == "diag":
            new_cov = np.vstack([params.covariances, np.diag(full_cov)])
        elif t == "spherical":
            new_cov = np.append(params.covariances, np.trace(full_cov) / d)
        else:
            new_cov = params.covariances
        weights = np.append(params.weights * (1.0 - share), share)
        means = np.ascontiguousarray(np.vstack([params.means, mean]))
        prec_chol, new_cov = cov.precision_cholesky(new_cov, self.reg_covar)
        self._set_params_value(GaussianParams(t, weights, means, new_cov,
                                              np.ascontiguousarray(prec_chol)))
        new_id = self._new_id()
        self.component_ids_ = np.append(self.component_ids_, new_id)
        self._event("birth", component_id=new_id, reason="novel points",
                    share=share, n_points=int(len(pts)))
        self._set_running_from_params()

    # ------------------------------------------------------------------ moves
    #: updates between two moves at least, and between two searches for a split or merge
    MOVE_COOLDOWN, MOVE_EVERY, MAX_SEARCH_GAP, MOVE_MARGIN = 10, 10, 640, 0.02

    def _maybe_move(self, X, sw, found, search: bool) -> bool:
        """A birth on the novel points ``found`` paid for by a merge (at full capacity),
        or, when ``search``, a split (into a free slot, or paid for by a merge) or a
        merge alone (see ``split_merge``), when one pays; whether one was made."""
        last = max((e["update"] for e in self.events_ if e["event"] in ("merge", "split")),
                   default=-10**9)
        if self.n_updates_ - last < self.MOVE_COOLDOWN:
            return False
        cov = get_covariance_type(self.covariance_type)
        params = self._get_params_value()
        w = np.ones(len(X)) if sw is None else sw
        n = float(w.sum())
        margin = max(10.0, self.MOVE_MARGIN * n)
        base = moves.batch_loglik(cov, params, X, sw)
        pairs = moves.merge_costs(params)[:3]
        full = len(params.weights) >= self._max_components()
        best = None  # (gain, kind, detail, params)
        if found is not None:
            pts, pw, share = found
            mean, S = moves.gaussian_of(pts, pw, self.reg_covar)
            for _, i, j in pairs:
                kept, gone = moves.heavier_first(params.weights, i, j)
                cand = moves.with_component(cov, moves.merged(cov, params, kept, gone,
                                                              self.reg_covar),
                                            share, mean, S, self.reg_covar)
                gain = moves.batch_loglik(cov, cand, X, sw) - base
                if best is None or gain > best[0]:
                    best = (gain, "birth", (i, j, share, len(pts)), cand)
        elif search:
            # a two-component fit only for the (at most 3) components whose points look
            # least Gaussian along their principal axis
            fits = moves.bimodal_fits(cov, params, X, w, self.reg_covar, screen=3)
            penalty = moves.bic_penalty(
                moves.component_params(params.n_features, params.covariance_type), n)
            # a split's worth is what two Gaussians gain over one fresh Gaussian on the
            # component's own points (fit[3]): its bimodality, not how stale the
            # component is (stepwise EM with a memory lags a moving cluster)
            if fits and not full:  # a free slot: a split alone, paying for its parameters
                local, k, fit = fits[0]
                cand = moves.split(cov, params, k, _heavier_first(fit), self.reg_covar)
                best = (local - penalty, "split", (k,), cand)
            for local, k, fit in (fits[:2] if full else []):  # a split paid for by a merge
                for _, i, j in [p for p in moves.merge_costs(params) if k not in p[1:]][:3]:
                    after, cand = moves.merge_then_split(cov, params, i, j, k,
                                                         _heavier_first(fit), self.reg_covar)
                    gain = moves.batch_loglik(cov, after, X, sw) - base + local
                    if best is None or gain > best[0]:
                        best = (gain, "split", (i, j, k), cand)
            if pairs:
                _, i, j = pairs[0]
                cand = moves.merged(cov, params, i, j, self.reg_covar)
                gain = moves.batch_loglik(cov, cand, X, sw) - base + penalty
                if best is None or gain > best[0]:
                    best = (gain, "merge", (i, j), cand)
        if best is None or best[0] <= margin:
            return False
        self._apply_move(best)
        return True

    def _apply_move(self, move) -> None:
        """Commit a move found by _maybe_move: parameters, ids, events."""
        gain, kind, detail, _ = move
        params = self._get_params_value()
        ids = list(int(c) for c in self.component_ids_)
        if kind == "split" and len(detail) == 1:  # a split into a free slot
            k, new_id = detail[0], self._new_id()
            ids.append(new_id)
            self._event("split", component_id=ids[k], new_component_id=new_id,
                        gain=float(gain))
            self._event("birth", component_id=new_id, reason="split", parent_id=ids[k])
            self._set_params_value(move[3])
            self.component_ids_ = np.asarray(ids, dtype=self.component_ids_.dtype)
            self._set_running_from_params()
            return
        i, j = detail[0], detail[1]
        kept, gone = moves.heavier_first(params.weights, i, j)
        cov = get_covariance_type(self.covariance_type)

        new = moves.merged(cov, params, kept, gone, self.reg_covar)
        merged_away = ids.pop(gone)
        self._event("merge", component_id=ids[kept - (kept > gone)],
                    merged_id=merged_away, gain=float(gain),
                    reason={"birth": "a slot for novel points",
                            "split": "a slot for a split", "merge": "redundant"}[kind])
        if kind == "birth":
            _, _, share, n_points = detail
            new = move[3]
            new_id = self._new_id()
            ids.append(new_id)
            self._event("birth", component_id=new_id, reason="novel points", share=share,
                        n_points=int(n_points))
        elif kind == "split":
            k = detail[2] - (detail[2] > gone)
            new = move[3]
            new_id = self._new_id()
            ids.append(new_id)
            self._event("split", component_id=ids[k], new_component_id=new_id)
            self._event("birth", component_id=new_id, reason="split", parent_id=ids[k])
        self._set_params_value(new)
        self.component_ids_ = np.asarray(ids, dtype=self.component_ids_.dtype)
        self._set_running_from_params()

    # ------------------------------------------------------------------ tracking
    def _permute_components(self, perm) -> None:
        perm = np.asarray(perm)
        super()._permute_components(perm)
        self.component_ids_ = self.component_ids_[perm]
        if getattr(self, "_running", None) is not None:
            self._set_running_from_params()


def _same_value(a, b) -> bool:
    """Parameter equality that also holds for arrays (a prior's mean, say)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a is not None and b is not None and np.array_equal(a, b)
    return a == b


class WeightHistory:
    """Each component's weight after some updates, for the report's timeline: every
    ``stride``-th update, at most ``MAX`` rows (when full, every other row goes and the
    stride doubles), so it stays small however long the stream."""

    MAX = 512

    def __init__(self, stride: int = 1, updates=None, ids=None, weights=None):
        self.stride = stride
        self.updates: list[int] = list(updates if updates is not None else [])
        self.ids: list[np.ndarray] = list(ids if ids is not None else [])
        self.weights: list[np.ndarray] = list(weights if weights is not None else [])

    def record(self, update: int, ids: np.ndarray, weights: np.ndarray) -> None:
        if update % self.stride:
            return
        self.updates.append(int(update))
        self.ids.append(np.array(ids, dtype=np.int64))
        self.weights.append(np.array(weights, dtype=np.float64))
        if len(self.updates) > self.MAX:
            keep = [i for i, u in enumerate(self.updates) if u % (2 * self.stride) == 0]
            self.updates = [self.updates[i] for i in keep]
            self.ids = [self.ids[i] for i in keep]
            self.weights = [self.weights[i] for i in keep]
            self.stride *= 2

    def by_component(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """{component id: (updates, weights)} over the recorded updates."""
        out: dict = {}
        for u, ids, w in zip(self.updates, self.ids, self.weights):
            for i, x in zip(ids, w):
                out.setdefault(int(i), ([], []))
                out[int(i)][0].append(u)
                out[int(i)][1].append(x)
        return {i: (np.asarray(u), np.asarray(w)) for i, (u, w) in out.items()}

    def to_arrays(self) -> dict[str, np.ndarray]:
        width = max((len(i) for i in self.ids), default=0)
        ids = np.full((len(self.ids), width), -1, dtype=np.int64)
        weights = np.full((len(self.ids), width), np.nan)
        for r, (i, w) in enumerate(zip(self.ids, self.weights)):
            ids[r, :len(i)], weights[r, :len(w)] = i, w
        return {"history.updates": np.asarray(self.updates, dtype=np.int64),
                "history.ids": ids, "history.weights": weights}

    @classmethod
    def from_arrays(cls, arrays: dict, stride: int) -> "WeightHistory":
        ids, weights = arrays["history.ids"], arrays["history.weights"]
        keep = [row >= 0 for row in ids]
        return cls(stride, [int(u) for u in arrays["history.updates"]],
                   [row[k] for row, k in zip(ids, keep)],
                   [row[k] for row, k in zip(weights, keep)])


def _heavier_first(fit):
    """A two_component_fit with its heavier component first (it keeps the id)."""
    w, mu, S, gain = fit
    if w[0] >= w[1]:
        return fit
    return w[::-1].copy(), mu[::-1].copy(), S[::-1].copy(), gain
