"""`streammix predict CONFIG` and `streammix score CONFIG`: a saved model's labels,
responsibilities or log-density for every row of a source, written chunk by chunk to a
Zarr group; ``score`` can also flag anomalies (log-density under a threshold, or the
lowest ``quantile`` of rows, found exactly without holding the scores whole)."""

from __future__ import annotations

import time

import numpy as np

from ...errors import NotFittedError
from ...persistence import current_version, load
from ..cluster import dask_client
from ..config import (
    EFFECTIVE_THRESHOLD,
    Config,
    ConfigError,
    is_bayesian,
    is_online,
    require,
    require_checkpoint,
)
from ..sources import open_source


def exact_lower_quantile(values, q: float, bins: int = 4096,
                         in_memory: int = 1_000_000) -> tuple[float, int]:
    """(threshold, k): the k-th smallest value of a 1-D dask array, k = ceil(q * n), so
    that k values lie at or below it (more only with ties). Histogram refinement: each
    round reads the values once and narrows [lo, hi] to the bin holding rank k, until
    that bin holds few enough values to sort in memory."""
    import dask.array as da

    n = int(values.shape[0])
    k = max(1, int(np.ceil(q * n)))
    lo, hi = (float(v) for v in da.compute(values.min(), values.max()))
    below, closed = 0, True  # values < lo; whether hi itself is inside
    for _ in range(16):
        inside = (values >= lo) & ((values <= hi) if closed else (values < hi))
        if lo == hi or int(inside.sum().compute()) <= in_memory:
            break
        edges = np.linspace(lo, hi, bins + 1)
        counts = da.histogram(values[inside], bins=edges)[0].compute()
        cum = below + np.cumsum(counts)
        j = int(np.searchsorted(cum, k))  # the first bin whose cumulative count reaches k
        below = int(cum[j - 1]) if j > 0 else below
        closed = closed if j == bins - 1 else False  # numpy's bins: half-open but the last
        lo, hi = float(edges[j]), float(edges[j + 1])
    part = np.sort(np.asarray(values[inside].compute()))
    return float(part[k - below - 1]), k


def check_output_path(cfg: Config, out: str, protected: list[str]) -> None:
    """Refuse an outputs.path that would destroy something: the source, the model's
    checkpoint, any checkpoint, a file or folder streammix did not write, or an earlier
    output group when outputs.overwrite is false. The rule is write_predictions' own
    (check_output_target); here it is a config error (exit code 2) naming the keys."""
    from ...errors import OutputExistsError
    from ...execution.outputs import check_output_target

    try:
        check_output_target(out, protected, overwrite=bool(cfg.outputs["overwrite"]),
                            name="outputs.path", overwrite_hint="outputs.overwrite: true")
    except OutputExistsError as exc:
        raise ConfigError(f"{cfg.path}: {exc}") from None


def _load_model(cfg: Config, log):
    path = cfg.outputs.get("model") or cfg.run.get("checkpoint")
    if path is None:
        raise ConfigError(f"{cfg.path}: outputs.model (or run.checkpoint) is required: the "
                          "checkpoint of the model to use")
    require_checkpoint(path, "outputs.model" if cfg.outputs.get("model") else "run.checkpoint")
    model = load(path)
    if not hasattr(model, "means_"):
        raise NotFittedError(f"checkpoint {path!r} holds a model that is not fitted yet "
                             "(an online model still buffering rows)")
    version = current_version(path)
    if not is_online(model) and not model.converged_:
        log.warning(f"the model at {path} has not converged (a fit in progress, or one that "
                    f"stopped at max_iter after {model.n_iter_} iterations)")
    effective = (f", {model.effective_n_components(EFFECTIVE_THRESHOLD)} with a weight "
                 f"above {EFFECTIVE_THRESHOLD:.0%}" if is_bayesian(model) else "")
    log.info(f"model: {type(model).__name__} from {path} version {version} "
             f"(K={len(model.weights_)}{effective}, {model.covariance_type})",
             fields={"model": path, "model_version": version})
    return model, path, version


def run(cfg: Config, opts, log, command: str = "predict") -> int:
    if command == "score" and getattr(opts, "follow", False):
        from . import follow_score

        return follow_score.run(cfg, opts, log)
    import dask.array as da

    from ...execution.outputs import write_predictions

    if cfg.source.get("type") == "redis":
        raise ConfigError(f"{cfg.path}: source.type: redis is a broker stream: run `streammix "
                          "score CONFIG --follow`")
    require(cfg, "source.type", "source.path", "outputs.path", command=command)
    model, model_path, version = _load_model(cfg, log)
    X = open_source(cfg)
    out = cfg.outputs["path"]
    default = ["labels"] if command == "predict" else ["log_density"]
    write = list(cfg.outputs.get("write") or default)
    anomaly = cfg.outputs.get("anomaly")
    if command == "predict" and anomaly:  # one config serves both commands
        log.info("outputs.anomaly is used by `streammix score`: predict writes no anomaly "
                 f"flags, only {', '.join(write)}", fields={"anomaly_ignored": True})
        anomaly = None
    if anomaly and "log_density" not in write:
        write.append("log_density")
    check_output_path(cfg, out, [cfg.source["path"], model_path])
    t0 = time.perf_counter()
    with dask_client(cfg.run.get("cluster"), opts.scheduler, opts.workers, log) as client:
        group = write_predictions(model, X, out, write,
                                  overwrite=bool(cfg.outputs["overwrite"]), client=client)
        attrs = {"model": model_path, "model_version": version, "source": cfg.source["path"]}
        if anomaly:
            ld = da.from_zarr(group["log_density"])
            if "threshold" in anomaly:
                threshold = float(anomaly["threshold"])
                rule = f"log-density < {threshold}"
            else:
                threshold, k = exact_lower_quantile(ld, float(anomaly["quantile"]))
                rule = (f"the lowest {anomaly['quantile']:g} of rows ({k:,}): log-density "
                        f"<= {threshold:.6g}")
            flag = ld <= threshold if "quantile" in anomaly else ld < threshold
            target = group.create_array("anomaly", shape=flag.shape, chunks=ld.chunksize,
                                        dtype="bool", overwrite=True)
            da.store(flag, target, lock=False)
            n_flagged = int(da.from_zarr(target).sum().compute())
            attrs.update({"anomaly_threshold": threshold, "anomaly_rule": rule,
                          "n_anomalies": n_flagged})
            log.info(f"anomalies: {n_flagged:,} of {X.shape[0]:,} rows ({rule})",
                     fields={"n_anomalies": n_flagged, "threshold": threshold})
    group.attrs.update(attrs)
    log.info(f"wrote {', '.join(write + (['anomaly'] if anomaly else []))} for "
             f"{X.shape[0]:,} rows to {out} in {time.perf_counter() - t0:.1f} s",
             fields={"outputs": out, "rows": X.shape[0], "written": write})
    return 0
