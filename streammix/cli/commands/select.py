"""`streammix select CONFIG`: fit every candidate (numbers of components x covariance
types) on the source, score each by BIC and AIC, print the table and the choice, plot
the curves, and save the chosen model. Candidates are checkpointed next to the run's
checkpoint, so an interrupted selection resumes and a rerun does not refit."""

from __future__ import annotations

import json
import os
import time

from ...persistence import save
from ...persistence.storage import Storage
from ..cluster import dask_client
from ..config import Config, ConfigError, require
from ..sources import open_source, persisted

SELECTION_FILE = "selection.json"


def candidates_dir(checkpoint: str) -> str:
    return checkpoint.rstrip("/") + "-candidates"


def plot_selection(results: list[dict], chosen: dict, criterion: str, path: str) -> None:
    """BIC and AIC against K, one line per covariance type, the choice circled."""
    from ..plotting import pyplot

    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for ax, crit in zip(axes, ("bic", "aic")):
        for cov in sorted({r["covariance_type"] for r in results}):
            rows = sorted((r for r in results if r["covariance_type"] == cov),
                          key=lambda r: r["n_components"])
            ax.plot([r["n_components"] for r in rows], [r[crit] for r in rows], "o-",
                    label=cov)
        if crit == criterion:
            ax.plot([chosen["n_components"]], [chosen[crit]], "o", ms=16, mfc="none",
                    mec="red", mew=2, label="chosen")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("number of components K")
        ax.set_ylabel(crit.upper() + " (lower is better)")
        ax.set_title(crit.upper())
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _table(results: list[dict], chosen: dict) -> str:
    lines = ["  covariance     K          BIC          AIC   iters  converged"]
    for r in results:
        mark = "  <- chosen" if r is chosen else ""
        lines.append(f"  {r['covariance_type']:<10} {r['n_components']:5d} {r['bic']:12.1f} "
                     f"{r['aic']:12.1f} {r['n_iter']:7d}  {str(r['converged']):<9}{mark}")
    return "\n".join(lines)


def run(cfg: Config, opts, log) -> int:
    from ... import GaussianMixture

    require(cfg, "source.type", "source.path", "select.n_components", command="select")
    if cfg.estimator != "GaussianMixture":
        raise ConfigError(f"{cfg.path}: model.estimator: `streammix select` compares "
                          "GaussianMixture fits")
    sel, ck = cfg.select, cfg.run.get("checkpoint")
    criterion = sel["criterion"]
    X = open_source(cfg)
    n, d = (int(s) for s in X.shape)
    results = []
    best_model = None
    t0 = time.perf_counter()
    with dask_client(cfg.run.get("cluster"), opts.scheduler, opts.workers, log) as client:
        X = persisted(X, cfg, client, log)
        for cov in sel["covariance_types"]:
            for K in sel["n_components"]:
                if K > n:
                    raise ConfigError(f"{cfg.path}: select.n_components: K={K} is more than "
                                      f"the {n} rows of the source")
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
    plot = sel.get("plot") or os.path.join(os.path.dirname(os.path.abspath(cfg.path)),
                                           "selection.png")
    os.makedirs(os.path.dirname(os.path.abspath(plot)), exist_ok=True)
    plot_selection(results, chosen, criterion, plot)
    summary = {"criterion": criterion, "n_samples": n, "n_features": d,
               "chosen": chosen, "results": results, "plot": plot}
    if ck:
        version = save(model, ck, keep_last=cfg.run["keep_last"])
        Storage(ck).write_text_atomic(json.dumps(summary, indent=2), SELECTION_FILE)
        summary["version"] = version
        log.info(f"saved the chosen model to {ck} version {version} (and {SELECTION_FILE})")
    log.info(f"selection done in {time.perf_counter() - t0:.1f} s; plot {plot}",
             fields={"chosen": chosen, "plot": plot})
    return 0
