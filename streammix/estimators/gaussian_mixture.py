"""GaussianMixture: scikit-learn's estimator, computed chunk by chunk with numba kernels."""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np

from ..engines.em import EMResult, IterationInfo, run_em
from ..engines.init import INIT_METHODS, initial_params
from ..errors import (
    CheckpointMismatchError,
    ConvergenceWarning,
    InvalidInputError,
    InvalidParameterError,
)
from ..execution.dask_source import client_scope
from ..execution.inputs import as_source
from ..kernels.blas import single_threaded_blas
from ..math.covariances import get_covariance_type
from ..math.matching import match_components, permute_params
from ..persistence.cadence import SaveCadence
from ..persistence.store import CheckpointWriter
from ..validation import (
    check_float_param,
    check_int_param,
    check_random_state,
)
from ._mixture import MixtureMixin
from ._resume import FitProgress, check_resumable, progress_from_payload, progress_payload


class GaussianMixture(MixtureMixin):
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
    - ``split_merge=True`` (default None: off, so the result is scikit-learn's): after EM
      converges, try split-and-merge moves (Ueda et al. 2000): merge a redundant pair
      (moment-matched) and split a component whose points show two modes, both judged
      on a sample of at most 20,000 rows, then run EM from the best few candidates on
      all the data and keep one only if its converged lower bound is higher; repeat
      until no move improves (at most n_components moves). A fit stuck with two
      components on one cluster and one on two escapes that optimum. Not with
      ``checkpoint=`` (refused).
    - ``chunk_size``: rows per chunk (default: about 4 MiB of data for numpy input, the
      array's own chunks for Dask/Zarr input). The result depends on the chunking only
      to rounding; the same chunking gives the same bits.
    - ``init_params='kmeans'`` runs our k-means (k-means|| seeding over all rows, then
      Lloyd over all rows, both chunk by chunk), not scikit-learn's KMeans, so the
      initial means differ from scikit-learn's for the same seed; 'k-means++' picks its
      seeds from a uniform sample of at most 50,000 rows. As in scikit-learn, ``means_init`` alone
      replaces only the means: weights and covariances still come from
      ``init_params`` (its clusters paired with the given means by index), which
      draws from ``random_state``, so set it for reproducible bits.
    - A component whose covariance stops being positive definite (a collapsed or empty
      component) is kept with extra diagonal loading and a DegenerateComponentWarning,
      where scikit-learn raises "ill-defined empirical covariance". An empty component
      keeps its previous mean (scikit-learn moves it to the origin).
    - ``fit`` does not run the extra final E-step scikit-learn runs (it only serves
      ``fit_predict``, which does its own prediction pass).
    - ``estep_dtype='float32'`` (default None: float64, scikit-learn's arithmetic): for
      'full' covariances, the E-step's matrix products in the fit's passes run in single
      precision (rows centred on each component's mean in float64 first; every
      statistic still summed in float64): 1.3-1.8x faster per iteration (more with d),
      with parameters that differ from the float64 fit's by about 1e-6 relative where
      scikit-learn's and the float64 fit's differ by 1e-12 (docs/performance.md). Below
      d = 32 with n_components >= d/2 the passes stay float64, which is faster there.
      Predictions and scores stay float64. Values (or distances from the means) past
      float32's range raise InvalidInputError.
    """

    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans", weights_init=None,
                 means_init=None, precisions_init=None, random_state=None, warm_start=False,
                 verbose=0, verbose_interval=10, chunk_size=None, client=None,
                 split_merge=None, estep_dtype=None):
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
        self.split_merge = split_merge
        self.estep_dtype = estep_dtype

    # ------------------------------------------------------------------ validation
    def _check_parameters(self) -> None:
        check_int_param(self.n_components, "n_components", 1)
        get_covariance_type(self.covariance_type, self.estep_dtype)
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

    def _validate_fit_data(self, X, sample_weight, client):
        source = as_source(X, sample_weight, chunk_size=self.chunk_size, client=client)
        n = source.n_samples
        if n < 2:
            raise InvalidInputError(
                f"X has {n} sample; at least 2 are needed to fit a Gaussian mixture"
            )
        if n < self.n_components:
            raise InvalidInputError(
                f"Expected n_samples >= n_components but got n_components = "
                f"{self.n_components}, n_samples = {n} (use fewer components or more data)"
            )
        return source

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, sample_weight=None, align_to=None, checkpoint=None,
            checkpoint_every=1, keep_last=3, checkpoint_mismatch="error", callback=None,
            checkpoint_interval=None):
        """Estimate the parameters by EM (``n_init`` starts, the best lower bound kept).

        ``sample_weight`` (n_samples,), non-negative, weighs each sample's contribution
        (an integer weight is the same as repeating the row). ``align_to``: a fitted
        model (e.g. last night's) whose labels this fit keeps: the components are
        reordered so that component k matches the reference's component k
        (see ``streammix.align``), so a scheduled refit does not renumber the clusters.

        ``checkpoint``: a path or URL where the fit saves its progress every
        ``checkpoint_every`` iterations and at the end (keeping the last ``keep_last``
        versions, and the newest finished model until a newer one is finished).
        ``checkpoint_interval`` (seconds): save no sooner than that after the last save,
        nor before 20 times the last save's duration has passed, so that saving costs
        under 5% of the fit whatever its size (None: every ``checkpoint_every``
        iterations exactly). A checkpoint whose pointer CURRENT.json was lost continues
        from its newest version that verifies (and the pointer is restored). Calling the same fit again with the same checkpoint resumes from the
        last saved iteration and ends exactly (same bits, same chunking) where an
        uninterrupted run ends; a finished checkpoint returns at once. A checkpoint made
        on other data (shape, dtype, chunking, sampled content) or with other parameters
        is refused (CheckpointMismatchError) unless ``checkpoint_mismatch='restart'``.
        With both ``align_to`` and ``checkpoint``, the reference is saved in the
        checkpoint and the saved model is the aligned one; a resumed fit aligns to the
        reference it started with.

        ``callback``: called with an ``IterationInfo`` (iteration, lower_bound, change,
        seconds, rows_per_second) after every EM iteration (progress bars, logs).
        """
        self._fit(X, sample_weight, align_to, checkpoint=checkpoint,
                  checkpoint_every=checkpoint_every, keep_last=keep_last,
                  checkpoint_mismatch=checkpoint_mismatch, callback=callback,
                  checkpoint_interval=checkpoint_interval)
        return self

    def fit_predict(self, X, y=None, sample_weight=None, align_to=None):
        """Fit, then return the label of each sample under the fitted model."""
        source = self._fit(X, sample_weight, align_to)
        return self.predict(source.X)

    def _fit(self, X, sample_weight, align_to=None, **checkpointing):
        self._check_parameters()
        if align_to is not None and not hasattr(align_to, "means_"):
            raise InvalidParameterError("align_to must be a fitted mixture model")
        if checkpointing.get("checkpoint") is not None:
            check_int_param(checkpointing["checkpoint_every"], "checkpoint_every", 1)
            check_int_param(checkpointing["keep_last"], "keep_last", 1)
            if checkpointing["checkpoint_mismatch"] not in ("error", "restart"):
                raise InvalidParameterError("checkpoint_mismatch must be 'error' or 'restart'")
            if checkpointing.get("checkpoint_interval") is not None:
                check_float_param(checkpointing["checkpoint_interval"],
                                  "checkpoint_interval", 0.0)
        if self.split_merge and checkpointing.get("checkpoint") is not None:
            raise InvalidParameterError(
                "split_merge=True cannot be combined with checkpoint= yet (the moves run "
                "after the checkpointed EM and would not be saved): fit without a "
                "checkpoint, or save the fitted model with streammix.persistence.save")
        align_ref = align_to._get_params_value() if align_to is not None else None
        # BLAS at one thread for the whole fit: the kernels run one per core, and a
        # BLAS that fanned out in the Python-side steps would spin beside them
        with client_scope(self.client) as client, single_threaded_blas():
            source = self._fit_on(X, sample_weight, client, align_ref=align_ref,
                                  **checkpointing)
        return source

    def _fit_on(self, X, sample_weight, client, **checkpointing):
        source = self._validate_fit_data(X, sample_weight, client)
        weights_init, means_init, precisions_init = self._checked_inits(source.n_features)
        cov = get_covariance_type(self.covariance_type, self.estep_dtype)
        if self.verbose and client is not None:
            print(f"Dask client: {client.scheduler.address if hasattr(client, 'scheduler') else client}"
                  f"  dashboard: {getattr(client, 'dashboard_link', 'n/a')}")
        self._run(source, cov, weights_init, means_init, precisions_init, **checkpointing)
        return source

    def _run(self, source, cov, weights_init, means_init, precisions_init,
             checkpoint=None, checkpoint_every=1, keep_last=3,
             checkpoint_mismatch="error", align_ref=None, callback=None,
             checkpoint_interval=None) -> None:
        """The n_init loop of scikit-learn's fit_predict on a chunk source, resumable
        from a checkpoint (see _resume.py); the winner is aligned to ``align_ref``
        (parameters of a reference model) before the final save."""
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        n_init = self.n_init if do_init else 1
        progress = FitProgress(rng=check_random_state(self.random_state))
        if align_ref is not None:
            progress.extra["align_ref"] = align_ref
        writer = None
        resumed = False
        if checkpoint is not None:
            fingerprint = source.fingerprint()
            writer = CheckpointWriter(checkpoint, keep_last=keep_last)
        try:
            # the pointer's version; without a pointer (a crash between the first
            # version's rename and its pointer, or a deleted CURRENT.json), the newest
            # version that verifies, which the pointer is restored to
            found = writer.resume() if writer is not None else None
            if found is not None:
                arrays, meta, _ = found
                try:
                    check_resumable(self, meta["state"], arrays, fingerprint, checkpoint)
                    progress = progress_from_payload(arrays, meta["state"])
                    resumed = True
                    # a resumed fit keeps the reference it started with
                    if align_ref is not None and "align_ref" not in progress.extra:
                        progress.extra["align_ref"] = align_ref
                except CheckpointMismatchError:
                    if checkpoint_mismatch != "restart":
                        raise
            if self.verbose and resumed:
                print(f"Resuming from {checkpoint}: restart {progress.init}, iteration "
                      f"{progress.current.n_iter}{' (finished)' if progress.done else ''}")

            cadence = SaveCadence(checkpoint_every, checkpoint_interval)

            def save(prog: FitProgress) -> None:
                if writer is not None:
                    started = time.monotonic()
                    writer.save(*progress_payload(self, prog, fingerprint))
                    cadence.saved(started)

            if not progress.done:
                if (writer is None and callback is None and not self.verbose
                        and not resumed and do_init and n_init > 1):
                    # no checkpoint to save each restart's progress in: the restarts
                    # advance together, sharing every pass over the data
                    self._run_restarts_together(source, cov, progress, n_init,
                                                weights_init, means_init, precisions_init)
                else:
                    self._run_restarts(source, cov, progress, n_init, do_init, resumed,
                                       weights_init, means_init, precisions_init, save,
                                       cadence, callback)
        finally:
            if writer is not None:
                writer.close()
        best = progress.best
        if self.split_merge:
            if self.split_merge is not True:
                raise InvalidParameterError(
                    f"split_merge must be True, False or None; got {self.split_merge!r}")
            best = self._split_merge(source, cov, best)
        self._adopt(best, source)

    def _adopt(self, best, source) -> None:
        """Take the winning run as the fitted model (its attributes), warning as
        scikit-learn does when it did not converge."""
        if not best.converged and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                "parameters, or increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning,
            )
        self._set_state(best.params)
        self.converged_ = bool(best.converged)
        self.n_iter_ = int(best.n_iter)
        self.lower_bound_ = float(best.lower_bound)
        self.lower_bounds_ = [float(v) for v in best.lower_bounds]
        self.n_features_in_ = source.n_features

    def _split_merge(self, source, cov, best):
        """Split-and-merge moves after EM (see ``split_merge``): candidates from a
        sample of the rows, each run to convergence by EM on all of them, kept only if
        its lower bound beats the current one. Deterministic for a given random_state."""
        from ..engines import moves
        from ..engines.em import run_em

        rng = check_random_state(self.random_state)
        for _ in range(self.n_components):
            X, sw = source.sample_rows(min(20_000, source.n_samples), rng)
            X = np.asarray(X, dtype=np.float64)
            w = np.ones(len(X)) if sw is None else np.asarray(sw, dtype=np.float64)
            params = best.params
            candidates = []
            for _, k, fit in moves.bimodal_fits(cov, params, X, w, self.reg_covar)[:2]:
                for _, i, j in [p for p in moves.merge_costs(params) if k not in p[1:]][:3]:
                    _, cand = moves.merge_then_split(cov, params, i, j, k, fit,
                                                     self.reg_covar)
                    candidates.append((moves.batch_loglik(cov, cand, X, sw), cand))
            candidates.sort(key=lambda c: -c[0])
            for _, cand in candidates[:3]:
                result = run_em(source, cov, cand, tol=self.tol, max_iter=self.max_iter,
                                reg_covar=self.reg_covar)
                if result.lower_bound > best.lower_bound + max(self.tol, 1e-10):
                    best = result
                    break
            else:
                break
        return best

    def _run_restarts_together(self, source, cov, progress, n_init, weights_init,
                               means_init, precisions_init) -> None:
        """The n_init restarts in lockstep (``run_em_many``): each pass reads a chunk
        once for all the restarts still running. The starts are drawn from the random
        state in the same order as one after another (EM draws nothing), so every
        restart, the winner and its labels are the sequential loop's, bit for bit."""
        from ..engines.em import run_em_many

        rng = progress.rng
        starts = [self._initial_state(source, cov, rng, weights_init, means_init,
                                      precisions_init) for _ in range(n_init)]
        updates = [self._update_rule(cov) for _ in range(n_init)]
        results = run_em_many(source, cov, starts, tol=self.tol, max_iter=self.max_iter,
                              reg_covar=self.reg_covar,
                              updates=None if updates[0] is None else updates)
        for init, result in enumerate(results):
            progress.init = init
            progress.current = result
            self._consider(progress, result)
        self._finish_restarts(progress, n_init, lambda prog: None)

    def _consider(self, progress, result) -> None:
        """Keep ``result`` if it is the best restart so far (scikit-learn's rule)."""
        if progress.first_params is None:
            progress.first_params = result.params
        best = progress.best
        if self.max_iter == 0:
            progress.best = EMResult(result.params, -np.inf, [], 0, False)
        elif best is None or result.lower_bound > best.lower_bound or \
                best.lower_bound == -np.inf:
            progress.best = result

    def _run_restarts(self, source, cov, progress, n_init, do_init, resumed, weights_init,
                      means_init, precisions_init, save, cadence,
                      callback=None) -> None:
        rng = progress.rng
        start_init = progress.init
        for init in range(start_init, n_init):
            progress.init = init
            resume_this = resumed and init == start_init
            if resume_this:
                run = progress.current
                params, start_iter = run.params, run.n_iter
                start_lb, history = run.lower_bound, run.lower_bounds
                if self.verbose:
                    print(f"Initialization {init} (resumed after iteration {start_iter})")
            else:
                if self.verbose:
                    print(f"Initialization {init}", file=sys.stdout)
                if do_init:
                    params = self._initial_state(source, cov, rng, weights_init,
                                                 means_init, precisions_init)
                    start_lb = -np.inf
                else:
                    params = self._current_state()
                    start_lb = self.lower_bound_
                start_iter, history = 0, []
                progress.current = EMResult(params=params, lower_bound=start_lb)

            last_restart = init == n_init - 1  # its end is saved as the finished fit

            def on_iteration(res):
                progress.current = res
                due = cadence.step()
                ends = res.converged or res.n_iter == self.max_iter
                if (ends and not last_restart) or (due and not ends):
                    save(progress)

            if resume_this and progress.current.converged:
                result = progress.current
            else:
                result = run_em(source, cov, params, tol=self.tol, max_iter=self.max_iter,
                                reg_covar=self.reg_covar, lower_bound=start_lb,
                                callback=self._iteration_callback(callback),
                                start_iter=start_iter, lower_bounds=history,
                                on_iteration=on_iteration, update=self._update_rule(cov))
            progress.current = result
            if self.verbose:
                state = "converged" if result.converged else "did not converge"
                print(f"Initialization {state}. lower bound {result.lower_bound:.5f}")
            self._consider(progress, result)
        self._finish_restarts(progress, n_init, save)

    def _finish_restarts(self, progress, n_init, save) -> None:
        """Align the winner (to the first restart, then to align_to's reference) and
        mark the fit done (saved as the finished model)."""
        best = progress.best
        if n_init > 1 and best.params is not progress.first_params:
            # labels must not depend on which restart won: match the winner's components
            # to the first restart's (the same clusters found again keep their labels)
            best.params = self._aligned(best.params, progress.first_params)
        align_ref = progress.extra.get("align_ref")
        if align_ref is not None:
            # keep the reference model's labels (a scheduled refit does not renumber)
            best.params = self._aligned(best.params, align_ref)
        progress.done = True
        save(progress)

    # ------------------------------------------------------------------ what EM iterates
    # (BayesianGaussianMixture iterates a variational posterior through these)
    def _initial_state(self, source, cov, rng, weights_init, means_init, precisions_init):
        """The starting point of one restart (scikit-learn's ``_initialize_parameters``)."""
        return initial_params(source, cov, self.n_components, init_params=self.init_params,
                              reg_covar=self.reg_covar, rng=rng, weights_init=weights_init,
                              means_init=means_init, precisions_init=precisions_init)

    def _current_state(self):
        """The fitted state a warm start continues from."""
        return self._get_params_value()

    def _set_state(self, state) -> None:
        self._set_params_value(state)

    def _update_rule(self, cov):
        """What run_em iterates (None: maximum-likelihood EM)."""
        return None

    def _aligned(self, state, reference):
        """``state`` with its components matched to ``reference``'s (GaussianParams)."""
        return permute_params(state, match_components(state, reference).permutation)

    _LOWER_BOUND_NAME = "mean log-lik"

    def _iteration_callback(self, callback):
        """The per-iteration hook run_em calls: verbose printing and/or ``callback``."""
        hooks = [h for h in (self._progress if self.verbose else None, callback) if h]
        if not hooks:
            return None

        def call_all(info: IterationInfo) -> None:
            for hook in hooks:
                hook(info)

        return call_all

    def _progress(self, info: IterationInfo) -> None:
        if info.iteration % self.verbose_interval == 0:
            print(
                f"  Iteration {info.iteration:4d}  {self._LOWER_BOUND_NAME} "
                f"{info.lower_bound:.6f}  "
                f"change {info.change:.3e}  {info.seconds:.3f} s  "
                f"{info.rows_per_second:,.0f} rows/s"
            )
