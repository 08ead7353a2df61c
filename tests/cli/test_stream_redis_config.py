"""configs/stream-redis.yaml as the README shows it: a producer, `update --follow` and
`score --follow` side by side on a real redis-server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

from streammix.persistence import read_version
from streammix.streams import encode_packed

from .conftest import REPO


def _start(args, cwd, log):
    return subprocess.Popen([sys.executable, "-m", "streammix", "--no-progress", *args],
                            cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait(condition, procs, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not condition():
        for p in procs:
            assert p.poll() is None, f"a follower ended early (exit {p.returncode})"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_the_example_config_runs_updater_and_scorer(redis_server, tmp_path):
    root = tmp_path
    shutil.copytree(os.path.join(REPO, "configs"), root / "configs")
    client = redis_server.client()
    rng = np.random.default_rng(3)
    centres = rng.normal(scale=6, size=(6, 8))
    for _ in range(30):  # the producer: 100 rows of 8 features per message
        rows = centres[rng.integers(0, 6, 100)] + rng.normal(size=(100, 8))
        client.xadd("points", {"x": encode_packed(rows)})
    common = ["--set", f"source.url={redis_server.url}", "--set", "run.batch_size=1000"]
    ck = str(root / "demo-data" / "models" / "stream-redis")
    log = open(root / "followers.log", "wb")
    updater = _start(["update", "configs/stream-redis.yaml", "--follow", *common], root, log)
    procs = [updater]
    try:
        def consumed():
            try:
                return read_version(ck)[1]["state"]["online"]["cursor"]["rows"] == 3000
            except Exception:
                return False

        _wait(consumed, procs)
        scorer = _start(["score", "configs/stream-redis.yaml", "--follow", *common, "--set",
                         "source.group=scorer"], root, log)
        procs.append(scorer)
        _wait(lambda: client.xlen("scores") == 30, procs)
        for p in procs:
            p.send_signal(signal.SIGTERM)
        assert [p.wait(timeout=60) for p in procs] == [0, 0], \
            (root / "followers.log").read_text()[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        log.close()
    inputs = [i.decode() for i, _ in client.xrange("points")]
    outputs = client.xrange("scores")
    assert [i.decode() for i, _ in outputs] == inputs  # one output per input, same ids
    fields = {k.decode(): v for k, v in outputs[0][1].items()}
    assert len(json.loads(fields["label"])) == 100 and "anomaly" in fields
    assert client.xpending("points", "streammix")["pending"] == 0
    assert client.xpending("points", "scorer")["pending"] == 0
