"""Redis Streams through a consumer group: the first broker adapter (see base.py).

Reading after an offset C (the last message a committed model covers):
1. messages of the group's pending list up to C are acknowledged (a crash between the
   commit and the XACK left them there);
2. the messages after C up to the group's last-delivered id are read again with XRANGE
   (delivered before a crash or a dropped connection, never committed);
3. then new messages with XREADGROUP ... '>'.
A dropped connection or a restarted server is retried with a growing pause (logged), and
reading resumes after the last id yielded by the same three steps. Message ids only grow,
so anything at or below the last id yielded is never yielded twice.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

from ...errors import InvalidInputError, InvalidParameterError
from .base import id_key

_LOG = logging.getLogger("streammix.streams")


def redacted(url: str) -> str:
    """The URL without its password (for logs and cursors)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class StreamStopped(Exception):
    """A stop was requested (SIGTERM) while the broker could not be reached."""


class RedisStreamAdapter:
    """One stream read through one consumer group, with reconnects."""

    def __init__(self, url: str, stream: str, group: str = "streammix",
                 consumer: str | None = None, start: str = "earliest", count: int = 1000,
                 poll: float = 1.0, max_backoff: float = 5.0,
                 on_event: Callable[[str, str], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, exclusive: bool = False):
        try:
            import redis
        except ImportError:  # pragma: no cover - an extra of ours
            raise InvalidInputError("reading Redis streams needs the redis package: pip "
                                    "install 'streammix[stream]'") from None
        if start not in ("earliest", "latest"):
            raise ValueError("start must be 'earliest' or 'latest'")
        self._redis = redis
        self.url, self.stream, self.group = url, stream, group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.start = start
        self.count = int(count)
        self.poll = float(poll)
        self.max_backoff = float(max_backoff)
        # on_event(text, level): reconnects ('warning'), a group created ('info')
        self.on_event = on_event or (lambda text, level: _LOG.log(
            logging.INFO if level == "info" else logging.WARNING, text))
        # checked between reconnect attempts: a stop request ends the wait for the broker
        self.should_stop = should_stop or (lambda: False)
        try:
            self.client = redis.Redis.from_url(url, socket_connect_timeout=5,
                                               socket_timeout=max(10.0, 3 * poll),
                                               health_check_interval=0)
        except ValueError as exc:
            raise InvalidParameterError(f"source.url {redacted(url)!r} is not a Redis URL "
                                        f"({exc}); expected redis://host:6379/0") from None
        self.exclusive = exclusive  # refuse to start beside another active consumer
        self.lost_to_trimming = 0  # messages deleted from the stream before they were read
        self._last: str | None = None
        self._group_ready = False

    def describe(self) -> str:
        return f"redis stream {self.stream!r} (group {self.group!r}) at {redacted(self.url)}"

    # ------------------------------------------------------------------ connection
    def _retrying(self, what: str, call):
        """Run ``call`` until it succeeds, pausing 0.1, 0.2, ... up to max_backoff
        seconds after connection errors (each logged once per outage)."""
        pause, failures = 0.1, 0
        while True:
            try:
                if not self._group_ready and failures:
                    # the group vanished (or the server restarted empty): make it again
                    # at the last message yielded, so that '>' delivers only what follows
                    self._ensure_group(at=self._last)
                result = call()
            except self._redis.AuthenticationError as exc:  # retrying cannot help
                raise InvalidParameterError(f"{self.describe()}: authentication failed "
                                            f"({exc}): check the password in the URL") from None
            except self._redis.ResponseError as exc:
                # NOGROUP: the group was deleted; UNBLOCKED: the stream key was deleted
                # (or the database flushed) while a read was blocked on it
                if "NOGROUP" not in str(exc) and "UNBLOCKED" not in str(exc):
                    if "NOPERM" in str(exc) or "WRONGTYPE" in str(exc):
                        raise InvalidParameterError(f"{self.describe()}: {exc}") from None
                    raise
                # the group (or the stream) was deleted under us: make it again (above, on
                # the next pass), then the caller resyncs after the last message yielded
                failures += 1
                if failures == 1:
                    self.on_event(f"consumer group {self.group!r} vanished while {what} "
                                  f"({exc}); recreating it and resuming after the last "
                                  "message read", "warning")
                self._group_ready = False
                if self.should_stop():
                    raise StreamStopped(f"stopped while {what}: the consumer group of "
                                        f"{self.describe()} vanished") from None
                if failures > 1:  # recreating did not help at once: do not spin
                    time.sleep(pause)
                    pause = min(self.max_backoff, pause * 2)
                continue
            except (self._redis.ConnectionError, self._redis.TimeoutError, OSError) as exc:
                failures += 1
                if failures == 1:
                    self.on_event(f"lost the connection to {self.describe()} while {what} "
                                  f"({type(exc).__name__}: {exc}); retrying with backoff",
                                  "warning")
                self.client.connection_pool.disconnect()
                if self.should_stop():
                    raise StreamStopped(f"stopped while {what}: {self.describe()} is "
                                        "unreachable") from None
                time.sleep(pause)
                pause = min(self.max_backoff, pause * 2)
                self._group_ready = False
                continue
            if failures:
                self.on_event(f"reconnected to {self.describe()} after {failures} failed "
                              "attempts", "warning")
            return result, failures > 0

    def _ensure_group(self, at: str | None = None) -> None:
        """Create the group when missing: at ``at`` (the last id yielded, when one was),
        else at the stream's start ('earliest') or end ('latest')."""
        if self._group_ready:
            return
        if at is None:
            at = "0" if self.start == "earliest" else "$"
        try:
            self.client.xgroup_create(self.stream, self.group, id=at, mkstream=True)
            self.on_event(f"created consumer group {self.group!r} on stream {self.stream!r}",
                          "info")
        except self._redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def _last_delivered(self) -> str | None:
        for info in self.client.xinfo_groups(self.stream):
            if _text(info.get("name")) == self.group:
                return _text(info.get("last-delivered-id"))
        return None

    # ------------------------------------------------------------------ reading
    def _resync(self, after: str | None,
                acknowledge: bool = True) -> tuple[str | None, str | None]:
        """(XRANGE start of the replay, id up to which it replays) after a (re)start:
        ``after`` is the committed offset (``acknowledge``: its pending messages are
        acknowledged) or, after a reconnect, the last id yielded (nothing acknowledged:
        only a commit does that)."""
        self._ensure_group()
        if acknowledge and self.exclusive:
            self._refuse_another_active_consumer()
        if after is not None and acknowledge:
            self._ack_pending_upto(after)
        if after is not None:
            self._check_not_trimmed(after)
        until = self._last_delivered()
        if until in (None, "0-0") or (after is not None and id_key(until) <= id_key(after)):
            return None, None
        if after is not None:
            return "(" + after, until
        if self.start == "latest":
            # no offset yet and the group began at the stream's end (its last-delivered
            # id was that end when it was made): what it delivered since is pending
            # (nothing is acknowledged before a commit); the messages before it are not
            # this reader's
            summary = self.client.xpending(self.stream, self.group)
            if not summary or not summary.get("pending"):
                return None, None
            return _text(summary["min"]), until
        return "-", until

    #: a consumer of the group seen within this many ms is another follower at work
    ACTIVE_MS = 15_000

    def _refuse_another_active_consumer(self) -> None:
        """One follower per group: a second one would split the new messages with the
        first ('>' delivers each to one consumer) and replay the first's uncommitted
        ones, so both would learn them."""
        for c in self.client.xinfo_consumers(self.stream, self.group):
            name, idle = _text(c.get("name")), int(c.get("idle", 0))
            if name != self.consumer and idle < self.ACTIVE_MS:
                raise InvalidParameterError(
                    f"{self.describe()}: consumer {name!r} of the group read {idle} ms ago: "
                    "another follower is using this group; give each follower its own "
                    "source.group (a scorer beside an updater: --set source.group=scorer)")

    def _check_not_trimmed(self, after: str) -> None:
        """Say loudly when the stream was trimmed past the committed offset: the
        messages between were deleted before they were read, and cannot be counted."""
        info = self.client.xinfo_stream(self.stream)
        first = info.get("first-entry")
        if not first:
            return
        first_id = _text(first[0])
        if id_key(first_id) > id_key(after):
            gap = f"after {after} and before {first_id}"
            self.lost_to_trimming += 1
            self.on_event(f"{self.describe()} was trimmed past the committed offset: the "
                          f"messages {gap} were deleted before they were read and are lost "
                          "(keep the stream's MAXLEN above the followers' lag)", "error")

    def _ack_pending_upto(self, after: str) -> None:
        start = "-"
        while True:
            pending = self.client.xpending_range(self.stream, self.group, min=start,
                                                 max=after, count=self.count)
            if not pending:
                return
            ids = [_text(p["message_id"]) for p in pending]
            self.client.xack(self.stream, self.group, *ids)
            if len(ids) < self.count:
                return
            start = "(" + ids[-1]

    def messages(self, after: str | None) -> Iterator[tuple[str, dict] | None]:
        """(id, fields) after ``after`` in id order, None after a poll with nothing new."""
        self._last = after
        (start, until), _ = self._retrying("starting to read", lambda: self._resync(after))
        while True:
            if until is not None:  # replay what was delivered but not committed
                lo = start if self._last is None else "(" + self._last
                entries, reconnected = self._retrying(
                    "replaying", lambda: self.client.xrange(self.stream, min=lo, max=until,
                                                            count=self.count))
                if reconnected:
                    (start, until), _ = self._retrying(
                        "resyncing", lambda: self._resync(self._last, acknowledge=False))
                    continue
                if not entries:
                    until = None
                    continue
            else:
                response, reconnected = self._retrying(
                    "reading", lambda: self.client.xreadgroup(
                        self.group, self.consumer, {self.stream: ">"}, count=self.count,
                        block=max(1, int(self.poll * 1000))))
                if reconnected:  # messages may have been delivered and lost in transit
                    (start, until), _ = self._retrying(
                        "resyncing", lambda: self._resync(self._last, acknowledge=False))
                    continue
                entries = response[0][1] if response else []
                if not entries:
                    yield None
                    continue
            for raw_id, fields in entries:
                message_id = _text(raw_id)
                if self._last is not None and id_key(message_id) <= id_key(self._last):
                    continue  # already yielded (a group moved back, or a replay overlap)
                self._last = message_id
                yield message_id, fields

    # ------------------------------------------------------------------ the rest
    def acknowledge(self, ids: list[str]) -> None:
        for i in range(0, len(ids), 10_000):
            part = ids[i : i + 10_000]
            self._retrying("acknowledging", lambda: self.client.xack(self.stream, self.group,
                                                                     *part))

    def lag(self) -> int | None:
        """Messages in the stream after the last one yielded: the group's lag where Redis
        reports it (7.0+), else counted by one XRANGE of at most 1,000 messages (1,000
        then means at least that many)."""
        try:
            if self._last is None:
                return int(self.client.xlen(self.stream))
            for g in self.client.xinfo_groups(self.stream):
                if _text(g.get("name")) == self.group and g.get("lag") is not None:
                    return int(g["lag"])
            info = self.client.xinfo_stream(self.stream)
            last = _text(info.get("last-generated-id"))
            if id_key(last) <= id_key(self._last):
                return 0
            return len(self.client.xrange(self.stream, min="(" + self._last, max="+",
                                          count=1_000))
        except (self._redis.RedisError, OSError):
            return None

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # closing a broken connection
            pass
