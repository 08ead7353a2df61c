"""Edge cases of the Redis stream reader found in review: a stream trimmed past the
committed offset, JSON that breaks parsers, the row length of packed messages, one
follower per group, bad URLs, a consumer group deleted while reading."""

from __future__ import annotations

import json

import numpy as np
import pytest

from streammix.errors import InvalidParameterError
from streammix.streams import BadMessage, MessageDecoder, RedisStream, encode_packed


def _events():
    said = []
    return said, lambda text, level: said.append((level, text))


def test_a_stream_trimmed_past_the_committed_offset_is_reported(redis_server):
    r = redis_server.client()
    ids = [r.xadd("s", {"x": encode_packed(np.full((1, 2), float(i)))}).decode()
           for i in range(10)]
    said, on_event = _events()
    first = RedisStream(redis_server.url, "s", n_features=2, poll=0.1, on_event=on_event)
    batch = next(iter(first.batches(batch_size=3, max_wait=0.1)))
    first.commit(batch)
    committed = batch.last_id
    r.xtrim("s", maxlen=2, approximate=False)
    again = RedisStream(redis_server.url, "s", n_features=2, poll=0.1, on_event=on_event)
    rows = []
    for b in again.batches(batch_size=100, max_wait=0.2, after=committed):
        if b.idle:
            break
        rows.append(b.X)
    assert np.concatenate(rows)[:, 0].tolist() == [8.0, 9.0]
    errors = [t for level, t in said if level == "error"]
    assert len(errors) == 1 and committed in errors[0] and "lost" in errors[0]
    assert again.adapter.lost_to_trimming == 1
    assert ids[-2] in errors[0]  # the first message still there


@pytest.mark.parametrize("raw, reason", [
    ("[" * 100_000, "not JSON"),
    (json.dumps([10 ** 400]), "float64 range"),
])
def test_json_that_breaks_parsers_is_a_bad_message(raw, reason):
    with pytest.raises(BadMessage, match=reason):
        MessageDecoder("json").decode("1-1", {b"x": raw.encode()})


def test_a_field_name_that_is_not_utf8_does_not_crash():
    with pytest.raises(BadMessage, match="no field 'x'"):
        MessageDecoder("json").decode("1-1", {b"\xff\xfe": b"[1]"})


def test_packed_without_n_features_is_one_row_per_message():
    d = MessageDecoder("packed").with_features(4)
    assert d.decode("1-1", {b"x": encode_packed(np.ones((1, 4)))}).shape == (1, 4)
    with pytest.raises(BadMessage, match="one row of 4"):
        d.decode("1-2", {b"x": encode_packed(np.ones((2, 4)))})


def test_a_second_exclusive_reader_of_a_group_is_refused(redis_server):
    r = redis_server.client()
    r.xadd("s", {"x": encode_packed(np.ones((1, 2)))})
    one = RedisStream(redis_server.url, "s", consumer="one", n_features=2, poll=0.1,
                      exclusive=True)
    assert next(iter(one.batches(batch_size=1, max_wait=0.1))).n_rows == 1
    two = RedisStream(redis_server.url, "s", consumer="two", n_features=2, poll=0.1,
                      exclusive=True)
    with pytest.raises(InvalidParameterError, match="another follower"):
        next(iter(two.batches(batch_size=1, max_wait=0.1)))
    # the same consumer restarting (a stable name) is not refused, and reads again what
    # it had not committed
    again = RedisStream(redis_server.url, "s", consumer="one", n_features=2, poll=0.1,
                        exclusive=True)
    assert next(iter(again.batches(batch_size=1, max_wait=0.1))).n_rows == 1


def test_a_url_that_is_not_redis_is_a_parameter_error():
    with pytest.raises(InvalidParameterError, match="not a Redis URL"):
        RedisStream("redis://localhost:notaport/0", "s")


def test_a_group_deleted_while_reading_is_recreated(redis_server):
    r = redis_server.client()
    for i in range(3):
        r.xadd("s", {"x": encode_packed(np.full((1, 2), float(i)))})
    said, on_event = _events()
    stream = RedisStream(redis_server.url, "s", n_features=2, poll=0.1, on_event=on_event)
    seen = []
    for b in stream.batches(batch_size=1, max_wait=0.1):
        if b.idle:
            if len(seen) >= 5:
                break
            if len(seen) == 3 and not any("vanished" in t for _, t in said):
                r.xgroup_destroy("s", "streammix")
                for i in range(3, 5):
                    r.xadd("s", {"x": encode_packed(np.full((1, 2), float(i)))})
            continue
        seen += b.X[:, 0].tolist()
    assert seen == [0.0, 1.0, 2.0, 3.0, 4.0]  # nothing twice, nothing lost
    assert any("vanished" in t for _, t in said)


def test_a_stream_deleted_while_reading_is_followed_again(redis_server):
    """DEL of the stream key (or FLUSHDB) while a read blocks on it: Redis answers
    UNBLOCKED (7.0+) or NOGROUP; the group is made again and the new messages are read."""
    r = redis_server.client()
    for i in range(3):
        r.xadd("s", {"x": encode_packed(np.full((1, 2), float(i)))})
    said, on_event = _events()
    stream = RedisStream(redis_server.url, "s", n_features=2, poll=0.1, on_event=on_event)
    seen, deleted = [], False
    for b in stream.batches(batch_size=1, max_wait=0.1):
        if b.idle:
            if len(seen) >= 5:
                break
            if len(seen) == 3 and not deleted:
                r.delete("s")
                deleted = True
                for i in range(3, 5):
                    r.xadd("s", {"x": encode_packed(np.full((1, 2), float(i)))})
            continue
        seen += b.X[:, 0].tolist()
    assert seen == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert any("vanished" in t for _, t in said)
