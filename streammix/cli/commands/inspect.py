"""`streammix inspect CHECKPOINT`: what a checkpoint holds, for a person (text) or a
machine (``--json``): estimator, covariance type, K, d, iterations or updates, whether
the fit converged or is still in progress, weights, per-component summary, the
log-likelihood history and the versions on disk. For a Bayesian mixture also: the prior
on the weights, the effective number of components (weight above 1%), the posterior
concentration of each component (Beta(a, b) of its stick for a Dirichlet process, the
Dirichlet concentration otherwise), and its lower bound labelled for what it is."""

from __future__ import annotations

import json
import math

import numpy as np

from ...persistence import current_version, is_finished_state, list_versions, read_version
from ...persistence.serialize import model_from_payload
from ..config import EFFECTIVE_THRESHOLD, is_bayesian, is_online, require_checkpoint

#: what each estimator's lower_bound_ is (JSON "lower_bound_kind", text labels)
LOWER_BOUND_KINDS = {
    "GaussianMixture": "mean log-likelihood per sample",
    "OnlineGaussianMixture": "last batch mean log-likelihood",
    "BayesianGaussianMixture": "evidence lower bound (ELBO)",
    "OnlineBayesianGaussianMixture": "last batch mean score (variational E-step "
                                     "log-normaliser; not a likelihood)",
}


def bayesian_summary(model, threshold: float = EFFECTIVE_THRESHOLD) -> dict:
    """A Bayesian mixture's prior and posterior on the weights, JSON-ready: the prior
    type and values in effect, the effective number of components (weight above
    ``threshold``) and the posterior concentration (weight_concentration_)."""
    K = len(model.weights_)
    wc = model.weight_concentration_
    dp = model.weight_concentration_prior_type == "dirichlet_process"
    if dp:
        concentration = {"beta_a": [float(x) for x in np.asarray(wc[0])],
                         "beta_b": [float(x) for x in np.asarray(wc[1])]}
    else:
        concentration = {"dirichlet": [float(x) for x in np.asarray(wc)]}
    used = [k for k in range(K) if model.weights_[k] > threshold]
    return {"weight_concentration_prior_type": model.weight_concentration_prior_type,
            "weight_concentration_prior": float(model.weight_concentration_prior_),
            "mean_precision_prior": float(model.mean_precision_prior_),
            "degrees_of_freedom_prior": float(model.degrees_of_freedom_prior_),
            "effective_threshold": float(threshold),
            "effective_n_components": int(model.effective_n_components(threshold)),
            "effective_components": used,
            "weight_concentration": concentration}


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
                "lower_bound_kind": LOWER_BOUND_KINDS.get(state["estimator"]),
                "lower_bounds": [float(x) for x in model.lower_bounds_]})
    if is_bayesian(model):
        out["bayesian"] = bayesian_summary(model)
    prog = state.get("fit_progress")
    if not is_online(state["estimator"]):
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
    if "bayesian" in out:  # each component's posterior concentration, beside its weight
        conc = out["bayesian"]["weight_concentration"]
        for c in out["components"]:
            c["concentration"] = ([conc["beta_a"][c["k"]], conc["beta_b"][c["k"]]]
                                  if "beta_a" in conc else conc["dirichlet"][c["k"]])
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
    bayes = s.get("bayesian")
    kind = s.get("lower_bound_kind") or "lower bound"
    if not is_online(s["estimator"]):
        state = ("in progress or interrupted: the last iterate, not a finished fit"
                 if s["in_progress"] else
                 "converged" if s["converged"] else "finished without converging")
        lines.append(f"fit         {s['n_iter']} iterations, {state}, {kind} "
                     f"{s['lower_bound']:.6f}")
    else:
        step = "n/a" if s["last_step"] is None else f"{s['last_step']:.4g}"
        lines.append(f"stream      {s['n_updates']} updates, {s['n_samples_seen']:,.0f} rows "
                     f"seen, last step {step}, cursor {json.dumps(s['stream_cursor'])}")
        if not s["finished"]:
            lines.append("fit         an online fit() in progress or interrupted: not a "
                         "finished fit (load(path, finished=True) for the last finished one)")
        lines.append(f"events      {s['n_events']} (births, deaths, splits)")
    if bayes:
        lines += _bayesian_lines(s, bayes)
    hist = s["lower_bounds"]
    if hist:
        shown = ", ".join(f"{v:.5f}" for v in hist[-6:])
        if s["estimator"] == "BayesianGaussianMixture":
            label, what = "ELBO", " (evidence lower bound)"
        elif bayes:  # an online one: not an ELBO
            label, what = "score", " (batch mean score, variational: not a likelihood)"
        else:
            label, what = "log-lik", ""
        lines.append(f"{label:<11} {len(hist)} values{what}; last: {shown}")
    lines.append("")
    dp = bool(bayes) and "beta_a" in bayes["weight_concentration"]
    conc = ("  stick Beta(a, b)      " if dp else "  concentration" if bayes else "")
    lines.append(f"     k     id   weight    scale{conc}  mean")
    for c in s["components"]:
        cid = "-" if c["id"] is None else str(c["id"])
        extra = ""
        if bayes:
            v = c["concentration"]
            extra = (f"  {v[0]:10.4g} {v[1]:10.4g}" if dp else f"  {v:13.4g}")
        lines.append(f"  {c['k']:4d} {cid:>6} {c['weight']:8.4f} {c['scale']:8.3g}{extra}  "
                     f"{_head(c['mean'])}")
    return "\n".join(lines)


def _bayesian_lines(s: dict, b: dict) -> list[str]:
    """The prior, the effective number of components and the posterior concentration."""
    dp = b["weight_concentration_prior_type"] == "dirichlet_process"
    prior = ("Dirichlet process (stick-breaking)" if dp else "Dirichlet distribution")
    used = b["effective_components"]
    listed = ", ".join(str(k) for k in used[:20]) + (", ..." if len(used) > 20 else "")
    conc = b["weight_concentration"]
    if dp:
        posterior = (f"Beta(a, b) per stick: a {_head(conc['beta_a'])}, "
                     f"b {_head(conc['beta_b'])}")
    else:
        posterior = f"Dirichlet concentrations {_head(conc['dirichlet'])}"
    return [
        f"prior       {prior} on the weights ({b['weight_concentration_prior_type']}), "
        f"weight_concentration_prior {b['weight_concentration_prior']:.4g}",
        f"            mean_precision_prior {b['mean_precision_prior']:.4g}, "
        f"degrees_of_freedom_prior {b['degrees_of_freedom_prior']:.4g}",
        f"effective   {b['effective_n_components']} of {s['n_components']} components "
        f"have a weight above {b['effective_threshold']:.0%} "
        f"(components {listed or 'none'})",
        f"posterior   weight concentration (weight_concentration_): {posterior}",
    ]


def run(args, opts, log) -> int:
    require_checkpoint(args.checkpoint)
    summary = summarise(args.checkpoint, args.version)
    print(json.dumps(summary, indent=2, default=str) if args.json else as_text(summary))
    return 0
