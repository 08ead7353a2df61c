"""`streammix fit CONFIG`: exact (batch) EM from the configured source into the
configured checkpoint: a GaussianMixture, or a BayesianGaussianMixture (variational EM;
its lower bound is the evidence lower bound, and the log says how many components the
data use). Reruns are idempotent: an interrupted fit resumes from its last
saved iteration, a finished one returns at once, and with ``align_to: previous`` a refit
on new data keeps the labels of the model the checkpoint held before."""

from __future__ import annotations

import contextlib
import shlex
import time
import warnings

from ...errors import CheckpointError, CheckpointMismatchError, ConvergenceWarning
from ...persistence import current_version, list_versions, load, read_version
from ..cluster import dask_client
from ..config import (
    BATCH_ESTIMATORS,
    EFFECTIVE_THRESHOLD,
    Config,
    ConfigError,
    batch_estimator,
    check_checkpoint_path,
    check_priors_for_data,
    is_bayesian,
    require,
    require_checkpoint,
)
from ..console import Progress
from ..sources import open_source, persisted


def _finished(state: dict) -> bool:
    """Whether a checkpoint version holds a finished model (not a fit in progress)."""
    prog = state.get("fit_progress")
    return bool(state.get("fitted")) and (prog is None or bool(prog.get("done")))


def previous_model(checkpoint: str, log):
    """The newest finished model in ``checkpoint`` (the reference of a nightly refit),
    or None when there is none yet."""
    if current_version(checkpoint) is None:
        return None
    for v in reversed(list_versions(checkpoint)):
        try:
            _, meta, _ = read_version(checkpoint, v)
        except CheckpointError as exc:
            log.warning(f"skipping checkpoint version {v} as a reference: {exc}")
            continue
        if _finished(meta["state"]):
            log.info(f"aligning labels to the previous model (checkpoint version {v})",
                     fields={"align_to_version": v})
            return load(checkpoint, version=v)
    return None


def _holds_this_fit(checkpoint: str, X, client, estimator: str) -> bool:
    """Whether the checkpoint's current version is a finished ``estimator`` fit of these
    data (by the fit's own fingerprint), i.e. the rerun will be a no-op: no need to
    persist X."""
    from ...execution.dask_source import DaskSource

    if current_version(checkpoint) is None:
        return False
    state = read_version(checkpoint)[1]["state"]
    if state.get("estimator") != estimator:
        return False
    prog = state.get("fit_progress")
    if not prog or not prog.get("done"):
        return False
    return prog.get("fingerprint") == DaskSource(X, client=client).fingerprint()


def resolve_reference(align_to: str | None, checkpoint: str, log):
    """The model whose labels the fit keeps: None, the previous model in the
    checkpoint ('previous'), or the model at a checkpoint path."""
    if align_to is None:
        return None
    if align_to == "previous":
        ref = previous_model(checkpoint, log)
        if ref is None:
            log.info("align_to: previous, but there is no previous model yet: labels as "
                     "fitted")
        return ref
    require_checkpoint(align_to, "the alignment reference")
    log.info(f"aligning labels to the model at {align_to}")
    return load(align_to)


def _check_align_to(cfg: Config, align_to: str | None, flag: bool) -> None:
    """A Dirichlet-process mixture's components are the ordered sticks of its prior:
    refuse to renumber them (before any work), saying what to do instead."""
    if align_to is None or cfg.estimator != "BayesianGaussianMixture":
        return
    prior = cfg.model.get("weight_concentration_prior_type")
    if prior not in (None, "dirichlet_process"):
        return
    where = "--align-to" if flag else f"{cfg.path}: run.align_to"
    default = "" if prior else ", the default"
    raise ConfigError(f"{where}: a BayesianGaussianMixture with a Dirichlet-process prior "
                      f"(weight_concentration_prior_type: dirichlet_process{default}) "
                      "orders its components as the sticks of its prior, so they cannot be "
                      "renumbered to keep another model's labels; remove the alignment, or "
                      "set model.weight_concentration_prior_type: dirichlet_distribution")


def convergence_advice(model, config_path: str) -> str:
    """What the CLI says when a fit stops at max_iter: the library's "increase max_iter"
    alone fails from the command line (a rerun with another run.max_iter on the same
    checkpoint is another fit, refused with exit code 4), so say what works."""
    more = max(100, 2 * int(model.max_iter))
    return (f"EM stopped at max_iter={model.max_iter} iterations before the lower bound "
            f"changed by less than tol={model.tol:g}; the checkpoint holds this unconverged "
            "model. For more iterations run a new fit in the checkpoint: `streammix fit "
            f"{shlex.quote(config_path)} --set run.max_iter={more} --set run.on_mismatch=restart` (plus "
            "any other --set of this run; a larger run.max_iter alone is refused as another "
            "fit), or set run.max_iter with a new run.checkpoint; a larger run.tol stops "
            "sooner")


@contextlib.contextmanager
def _convergence_advice(model, config_path: str, log):
    """While the fit runs: a ConvergenceWarning is logged with the command-line advice
    (convergence_advice) instead of the library's; other warnings as usual."""
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, ConvergenceWarning):
            log.warning(f"ConvergenceWarning: {convergence_advice(model, config_path)}",
                        fields={"warning": category.__name__, "max_iter": model.max_iter})
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown


def _fit_summary(model) -> str:
    """What the fit's last log line says about the model's quality."""
    if is_bayesian(model):
        return (f"evidence lower bound {model.lower_bound_:.6f}; "
                f"{model.effective_n_components(EFFECTIVE_THRESHOLD)} components with a "
                f"weight above {EFFECTIVE_THRESHOLD:.0%}")
    return f"mean log-likelihood {model.lower_bound_:.6f}"


def run(cfg: Config, opts, log) -> int:
    require(cfg, "source.type", "source.path", "run.checkpoint", command="fit")
    estimator = batch_estimator(cfg, "fit")
    align_to = opts.align_to or cfg.run.get("align_to")
    _check_align_to(cfg, align_to, bool(opts.align_to))
    bayesian = is_bayesian(cfg.estimator)

    check_checkpoint_path(cfg)
    ck = cfg.run["checkpoint"]
    X = open_source(cfg)
    log.info(f"source {cfg.source['path']}: {X.shape[0]:,} rows x {X.shape[1]} features in "
             f"{X.numblocks[0]} chunks", fields={"rows": X.shape[0], "features": X.shape[1]})
    check_priors_for_data(cfg, int(X.shape[1]))
    before = current_version(ck)
    newest_before = max(list_versions(ck), default=0)
    if before is None and newest_before:
        log.warning(f"checkpoint {ck} has no CURRENT.json pointer: continuing from its "
                    "newest version that verifies (the pointer is restored)")
    if before is not None:
        state = read_version(ck)[1]["state"]
        if state.get("estimator") not in BATCH_ESTIMATORS:
            raise CheckpointMismatchError(
                f"checkpoint {ck} holds an {state.get('estimator')} (written by `streammix "
                "update`), not a batch fit: use another run.checkpoint")
        prog = state.get("fit_progress") or {}
        log.info(f"checkpoint {ck} is at version {before} "
                 f"({'finished' if _finished(state) else 'in progress'}, "
                 f"iteration {state.get('n_iter')}, restart {prog.get('init', 0)})",
                 fields={"version": before, "finished": _finished(state)})
    reference = resolve_reference(align_to, ck, log)
    model = estimator(**cfg.estimator_params())
    bar = Progress(None, "EM iteration", enabled=opts.progress)

    short, what = (("ELBO", "evidence lower bound") if bayesian else
                   ("mean log-lik", "mean log-likelihood"))

    def on_iteration(info) -> None:
        bar.update(info.iteration, rows=X.shape[0], rate=info.rows_per_second,
                   note=f"(max {model.max_iter})  {short} {info.lower_bound:.6f}  "
                        f"change {info.change:.2e} (tol {model.tol:g})")
        log_line = log.debug if bar.active else log.info
        log_line(f"iteration {info.iteration}: {what} {info.lower_bound:.6f} "
                 f"change {info.change:.3e} {info.seconds:.2f} s "
                 f"{info.rows_per_second:,.0f} rows/s",
                 fields={"iteration": info.iteration, "lower_bound": info.lower_bound,
                         "change": info.change, "seconds": info.seconds,
                         "rows_per_second": info.rows_per_second})

    t0 = time.perf_counter()
    # then fit returns at once: no cluster to start
    done = _holds_this_fit(ck, X, None, cfg.estimator)
    try:
        with dask_client(None if done else cfg.run.get("cluster"),
                         None if done else opts.scheduler, None if done else opts.workers,
                         log) as client:
            if not done:
                X = persisted(X, cfg, client, log)
            with _convergence_advice(model, cfg.path, log):
                model.fit(X, align_to=reference, checkpoint=ck,
                          checkpoint_every=cfg.run["checkpoint_every"],
                          checkpoint_interval=cfg.run["checkpoint_interval"],
                          keep_last=cfg.run["keep_last"],
                          checkpoint_mismatch=cfg.run["on_mismatch"], callback=on_iteration)
    except CheckpointMismatchError as exc:
        raise CheckpointMismatchError(
            f"{str(exc).split('; pass checkpoint_mismatch')[0]}; set run.on_mismatch: "
            "restart to start a new fit in it (replacing it: only the last run.keep_last "
            "versions are kept), or use another run.checkpoint") from None
    finally:
        bar.close()
    after = current_version(ck)
    if after is None:  # never log a save that did not happen
        raise CheckpointError(f"the fit ended but checkpoint {ck} has no committed version")
    saved = max(list_versions(ck), default=0) > newest_before
    fields = {"checkpoint": ck, "version": after, "n_iter": model.n_iter_,
              "converged": model.converged_, "lower_bound": model.lower_bound_,
              "seconds": round(time.perf_counter() - t0, 3)}
    if bayesian:
        fields["effective_n_components"] = model.effective_n_components(EFFECTIVE_THRESHOLD)
    if not saved:
        log.info(f"nothing to do: checkpoint {ck} version {after} already holds this fit "
                 f"({model.n_iter_} iterations, converged={model.converged_}"
                 f"{'; ' + _fit_summary(model) if bayesian else ''})",
                 fields={**fields, "up_to_date": True})
    else:
        log.info(f"fitted {model.n_components} components ({model.covariance_type}) in "
                 f"{model.n_iter_} iterations, converged={model.converged_}, "
                 f"{_fit_summary(model)}; saved {ck} version {after}",
                 fields={**fields, "up_to_date": False})
    return 0
