"""Prometheus metrics of a running follower (`--metrics-port`), in the prometheus_client
convention: counters end in _total, gauges hold the last value. Without a port nothing is
served and every call is a no-op."""

from __future__ import annotations

import time


class FollowerMetrics:
    """What a follower reports: rows and messages consumed, updates, bad messages,
    anomalies flagged, consumer lag, seconds since the last committed version, the last
    batch's mean log-likelihood and the committed version."""

    def __init__(self, address: str | None, command: str):
        self.enabled = address is not None
        self.last_commit = time.monotonic()
        if not self.enabled:
            return
        from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

        from .config import ConfigError

        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"--metrics-port {address!r}: expected PORT or HOST:PORT")
        self.registry = CollectorRegistry()
        labels = {"registry": self.registry}
        self.rows = Counter("streammix_rows_consumed", "rows consumed", **labels)
        self.messages = Counter("streammix_messages_consumed", "messages consumed", **labels)
        self.updates = Counter("streammix_updates", "model updates (batches)", **labels)
        self.bad = Counter("streammix_bad_messages", "messages skipped as bad", **labels)
        self.anomalies = Counter("streammix_anomalies_flagged", "rows flagged", **labels)
        self.lag = Gauge("streammix_consumer_lag", "messages after the last one read",
                         **labels)
        self.since_commit = Gauge("streammix_seconds_since_commit",
                                  "seconds since the last committed checkpoint version",
                                  **labels)
        self.since_commit.set_function(lambda: time.monotonic() - self.last_commit)
        self.loglik = Gauge("streammix_last_batch_log_likelihood",
                            "mean log-likelihood of the last batch", **labels)
        self.version = Gauge("streammix_committed_version", "checkpoint version committed "
                             "(update) or model version used (score)", **labels)
        self.info = Gauge("streammix_up", "1 while the follower runs", ["command"], **labels)
        self.info.labels(command=command).set(1)
        try:
            self.server, self.thread = start_http_server(int(port), addr=host or "0.0.0.0",
                                                         registry=self.registry)
        except OSError as exc:
            raise ConfigError(f"--metrics-port {address!r}: cannot serve metrics there "
                              f"({exc})") from None

    def batch(self, rows: int, messages: int, skipped: int, loglik: float | None) -> None:
        if not self.enabled:
            return
        self.rows.inc(rows)
        self.messages.inc(messages)
        self.bad.inc(skipped)
        if rows:
            self.updates.inc()
        if loglik is not None:
            self.loglik.set(loglik)

    def committed(self, version: int | None) -> None:
        self.last_commit = time.monotonic()
        if self.enabled and version is not None:
            self.version.set(version)

    def flagged(self, n: int) -> None:
        if self.enabled:
            self.anomalies.inc(n)

    def set_lag(self, lag: int | None) -> None:
        if self.enabled and lag is not None:
            self.lag.set(lag)

    def close(self) -> None:
        if self.enabled:
            self.server.shutdown()
            self.server.server_close()
