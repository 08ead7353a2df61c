"""`streammix update CONFIG --follow` against a real redis-server: exactly once and
bit-identical across SIGKILL, bad messages (error: exit 3 naming the message; skip:
counted), SIGTERM (commit, XACK, lock released, exit 0), one writer per checkpoint, the
Prometheus endpoint, and a live producer with a Redis restart and follower kills."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest

import streammix
from streammix.execution.streams import encode_packed
from streammix.persistence import current_version, read_version
from tests.conftest import make_blobs
from tests.redis_server import free_port

from .conftest import run_cli

pytest.importorskip("redis")

D = 4


# ---------------------------------------------------------------------------- helpers
def _config(tmp_path, url, ck, name="follow.yaml", source=None, run=None):
    """A config file (JSON is YAML)."""
    cfg = {"source": {"type": "redis", "url": url, "stream": "points", "n_features": D,
                      **(source or {})},
           "model": {"estimator": "OnlineGaussianMixture", "n_components": 3,
                     "random_state": 0},
           "run": {"checkpoint": str(ck), "batch_size": 2000, "max_wait": 0.3,
                   "checkpoint_interval": None, **(run or {})}}
    path = tmp_path / name
    path.write_text(json.dumps(cfg, indent=1))
    return str(path)


class Followers:
    """Starts `python -m streammix update CFG --follow` processes (stderr to a file) and
    kills whatever still runs when the test ends."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen] = []

    def start(self, cfg, *args):
        log = self.tmp_path / f"follower-{len(self.procs)}.log"
        err = open(log, "w")
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "streammix", "--no-progress", "update", cfg,
                 "--follow", *args],
                cwd=self.tmp_path, stdout=subprocess.DEVNULL, stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        finally:
            err.close()
        proc.log = log
        self.procs.append(proc)
        return proc

    @staticmethod
    def stderr(proc) -> str:
        return proc.log.read_text()

    def stop(self, proc, timeout=30.0) -> tuple[int, float]:
        """SIGTERM once it follows the stream (a SIGTERM while Python starts up ends the
        process by the default handler); (exit code, seconds it took)."""
        _wait("the follower to start", lambda: "following redis stream" in self.stderr(proc),
              proc, self)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"no exit {timeout} s after SIGTERM: {self.stderr(proc)[-3000:]}")
        return code, time.monotonic() - t0

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.fixture
def followers(tmp_path):
    f = Followers(tmp_path)
    try:
        yield f
    finally:
        f.close()


def _cursor(ck):
    """The committed stream cursor (None before the first commit)."""
    for _ in range(50):
        try:
            if not os.path.exists(ck) or current_version(ck) is None:
                return None
            return read_version(ck)[1]["state"]["online"]["cursor"]
        except Exception:  # a version pruned while it was read: read the newer one
            time.sleep(0.02)
    raise AssertionError(f"cannot read the checkpoint {ck}")


def _rows(ck):
    c = _cursor(ck)
    return 0 if c is None else c["rows"]


def _wait(what, ready, proc=None, followers=None, timeout=90.0, pause=0.02):
    deadline = time.monotonic() + timeout
    while not ready():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the follower ended (exit {proc.returncode}) before {what}: "
                        f"{followers.stderr(proc)[-3000:]}")
        if time.monotonic() > deadline:
            log = followers.stderr(proc)[-3000:] if proc is not None else ""
            pytest.fail(f"timed out waiting for {what}: {log}")
        time.sleep(pause)


def _produce(client, X, rows_per_message=100, stream="points"):
    pipe = client.pipeline()
    for i in range(0, len(X), rows_per_message):
        pipe.xadd(stream, {"x": encode_packed(X[i:i + rows_per_message])})
    return [i.decode() for i in pipe.execute()]


def _pending(client, group, stream="points"):
    return int(client.xpending(stream, group)["pending"])


def _assert_same_model(a, b):
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.covariances_, b.covariances_)
    np.testing.assert_array_equal(a.weights_, b.weights_)
    np.testing.assert_array_equal(a.component_ids_, b.component_ids_)
    assert a.n_samples_seen_ == b.n_samples_seen_
    assert a.n_updates_ == b.n_updates_


# ---------------------------------------------------------------------------- tests
@pytest.mark.slow
def test_sigkill_at_random_moments_ends_bit_identical_to_an_uninterrupted_run(
        tmp_path, redis_server, followers):
    N = 40_000
    X = make_blobs(N, D, 3, seed=3)[0]
    r = redis_server.client()
    ids = _produce(r, X)
    assert len(ids) == 400
    # max_wait well above the time a batch takes to read: every batch is 20 whole
    # messages in both runs (SIGTERM is still seen within a poll of 1 s)
    cfg = _config(tmp_path, redis_server.url, tmp_path / "unused",
                  run={"max_wait": 2.0})
    ck_a, ck_b = str(tmp_path / "whole"), str(tmp_path / "killed")

    whole = followers.start(cfg, "--set", "source.group=whole", "--set",
                            f"run.checkpoint={ck_a}")
    _wait("the whole stream", lambda: _rows(ck_a) == N, whole, followers)
    code, _ = followers.stop(whole)
    assert code == 0, followers.stderr(whole)

    rng = np.random.default_rng(20240611)
    args = ("--set", "source.group=killed", "--set", f"run.checkpoint={ck_b}")
    at_kill = []
    # first kill: a random moment after the start (mostly while it starts up)
    proc = followers.start(cfg, *args)
    time.sleep(rng.uniform(0.3, 1.5))
    proc.kill()
    proc.wait()
    at_kill.append(_rows(ck_b))
    # then three kills at random points of the stream, at a random phase of a batch
    for target in sorted(rng.uniform(0.1, 0.7, size=3)):
        proc = followers.start(cfg, *args)
        goal = max(int(target * N), _rows(ck_b) + 1)
        _wait(f"{goal} rows", lambda: _rows(ck_b) >= goal, proc, followers)
        time.sleep(rng.uniform(0.0, 0.05))
        proc.kill()
        proc.wait()
        at_kill.append(_rows(ck_b))
    assert sum(0 < n < N for n in at_kill) >= 2, at_kill  # kills landed mid-stream
    last = followers.start(cfg, *args)
    _wait("the whole stream after the kills", lambda: _rows(ck_b) == N, last, followers)
    code, _ = followers.stop(last)
    assert code == 0, followers.stderr(last)
    assert "breaking a stale" in followers.stderr(last)  # the killed one's lock

    a, b = streammix.load(ck_a), streammix.load(ck_b)
    assert a.n_samples_seen_ == b.n_samples_seen_ == N
    assert a.n_updates_ == b.n_updates_
    _assert_same_model(a, b)
    ca, cb = a.stream_cursor_, b.stream_cursor_
    assert ca["last_id"] == cb["last_id"] == ids[-1]
    assert (ca["messages"], ca["rows"], ca["skipped"]) == (400, N, 0)
    assert (cb["messages"], cb["rows"], cb["skipped"]) == (400, N, 0)
    assert (ca["group"], cb["group"]) == ("whole", "killed")
    assert _pending(r, "whole") == 0 and _pending(r, "killed") == 0
    r.close()


def _stream_with_bad_messages(client, bad_fields):
    """50 good messages of 100 rows, then each bad message followed by 10 good ones."""
    X = make_blobs(100 * (50 + 10 * len(bad_fields)), D, 3, seed=5)[0]
    fields = [{"x": encode_packed(X[i:i + 100])} for i in range(0, len(X), 100)]
    for k, bad in enumerate(bad_fields):
        fields.insert(50 + k * 11, bad)
    pipe = client.pipeline()
    for f in fields:
        pipe.xadd("points", f)
    ids = [i.decode() for i in pipe.execute()]
    bad_ids = [ids[50 + k * 11] for k in range(len(bad_fields))]
    return X, ids, bad_ids


def test_a_bad_message_stops_the_follower_with_exit_3_after_committing_the_rows_before(
        tmp_path, redis_server, followers):
    r = redis_server.client()
    X, ids, (bad,) = _stream_with_bad_messages(r, [{"x": encode_packed(np.ones((1, 3)))}])
    ck = str(tmp_path / "ck")
    cfg = _config(tmp_path, redis_server.url, ck, run={"on_bad_batch": "error"})
    proc = followers.start(cfg)
    try:
        code = proc.wait(60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the follower did not stop at the bad message: "
                    f"{followers.stderr(proc)[-3000:]}")
    err = followers.stderr(proc)
    assert code == 3, err
    assert f"message {bad}" in err and "3 values" in err and "on_bad_batch: skip" in err
    cursor = _cursor(ck)
    assert cursor["last_id"] == ids[49] == ids[ids.index(bad) - 1]
    assert (cursor["messages"], cursor["rows"], cursor["skipped"]) == (50, 5000, 0)
    model = streammix.load(ck)
    assert model.n_samples_seen_ == 5000
    # acknowledged up to the committed offset; the bad message was delivered, not done
    pending = [p["message_id"].decode() for p in
               r.xpending_range("points", "streammix", min="-", max="+", count=1000)]
    assert bad in pending and all(_key(i) >= _key(bad) for i in pending)
    assert not os.path.exists(os.path.join(ck, "LOCK"))
    version = current_version(ck)
    # started again: the same message stops it at once, nothing else changes
    again = run_cli("update", cfg, "--follow", cwd=str(tmp_path), timeout=120)
    assert again.returncode == 3, again.stderr
    assert f"message {bad}" in again.stderr
    assert current_version(ck) == version and _cursor(ck) == cursor
    r.close()


def _key(message_id):
    ms, _, seq = message_id.partition("-")
    return int(ms), int(seq)


def test_bad_messages_are_skipped_and_counted_under_on_bad_batch_skip(
        tmp_path, redis_server, followers):
    r = redis_server.client()
    bad_fields = [{"x": b"\x00" * 20},                                   # not float64s
                  {"x": encode_packed(np.full((2, D), np.nan))},          # NaN
                  {"y": encode_packed(np.ones((1, D)))},                  # no field x
                  {"x": encode_packed(np.ones((1, D + 2)))}]              # 6 values
    X, ids, bad_ids = _stream_with_bad_messages(r, bad_fields)
    ck = str(tmp_path / "ck")
    cfg = _config(tmp_path, redis_server.url, ck, run={"on_bad_batch": "skip"})
    proc = followers.start(cfg)
    _wait("every message", lambda: (_cursor(ck) or {}).get("messages") == len(ids), proc,
          followers)
    code, _ = followers.stop(proc)
    err = followers.stderr(proc)
    assert code == 0, err
    cursor = _cursor(ck)
    assert cursor["skipped"] == 4 and cursor["rows"] == len(X) and cursor["last_id"] == ids[-1]
    assert streammix.load(ck).n_samples_seen_ == len(X)
    for i in bad_ids:
        assert f"skipped bad message {i}" in err
    assert _pending(r, "streammix") == 0  # skipped messages are acknowledged too
    r.close()


def _metric(text, name):
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return None if m is None else float(m.group(1))


def _get_metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def test_sigterm_commits_acknowledges_releases_the_lock_and_exits_0(
        tmp_path, redis_server, followers):
    N = 40_000
    X = make_blobs(N, D, 3, seed=7)[0]
    r = redis_server.client()
    ids = _produce(r, X)
    ck = str(tmp_path / "ck")
    port = free_port()
    # no commit on the cadence: only SIGTERM commits
    cfg = _config(tmp_path, redis_server.url, ck,
                  run={"checkpoint_every": 1000, "checkpoint_interval": 3600.0})
    proc = followers.start(cfg, "--metrics-port", f"127.0.0.1:{port}")

    def consumed():
        try:
            return _metric(_get_metrics(port), "streammix_rows_consumed_total") == N
        except OSError:
            return False

    _wait("the rows to be learnt", consumed, proc, followers, pause=0.1)
    assert _cursor(ck) is None  # nothing committed yet
    assert os.path.exists(os.path.join(ck, "LOCK"))
    assert _pending(r, "streammix") == 400
    code, took = followers.stop(proc)
    err = followers.stderr(proc)
    assert code == 0, err
    assert took < 5.0, err
    assert "stopped by SIGTERM" in err
    cursor = _cursor(ck)
    assert (cursor["last_id"], cursor["messages"], cursor["rows"]) == (ids[-1], 400, N)
    assert streammix.load(ck).n_samples_seen_ == N
    assert _pending(r, "streammix") == 0
    assert not os.path.exists(os.path.join(ck, "LOCK"))
    # started again: nothing new, and a SIGTERM while idle exits 0 with nothing to do
    proc = followers.start(cfg)
    _wait("the follower to start", lambda: "following" in followers.stderr(proc), proc,
          followers)
    time.sleep(0.5)  # idle polls
    code, took = followers.stop(proc)
    assert code == 0 and took < 5.0, followers.stderr(proc)
    assert "after message " + ids[-1] in followers.stderr(proc)
    assert _cursor(ck) == cursor
    # the checkpoint follows this stream and group: another group is refused
    other = run_cli("update", cfg, "--follow", "--set", "source.group=other",
                    cwd=str(tmp_path), timeout=120)
    assert other.returncode == 4, other.stderr
    assert "(group 'streammix')" in other.stderr and "use another run.checkpoint" in \
        other.stderr
    assert _cursor(ck) == cursor
    r.close()


def test_a_second_follower_on_the_same_checkpoint_is_refused(tmp_path, redis_server,
                                                              followers):
    r = redis_server.client()
    _produce(r, make_blobs(4000, D, 3, seed=1)[0])
    ck = str(tmp_path / "ck")
    cfg = _config(tmp_path, redis_server.url, ck)
    first = followers.start(cfg)
    _wait("a first commit", lambda: _rows(ck) == 4000, first, followers)
    second = run_cli("update", cfg, "--follow", cwd=str(tmp_path), timeout=120)
    assert second.returncode == 4, second.stderr
    assert "being written by" in second.stderr and f"pid {first.pid}" in second.stderr
    assert first.poll() is None  # the first one goes on
    _produce(r, make_blobs(2000, D, 3, seed=2)[0])
    _wait("the rows after", lambda: _rows(ck) == 6000, first, followers)
    code, _ = followers.stop(first)
    assert code == 0, followers.stderr(first)
    r.close()


def test_metrics_endpoint_counts_the_rows_consumed(tmp_path, redis_server, followers):
    r = redis_server.client()
    _produce(r, make_blobs(10_000, D, 3, seed=4)[0])
    ck = str(tmp_path / "ck")
    port = free_port()
    cfg = _config(tmp_path, redis_server.url, ck)
    proc = followers.start(cfg, "--metrics-port", f"127.0.0.1:{port}")
    _wait("the stream", lambda: _rows(ck) == 10_000, proc, followers)
    # the gauge is set once the commit's XACK is done, a moment after the version
    _wait("the committed version", lambda: _metric(_get_metrics(port),
                                                    "streammix_committed_version") == 5,
          proc, followers)
    text = _get_metrics(port)
    assert _metric(text, "streammix_rows_consumed_total") == 10_000
    assert _metric(text, "streammix_messages_consumed_total") == 100
    assert _metric(text, "streammix_updates_total") == 5
    assert _metric(text, "streammix_bad_messages_total") == 0
    assert current_version(ck) == 5  # one version per batch of 2000 rows
    assert _metric(text, 'streammix_up{command="update"}') == 1
    assert np.isfinite(_metric(text, "streammix_last_batch_log_likelihood"))
    # all read: the lag gauge (refreshed every second) comes down to 0; the time since
    # the last commit grows while nothing new arrives
    _wait("the lag", lambda: _metric(_get_metrics(port), "streammix_consumer_lag") == 0,
          proc, followers)
    since = _metric(_get_metrics(port), "streammix_seconds_since_commit")
    time.sleep(0.3)
    later = _metric(_get_metrics(port), "streammix_seconds_since_commit")
    assert 0 <= since < later < 60
    code, _ = followers.stop(proc)
    assert code == 0, followers.stderr(proc)
    with pytest.raises(OSError):  # served only while the follower runs
        _get_metrics(port)
    r.close()


class Producer(threading.Thread):
    """XADDs a message (1-20 rows) every few ms with explicit ids, retrying on
    connection errors; counts only the messages that are in the stream."""

    def __init__(self, server, seed=0):
        super().__init__(daemon=True)
        self.server = server
        self.rng = np.random.default_rng(seed)
        self.pool = make_blobs(400_000, D, 3, seed=seed)[0]
        self.stop = threading.Event()
        self.rows = 0
        self.messages = 0
        self.retries = 0
        self.error: BaseException | None = None

    def run(self):
        import redis

        client = self.server.client()
        try:
            seq = 0
            while not self.stop.is_set():
                n = int(self.rng.integers(1, 21))
                if self.rows + n > len(self.pool):
                    break
                seq += 1
                fields = {"x": encode_packed(self.pool[self.rows:self.rows + n])}
                retried = False
                while True:
                    try:
                        client.xadd("points", fields, id=f"{seq}-0")
                        break
                    except (redis.ConnectionError, redis.TimeoutError):
                        self.retries += 1
                        retried = True
                        time.sleep(0.02)
                    except redis.ResponseError as exc:
                        if retried and "equal or smaller" in str(exc):
                            break  # it was added before the connection dropped
                        raise
                self.rows += n
                self.messages += 1
                time.sleep(0.003)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            client.close()


@pytest.mark.slow
def test_a_live_producer_a_redis_restart_and_two_kills_count_every_row_once(
        tmp_path, redis_server, followers):
    ck = str(tmp_path / "ck")
    cfg = _config(tmp_path, redis_server.url, ck)
    rng = np.random.default_rng(99)
    producer = Producer(redis_server, seed=11)
    producer.start()
    try:
        proc = followers.start(cfg)
        _wait("a first commit", lambda: _rows(ck) > 0, proc, followers)
        time.sleep(rng.uniform(0.3, 1.5))
        proc.kill()
        proc.wait()

        proc = followers.start(cfg)
        before = _rows(ck)
        _wait("a commit after the restart", lambda: _rows(ck) > before, proc, followers)
        time.sleep(rng.uniform(0.1, 0.5))
        redis_server.restart(down_for=0.5)
        after = _rows(ck)
        _wait("a commit after the Redis restart", lambda: _rows(ck) > after, proc, followers)
        reconnected = followers.stderr(proc)
        time.sleep(rng.uniform(0.3, 1.5))
        proc.kill()
        proc.wait()

        proc = followers.start(cfg)
        time.sleep(rng.uniform(1.0, 2.0))
    finally:
        producer.stop.set()
        producer.join(30)
    assert producer.error is None, producer.error
    assert not producer.is_alive()
    r = redis_server.client()
    assert r.xlen("points") == producer.messages
    _wait("the follower to drain the stream", lambda: _rows(ck) == producer.rows, proc,
          followers, timeout=120)
    code, _ = followers.stop(proc)
    assert code == 0, followers.stderr(proc)
    assert "lost the connection" in reconnected and "reconnected" in reconnected
    model = streammix.load(ck)
    assert model.n_samples_seen_ == producer.rows
    cursor = model.stream_cursor_
    assert cursor["rows"] == producer.rows and cursor["messages"] == producer.messages
    assert cursor["last_id"] == f"{producer.messages}-0" and cursor["skipped"] == 0
    assert _pending(r, "streammix") == 0
    r.close()


@pytest.mark.slow
def test_an_idle_follower_keeps_its_checkpoint_lock_fresh(tmp_path, redis_server,
                                                           followers):
    """A lock whose heartbeat is older than an hour counts as stale and is broken by the
    next writer: a follower waiting on a quiet stream must refresh it (else a second
    follower takes the checkpoint over while the first still reads the group)."""
    r = redis_server.client()
    _produce(r, make_blobs(2000, D, 3, seed=1)[0])
    ck = str(tmp_path / "ck")
    cfg = _config(tmp_path, redis_server.url, ck)
    first = followers.start(cfg)
    _wait("a first commit", lambda: _rows(ck) == 2000, first, followers)
    lock = os.path.join(ck, "LOCK")
    info = json.loads(open(lock).read())
    info["heartbeat"] = time.time() - 7200  # as if the stream had been quiet for 2 hours
    with open(lock + ".test", "w") as f:
        json.dump(info, f)
    os.replace(lock + ".test", lock)
    _wait("a fresh heartbeat",
          lambda: json.loads(open(lock).read())["heartbeat"] > time.time() - 60, first,
          followers, timeout=30, pause=0.2)
    second = run_cli("update", cfg, "--follow", cwd=str(tmp_path), timeout=120)
    assert second.returncode == 4, second.stderr
    assert "being written by" in second.stderr
    code, _ = followers.stop(first)
    assert code == 0, followers.stderr(first)
    r.close()
