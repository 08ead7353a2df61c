"""`streammix update CONFIG`: fold the data not yet consumed into an online model
(stepwise EM for an OnlineGaussianMixture, stochastic variational inference for an
OnlineBayesianGaussianMixture). The checkpoint holds the model and the stream cursor together (rows of a
growing Zarr array, or the files of a directory already read), so a rerun with no new
data is a quick no-op and a killed run continues where it stopped and ends where an
uninterrupted run ends."""

from __future__ import annotations

import os
import time

import numpy as np

from ...errors import CheckpointMismatchError, InvalidInputError
from ...persistence import CheckpointWriter, current_version, list_versions
from ...persistence.cadence import SaveCadence
from ...persistence.serialize import model_from_payload, model_to_payload
from ...validation import check_finite
from ..config import (
    EFFECTIVE_THRESHOLD,
    Config,
    ConfigError,
    check_checkpoint_path,
    check_priors_for_data,
    check_source_exists,
    is_bayesian,
    online_estimator,
    require,
)
from ..console import Progress, log_structure_events
from ..sources import list_files, pending_batches

# parameters that do not change what an update computes
_IGNORED = {"verbose", "chunk_size"}


def _same_param(a, b) -> bool:
    """Equality of two parameter values; array-valued ones (a Bayesian mixture's
    mean_prior and covariance_prior: arrays in a checkpoint, lists in a config) by
    value."""
    if isinstance(a, (np.ndarray, list, tuple)) or isinstance(b, (np.ndarray, list, tuple)):
        if a is None or b is None:
            return False
        try:
            return np.array_equal(np.asarray(a, dtype=np.float64),
                                  np.asarray(b, dtype=np.float64))
        except (TypeError, ValueError):
            return False
    return a == b


def _shown(value) -> str:
    return repr(np.asarray(value).tolist() if isinstance(value, np.ndarray) else value)


def _check_same_model(saved, wanted, ck: str) -> None:
    if type(saved) is not type(wanted):
        raise CheckpointMismatchError(f"checkpoint {ck!r} holds a {type(saved).__name__}, "
                                      f"not an {type(wanted).__name__}")
    a, b = saved.get_params(), wanted.get_params()
    diffs = []
    for k in a:
        if k in _IGNORED or k.endswith("_init"):
            continue
        if not _same_param(a[k], b.get(k)):
            diffs.append(f"{k}: checkpoint {_shown(a[k])} vs config {_shown(b.get(k))}")
    if diffs:
        raise CheckpointMismatchError(f"checkpoint {ck!r} was written with other model "
                                      f"parameters ({'; '.join(diffs)}); use the same "
                                      "parameters or another checkpoint path")


def batch_error(exc: InvalidInputError, X, batch) -> str:
    """The error of a rejected batch, with NaN/inf positions as rows of the source: the
    batch is scanned again with its offset (on this error path only)."""
    try:
        check_finite(np.asarray(X), what=batch.where, row_offset=batch.start)
    except InvalidInputError as located:
        return str(located)
    return f"{batch.where}: {exc}"


def update_summary(model) -> str:
    """The state of an online model after an update, for the log."""
    if not hasattr(model, "means_"):
        return "still buffering rows for initialisation"
    effective = (f" ({model.effective_n_components(EFFECTIVE_THRESHOLD)} with a weight "
                 f"above {EFFECTIVE_THRESHOLD:.0%})" if is_bayesian(model) else "")
    if model.eta_ is None:
        return f"initialised: K={len(model.weights_)}{effective}"
    score = "batch mean score" if is_bayesian(model) else "batch mean log-likelihood"
    return (f"K={len(model.weights_)}{effective}, {model.n_updates_} updates, last step "
            f"{model.eta_:.4f}, last {score} {model.lower_bound_:.6f}")


def run(cfg: Config, opts, log) -> int:
    if getattr(opts, "follow", False):
        from . import follow_update

        return follow_update.run(cfg, opts, log, _check_same_model)
    if cfg.source.get("type") == "redis":
        raise ConfigError(f"{cfg.path}: source.type: redis is a broker stream: run `streammix "
                          "update CONFIG --follow`")
    require(cfg, "source.type", "source.path", "run.checkpoint", command="update")
    estimator = online_estimator(cfg, "update")

    ck = cfg.run["checkpoint"]
    every = cfg.run["checkpoint_every"]
    wanted = estimator(**cfg.estimator_params())
    t0 = time.perf_counter()
    check_source_exists(cfg)  # before anything is created at run.checkpoint
    check_checkpoint_path(cfg)
    if cfg.source["type"] == "directory" and os.path.isdir(cfg.source["path"]) and \
            not list_files(cfg.source["path"], cfg.source["pattern"]):
        log.warning(f"source.path {cfg.source['path']!r} holds no file matching "
                    f"{cfg.source['pattern']!r} (wrong path or pattern?)")
    with CheckpointWriter(ck, keep_last=cfg.run["keep_last"]) as writer:
        lost_pointer = current_version(ck) is None and bool(list_versions(ck))
        found = writer.resume()
        if found is not None:
            model = model_from_payload(found[0], found[1]["state"])
            _check_same_model(model, wanted, ck)
            if lost_pointer:
                log.warning(f"checkpoint {ck} had no CURRENT.json pointer: continuing from "
                            f"its newest version that verifies ({found[2]}; pointer "
                            "restored)")
            log.info(f"checkpoint {ck} version {found[2]}: "
                     f"{getattr(model, 'n_updates_', 0)} updates so far",
                     fields={"version": found[2]})
        else:
            model = wanted
            log.info(f"new checkpoint {ck}: starting a model")
        cursor = getattr(model, "stream_cursor_", None)
        batches = list(pending_batches(cfg, cursor))
        pending = sum(b.rows for b in batches)
        if not batches:
            log.info("nothing to do: no new data since the last update",
                     fields={"up_to_date": True, "cursor": cursor})
            return 0
        log.info(f"{pending:,} new rows in {len(batches)} batches",
                 fields={"rows": pending, "batches": len(batches)})
        bar = Progress(pending, "rows", enabled=opts.progress)
        done_rows, last_log = 0, time.perf_counter()
        cadence = SaveCadence(every, cfg.run["checkpoint_interval"])

        def save() -> None:
            started = time.monotonic()
            writer.save(*model_to_payload(model))
            cadence.saved(started)
        skipped: list[str] = []
        try:
            for i, batch in enumerate(batches):
                X = batch.load()
                if X is not None and cfg.source.get("dtype"):
                    X = X.astype(cfg.source["dtype"])
                if X is not None and len(X):
                    if not hasattr(model, "n_features_in_") and X.ndim == 2:
                        check_priors_for_data(cfg, int(X.shape[1]))
                    try:
                        seen = len(getattr(model, "events_", []))
                        model.partial_fit(X)
                        log_structure_events(model, seen, log)
                    except InvalidInputError as exc:
                        if cfg.run["on_bad_batch"] == "error":
                            if cadence.pending():  # the model is unchanged by the bad batch
                                save()
                            raise InvalidInputError(
                                f"{batch_error(exc, X, batch)} (the "
                                "model is saved up to the batch before; set run.on_bad_batch: "
                                "skip to skip such batches)") from None
                        skipped.append(batch.where)
                        log.warning(f"skipped: {batch_error(exc, X, batch)}",
                                    fields={"skipped": batch.where})
                model.stream_cursor_ = batch.cursor_after
                done_rows += batch.rows
                if cadence.step():
                    save()
                bar.update(done_rows, rows=batch.rows, note=batch.where)
                now = time.perf_counter()
                if not bar.active and (now - last_log > 10 or i == len(batches) - 1):
                    last_log = now
                    log.info(f"{batch.where}: {done_rows:,}/{pending:,} rows, "
                             f"{getattr(model, 'n_updates_', 0)} updates",
                             fields={"rows_done": done_rows, "rows": pending})
            if cadence.pending():
                save()
        finally:
            # on an interrupt nothing more is saved (a signal may land mid-update); the
            # batches after the last save are read again by the next run
            bar.close()
    summary = update_summary(model)
    skipped_note = f" ({len(skipped)} bad batches skipped)" if skipped else ""
    log.info(f"consumed {done_rows:,} rows in {time.perf_counter() - t0:.1f} s{skipped_note}; "
             f"{summary}; saved {ck} version {current_version(ck)}",
             fields={"rows": done_rows, "version": current_version(ck), "skipped": skipped,
                     "n_updates": getattr(model, "n_updates_", 0), "up_to_date": False})
    return 0
