"""Broker streams for your own loops: ``RedisStream`` (batches with an explicit commit),
the message formats, and the adapter interface another broker implements. See
docs/streams.md."""

from .execution.streams import (
    FORMATS,
    BadMessage,
    BatchReader,
    MessageDecoder,
    RedisStream,
    StreamAdapter,
    StreamBatch,
    encode_packed,
)

__all__ = ["FORMATS", "BadMessage", "BatchReader", "MessageDecoder", "RedisStream",
           "StreamAdapter", "StreamBatch", "encode_packed"]
