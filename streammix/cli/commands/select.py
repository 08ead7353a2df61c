"""`streammix select CONFIG`: fit every candidate (numbers of components x covariance
types) on the source, score each by BIC and AIC, print the table and the choice, plot
the curves, and save the chosen model.

Without ``run.checkpoint`` (or with ``select.shared_passes: true``) the candidates are
fitted together by ``streammix.select``: each EM pass reads and decodes a chunk once for
every candidate still running. With a checkpoint (the default there) they are fitted
one by one, each checkpointed next to the run's checkpoint, so an interrupted selection
resumes mid-fit and a rerun does not refit. Both give each candidate the bits of its
own fit. A rerun on unchanged inputs saves no new version and rewrites no file."""

from __future__ import annotations

import io
import json
import math
import os
import time

import numpy as np

from ...errors import CheckpointError
from ...estimators.selection import REFUSED_PARAMS
from ...persistence import model_to_payload, read_version, save
from ...persistence.storage import Storage
from ..cluster import dask_client
from ..config import Config, ConfigError, check_checkpoint_path, is_bayesian, require
from ..plotting import check_png_target, plot_selection
from ..sources import open_source, persisted

SELECTION_FILE = "selection.json"


def candidates_dir(checkpoint: str) -> str:
    return checkpoint.rstrip("/") + "-candidates"


def _same(a, b) -> bool:
    """Equality of two payload values: arrays element by element (NaN equal to NaN),
    JSON values recursively (a tuple equal to the list JSON makes of it)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        try:
            return np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        except TypeError:
            return np.array_equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def holds_model(checkpoint: str, model) -> int | None:
    """The current version of ``checkpoint`` when it holds exactly ``model`` (the same
    arrays and state), else None (no checkpoint, another model, or a damaged version: a
    new version is then saved)."""
    try:
        saved_arrays, meta, version = read_version(checkpoint)
    except CheckpointError:
        return None
    arrays, state = model_to_payload(model)
    return version if _same(saved_arrays, arrays) and _same(meta["state"], state) else None


def _without_timings(summary: dict) -> dict:
    """The summary less what changes on every run (seconds per candidate): what decides
    whether the saved selection is still the right one."""
    results = [{k: v for k, v in r.items() if k != "seconds"} for r in summary["results"]]
    chosen = {k: v for k, v in summary["chosen"].items() if k != "seconds"}
    return {**summary, "results": results, "chosen": chosen}


def _write_if_changed(path: str, data: bytes) -> bool:
    """Write ``data`` to ``path`` unless it already holds them; whether it wrote."""
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return False
    except OSError:
        pass
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return True


def save_selection(ck: str, model, summary: dict, keep_last: int, log) -> int:
    """Save the chosen model and the selection summary in the checkpoint, unless it
    already holds them (a rerun on unchanged inputs); returns its current version."""
    st = Storage(ck)
    version = holds_model(ck, model)
    if version is None:
        version = save(model, ck, keep_last=keep_last)
        log.info(f"saved the chosen model to {ck} version {version}")
    else:
        log.info(f"nothing to do: {ck} version {version} already holds the chosen model",
                 fields={"checkpoint": ck, "version": version, "up_to_date": True})
    try:
        saved = json.loads(st.read_text(SELECTION_FILE)) if st.exists(SELECTION_FILE) else None
    except (OSError, ValueError):  # unreadable: replaced below
        saved = None
    if saved is None or not _same(_without_timings(saved), _without_timings(summary)):
        st.write_text_atomic(json.dumps(summary, indent=2), SELECTION_FILE)
        log.info(f"wrote {SELECTION_FILE} in {ck}")
    return version


def _table(results: list[dict], chosen: dict) -> str:
    lines = ["  covariance     K          BIC          AIC   iters  converged"]
    for r in results:
        mark = "  <- chosen" if r is chosen else ""
        lines.append(f"  {r['covariance_type']:<10} {r['n_components']:5d} {r['bic']:12.1f} "
                     f"{r['aic']:12.1f} {r['n_iter']:7d}  {str(r['converged']):<9}{mark}")
    return "\n".join(lines)


def _select_together(cfg: Config, X, log) -> tuple[dict, object, list[dict]]:
    """The candidates fitted in lockstep (``streammix.select``): (the chosen row, its
    model, one row per candidate in the config's order)."""
    from ... import select

    sel = cfg.select
    log.info(f"fitting {len(sel['n_components']) * len(sel['covariance_types'])} "
             "candidates together (each pass over the data shared)")
    t1 = time.perf_counter()
    selection = select(X, sel["n_components"], sel["covariance_types"],
                       criterion=sel["criterion"], **cfg.estimator_params())
    seconds = round(time.perf_counter() - t1, 3)
    results = []
    chosen = None
    for row, model in zip(selection.table, selection.models):
        r = {"covariance_type": row["covariance_type"], "n_components": row["n_components"],
             "bic": row["bic"], "aic": row["aic"], "mean_loglik": row["mean_loglik"],
             "n_parameters": row["n_parameters"], "n_iter": row["n_iter"],
             "converged": row["converged"], "seconds": None}
        results.append(r)
        log.info(f"{r['covariance_type']} K={r['n_components']}: BIC {r['bic']:.1f} "
                 f"AIC {r['aic']:.1f} ({r['n_iter']} iterations)", fields=r)
        if model is selection.best:
            chosen = r
    log.info(f"all candidates fitted in {seconds:.1f} s", fields={"seconds": seconds})
    return chosen, selection.best, results


def run(cfg: Config, opts, log) -> int:
    from ... import GaussianMixture

    require(cfg, "source.type", "source.path", "select.n_components", command="select")
    if is_bayesian(cfg.estimator):
        raise ConfigError(
            f"{cfg.path}: model.estimator: `streammix select` compares candidates by BIC/AIC, "
            f"which a {cfg.estimator} does not have (its lower bound is an evidence lower "
            "bound, not a likelihood, and its prior decides how many components it uses); "
            "instead run `streammix fit` with model.estimator: BayesianGaussianMixture and a "
            "generous model.n_components (an upper bound), then read its effective number "
            "of components (weight above 1%) with `streammix inspect CHECKPOINT` or see it "
            "in `streammix report`'s weights.png")
    if cfg.estimator != "GaussianMixture":
        raise ConfigError(f"{cfg.path}: model.estimator: `streammix select` compares "
                          "GaussianMixture fits")
    sel, ck = cfg.select, cfg.run.get("checkpoint")
    criterion = sel["criterion"]
    check_checkpoint_path(cfg)
    plot = sel.get("plot") or os.path.join(os.path.dirname(os.path.abspath(cfg.path)),
                                           "selection.png")
    check_png_target(plot, {"the data": cfg.source.get("path"), "the checkpoint": ck,
                            "the candidates' checkpoints": ck and candidates_dir(ck)},
                     "select.plot")
    X = open_source(cfg)
    n, d = (int(s) for s in X.shape)
    results = []
    best_model = None
    t0 = time.perf_counter()
    for K in sel["n_components"]:
        if K > n:
            raise ConfigError(f"{cfg.path}: select.n_components: K={K} is more than "
                              f"the {n} rows of the source")
    shared = sel.get("shared_passes")
    if shared is None:
        # each candidate starts from its own initialisation: a model section that fixes
        # one (or asks for split/merge moves) is fitted one by one
        shared = not ck and not any(cfg.estimator_params().get(key)
                                    for key in REFUSED_PARAMS)
    with dask_client(cfg.run.get("cluster"), opts.scheduler, opts.workers, log) as client:
        X = persisted(X, cfg, client, log)
        if shared:
            chosen, model, results = _select_together(cfg, X, log)
            best_model = (chosen, model)
        else:
            for cov in sel["covariance_types"]:
                for K in sel["n_components"]:
                    params = {**cfg.estimator_params(), "n_components": K,
                              "covariance_type": cov}
                    model = GaussianMixture(**params)
                    cand = (os.path.join(candidates_dir(ck), f"{cov}-k{K}") if ck else None)
                    t1 = time.perf_counter()
                    model.fit(X, checkpoint=cand, checkpoint_mismatch="restart",
                              keep_last=1)
                    mean_loglik = model.score(X)
                    bic, aic = model.information_criteria(mean_loglik, n)
                    r = {"covariance_type": cov, "n_components": K, "bic": bic, "aic": aic,
                         "mean_loglik": mean_loglik, "n_parameters": model._n_parameters(),
                         "n_iter": int(model.n_iter_), "converged": bool(model.converged_),
                         "seconds": round(time.perf_counter() - t1, 3)}
                    results.append(r)
                    log.info(f"{cov} K={K}: BIC {r['bic']:.1f} AIC {r['aic']:.1f} "
                             f"({r['n_iter']} iterations)", fields=r)
                    if best_model is None or r[criterion] < best_model[0][criterion]:
                        best_model = (r, model)
    chosen, model = best_model
    print(_table(results, chosen))
    print(f"chosen by {criterion.upper()}: {chosen['covariance_type']} covariances, "
          f"K={chosen['n_components']}")
    os.makedirs(os.path.dirname(os.path.abspath(plot)), exist_ok=True)
    png = io.BytesIO()
    plot_selection(results, chosen, criterion, png)
    _write_if_changed(plot, png.getvalue())
    summary = {"criterion": criterion, "n_samples": n, "n_features": d,
               "chosen": chosen, "results": results, "plot": plot}
    if ck:
        summary["version"] = save_selection(ck, model, summary, cfg.run["keep_last"], log)
    log.info(f"selection done in {time.perf_counter() - t0:.1f} s; plot {plot}",
             fields={"chosen": chosen, "plot": plot})
    return 0
