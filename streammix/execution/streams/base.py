"""A broker stream as batches with an explicit commit: what every broker adapter provides,
and the batching, decoding and bad-message policy built on top of it.

Exactly once is kept by the reader's offset, not by the broker's delivery state: a job
commits the offset (the id of the last message its saved model covers) in the same
checkpoint version as the model, acknowledges messages to the broker only after that
commit, and on restart reads again from the committed offset. An adapter must provide:

- ``messages(after)``: the messages with an id greater than ``after`` (None: from the
  group's start), in id order, as (id, fields) pairs, and ``None`` when nothing came
  within its poll time; it reconnects by itself and, after a reconnect, resumes after
  the last id it yielded (never skipping one the broker delivered but the job did not
  see);
- ``acknowledge(ids)``: tell the broker these messages are done (after the commit);
- ``lag()``: messages in the stream after the last one yielded (None if unknown);
- ``describe()``: a short text naming the stream (for logs and cursors);
- ``close()``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator, Protocol

import numpy as np

from .decode import BadMessage, MessageDecoder


class StreamAdapter(Protocol):
    def messages(self, after: str | None) -> Iterator[tuple[str, dict] | None]: ...
    def acknowledge(self, ids: list[str]) -> None: ...
    def lag(self) -> int | None: ...
    def describe(self) -> str: ...
    def close(self) -> None: ...


def id_key(message_id: str) -> tuple[int, int]:
    """A Redis-style id ('<ms>-<seq>') as a sortable pair."""
    ms, _, seq = message_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass
class StreamBatch:
    """Rows of whole consecutive messages. ``last_id`` is the offset to commit once a model
    that learnt from the rows is saved (skipped messages count: they are done too);
    ``ids`` are the messages to acknowledge then. An idle batch (no message within the
    poll time) has no rows and ``last_id`` None."""

    X: np.ndarray
    ids: list[str] = field(default_factory=list)
    rows_per_message: list[int] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def last_id(self) -> str | None:
        return self.ids[-1] if self.ids else None

    @property
    def n_rows(self) -> int:
        return int(self.X.shape[0])

    @property
    def idle(self) -> bool:
        return not self.ids


class BatchReader:
    """Batches of about ``batch_size`` rows (whole messages) from an adapter, starting
    after the offset ``after``; a partial batch once ``max_wait`` seconds passed since its
    first message; an idle (empty) batch when nothing arrives within a poll, so that the
    caller can commit or reload between messages. ``on_bad``: 'error' ends the batch
    before the bad message and raises BadMessage when it is reached; 'skip' leaves its
    rows out, records it in the batch's ``skipped`` and goes on."""

    def __init__(self, adapter: StreamAdapter, decoder: MessageDecoder, batch_size: int,
                 max_wait: float, on_bad: str = "error", after: str | None = None):
        if on_bad not in ("error", "skip"):
            raise ValueError("on_bad must be 'error' or 'skip'")
        self.adapter = adapter
        self.decoder = decoder
        self.batch_size = int(batch_size)
        self.max_wait = float(max_wait)
        self.on_bad = on_bad
        self.after = after
        self._pending_error: BadMessage | None = None

    def __iter__(self) -> Iterator[StreamBatch]:
        rows: list[np.ndarray] = []
        batch = StreamBatch(np.empty((0, 0)))
        n = 0
        started = None
        for item in self.adapter.messages(self.after):
            if item is not None:
                message_id, fields = item
                try:
                    X = self.decoder.decode(message_id, fields)
                except BadMessage as exc:
                    if self.on_bad == "error":
                        if batch.ids:  # the rows before it are good: learn from them first
                            yield self._finish(batch, rows)
                        raise
                    batch.skipped.append((message_id, exc.reason))
                    batch.ids.append(message_id)
                    batch.rows_per_message.append(0)
                else:
                    if self.decoder.n_features is None:
                        self.decoder = self.decoder.with_features(X.shape[1])
                    rows.append(X)
                    n += X.shape[0]
                    batch.ids.append(message_id)
                    batch.rows_per_message.append(X.shape[0])
                if started is None:
                    started = time.monotonic()
            full = n >= self.batch_size
            waited = started is not None and time.monotonic() - started >= self.max_wait
            if batch.ids and (full or waited or (item is None and waited)):
                yield self._finish(batch, rows)
                rows, batch, n, started = [], StreamBatch(np.empty((0, 0))), 0, None
            elif item is None and not batch.ids:  # idle: nothing arrived within the poll
                yield StreamBatch(np.empty((0, self.decoder.n_features or 0)))

    def _finish(self, batch: StreamBatch, rows: list[np.ndarray]) -> StreamBatch:
        d = self.decoder.n_features or 0
        batch.X = np.concatenate(rows) if rows else np.empty((0, d))
        self.after = batch.last_id
        return batch

