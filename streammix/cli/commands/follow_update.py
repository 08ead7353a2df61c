"""`streammix update CONFIG --follow`: a service that keeps an online model up to date
from a broker stream (Redis Streams) until SIGTERM/SIGINT.

Every batch of ``run.batch_size`` rows (whole messages; a partial batch after
``run.max_wait`` seconds) updates the model; on the checkpoint cadence the model and the
stream offset (the id of the last message it covers) are committed in one checkpoint
version, and only then are those messages acknowledged (XACK). A restart continues after
the committed offset, so every message counts exactly once across kill -9, broker
restarts and dropped connections. SIGTERM/SIGINT: the batch in hand is finished,
committed and acknowledged, the lock released, exit 0.
"""

from __future__ import annotations

import signal
import time

from ...errors import CheckpointMismatchError, InvalidInputError
from ...execution.streams import BadMessage, RedisStream, StreamStopped, redacted
from ...persistence import CheckpointWriter, current_version, list_versions
from ...persistence.cadence import SaveCadence
from ...persistence.serialize import model_from_payload, model_to_payload
from ..config import Config, ConfigError, check_priors_for_data, online_estimator, require
from ..console import log_structure_events
from ..metrics import FollowerMetrics

#: a commit is forced when this many messages wait for their acknowledgement (bounds the
#: memory a long checkpoint_interval takes at a high message rate)
MAX_UNACKED = 100_000
#: seconds between refreshes of the checkpoint lock's heartbeat while no save comes
HEARTBEAT_EVERY = 10.0
#: seconds between refreshes of the consumer-lag gauge
LAG_EVERY = 1.0


class StopFlag:
    """SIGTERM/SIGINT set a flag the loop checks between batches (a signal never lands
    inside an update or a save); a second signal while stopping is ignored."""

    def __init__(self):
        self.signal: str | None = None
        self._previous = {}

    def __enter__(self):
        def handler(signum, frame):
            self.signal = signal.Signals(signum).name

        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread
                pass
        return self

    def __exit__(self, *exc):
        for sig, old in self._previous.items():
            signal.signal(sig, old)


def stream_from_config(cfg: Config, log, on_bad: str, stop: "StopFlag | None" = None,
                       identity: str | None = None) -> RedisStream:
    """The configured Redis stream. The consumer's default name is stable for a given
    job (host and a digest of ``identity``: the checkpoint or the output stream), so that
    restarts reuse one consumer instead of adding one to the group each time."""
    import hashlib
    import socket

    src = cfg.source
    require(cfg, "source.url", "source.stream", command="update --follow")
    consumer = src.get("consumer") or (
        None if identity is None else
        f"{socket.gethostname()}-{hashlib.sha1(identity.encode()).hexdigest()[:8]}")
    return RedisStream(src["url"], src["stream"], group=src["group"],
                       consumer=consumer, format=src["format"],
                       field=src["field"], columns=src.get("columns"),
                       dtype=src.get("dtype") or "float64", n_features=src.get("n_features"),
                       start=src["start"], on_bad=on_bad,
                       poll=min(1.0, float(cfg.run["max_wait"])),
                       on_event=lambda text, level: {"info": log.info,
                                                     "error": log.error}.get(
                                                         level, log.warning)(text),
                       should_stop=(lambda: bool(stop.signal)) if stop else None,
                       exclusive=True)


def _check_cursor(cursor: dict | None, cfg: Config, ck: str) -> str | None:
    """The committed offset, after checking the checkpoint follows this stream."""
    if cursor is None:
        return None
    src = cfg.source
    if cursor.get("type") != "redis" or cursor.get("stream") != src["stream"] or \
            cursor.get("group") != src["group"]:
        raise CheckpointMismatchError(
            f"checkpoint {ck!r} follows {cursor.get('type')} {cursor.get('stream')!r} "
            f"(group {cursor.get('group')!r}), not redis stream {src['stream']!r} (group "
            f"{src['group']!r}): use another run.checkpoint")
    return cursor.get("last_id")


def run(cfg: Config, opts, log, check_same_model) -> int:
    require(cfg, "run.checkpoint", command="update --follow")
    if cfg.source.get("type") != "redis":
        raise ConfigError(f"{cfg.path}: source.type: --follow reads a broker stream "
                          "(type: redis); for files or a growing Zarr array run `streammix "
                          "update` without --follow")
    estimator = online_estimator(cfg, "update --follow")

    ck = cfg.run["checkpoint"]
    wanted = estimator(**cfg.estimator_params())
    metrics = FollowerMetrics(opts.metrics_port, "update")
    try:
        with CheckpointWriter(ck, keep_last=cfg.run["keep_last"]) as writer, \
                StopFlag() as stop:
            lost_pointer = current_version(ck) is None and bool(list_versions(ck))
            found = writer.resume()
            if found is not None:
                model = model_from_payload(found[0], found[1]["state"])
                check_same_model(model, wanted, ck)
                if lost_pointer:
                    log.warning(f"checkpoint {ck} had no CURRENT.json pointer: continuing "
                                f"from its newest version that verifies ({found[2]})")
            else:
                model = wanted
            cursor = getattr(model, "stream_cursor_", None)
            after = _check_cursor(cursor, cfg, ck)
            totals = {k: int((cursor or {}).get(k, 0)) for k in ("messages", "rows",
                                                                 "skipped")}
            stream = stream_from_config(cfg, log, cfg.run["on_bad_batch"], stop=stop,
                                        identity=f"update {ck}")
            if stream.decoder.n_features is None and hasattr(model, "n_features_in_"):
                # rows as wide as the model's, not as the first message after a restart
                stream.decoder = stream.decoder.with_features(model.n_features_in_)
            log.info(f"following {stream.adapter.describe()} into {ck} "
                     f"({'from the start' if after is None else f'after message {after}'}, "
                     f"{totals['rows']:,} rows so far)",
                     fields={"stream": cfg.source["stream"], "after": after,
                             "url": redacted(cfg.source["url"])})
            follower = _Follower(cfg, model, writer, stream, metrics, log, totals)
            try:
                code = follower.loop(after, stop)
            finally:
                stream.close()
            return code
    finally:
        metrics.close()


class _Follower:
    """The loop's state: the model, what is learnt but not committed, the cadence."""

    def __init__(self, cfg, model, writer, stream, metrics, log, totals):
        self.cfg, self.model, self.writer, self.stream = cfg, model, writer, stream
        self.metrics, self.log, self.totals = metrics, log, totals
        self.cadence = SaveCadence(cfg.run["checkpoint_every"], cfg.run["checkpoint_interval"])
        self.unacked: list[str] = []
        self.last_log = time.monotonic()
        self.last_beat = time.monotonic()
        self.rows_since_log = 0
        self.version = current_version(cfg.run["checkpoint"])
        self.lag: int | None = None
        self.last_lag = -LAG_EVERY

    def commit(self) -> None:
        """Save the model with its offset, then acknowledge what it covers."""
        if not self.unacked:
            return
        started = time.monotonic()
        self.version = self.writer.save(*model_to_payload(self.model))
        self.cadence.saved(started)
        try:
            self.stream.adapter.acknowledge(self.unacked)
        except StreamStopped:  # the broker is down and a stop was asked
            self.log.warning(f"{len(self.unacked):,} messages committed in version "
                             f"{self.version} could not be acknowledged (the broker is "
                             "unreachable); the next start acknowledges them")
        self.unacked = []
        self.metrics.committed(self.version)

    def learn(self, batch) -> None:
        if batch.n_rows:
            if not hasattr(self.model, "n_features_in_"):
                check_priors_for_data(self.cfg, int(batch.X.shape[1]))
            seen = len(getattr(self.model, "events_", []))
            self.model.partial_fit(batch.X)
            log_structure_events(self.model, seen, self.log)
        for message_id, reason in batch.skipped:
            self.log.warning(f"skipped bad message {message_id}: {reason}",
                             fields={"skipped": message_id})
        self.totals["messages"] += len(batch.ids)
        self.totals["rows"] += batch.n_rows
        self.totals["skipped"] += len(batch.skipped)
        src = self.cfg.source
        self.model.stream_cursor_ = {"type": "redis", "stream": src["stream"],
                                     "group": src["group"], "last_id": batch.last_id,
                                     **self.totals}
        self.unacked += batch.ids
        self.rows_since_log += batch.n_rows
        loglik = getattr(self.model, "lower_bound_", None) if batch.n_rows else None
        self.metrics.batch(batch.n_rows, len(batch.ids), len(batch.skipped), loglik)

    def loop(self, after: str | None, stop: StopFlag) -> int:
        cfg = self.cfg
        reader = self.stream.batches(cfg.run["batch_size"], cfg.run["max_wait"], after=after)
        try:
            for batch in reader:
                if not batch.idle:
                    self.learn(batch)
                    due = self.cadence.step()
                else:  # nothing new: commit what waits once the interval allows it
                    due = self.cadence.idle_due()
                if due or len(self.unacked) >= MAX_UNACKED:
                    self.commit()
                self._heartbeat()
                self._refresh_lag()
                self._progress()
                if stop.signal:
                    break
        except StreamStopped as exc:
            self.log.warning(str(exc))
        except BadMessage as exc:
            self.commit()  # the model up to the message before the bad one
            raise InvalidInputError(
                f"{self.stream.adapter.describe()}: {exc}; the model is committed up to "
                "the message before it (set run.on_bad_batch: skip to skip such "
                "messages)") from None
        self.commit()
        self.log.info(f"stopped by {stop.signal}: committed version {self.version} covering "
                      f"{self.totals['messages']:,} messages ({self.totals['rows']:,} rows, "
                      f"up to message {self.model_cursor('last_id')})",
                      fields={"signal": stop.signal, "version": self.version, **self.totals})
        return 0

    def _heartbeat(self) -> None:
        """Keep the checkpoint lock fresh between saves: a quiet stream can go hours
        without one, and a lock whose heartbeat is that old counts as stale (another
        writer would break it while this follower still reads the group)."""
        lock = getattr(self.writer, "lock", None)
        now = time.monotonic()
        if lock is None or now - self.last_beat < HEARTBEAT_EVERY:
            return
        lock.heartbeat(every=HEARTBEAT_EVERY)  # raises if another writer took it over
        self.last_beat = now

    def model_cursor(self, key: str):
        return (getattr(self.model, "stream_cursor_", None) or {}).get(key)

    def _refresh_lag(self) -> None:
        """The consumer-lag gauge, at most every LAG_EVERY seconds (one small Redis
        call): scrapers see a backlog grow within seconds, not at the next log line."""
        now = time.monotonic()
        if now - self.last_lag < LAG_EVERY:
            return
        self.lag = self.stream.lag()
        self.metrics.set_lag(self.lag)
        self.last_lag = now

    def _progress(self) -> None:
        now = time.monotonic()
        if now - self.last_log < 10.0:
            return
        lag = self.lag
        rate = self.rows_since_log / (now - self.last_log)
        self.log.info(f"{self.totals['rows']:,} rows from {self.totals['messages']:,} "
                      f"messages, {rate:,.0f} rows/s, lag {lag if lag is not None else '?'} "
                      f"messages, committed version {self.version}",
                      fields={**self.totals, "rows_per_second": rate, "lag": lag,
                              "version": self.version})
        self.last_log, self.rows_since_log = now, 0
