"""Where a command's Dask work runs: an existing cluster (``--scheduler`` or
run.cluster.scheduler), local worker processes (``--workers N`` or run.cluster.workers),
or, by default, Dask's threaded scheduler inside this process (no cluster to start)."""

from __future__ import annotations

import contextlib
import logging
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

    from .config import ConfigError

    tls = cluster_cfg.get("tls")
    security = _security(tls) if tls else None
    if scheduler is not None:
        import dask

        if tls and not scheduler.startswith("tls://"):
            raise ConfigError(f"run.cluster.tls is set but the scheduler address "
                              f"{scheduler!r} is not tls://: give its tls:// address")
        if scheduler.startswith("tls://") and not tls:
            raise ConfigError(f"the scheduler {scheduler!r} uses TLS: set run.cluster.tls "
                              "{ca_file, cert, key} (the CA and this client's certificate "
                              "and key)")
        # how long to try: Dask's own setting (DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT)
        timeout = dask.config.get("distributed.comm.timeouts.connect")
        try:
            client = Client(scheduler, timeout=timeout, security=security)
        except ValueError as exc:
            raise ConfigError(f"scheduler {scheduler!r} is not a Dask scheduler address "
                              f"(e.g. tcp://host:8786): {exc}") from None
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {scheduler!r}: "
                               f"{_reason(exc)}{_hint(scheduler, exc)}") from None
        with _closing(client):
            watch_workers(client, log)
            log.info(f"using the Dask cluster at {scheduler} "
                     f"(dashboard {client.dashboard_link})",
                     fields={"scheduler": scheduler, "dashboard": client.dashboard_link})
            try:
                yield client
            except Exception as exc:
                if scheduler_lost(client, exc):
                    raise ClusterError(
                        f"lost the Dask scheduler at {scheduler} while running "
                        f"({_reason(exc)}); the checkpoint keeps what was saved: once the "
                        "scheduler and its workers are back, run the same command to "
                        "resume") from None
                raise
        return
    threads = int(cluster_cfg.get("threads_per_worker", 1))
    tls_kw = {"security": security, "protocol": "tls://"} if security else {}
    with LocalCluster(n_workers=int(workers), threads_per_worker=threads, processes=True,
                      host="127.0.0.1", dashboard_address=":0", **tls_kw) as cluster, \
            Client(cluster) as client:
        watch_workers(client, log)
        log.info(f"started a local Dask cluster: {workers} worker processes at "
                 f"{cluster.scheduler_address} (dashboard {client.dashboard_link})",
                 fields={"scheduler": cluster.scheduler_address, "workers": int(workers),
                         "dashboard": client.dashboard_link})
        yield client


def _security(tls: dict):
    """distributed's Security for run.cluster.tls: this client's certificate and key,
    the CA that signed the cluster's, and encryption required."""
    from distributed.security import Security

    return Security(tls_ca_file=tls["ca_file"], tls_client_cert=tls["cert"],
                    tls_client_key=tls["key"], require_encryption=True)


def _reason(exc: BaseException) -> str:
    """The innermost cause of a connection failure, in one line."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[-1] if text else type(exc).__name__


def _hint(scheduler: str, exc: BaseException) -> str:
    """What to check, when the failure says more than "unreachable"."""
    text = f"{exc} {_reason(exc)}".lower()
    if scheduler.startswith("tcp://") and ("reset" in text or "closed" in text):
        return (" (the scheduler closed the connection: if it uses TLS, give its tls:// "
                "address and run.cluster.tls)")
    if scheduler.startswith("tls://") and ("certificate" in text or "ssl" in text
                                           or "reset" in text or "closed" in text):
        return (" (the TLS handshake failed: check that run.cluster.tls's certificate is "
                "signed by the CA the scheduler trusts, and ca_file by the scheduler's)")
    return ""


def watch_workers(client, log) -> None:
    """Log each worker the scheduler loses (a crash, a cut link, a timeout) or gains
    while the command runs: a lost worker's tasks run again elsewhere, so the result is
    unchanged, but the time it costs should be explained by a line in the log."""

    def on_event(event) -> None:
        _, msg = event
        if not isinstance(msg, dict):
            return
        if msg.get("action") == "remove-worker" and not msg.get("expected"):
            running = len(msg.get("processing-tasks") or ())
            log.warning(f"lost the Dask worker {msg.get('worker')}: its {running} running "
                        "task(s) are run again on the other workers",
                        fields={"lost_worker": msg.get("worker"), "tasks_rerun": running})
        elif msg.get("action") == "add-worker":
            log.info(f"a Dask worker joined: {msg.get('worker')}",
                     fields={"worker_joined": msg.get("worker")})

    client.subscribe_topic("all", on_event)


def scheduler_lost(client, exc: BaseException) -> bool:
    """Whether ``exc`` comes from the client losing its scheduler (its futures cancelled
    with "scheduler-connection-lost", or the client closed or reconnecting)."""
    from concurrent.futures import CancelledError

    from distributed.client import ClosedClientError

    if "scheduler-connection-lost" in str(exc) or isinstance(exc, ClosedClientError):
        return True
    status = getattr(getattr(client, "status", None), "value", getattr(client, "status", ""))
    return isinstance(exc, (CancelledError, OSError)) and status != "running"


@contextlib.contextmanager
def _closing(client) -> Iterator[None]:
    """Close ``client`` at the end without waiting on a scheduler that is gone: a client
    whose scheduler died would retry for Dask's connect timeout (30 s) first."""
    try:
        yield
    finally:
        lost = client.status != "running"
        quiet = logging.getLogger("distributed.client")
        level = quiet.level
        if lost:  # cancelling its reconnection logs a traceback that says nothing new
            quiet.setLevel(logging.CRITICAL)
        try:
            client.close(timeout=2 if lost else None)
        except Exception:  # noqa: BLE001 - closing a client whose scheduler is gone
            pass
        finally:
            quiet.setLevel(level)
