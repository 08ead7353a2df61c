"""`streammix inspect CHECKPOINT`: what a checkpoint holds, for a person (text) or a
machine (``--json``): estimator, covariance type, K, d, iterations or updates, whether
the fit converged or is still in progress, weights, per-component summary, the
log-likelihood history and the versions on disk."""

from __future__ import annotations

import json
import math

import numpy as np

from ...persistence import current_version, is_finished_state, list_versions, read_version
from ...persistence.serialize import model_from_payload


def _component_scale(model, k: int) -> float:
    """A component's typical standard deviation: det(cov)^(1/2d), from its precision
    Cholesky factor (every covariance type)."""
    d = model.means_.shape[1]
    pc = np.asarray(model.precisions_cholesky_)
    t = model.covariance_type
    if t == "full":
        log_det_prec = 2 * np.sum(np.log(np.diag(pc[k])))
    elif t == "tied":
        log_det_prec = 2 * np.sum(np.log(np.diag(pc)))
    elif t == "diag":
        log_det_prec = 2 * np.sum(np.log(pc[k]))
    else:
        log_det_prec = 2 * d * math.log(pc[k])
    return float(math.exp(-log_det_prec / (2 * d)))


def summarise(path: str, version: int | None = None) -> dict:
    """A JSON-ready summary of one checkpoint version (the current one by default)."""
    arrays, meta, v = read_version(path, version)
    state = meta["state"]
    model = model_from_payload(arrays, state)
    out: dict = {"checkpoint": path, "version": v, "current_version": current_version(path),
                 "versions_on_disk": list_versions(path), "estimator": state["estimator"],
                 "fitted": bool(state.get("fitted")),
                 "finished": is_finished_state(state),
                 "hyperparameters": {k: val for k, val in model.get_params().items()
                                     if not k.endswith("_init") and k != "client"},
                 "saved_at": meta.get("written_at")}
    if not out["fitted"]:
        buf = getattr(model, "_buffer", None) or []
        out["buffered_rows"] = int(sum(len(b) for b in buf))
        return out
    K, d = model.means_.shape
    out.update({"covariance_type": model.covariance_type, "n_components": int(K),
                "n_features": int(d), "lower_bound": float(model.lower_bound_),
                "lower_bounds": [float(x) for x in model.lower_bounds_]})
    prog = state.get("fit_progress")
    if state["estimator"] == "GaussianMixture":
        out.update({"n_iter": int(model.n_iter_), "converged": bool(model.converged_),
                    "in_progress": bool(prog is not None and not prog.get("done")),
                    "restart": int(prog["init"]) if prog else None})
    else:
        out.update({"n_updates": int(model.n_updates_),
                    "n_samples_seen": float(model.n_samples_seen_), "last_step": model.eta_,
                    "stream_cursor": getattr(model, "stream_cursor_", None),
                    "events": model.events_[-20:], "n_events": len(model.events_)})
    ids = getattr(model, "component_ids_", None)
    out["components"] = [
        {"k": k, "id": None if ids is None else int(ids[k]), "weight": float(model.weights_[k]),
         "mean": [float(x) for x in model.means_[k]], "scale": _component_scale(model, k)}
        for k in range(K)]
    return out


def _head(values, n: int = 4) -> str:
    s = ", ".join(f"{v:.3g}" for v in values[:n])
    return f"[{s}{', ...' if len(values) > n else ''}]"


def as_text(s: dict) -> str:
    """The summary laid out for a terminal."""
    lines = [f"checkpoint  {s['checkpoint']}",
             f"version     {s['version']} (current {s['current_version']}; on disk "
             f"{s['versions_on_disk']}), saved {s.get('saved_at') or 'n/a'}",
             f"estimator   {s['estimator']}"]
    if not s["fitted"]:
        lines.append(f"state       not fitted yet: {s.get('buffered_rows', 0):,} rows buffered "
                     "for initialisation")
        return "\n".join(lines)
    lines.append(f"model       K={s['n_components']}, d={s['n_features']}, "
                 f"{s['covariance_type']} covariances")
    if s["estimator"] == "GaussianMixture":
        state = ("in progress or interrupted: the last iterate, not a finished fit"
                 if s["in_progress"] else
                 "converged" if s["converged"] else "finished without converging")
        lines.append(f"fit         {s['n_iter']} iterations, {state}, mean log-likelihood "
                     f"{s['lower_bound']:.6f}")
    else:
        step = "n/a" if s["last_step"] is None else f"{s['last_step']:.4g}"
        lines.append(f"stream      {s['n_updates']} updates, {s['n_samples_seen']:,.0f} rows "
                     f"seen, last step {step}, cursor {json.dumps(s['stream_cursor'])}")
        if not s["finished"]:
            lines.append("fit         an online fit() in progress or interrupted: not a "
                         "finished fit (load(path, finished=True) for the last finished one)")
        lines.append(f"events      {s['n_events']} (births, deaths, splits)")
    hist = s["lower_bounds"]
    if hist:
        shown = ", ".join(f"{v:.5f}" for v in hist[-6:])
        lines.append(f"log-lik     {len(hist)} values; last: {shown}")
    lines.append("")
    lines.append("     k     id   weight    scale  mean")
    for c in s["components"]:
        cid = "-" if c["id"] is None else str(c["id"])
        lines.append(f"  {c['k']:4d} {cid:>6} {c['weight']:8.4f} {c['scale']:8.3g}  "
                     f"{_head(c['mean'])}")
    return "\n".join(lines)


def run(args, opts, log) -> int:
    summary = summarise(args.checkpoint, args.version)
    print(json.dumps(summary, indent=2, default=str) if args.json else as_text(summary))
    return 0
