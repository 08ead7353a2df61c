"""Where a command's Dask work runs: an existing cluster (``--scheduler`` or
run.cluster.scheduler), local worker processes (``--workers N`` or run.cluster.workers),
or, by default, Dask's threaded scheduler inside this process (no cluster to start)."""

from __future__ import annotations

import contextlib
from typing import Iterator


class ClusterError(RuntimeError):
    """The configured scheduler cannot be reached (exit code 1)."""


@contextlib.contextmanager
def dask_client(cluster_cfg: dict | None, scheduler: str | None, workers: int | None,
                log) -> Iterator[object | None]:
    """Yield the distributed Client to use (active for the block), or None for the
    in-process threaded scheduler. Command-line options win over the config."""
    cluster_cfg = cluster_cfg or {}
    scheduler = scheduler or cluster_cfg.get("scheduler")
    workers = workers or cluster_cfg.get("workers")
    if scheduler is None and workers is None:
        log.debug("running on Dask's threaded scheduler in this process")
        yield None
        return
    from distributed import Client, LocalCluster

    if scheduler is not None:
        import dask

        # how long to try: Dask's own setting (DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT)
        timeout = dask.config.get("distributed.comm.timeouts.connect")
        try:
            client = Client(scheduler, timeout=timeout)
        except ValueError as exc:
            from .config import ConfigError

            raise ConfigError(f"scheduler {scheduler!r} is not a Dask scheduler address "
                              f"(e.g. tcp://host:8786): {exc}") from None
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {scheduler!r}: {exc}") \
                from None
        with client:
            log.info(f"using the Dask cluster at {scheduler} "
                     f"(dashboard {client.dashboard_link})",
                     fields={"scheduler": scheduler, "dashboard": client.dashboard_link})
            yield client
        return
    threads = int(cluster_cfg.get("threads_per_worker", 1))
    with LocalCluster(n_workers=int(workers), threads_per_worker=threads, processes=True,
                      host="127.0.0.1", dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        log.info(f"started a local Dask cluster: {workers} worker processes at "
                 f"{cluster.scheduler_address} (dashboard {client.dashboard_link})",
                 fields={"scheduler": cluster.scheduler_address, "workers": int(workers),
                         "dashboard": client.dashboard_link})
        yield client
