"""Broker streams: message decoding, and `RedisStream` over a real redis-server (batches of
whole messages in order, commit = XACK, continuing after a committed offset, replay of
what was delivered but not committed, idle batches, group creation, bad messages,
reconnects across a server restart)."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from streammix.execution.streams import (BadMessage, MessageDecoder, RedisStream,
                                         encode_packed, id_key)

pytest.importorskip("redis")

D = 4


# ---------------------------------------------------------------------------- decoding
def _rows(n, d=D, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_packed_one_row_per_message(dtype):
    x = _rows(1)
    raw = encode_packed(x, dtype)
    assert len(raw) == D * np.dtype(dtype).itemsize
    # without n_features a message is one row; with it, the same
    for dec in (MessageDecoder("packed", dtype=dtype), MessageDecoder("packed", dtype=dtype,
                                                                      n_features=D)):
        got = dec.decode("1-0", {b"x": raw})
        assert got.dtype == np.float64 and got.shape == (1, D)
        np.testing.assert_array_equal(got, x.astype(dtype).astype(np.float64))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_packed_many_rows_per_message(dtype):
    x = _rows(37)
    dec = MessageDecoder("packed", dtype=dtype, n_features=D)
    got = dec.decode("5-3", {b"x": encode_packed(x, dtype)})
    assert got.shape == (37, D) and got.dtype == np.float64
    np.testing.assert_array_equal(got, x.astype(dtype).astype(np.float64))
    if dtype == "float64":
        np.testing.assert_array_equal(got, x)  # bit for bit


def test_packed_is_little_endian_whatever_the_host():
    x = np.array([[1.5, -2.0, 3.25, 1e300]])
    raw = x.astype("<f8").tobytes()
    assert encode_packed(x) == raw
    np.testing.assert_array_equal(MessageDecoder(n_features=4).decode("1-0", {"x": raw}), x)
    assert encode_packed(x[:, :3], "float32") == x[:, :3].astype("<f4").tobytes()


def test_packed_custom_field_and_str_keys():
    x = _rows(2)
    dec = MessageDecoder("packed", field="data", n_features=D)
    np.testing.assert_array_equal(dec.decode("1-0", {"data": encode_packed(x)}), x)
    np.testing.assert_array_equal(dec.decode("1-0", {b"data": encode_packed(x)}), x)


def test_json_list_list_of_rows_and_columns():
    dec = MessageDecoder("json", n_features=3)
    np.testing.assert_array_equal(dec.decode("1-0", {b"x": b"[1, 2.5, -3]"}), [[1, 2.5, -3]])
    np.testing.assert_array_equal(dec.decode("1-1", {"x": "[[1, 2, 3], [4, 5, 6e2]]"}),
                                  [[1, 2, 3], [4, 5, 600]])
    got = MessageDecoder("json").decode("1-2", {b"x": json.dumps([0.1, 0.2]).encode()})
    assert got.shape == (1, 2) and got.dtype == np.float64
    cols = MessageDecoder("json", columns=("a", "b", "c"))
    got = cols.decode("2-0", {b"a": b"1.5", b"b": b"-2", b"c": b"3e1", b"other": b"x"})
    np.testing.assert_array_equal(got, [[1.5, -2.0, 30.0]])
    got = cols.decode("2-1", {"c": "3", "a": "1", "b": "2"})  # column order, not field order
    np.testing.assert_array_equal(got, [[1.0, 2.0, 3.0]])


BAD = [
    # (decoder kwargs, fields, words the reason must hold)
    (dict(format="packed"), {b"x": b"\x00" * 7}, "7 bytes"),
    (dict(format="packed", dtype="float32"), {b"x": b"\x00" * 6}, "6 bytes"),
    (dict(format="packed", n_features=D), {b"x": encode_packed(_rows(1, 6))}, "6 values"),
    (dict(format="packed", n_features=D), {b"x": encode_packed(_rows(3, 2))}, "6 values"),
    (dict(format="packed", n_features=D), {b"x": b""}, "0 bytes"),
    (dict(format="packed"), {b"x": b""}, "0 bytes"),
    (dict(format="packed", n_features=2), {b"x": encode_packed([[1.0, np.nan]])}, "NaN"),
    (dict(format="packed", n_features=2), {b"x": encode_packed([[np.inf, 1.0]])}, "inf"),
    (dict(format="packed", dtype="float32", n_features=2),
     {b"x": encode_packed([[1.0, np.nan]], "float32")}, "NaN"),
    (dict(format="packed"), {b"y": encode_packed([[1.0]])}, "no field 'x'"),
    (dict(format="packed", field="data"), {}, "no field 'data'"),
    (dict(format="json"), {b"x": b"not json"}, "not JSON"),
    (dict(format="json"), {b"x": b"\xff\xfe["}, "not JSON"),
    (dict(format="json"), {b"x": b'{"a": 1}'}, "not a list"),
    (dict(format="json"), {b"x": b"3.5"}, "not a list"),
    (dict(format="json"), {b"x": b'[1, "2", 3]'}, "not a list of numbers"),
    (dict(format="json"), {b"x": b'["a", "b"]'}, "not a list of numbers"),
    (dict(format="json"), {b"x": b"[1, true]"}, "not a list of numbers"),
    (dict(format="json"), {b"x": b"[[1, 2], [3]]"}, "equal-length"),
    (dict(format="json"), {b"x": b"[[1, 2], 3]"}, "not a list of numbers"),
    (dict(format="json"), {b"x": b"[1, null]"}, "not a list of numbers"),
    (dict(format="json"), {b"x": b"[1, NaN]"}, "NaN"),
    (dict(format="json"), {b"x": b"[1, 1e400]"}, "inf"),
    (dict(format="json", n_features=3), {b"x": b"[1, 2]"}, "expected 3"),
    (dict(format="json", n_features=3), {b"x": b"[[1, 2, 3], [1, 2, 3, 4]]"}, "equal-length"),
    (dict(format="json"), {b"x": b"[]"}, "no values"),
    (dict(format="json"), {b"x": b"[[]]"}, "no values"),  # a row of no values
    (dict(format="json", n_features=2), {b"x": b"[]"}, "no values"),
    (dict(format="json"), {b"other": b"[1]"}, "no field 'x'"),
    (dict(format="json", columns=("a", "b")), {b"a": b"1"}, "no field 'b'"),
    (dict(format="json", columns=("a", "b")), {b"a": b"1", b"b": b"two"}, "'b' is not a"),
    (dict(format="json", columns=("a", "b")), {b"a": b"1", b"b": b"[2]"}, "'b' is not a"),
    (dict(format="json", columns=("a", "b")), {b"a": b"NaN", b"b": b"2"}, "NaN"),
]


@pytest.mark.parametrize("kwargs, fields, words", BAD,
                         ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)])
def test_bad_messages_raise_naming_the_message_and_why(kwargs, fields, words):
    dec = MessageDecoder(**kwargs)
    with pytest.raises(BadMessage) as info:
        dec.decode("1712-7", fields)
    exc = info.value
    assert exc.message_id == "1712-7"
    assert exc.reason and words in exc.reason
    assert "1712-7" in str(exc) and exc.reason in str(exc)
    assert isinstance(exc, ValueError)  # an InvalidInputError


def test_decoder_rejects_bad_settings():
    with pytest.raises(ValueError):
        MessageDecoder("csv")
    with pytest.raises(ValueError):
        MessageDecoder("packed", dtype="int32")
    with pytest.raises(ValueError):
        MessageDecoder("packed", columns=("a",))


def test_id_key_orders_ids_numerically():
    ids = ["10-0", "9-5", "9-10", "100-0", "9-0"]
    assert sorted(ids, key=id_key) == ["9-0", "9-5", "9-10", "10-0", "100-0"]


# ---------------------------------------------------------------------------- a real server
@pytest.fixture
def open_streams():
    """RedisStream(...) factory; every stream made is closed after the test."""
    made = []

    def make(url, **kwargs):
        kwargs.setdefault("n_features", D)
        kwargs.setdefault("poll", 0.2)
        s = RedisStream(url, kwargs.pop("stream", "points"), **kwargs)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def _produce(client, messages, stream="points", dtype="float64"):
    """XADD every array of ``messages`` (packed); returns the ids."""
    pipe = client.pipeline()
    for m in messages:
        pipe.xadd(stream, {"x": encode_packed(m, dtype)} if isinstance(m, np.ndarray) else m)
    return [i.decode() for i in pipe.execute()]


def _messages(n, sizes=(30,), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(int(sizes[i % len(sizes)]), D)) for i in range(n)]


def _take(it, n_messages, timeout=30.0, commit=None):
    """Non-idle batches from ``it`` until they hold ``n_messages`` messages."""
    batches, got = [], 0
    deadline = time.monotonic() + timeout
    while got < n_messages:
        assert time.monotonic() < deadline, f"only {got} of {n_messages} messages came"
        b = next(it)
        if b.idle:
            continue
        batches.append(b)
        got += len(b.ids)
        if commit is not None:
            commit(b)
    assert got == n_messages, f"{got} messages, expected {n_messages}"
    return batches


def _pending(client, group="streammix", stream="points"):
    return int(client.xpending(stream, group)["pending"])


def _expected_partition(sizes, batch_size):
    """Message counts of the batches: whole messages until batch_size rows or more."""
    parts, n, k = [], 0, 0
    for s in sizes:
        n += s
        k += 1
        if n >= batch_size:
            parts.append(k)
            n, k = 0, 0
    if k:
        parts.append(k)
    return parts


def test_rows_come_back_in_order_in_batches_of_whole_messages(redis_server, open_streams):
    r = redis_server.client()
    sizes = np.random.default_rng(1).integers(1, 60, size=80)
    msgs = _messages(80, sizes)
    ids = _produce(r, msgs)
    stream = open_streams(redis_server.url)
    batches = _take(stream.batches(batch_size=100, max_wait=0.3), 80)
    assert [len(b.ids) for b in batches] == _expected_partition(sizes, 100)
    for b in batches[:-1]:
        assert b.n_rows >= 100 and b.n_rows - b.rows_per_message[-1] < 100
    assert [i for b in batches for i in b.ids] == ids
    assert [n for b in batches for n in b.rows_per_message] == list(sizes)
    np.testing.assert_array_equal(np.concatenate([b.X for b in batches]), np.concatenate(msgs))
    assert all(b.last_id == b.ids[-1] and not b.skipped for b in batches)
    # delivered, not committed: all pending; commit acknowledges them
    assert _pending(r) == 80
    stream.commit(batches[:2])
    assert _pending(r) == 80 - len(batches[0].ids) - len(batches[1].ids)
    for b in batches[2:]:
        stream.commit(b)
    assert _pending(r) == 0
    assert stream.lag() == 0
    r.close()


def test_a_partial_batch_after_max_wait_and_idle_batches_when_nothing_comes(redis_server,
                                                                            open_streams):
    r = redis_server.client()
    stream = open_streams(redis_server.url, poll=0.2)
    it = stream.batches(batch_size=1000, max_wait=0.5)
    t0 = time.monotonic()
    first = next(it)  # an empty stream (the group is created with it): idle after a poll
    assert first.idle and first.n_rows == 0 and first.last_id is None
    assert first.X.shape == (0, D)
    assert time.monotonic() - t0 < 5.0
    ids = _produce(r, _messages(3))
    t0 = time.monotonic()
    batches = _take(it, 3)
    waited = time.monotonic() - t0
    assert len(batches) == 1 and batches[0].ids == ids and batches[0].n_rows == 90
    assert 0.4 <= waited < 5.0  # a partial batch once max_wait passed, not before
    assert next(it).idle
    r.close()


def test_continuing_after_a_committed_offset_counts_every_message_once(redis_server,
                                                                       open_streams):
    r = redis_server.client()
    msgs = _messages(50, sizes=(20, 35, 50))
    ids = _produce(r, msgs)
    first = open_streams(redis_server.url, consumer="one")
    it = first.batches(batch_size=100, max_wait=0.3)
    b1, b2 = next(it), next(it)
    assert not b1.idle and not b2.idle
    first.commit(b1)  # b2 was learnt from, but the model with it was never saved
    first.close()     # a crash
    second = open_streams(redis_server.url, consumer="two")
    rest = _take(second.batches(batch_size=100, max_wait=0.3, after=b1.last_id),
                 50 - len(b1.ids), commit=second.commit)
    assert rest[0].ids == b2.ids  # delivered, not committed: read again
    np.testing.assert_array_equal(rest[0].X, b2.X)
    seen = b1.ids + [i for b in rest for i in b.ids]
    assert seen == ids  # no message twice, none missing, in order
    np.testing.assert_array_equal(np.concatenate([b1.X] + [b.X for b in rest]),
                                  np.concatenate(msgs))
    assert _pending(r) == 0
    # a reader started after the last offset has nothing to read again
    third = open_streams(redis_server.url, consumer="three")
    assert next(third.batches(batch_size=100, max_wait=0.3, after=ids[-1])).idle
    r.close()


def test_a_crash_between_the_commit_and_the_ack_is_cleaned_up(redis_server, open_streams):
    """The offset was saved but XACK never ran: a reader started after that offset
    acknowledges those messages and reads on after them."""
    r = redis_server.client()
    ids = _produce(r, _messages(10))
    first = open_streams(redis_server.url, consumer="one")
    b1 = next(first.batches(batch_size=100, max_wait=0.3))
    assert b1.ids == ids[:4] and _pending(r) == 10
    first.close()
    second = open_streams(redis_server.url, consumer="two")
    rest = _take(second.batches(batch_size=100, max_wait=0.3, after=b1.last_id), 6)
    assert [i for b in rest for i in b.ids] == ids[4:]
    assert _pending(r) == 6  # the first 4 acknowledged, the 6 read again still pending
    second.commit(rest)
    assert _pending(r) == 0
    r.close()


def test_the_group_is_created_when_missing(redis_server, open_streams):
    r = redis_server.client()
    ids = _produce(r, _messages(5))
    events = []
    stream = open_streams(redis_server.url, group="fresh",
                          on_event=lambda text, level: events.append((level, text)))
    batches = _take(stream.batches(batch_size=1000, max_wait=0.2), 5)
    assert [i for b in batches for i in b.ids] == ids  # earliest: the whole stream
    assert any(level == "info" and "created consumer group 'fresh'" in text
               for level, text in events)
    assert any(_text(g["name"]) == "fresh" for g in r.xinfo_groups("points"))
    # a second reader finds it (no second 'created')
    events.clear()
    other = open_streams(redis_server.url, group="fresh", consumer="b",
                         on_event=lambda text, level: events.append((level, text)))
    assert next(other.batches(batch_size=1000, max_wait=0.2, after=ids[-1])).idle
    assert not any("created" in text for _, text in events)
    # a stream that does not exist yet is created with the group
    empty = open_streams(redis_server.url, stream="nothing-yet")
    assert next(empty.batches(batch_size=10, max_wait=0.2)).idle
    assert r.exists("nothing-yet")
    r.close()


def _text(v):
    return v.decode() if isinstance(v, bytes) else v


def test_start_latest_skips_the_messages_already_there(redis_server, open_streams):
    r = redis_server.client()
    old = _produce(r, _messages(5, seed=1))
    stream = open_streams(redis_server.url, group="late", start="latest", consumer="a")
    it = stream.batches(batch_size=1000, max_wait=0.2)
    assert next(it).idle  # nothing new yet
    new = _produce(r, _messages(3, seed=2))
    got = _take(it, 3)
    assert [i for b in got for i in b.ids] == new
    # a crash before the first commit: a new reader (no offset yet) reads the delivered,
    # uncommitted messages again, and still none of those before the group began
    stream.close()
    again = open_streams(redis_server.url, group="late", start="latest", consumer="b")
    it = again.batches(batch_size=1000, max_wait=0.2)
    got = _take(it, 3)
    assert [i for b in got for i in b.ids] == new
    assert not set(old) & {i for b in got for i in b.ids}
    again.commit(got)
    assert next(it).idle
    assert _pending(r, "late") == 0
    r.close()


def test_on_bad_skip_records_the_skipped_messages(redis_server, open_streams):
    r = redis_server.client()
    good = _messages(8, sizes=(10,))
    fields = [{"x": encode_packed(m)} for m in good]
    fields.insert(2, {"x": b"\x00" * 12})                      # not whole float64 values
    fields.insert(5, {"y": encode_packed(good[0])})            # no field x
    fields.insert(7, {"x": encode_packed(np.full((2, D), np.nan))})
    ids = _produce(r, fields)
    bad = [ids[2], ids[5], ids[7]]
    stream = open_streams(redis_server.url, on_bad="skip")
    batches = _take(stream.batches(batch_size=1000, max_wait=0.2), 11)
    assert [i for b in batches for i in b.ids] == ids  # skipped ones are done too
    skipped = [s for b in batches for s in b.skipped]
    assert [i for i, _ in skipped] == bad
    assert "12 bytes" in skipped[0][1] and "no field 'x'" in skipped[1][1] \
        and "NaN" in skipped[2][1]
    rows = [n for b in batches for n in b.rows_per_message]
    assert rows == [0 if i in bad else 10 for i in ids]
    np.testing.assert_array_equal(np.concatenate([b.X for b in batches]), np.concatenate(good))
    stream.commit(batches)
    assert _pending(r) == 0
    r.close()


def test_json_without_n_features_takes_the_row_length_from_the_first_good_message(
        redis_server, open_streams):
    """An empty JSON message is bad: it must not set the row length for the rest."""
    r = redis_server.client()
    ids = _produce(r, [{"x": "[]"}, {"x": "[1, 2, 3, 4]"}, {"x": "[[]]"},
                       {"x": "[[5, 6, 7, 8], [9, 10, 11, 12]]"}, {"x": "[1, 2, 3]"},
                       {"x": "[0, 0, 0, 1]"}])
    stream = open_streams(redis_server.url, format="json", n_features=None, on_bad="skip")
    batches = _take(stream.batches(batch_size=1000, max_wait=0.2), 6)
    skipped = [s for b in batches for s in b.skipped]
    assert [i for i, _ in skipped] == [ids[0], ids[2], ids[4]]
    assert "no values" in skipped[0][1] and "expected 4" in skipped[2][1]
    np.testing.assert_array_equal(np.concatenate([b.X for b in batches]),
                                  [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [0, 0, 0, 1]])
    r.close()


def test_on_bad_error_yields_the_rows_before_then_raises(redis_server, open_streams):
    r = redis_server.client()
    good = _messages(6, sizes=(10,))
    fields = [{"x": encode_packed(m)} for m in good]
    fields.insert(4, {"x": encode_packed(_rows(1, 3))})  # 3 values, rows of 4
    ids = _produce(r, fields)
    stream = open_streams(redis_server.url, on_bad="error")
    it = stream.batches(batch_size=1000, max_wait=5.0)
    before = next(it)  # without waiting max_wait: the batch ends at the bad message
    assert before.ids == ids[:4] and before.last_id == ids[3]
    np.testing.assert_array_equal(before.X, np.concatenate(good[:4]))
    with pytest.raises(BadMessage) as info:
        next(it)
    assert info.value.message_id == ids[4] and "3 values" in info.value.reason
    stream.commit(before)
    # started again after the committed offset: the bad message comes first, no rows
    again = open_streams(redis_server.url, on_bad="error", consumer="again")
    with pytest.raises(BadMessage) as info:
        next(again.batches(batch_size=1000, max_wait=5.0, after=before.last_id))
    assert info.value.message_id == ids[4]
    assert _pending(r) == 3  # the bad one and the two after it: never committed
    r.close()


def test_a_reader_goes_on_across_a_server_restart(redis_server, open_streams):
    r = redis_server.client()
    msgs = _messages(120, sizes=(25, 40))
    ids = _produce(r, msgs[:60])
    events = []
    stream = open_streams(redis_server.url, poll=0.2,
                          on_event=lambda text, level: events.append((level, text)))
    it = stream.batches(batch_size=200, max_wait=0.2)
    got = _take(it, 60, commit=stream.commit)
    errors = []

    def restart_then_produce():
        try:
            redis_server.restart(down_for=1.0)
            with redis_server.client() as c:
                ids.extend(_produce(c, msgs[60:90]))
                time.sleep(0.3)
                ids.extend(_produce(c, msgs[90:]))
        except Exception as exc:  # reported by the test thread
            errors.append(exc)

    t = threading.Thread(target=restart_then_produce)
    t.start()
    try:
        got += _take(it, 60, timeout=60, commit=stream.commit)
    finally:
        t.join(60)
    assert not errors, errors
    seen = [i for b in got for i in b.ids]
    assert seen == ids and len(set(seen)) == 120  # every message once, in order
    np.testing.assert_array_equal(np.concatenate([b.X for b in got]), np.concatenate(msgs))
    warnings = [text for level, text in events if level == "warning"]
    assert any("lost the connection" in w for w in warnings), events
    assert any("reconnected" in w for w in warnings), events
    assert _pending(r) == 0
    r.close()


def test_a_reconnect_does_not_acknowledge_uncommitted_messages(redis_server, open_streams):
    """Only a commit acknowledges: messages read but not committed stay pending across a
    reconnect (a crash after it reads them again from the committed offset)."""
    r = redis_server.client()
    ids = _produce(r, _messages(10))
    events = []
    stream = open_streams(redis_server.url, poll=0.2,
                          on_event=lambda text, level: events.append(text))
    it = stream.batches(batch_size=100, max_wait=0.2)
    b1 = next(it)
    assert b1.ids == ids[:4]
    stream.commit(b1)
    b2 = next(it)
    assert b2.ids == ids[4:8]
    redis_server.stop()  # down when the reader next asks for messages
    t = threading.Timer(1.0, redis_server.start)
    t.start()
    try:
        rest = _take(it, 2, timeout=30)  # the last two (fetched before), then a reconnect
        assert next(it).idle
    finally:
        t.join()
    assert [i for b in rest for i in b.ids] == ids[8:]
    assert any("reconnected" in text for text in events), events
    assert _pending(r) == 6  # b2 and the rest: delivered, never committed
    pending = r.xpending_range("points", "streammix", min="-", max="+", count=100)
    assert [_text(p["message_id"]) for p in pending] == ids[4:]
    # a crash now: read again from the committed offset, all six
    again = open_streams(redis_server.url, consumer="again")
    got = _take(again.batches(batch_size=100, max_wait=0.2, after=b1.last_id), 6)
    assert [i for b in got for i in b.ids] == ids[4:]
    r.close()


def test_redacted_urls_and_describe(redis_server, open_streams):
    from streammix.execution.streams import redacted

    assert redacted("redis://:secret@host:6379/0") == "redis://:***@host:6379/0"
    assert redacted("redis://user:secret@host/1") == "redis://user:***@host/1"
    assert redacted("redis://host:6379/0") == "redis://host:6379/0"
    s = open_streams(redis_server.url, group="g")
    assert "'points'" in s.adapter.describe() and "'g'" in s.adapter.describe()
