"""Resumable batch fits: what a GaussianMixture checkpoint holds beyond the model, and
the checks that decide whether a checkpoint may be resumed on the data at hand.

The progress of the n_init x EM loop is: which restart, its current iterate (parameters
after the last M-step, lower bound, history), the best finished restart so far, the
first restart's result (label alignment) and the random generator's state after the
current restart's initialisation. EM iteration t + 1 depends on nothing else, so a
resumed fit on the same chunking reproduces the uninterrupted one bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..engines.em import EMResult
from ..errors import CheckpointMismatchError
from ..math.params import GaussianParams
from ..persistence.serialize import (
    hyperparameters_to_payload,
    params_from_arrays,
    params_to_arrays,
    rng_from_arrays,
    rng_to_arrays,
)

# the parameters that change what a fit computes (verbose, client... do not)
_FIT_KEYS = ("n_components", "covariance_type", "tol", "reg_covar", "max_iter", "n_init",
             "init_params", "random_state", "warm_start", "chunk_size", "estep_dtype")
# values that mean the same fit (None: the default float64 E-step)
_SAME_FIT = {"estep_dtype": {None: "float64"}}


@dataclass
class FitProgress:
    init: int = 0
    current: EMResult | None = None
    best: EMResult | None = None
    first_params: GaussianParams | None = None
    rng: np.random.RandomState | None = None
    done: bool = False
    extra: dict = field(default_factory=dict)


def _result_to_arrays(result: EMResult, prefix: str) -> tuple[dict, dict]:
    arrays = params_to_arrays(result.params, f"{prefix}.params")
    arrays[f"{prefix}.lower_bounds"] = np.asarray(result.lower_bounds, dtype=np.float64)
    arrays[f"{prefix}.lower_bound"] = np.array([result.lower_bound], dtype=np.float64)
    return arrays, {"n_iter": int(result.n_iter), "converged": bool(result.converged)}


def _result_from_arrays(arrays: dict, prefix: str, state: dict, cov_type: str) -> EMResult:
    return EMResult(params=params_from_arrays(arrays, f"{prefix}.params", cov_type),
                    lower_bound=float(arrays[f"{prefix}.lower_bound"][0]),
                    lower_bounds=[float(v) for v in arrays[f"{prefix}.lower_bounds"]],
                    n_iter=int(state["n_iter"]), converged=bool(state["converged"]))


def progress_payload(model, progress: FitProgress, fingerprint: dict
                     ) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays + JSON for one checkpoint version of a batch fit in progress (or done).

    The top-level model attributes hold the current iterate, so that ``load`` of a
    mid-fit checkpoint gives a usable model (converged_ False, n_iter_ so far)."""
    hyper, arrays = hyperparameters_to_payload(model)
    cur = progress.best if progress.done else progress.current
    p = cur.params
    arrays.update({"weights": p.weights, "means": p.means,
                   "precisions_cholesky": p.precisions_cholesky,
                   "lower_bounds": np.asarray(cur.lower_bounds, dtype=np.float64),
                   "lower_bound": np.array([cur.lower_bound], dtype=np.float64)})
    if p.covariances is not None:
        arrays["covariances"] = np.asarray(p.covariances)
    prog: dict = {"init": progress.init, "done": progress.done, "fingerprint": fingerprint}
    a, prog["current"] = _result_to_arrays(progress.current, "progress.current")
    arrays.update(a)
    if progress.best is not None:
        a, prog["best"] = _result_to_arrays(progress.best, "progress.best")
        arrays.update(a)
    if progress.first_params is not None:
        arrays.update(params_to_arrays(progress.first_params, "progress.first"))
        prog["has_first"] = True
    if progress.rng is not None:
        a, prog["rng"] = rng_to_arrays(progress.rng, "progress.rng")
        arrays.update(a)
    if progress.extra.get("align_ref") is not None:
        ref = progress.extra["align_ref"]
        arrays.update(params_to_arrays(ref, "progress.align_ref"))
        prog["align_ref"] = ref.covariance_type
    if hasattr(p, "to_arrays"):  # a variational posterior (BayesianGaussianMixture)
        arrays.update(p.to_arrays("variational"))
        arrays.update(model._prior_arrays())
    state = {"estimator": type(model).__name__, "hyperparameters": hyper, "fitted": True,
             "covariance_type": p.covariance_type, "n_features_in": p.n_features,
             "n_iter": int(cur.n_iter), "converged": bool(cur.converged) and progress.done,
             "fit_progress": prog}
    return arrays, state


def progress_from_payload(arrays: dict, state: dict) -> FitProgress:
    prog = state["fit_progress"]
    cov_type = state["covariance_type"]
    if state.get("estimator") == "BayesianGaussianMixture":
        cov_type = (cov_type, state["hyperparameters"]["weight_concentration_prior_type"])
    out = FitProgress(init=int(prog["init"]), done=bool(prog["done"]))
    out.current = _result_from_arrays(arrays, "progress.current", prog["current"], cov_type)
    if "best" in prog:
        out.best = _result_from_arrays(arrays, "progress.best", prog["best"], cov_type)
    if prog.get("has_first"):
        out.first_params = params_from_arrays(arrays, "progress.first", cov_type)
    if "rng" in prog:
        out.rng = rng_from_arrays(arrays, prog["rng"], "progress.rng")
    if "align_ref" in prog:
        out.extra["align_ref"] = params_from_arrays(arrays, "progress.align_ref",
                                                    prog["align_ref"])
    return out


def check_resumable(model, state: dict, arrays: dict, fingerprint: dict, path) -> None:
    """Refuse to resume a checkpoint made by another fit: other data (shape, dtype,
    chunking, sampled content) or other parameters that change the computation."""
    name = type(model).__name__
    if state.get("estimator") != name or "fit_progress" not in state:
        raise CheckpointMismatchError(
            f"checkpoint {path!r} does not hold a {name} fit in progress"
        )
    saved_fp = state["fit_progress"]["fingerprint"]
    diffs = [f"{k}: checkpoint {saved_fp.get(k)!r} vs now {fingerprint.get(k)!r}"
             for k in ("shape", "dtype", "chunks", "sample") if saved_fp.get(k) != fingerprint.get(k)]
    hyper_now, arrays_now = hyperparameters_to_payload(model)
    saved = state["hyperparameters"]
    for k in _FIT_KEYS + getattr(model, "_EXTRA_FIT_KEYS", ()):
        same = _SAME_FIT.get(k, {})
        then, now = saved.get(k), hyper_now.get(k)
        if same.get(then, then) != same.get(now, now):
            diffs.append(f"{k}: checkpoint {saved.get(k)!r} vs now {hyper_now.get(k)!r}")
    for k in ("weights_init", "means_init", "precisions_init", "mean_prior",
              "covariance_prior"):
        a, b = arrays.get(f"hyper.{k}"), arrays_now.get(f"hyper.{k}")
        if (a is None) != (b is None) or (a is not None and not np.array_equal(a, b)):
            diffs.append(f"{k} differs")
    if diffs:
        raise CheckpointMismatchError(
            f"checkpoint {path!r} belongs to a different fit ({'; '.join(diffs)}); pass "
            "checkpoint_mismatch='restart' to start over in it, or use another path"
        )
