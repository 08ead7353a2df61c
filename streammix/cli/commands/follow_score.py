"""`streammix score CONFIG --follow`: a service that scores every message of a broker
stream (Redis Streams) with the newest model until SIGTERM/SIGINT.

Per input message one output message goes to ``outputs.stream`` (on ``outputs.url``,
default ``source.url``), with the input message's id as its own id and the fields
``label``, ``log_density`` and, with ``outputs.anomaly``, ``anomaly`` (JSON lists, one
entry per row of the message) and ``model_version``; a bad message skipped under
``run.on_bad_batch: skip`` gets an output with an ``error`` field instead, so that every
input has exactly one output.

Exactly once: outputs are written in id order (one pipeline per batch) before the input
messages are acknowledged (XACK), and a (re)start reads the input after the output
stream's last id. A crash between the XADDs and the XACK re-reads only the messages
after the last output written; an output written twice anyway (a retried pipeline) is
refused by Redis (an id equal or smaller than the stream's top item) and counted as a
duplicate. This needs one scorer per output stream, reading through a consumer group of
its own (not the updater's: `--set source.group=scorer`), and the output stream written
by nobody else.

The model is the newest finished version of ``outputs.model`` (or ``run.checkpoint``):
between batches the checkpoint's pointer is read (a small file) and a new version an
`update --follow` (or a `fit`) committed is picked up without a restart; a batch fit in
progress is not used half-way. The anomaly threshold is ``outputs.anomaly.threshold``,
or for ``quantile: q`` the q-quantile of the model's log-density over a seeded sample
drawn from the model, computed once per model version. A checkpoint that does not exist
yet is waited for.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time

import numpy as np

from ...errors import CheckpointError, InvalidInputError
from ...execution.streams import BadMessage, StreamStopped, redacted
from ...persistence import read_latest_good, read_pointer
from ...persistence.serialize import model_from_payload
from ..config import Config, ConfigError, require
from ..metrics import FollowerMetrics
from .follow_update import StopFlag, stream_from_config

#: the seed of the sample a quantile threshold is computed from (same model, same threshold)
QUANTILE_SEED = 0
#: XADDs per pipeline round trip
PIPELINE_CHUNK = 5_000
#: what a write or read gives back when a stop signal came while the server was unreachable
STOPPED = object()
#: seconds between two attempts to read a checkpoint version that failed to load
RELOAD_RETRY = 5.0


def quantile_threshold(model, q: float, seed: int = QUANTILE_SEED,
                       chunk: int = 100_000) -> tuple[float, int]:
    """(threshold, n): the q-quantile of the model's log-density over n rows drawn from
    the model with a fixed seed, n = max(100_000, 100 / q) capped at 1e6 (about 100 rows
    below the threshold or more), drawn in chunks so that memory stays small."""
    n = int(min(1_000_000, max(100_000, math.ceil(100.0 / q))))
    saved = model.random_state
    model.random_state = np.random.RandomState(seed)  # one stream across the chunks
    try:
        parts, left = [], n
        while left > 0:
            X, _ = model.sample(min(chunk, left))
            parts.append(np.asarray(model.score_samples(X), dtype=np.float64))
            left -= X.shape[0]
    finally:
        model.random_state = saved
    return float(np.quantile(np.concatenate(parts), q)), n


def read_model(path: str):
    """(model, version): the newest finished model of the checkpoint (CheckpointError
    when there is none, or none that verifies)."""
    arrays, meta, version = read_latest_good(path, finished=True)
    return model_from_payload(arrays, meta["state"]), version


class ModelWatch:
    """The model in use, its version and anomaly threshold; ``poll()`` reads the
    checkpoint's pointer and swaps in a newer finished version when there is one."""

    def __init__(self, path: str, anomaly: dict | None, n_features: int | None, log,
                 metrics: FollowerMetrics):
        self.path, self.anomaly, self.log, self.metrics = path, anomaly, log, metrics
        self.n_features = n_features  # the rows' width the stream decodes (None: any)
        self.model = None
        self.version: int | None = None
        self.threshold: float | None = None
        self.rule = None
        self._seen: int | None = None  # the pointer version last looked at
        self._failed: int | None = None  # the pointer version whose load failed last
        self._failed_at = -math.inf
        self._said: set[str] = set()  # log-once keys

    def _once(self, key: str, text: str, level: str = "info") -> None:
        if key not in self._said:
            self._said.add(key)
            (self.log.info if level == "info" else self.log.warning)(
                text, fields={"model": self.path})

    def poll(self) -> bool:
        """Pick up a new version if the pointer moved; whether a model is in use."""
        try:
            pointer = read_pointer(self.path)
        except CheckpointError as exc:  # a damaged pointer: keep what is in use
            self._once(f"pointer:{exc}", f"cannot read the pointer of {self.path}: {exc}",
                       "warning")
            return self.model is not None
        if pointer is None:
            if self.model is None:
                self._once("absent", f"waiting for a model at {self.path} (no checkpoint "
                                     "committed there yet)")
            return self.model is not None
        seen = int(pointer["version"])
        now = time.monotonic()
        if seen == self._seen or (seen == self._failed and
                                  now - self._failed_at < RELOAD_RETRY):
            return self.model is not None
        if self.model is not None and pointer.get("finished") is False:
            self._seen = seen  # a batch fit in progress: keep the finished model in use
            return True
        try:
            model, version = read_model(self.path)
        except CheckpointError as exc:  # none finished yet, or a version pruned meanwhile
            self._failed, self._failed_at = seen, now
            if self.model is None:
                self._once("nofinished", f"waiting for a finished model at "
                           f"{self.path} (version {seen}: {exc})")
            else:
                self.log.warning(f"cannot load {self.path} version {seen}, scoring on "
                                 f"with version {self.version}: {exc}",
                                 fields={"model": self.path, "pointer_version": seen})
            return self.model is not None
        self._seen, self._failed = seen, None
        if version != self.version:
            self._use(model, version)
        return self.model is not None

    def _use(self, model, version: int) -> None:
        if not hasattr(model, "means_"):  # pragma: no cover - finished implies fitted
            return
        d = int(model.means_.shape[1])
        if self.n_features is not None and d != self.n_features:
            if self.model is None:
                raise ConfigError(f"source.n_features is {self.n_features} but the model "
                                  f"at {self.path} (version {version}) has {d} features")
            self._once(f"width:{version}", f"model version {version} at {self.path} has {d} "
                       f"features, the stream's rows {self.n_features}: scoring on with "
                       f"version {self.version}", "warning")
            return
        threshold, rule, took = None, None, 0.0
        if self.anomaly and "threshold" in self.anomaly:
            threshold = float(self.anomaly["threshold"])
            rule = f"log-density < {threshold:g}"
        elif self.anomaly:
            t0 = time.perf_counter()
            q = float(self.anomaly["quantile"])
            threshold, n = quantile_threshold(model, q)
            took = time.perf_counter() - t0
            rule = (f"log-density < {threshold:.6g}, the {q:g}-quantile of {n:,} rows drawn "
                    f"from model version {version} (seed {QUANTILE_SEED})")
        first = self.model is None
        self.model, self.version, self.threshold, self.rule = model, version, threshold, rule
        self.n_features = d
        self.metrics.committed(version)
        what = (f"model: {type(model).__name__} from {self.path} version {version} "
                f"(K={len(model.weights_)}, {model.covariance_type})" if first else
                f"model version {version} picked up")
        note = f"; anomalies: {rule}" + (f" ({took:.1f} s)" if took >= 0.05 else "") \
            if rule else "; no anomaly flag (no outputs.anomaly)"
        self.log.info(what + note, fields={"model": self.path, "model_version": version,
                                           "threshold": threshold})

    def score(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(labels, log-density, anomaly flags or None) of the rows X."""
        model = self.model
        if hasattr(model, "_outputs"):  # labels and log-density from one pass
            logprob, labels, _ = model._outputs(X, False)
        else:  # pragma: no cover - every streammix estimator has it
            logprob, labels = model.score_samples(X), model.predict(X)
        logprob = np.asarray(logprob, dtype=np.float64)
        flags = logprob < self.threshold if self.threshold is not None else None
        return np.asarray(labels), logprob, flags


class OutputStream:
    """XADDs with explicit ids to the output stream, one pipeline per batch, retried
    across dropped connections (a re-sent XADD is refused by Redis as a duplicate)."""

    def __init__(self, url: str, stream: str, log, max_backoff: float = 5.0):
        import redis

        self._redis = redis
        self.url, self.stream, self.log = url, stream, log
        self.max_backoff = max_backoff
        self.client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30,
                                           health_check_interval=0)

    def describe(self) -> str:
        return f"redis stream {self.stream!r} at {redacted(self.url)}"

    def _retrying(self, what: str, call, stop: StopFlag | None = None):
        """``call()`` until it succeeds; STOPPED when a stop signal came during an
        outage."""
        pause, failures = 0.1, 0
        while True:
            try:
                result = call()
            except (self._redis.ConnectionError, self._redis.TimeoutError, OSError) as exc:
                failures += 1
                if failures == 1:
                    self.log.warning(f"lost the connection to {self.describe()} while {what} "
                                     f"({type(exc).__name__}: {exc}); retrying with backoff")
                self.client.connection_pool.disconnect()
                if stop is not None and stop.signal:
                    return STOPPED
                time.sleep(pause)
                pause = min(self.max_backoff, pause * 2)
                continue
            if failures:
                self.log.warning(f"reconnected to {self.describe()} after {failures} failed "
                                 "attempts")
            return result

    def last_id(self, stop: StopFlag | None = None):
        """The id of the last output written (None: none yet). The stream's
        last-generated-id, which stays when the stream is trimmed; the last entry's id
        with servers that do not report it; STOPPED on a stop signal during an outage."""
        def read():
            try:
                info = self.client.xinfo_stream(self.stream)
            except self._redis.ResponseError as exc:
                if "no such key" in str(exc).lower():
                    return None
                raise
            last = info.get("last-generated-id")
            if last is None:
                top = self.client.xrevrange(self.stream, "+", "-", count=1)
                last = top[0][0] if top else None
            last = last.decode() if isinstance(last, bytes) else last
            return None if last in (None, "0-0") else str(last)

        return self._retrying("reading its last id", read, stop)

    def write(self, entries: list[tuple[str, dict]], stop: StopFlag) -> int | None:
        """XADD every (id, fields) in order; the number refused as already written, or
        None when a stop signal came while the server was unreachable (nothing to ack)."""
        duplicates = 0
        for i in range(0, len(entries), PIPELINE_CHUNK):
            part = entries[i : i + PIPELINE_CHUNK]

            def send(part=part):
                pipe = self.client.pipeline(transaction=False)
                for message_id, fields in part:
                    pipe.xadd(self.stream, fields, id=message_id)
                return pipe.execute(raise_on_error=False)

            results = self._retrying("writing outputs", send, stop)
            if results is STOPPED:
                return None
            for (message_id, _), r in zip(part, results):
                if isinstance(r, Exception):
                    if "equal or smaller" in str(r):
                        duplicates += 1
                        continue
                    raise InvalidInputError(f"{self.describe()}: writing the output of "
                                            f"message {message_id} failed: {r}")
        return duplicates

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # closing a broken connection
            pass


def run(cfg: Config, opts, log) -> int:
    if cfg.source.get("type") != "redis":
        raise ConfigError(f"{cfg.path}: source.type: score --follow reads a broker stream "
                          "(type: redis); for files or Zarr arrays run `streammix score` "
                          "without --follow")
    require(cfg, "source.url", "source.stream", "outputs.stream", command="score --follow")
    path = cfg.outputs.get("model") or cfg.run.get("checkpoint")
    if path is None:
        raise ConfigError(f"{cfg.path}: outputs.model (or run.checkpoint) is required: the "
                          "checkpoint of the model to score with")
    src, out_url = cfg.source, cfg.outputs.get("url") or cfg.source["url"]
    if out_url == src["url"] and cfg.outputs["stream"] == src["stream"]:
        raise ConfigError(f"{cfg.path}: outputs.stream: the scores cannot go to the input "
                          f"stream {src['stream']!r}")
    if src.get("group") == "streammix":
        log.info("source.group is 'streammix', the update follower's default: an updater "
                 "reading this stream through the same group would split the messages with "
                 "this scorer; give the scorer its own group (--set source.group=scorer)")
    metrics = FollowerMetrics(opts.metrics_port, "score")
    try:
        with StopFlag() as stop:
            watch = ModelWatch(path, cfg.outputs.get("anomaly"), src.get("n_features"), log,
                               metrics)
            poll = min(1.0, float(cfg.run["max_wait"]))
            while not watch.poll():
                if stop.signal:
                    log.info(f"stopped by {stop.signal} before a model was found at {path}",
                             fields={"signal": stop.signal})
                    return 0
                time.sleep(min(poll, 0.2))
            # packed rows are as wide as the model's: a message may hold several rows
            cfg = dataclasses.replace(cfg, source={**src, "n_features": watch.n_features})
            output = OutputStream(out_url, cfg.outputs["stream"], log)
            try:
                after = output.last_id(stop)
                if after is STOPPED:
                    log.info(f"stopped by {stop.signal} while {output.describe()} was "
                             "unreachable", fields={"signal": stop.signal})
                    return 0
                stream = stream_from_config(cfg, log, cfg.run["on_bad_batch"], stop=stop,
                                            identity=f"score {out_url} {cfg.outputs['stream']}")
                try:
                    where = ("from the start" if after is None else
                             f"after message {after}, the last output written")
                    log.info(f"scoring {stream.adapter.describe()} into {output.describe()} "
                             f"({where})",
                             fields={"stream": src["stream"], "outputs": cfg.outputs["stream"],
                                     "after": after, "url": redacted(src["url"])})
                    return _Scorer(cfg, watch, stream, output, metrics, log).loop(after, stop)
                finally:
                    stream.close()
            finally:
                output.close()
    finally:
        metrics.close()


class _Scorer:
    def __init__(self, cfg, watch: ModelWatch, stream, output: OutputStream, metrics, log):
        self.cfg, self.watch, self.stream, self.output = cfg, watch, stream, output
        self.metrics, self.log = metrics, log
        self.totals = {"messages": 0, "rows": 0, "skipped": 0, "flagged": 0, "duplicates": 0}
        self.last_id: str | None = None
        self.last_log = time.monotonic()
        self.rows_since_log = 0

    def handle(self, batch, stop: StopFlag) -> bool:
        """Score a batch, write its outputs, acknowledge it; False when stopped during an
        output outage (the batch is then read again at the next start)."""
        version = str(self.watch.version)
        n_flagged = 0
        if batch.n_rows:
            labels, logprob, flags = self.watch.score(batch.X)
            labels, logprob = labels.tolist(), logprob.tolist()
            flag_list = flags.tolist() if flags is not None else None
            n_flagged = int(flags.sum()) if flags is not None else 0
        skipped = dict(batch.skipped)
        entries, start = [], 0
        for message_id, rows in zip(batch.ids, batch.rows_per_message):
            if message_id in skipped:
                self.log.warning(f"bad message {message_id}: {skipped[message_id]} (its "
                                 "output holds the error)", fields={"skipped": message_id})
                entries.append((message_id, {"error": skipped[message_id],
                                             "model_version": version}))
                continue
            end = start + rows
            fields = {"label": json.dumps(labels[start:end]),
                      "log_density": json.dumps(logprob[start:end])}
            if flag_list is not None:
                fields["anomaly"] = json.dumps(flag_list[start:end])
            fields["model_version"] = version
            entries.append((message_id, fields))
            start = end
        duplicates = self.output.write(entries, stop)
        if duplicates is None:
            return False
        if duplicates:
            self.log.info(f"{duplicates} outputs were already written (a replay after a "
                          "crash or a retried write): not written again",
                          fields={"duplicates": duplicates})
        self.stream.commit(batch)
        self.last_id = batch.last_id
        t = self.totals
        t["messages"] += len(batch.ids)
        t["rows"] += batch.n_rows
        t["skipped"] += len(batch.skipped)
        t["flagged"] += n_flagged
        t["duplicates"] += duplicates
        self.rows_since_log += batch.n_rows
        self.metrics.batch(batch.n_rows, len(batch.ids), len(batch.skipped), None)
        self.metrics.flagged(n_flagged)
        return True

    def loop(self, after: str | None, stop: StopFlag) -> int:
        cfg = self.cfg
        reader = self.stream.batches(cfg.run["batch_size"], cfg.run["max_wait"], after=after)
        try:
            for batch in reader:
                if not batch.idle and not self.handle(batch, stop):
                    self.log.info(f"stopped by {stop.signal} while {self.output.describe()} "
                                  "was unreachable: the batch in hand is read again at the "
                                  "next start", fields={"signal": stop.signal})
                    return 0
                if stop.signal:
                    break
                self.watch.poll()  # a new model version, between batches
                self._progress()
        except StreamStopped as exc:  # SIGTERM while the input broker is unreachable
            self.log.warning(f"{exc}; the next start continues after the last output")
        except BadMessage as exc:
            raise InvalidInputError(
                f"{self.stream.adapter.describe()}: {exc}; outputs are written up to the "
                "message before it (set run.on_bad_batch: skip to write an output with an "
                "error field for such messages)") from None
        t = self.totals
        upto = f"up to message {self.last_id}" if self.last_id else "none this run"
        self.log.info(f"stopped by {stop.signal}: scored {t['messages']:,} messages "
                      f"({t['rows']:,} rows, {t['flagged']:,} flagged, {t['skipped']} bad) "
                      f"with model version {self.watch.version}; outputs {upto}",
                      fields={"signal": stop.signal, "model_version": self.watch.version,
                              "last_id": self.last_id, **t})
        return 0

    def _progress(self) -> None:
        now = time.monotonic()
        if now - self.last_log < 10.0:
            return
        lag = self.stream.lag()
        self.metrics.set_lag(lag)
        rate = self.rows_since_log / (now - self.last_log)
        t = self.totals
        self.log.info(f"{t['rows']:,} rows from {t['messages']:,} messages scored, "
                      f"{rate:,.0f} rows/s, {t['flagged']:,} flagged, lag "
                      f"{lag if lag is not None else '?'} messages, model version "
                      f"{self.watch.version}",
                      fields={**t, "rows_per_second": rate, "lag": lag,
                              "model_version": self.watch.version})
        self.last_log, self.rows_since_log = now, 0
