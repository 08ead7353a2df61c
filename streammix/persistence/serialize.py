"""Estimators to and from plain arrays + JSON (the content of a checkpoint version).

Hyperparameters go to JSON (array-valued ones such as means_init to arrays); fitted
attributes, running statistics and the random generator's state go to arrays; history
(lower bounds, events) and counters to JSON or arrays. Nothing is pickled.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..errors import CheckpointCorruptError
from ..math.stats import SufficientStats

ESTIMATORS = ("GaussianMixture", "OnlineGaussianMixture", "BayesianGaussianMixture",
              "OnlineBayesianGaussianMixture")
BATCH = ("GaussianMixture", "BayesianGaussianMixture")
ONLINE = ("OnlineGaussianMixture", "OnlineBayesianGaussianMixture")


def _estimator_class(name: str):
    from .. import estimators

    try:
        if name not in ESTIMATORS:
            raise KeyError(name)
        return getattr(estimators, name)
    except KeyError:
        raise CheckpointCorruptError(
            f"unknown estimator {name!r} in checkpoint (expected one of {ESTIMATORS})"
        ) from None


def hyperparameters_to_payload(model) -> tuple[dict, dict[str, np.ndarray]]:
    """(JSON-able parameters, array parameters) from get_params()."""
    params, arrays = {}, {}
    for k, v in model.get_params().items():
        if k == "client":
            params[k] = v if isinstance(v, str) else None
        elif isinstance(v, np.ndarray) or (isinstance(v, (list, tuple))
                                           and k.endswith(("_init", "_prior"))):
            arrays[f"hyper.{k}"] = np.asarray(v, dtype=np.float64)
            params[k] = {"array": f"hyper.{k}"}
        elif isinstance(v, np.random.RandomState):
            params[k] = None  # a generator object is state, not a parameter: saved as rng.*
        elif v is None or isinstance(v, (bool, str)):
            params[k] = v
        elif isinstance(v, numbers.Integral):
            params[k] = int(v)
        elif isinstance(v, numbers.Real):
            params[k] = float(v)
        else:
            raise CheckpointCorruptError(f"parameter {k}={v!r} cannot be saved as JSON")
    return params, arrays


def rng_to_arrays(rng: np.random.RandomState, prefix: str = "rng") -> tuple[dict, dict]:
    name, key, pos, has_gauss, cached = rng.get_state()
    return ({f"{prefix}.key": np.asarray(key, dtype=np.uint32)},
            {"pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached),
             "name": name})


def rng_from_arrays(arrays: dict, state: dict, prefix: str = "rng") -> np.random.RandomState:
    rng = np.random.RandomState()
    rng.set_state((state["name"], arrays[f"{prefix}.key"], state["pos"], state["has_gauss"],
                   state["cached_gaussian"]))
    return rng


def stats_to_arrays(stats: SufficientStats, prefix: str) -> tuple[dict, dict]:
    arrays = {f"{prefix}.s0": stats.s0, f"{prefix}.s1": stats.s1, f"{prefix}.s2": np.asarray(stats.s2),
              f"{prefix}.centres": stats.centres,
              f"{prefix}.scalars": np.array([stats.loglik, stats.n])}
    if stats.centre2 is not None:
        arrays[f"{prefix}.centre2"] = stats.centre2
    return arrays, {"covariance_type": stats.covariance_type}


def stats_from_arrays(arrays: dict, prefix: str, state: dict) -> SufficientStats:
    loglik, n = arrays[f"{prefix}.scalars"]
    return SufficientStats(state["covariance_type"], arrays[f"{prefix}.s0"],
                           arrays[f"{prefix}.s1"], arrays[f"{prefix}.s2"], float(loglik),
                           float(n), np.ascontiguousarray(arrays[f"{prefix}.centres"]),
                           arrays.get(f"{prefix}.centre2"))


def params_to_arrays(params, prefix: str) -> dict:
    if hasattr(params, "to_arrays"):  # a variational posterior
        return params.to_arrays(prefix)
    out = {f"{prefix}.weights": params.weights, f"{prefix}.means": params.means,
           f"{prefix}.precisions_cholesky": params.precisions_cholesky}
    if params.covariances is not None:
        out[f"{prefix}.covariances"] = np.asarray(params.covariances)
    return out


def params_from_arrays(arrays: dict, prefix: str, covariance_type):
    """GaussianParams, or a VariationalParams when ``covariance_type`` is a
    (covariance type, weight prior type) pair (a BayesianGaussianMixture's)."""
    from ..math.params import GaussianParams

    if isinstance(covariance_type, tuple):
        from ..math.variational import VariationalParams

        return VariationalParams.from_arrays(arrays, prefix, *covariance_type)

    return GaussianParams(covariance_type, arrays[f"{prefix}.weights"],
                          np.ascontiguousarray(arrays[f"{prefix}.means"]),
                          arrays.get(f"{prefix}.covariances"),
                          np.ascontiguousarray(arrays[f"{prefix}.precisions_cholesky"]))


def model_to_payload(model) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, JSON state) describing a fitted (or buffering online) estimator."""
    cls = type(model).__name__
    if cls not in ESTIMATORS:
        raise CheckpointCorruptError(f"cannot save a {cls}")
    hyper, arrays = hyperparameters_to_payload(model)
    state: dict = {"estimator": cls, "hyperparameters": hyper, "fitted": hasattr(model, "means_")}
    if hasattr(model, "means_"):
        params = model._get_params_value()
        arrays.update({"weights": params.weights, "means": params.means,
                       "precisions_cholesky": params.precisions_cholesky})
        if params.covariances is not None:
            arrays["covariances"] = np.asarray(params.covariances)
        state["covariance_type"] = params.covariance_type
        state["n_features_in"] = int(model.n_features_in_)
        arrays["lower_bounds"] = np.asarray(getattr(model, "lower_bounds_", []), dtype=np.float64)
        arrays["lower_bound"] = np.array([getattr(model, "lower_bound_", -np.inf)], dtype=np.float64)
        if hasattr(model, "_prior_arrays"):  # a Bayesian mixture: posterior and priors
            arrays.update(model._current_state().to_arrays("variational"))
            arrays.update(model._prior_arrays())
    if cls in BATCH and hasattr(model, "means_"):
        state["n_iter"] = int(model.n_iter_)
        state["converged"] = bool(model.converged_)
    if cls in ONLINE:
        online = {}
        if hasattr(model, "means_"):
            online.update({"n_updates": int(model.n_updates_),
                           "n_samples_seen": float(model.n_samples_seen_),
                           "eta": None if model.eta_ is None else float(model.eta_),
                           "events": model.events_, "next_id": int(model._next_id)})
            if hasattr(model, "_batch_rows"):
                online["batch_rows"] = float(model._batch_rows)
            arrays["component_ids"] = np.asarray(model.component_ids_, dtype=np.int64)
            if getattr(model, "_search", None) is not None:
                found = model._search
                online["move_search"] = {
                    "at": int(found["at"]), "gap": int(found["gap"]),
                    "loglik": float(found["loglik"]) if np.isfinite(found["loglik"]) else None}
            history = getattr(model, "_history", None)
            if history is not None:
                arrays.update(history.to_arrays())
                online["history_stride"] = int(history.stride)
            if getattr(model, "_running", None) is not None:
                a, s = stats_to_arrays(model._running, "running")
                arrays.update(a)
                online["running"] = s
            a, s = rng_to_arrays(model._rng)
            arrays.update(a)
            online["rng"] = s
        elif getattr(model, "_buffer", None):
            arrays["buffer.X"] = np.concatenate(model._buffer)
            arrays["buffer.w"] = np.concatenate(model._buffer_weights)
        online["cursor"] = getattr(model, "stream_cursor_", None)
        state["online"] = online
    return arrays, state


def model_from_payload(arrays: dict[str, np.ndarray], state: dict):
    """Rebuild the estimator saved by ``model_to_payload``."""
    try:
        cls = _estimator_class(state["estimator"])
        hyper = dict(state["hyperparameters"])
        if state["estimator"] == "OnlineGaussianMixture" and "split_merge" not in hyper:
            hyper["split_merge"] = False  # saved before the moves existed: resume as it ran
        for k, v in list(hyper.items()):
            if isinstance(v, dict) and "array" in v:
                hyper[k] = arrays[v["array"]]
        model = cls(**hyper)
        if state.get("fitted"):
            from ..math.params import GaussianParams

            params = GaussianParams(state["covariance_type"], arrays["weights"],
                                    np.ascontiguousarray(arrays["means"]),
                                    arrays.get("covariances"),
                                    np.ascontiguousarray(arrays["precisions_cholesky"]))
            if "variational.means" in arrays:
                from ..math.variational import VariationalParams

                model._restore_prior(arrays)
                model._set_state(VariationalParams.from_arrays(
                    arrays, "variational", state["covariance_type"],
                    hyper["weight_concentration_prior_type"]))
            else:
                model._set_params_value(params)
            model.n_features_in_ = int(state["n_features_in"])
            model.lower_bounds_ = [float(v) for v in arrays["lower_bounds"]]
            model.lower_bound_ = float(arrays["lower_bound"][0])
        if state["estimator"] in BATCH and state.get("fitted"):
            model.n_iter_ = int(state["n_iter"])
            model.converged_ = bool(state["converged"])
        if state["estimator"] in ONLINE:
            online = state["online"]
            if state.get("fitted"):
                model.n_updates_ = int(online["n_updates"])
                model.n_samples_seen_ = float(online["n_samples_seen"])
                model.eta_ = online["eta"]
                model.events_ = list(online["events"])
                model._next_id = int(online["next_id"])
                if "batch_rows" in online:
                    model._batch_rows = float(online["batch_rows"])
                model.component_ids_ = np.asarray(arrays["component_ids"], dtype=np.int64)
                model._running = (stats_from_arrays(arrays, "running", online["running"])
                                  if "running" in online else None)
                model._rng = rng_from_arrays(arrays, online["rng"])
                from ..estimators.online import WeightHistory

                model._history = (WeightHistory.from_arrays(arrays, online["history_stride"])
                                  if "history_stride" in online else WeightHistory())
                search = online.get("move_search")
                model._search = (
                    {"at": int(search["at"]), "gap": int(search["gap"]),
                     "loglik": -np.inf if search["loglik"] is None
                     else float(search["loglik"])} if search else
                    {"at": model.n_updates_ + model.MOVE_EVERY, "gap": model.MOVE_EVERY,
                     "loglik": -np.inf})
            elif "buffer.X" in arrays:
                model._buffer = [np.ascontiguousarray(arrays["buffer.X"])]
                model._buffer_weights = [arrays["buffer.w"]]
            if online.get("cursor") is not None:
                model.stream_cursor_ = online["cursor"]
        return model
    except CheckpointCorruptError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CheckpointCorruptError(
            f"checkpoint content is inconsistent: {type(exc).__name__}: {exc}"
        ) from None
