"""Broker streams as batches with an explicit commit (Redis Streams first).

    from streammix import OnlineGaussianMixture
    from streammix.streams import RedisStream

    stream = RedisStream("redis://localhost:6379/0", "points", format="packed")
    model = OnlineGaussianMixture(8, random_state=0)
    for batch in stream.batches(batch_size=10_000, max_wait=1.0):
        if batch.n_rows:
            model.partial_fit(batch.X)
        stream.commit(batch)        # acknowledge: these messages are done
"""

from __future__ import annotations

from typing import Iterator

from .base import BatchReader, StreamAdapter, StreamBatch, id_key
from .decode import FORMATS, BadMessage, MessageDecoder, encode_packed
from .redis_stream import RedisStreamAdapter, StreamStopped, redacted


class RedisStream:
    """A Redis stream read through a consumer group, in batches with an explicit commit.

    ``format``: 'packed' (field ``field`` holds little-endian ``dtype`` values: one or
    more rows of ``n_features``; without ``n_features`` a message is one row) or 'json'
    (field ``field`` holds a list of numbers or a list of rows; or ``columns`` names
    numeric fields, one row per message). ``start``: where a new group starts
    ('earliest' or 'latest'). ``on_bad``: 'error' raises BadMessage naming the message
    (after yielding the rows before it), 'skip' leaves it out (``batch.skipped``).

    ``batches(after=offset)`` reads the messages after ``offset`` (the ``last_id`` of
    the last batch whose result you kept, e.g. saved with your model; None: from the
    group's start), so that a restarted consumer counts every message once; ``commit``
    acknowledges a batch's messages to the group once its result is kept. ``exclusive``:
    refuse to start while another consumer of the group read within the last 15 s (one
    reader per group: the services set it)."""

    def __init__(self, url: str, stream: str, group: str = "streammix",
                 consumer: str | None = None, format: str = "packed", field: str = "x",
                 columns: list[str] | None = None, dtype: str = "float64",
                 n_features: int | None = None, start: str = "earliest",
                 on_bad: str = "error", poll: float = 1.0, on_event=None, should_stop=None,
                 exclusive: bool = False):
        self.decoder = MessageDecoder(format, field, tuple(columns) if columns else None,
                                      dtype, n_features)
        self.on_bad = on_bad
        self.adapter = RedisStreamAdapter(url, stream, group, consumer, start=start,
                                          poll=poll, on_event=on_event,
                                          should_stop=should_stop, exclusive=exclusive)

    def batches(self, batch_size: int = 10_000, max_wait: float = 1.0,
                after: str | None = None) -> Iterator[StreamBatch]:
        return iter(BatchReader(self.adapter, self.decoder, batch_size, max_wait,
                                self.on_bad, after))

    def commit(self, batch: StreamBatch | list[StreamBatch]) -> None:
        batches = batch if isinstance(batch, list) else [batch]
        self.adapter.acknowledge([i for b in batches for i in b.ids])

    def lag(self) -> int | None:
        return self.adapter.lag()

    def close(self) -> None:
        self.adapter.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


__all__ = ["FORMATS", "BadMessage", "BatchReader", "MessageDecoder", "RedisStream",
           "RedisStreamAdapter", "StreamAdapter", "StreamStopped", "StreamBatch", "encode_packed", "id_key",
           "redacted"]
