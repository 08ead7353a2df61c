#!/usr/bin/env python
"""Seconds per EM iteration on a cluster across network hosts, against Dask's threaded
scheduler in one process; and what crosses the network per iteration.

The hosts are Linux network namespaces on this machine (tests/netns_hosts.py; needs
root): a scheduler host, two worker hosts (`dask worker --nthreads 1`) and a client host
that drives the fit, all on one bridge. The data is an uncompressed Zarr array on a path
every host sees (bench_em's seeded blob mixture, n x d float64). Both systems start from
the same weights_init / means_init / precisions_init with tol=0. Per iteration =
(T(1 + m iterations) - T(1 iteration)) / m, medians of --repeats; bytes and packets are
the sum over every host's link of what it sent, per iteration, measured the same way.
They must not grow with n: only statistics and parameters travel. Latency is added by a
relay in front of every listener that delays each direction (tests/delay_relay.py; this
machine's kernel has no netem qdisc).

    .venv/bin/python benchmarks/bench_cluster.py
    .venv/bin/python benchmarks/bench_cluster.py --n 10000000,2500000 --latency-ms 0,5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)


def link_counters(namespaces: list[str]) -> np.ndarray:
    """(tx_bytes, tx_packets) summed over the hosts' links: each packet once, by its
    sender."""
    total = np.zeros(2, dtype=np.int64)
    for ns in namespaces:
        out = subprocess.run(["ip", "netns", "exec", ns, "cat",
                              "/sys/class/net/eth0/statistics/tx_bytes",
                              "/sys/class/net/eth0/statistics/tx_packets"],
                             capture_output=True, text=True, check=True).stdout.split()
        total += np.array([int(x) for x in out])
    return total


def driver(args) -> None:
    """On the client host: time fits through the cluster; print one JSON line."""
    warnings.filterwarnings("ignore", message=".*did not converge")
    from distributed import Client

    import streammix

    init = dict(np.load(args.init))
    namespaces = args.namespaces.split(",")
    with Client(args.scheduler, timeout=30) as client:
        def fit(iters):
            return streammix.GaussianMixture(len(init["weights_init"]),
                                             covariance_type=args.cov, tol=0.0,
                                             max_iter=iters, client=client,
                                             **init).fit(args.data)

        fit(1)  # warm-up: the workers load the kernels
        out = []
        for _ in range(args.repeats):
            c0 = link_counters(namespaces)
            t0 = time.perf_counter()
            fit(1)
            t1 = time.perf_counter()
            c1 = link_counters(namespaces)
            fit(1 + args.iters)
            t2 = time.perf_counter()
            c2 = link_counters(namespaces)
            per = ((t2 - t1) - (t1 - t0)) / args.iters
            traffic = ((c2 - c1) - (c1 - c0)) / args.iters
            out.append([per, float(traffic[0]), float(traffic[1])])
    print(json.dumps(out))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="10000000,2500000", help="row counts, comma-separated")
    ap.add_argument("--d", type=int, default=16)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--types", default="diag,full")
    ap.add_argument("--chunk-rows", type=int, default=131_072)
    ap.add_argument("--latency-ms", default="0,5",
                    help="added one-way latencies between hosts, comma-separated")
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", default=None)
    # driver mode (run on the client host by the benchmark itself)
    ap.add_argument("--driver", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--scheduler", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--init", help=argparse.SUPPRESS)
    ap.add_argument("--cov", help=argparse.SUPPRESS)
    ap.add_argument("--namespaces", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.driver:
        driver(args)
        return 0

    warnings.filterwarnings("ignore", message=".*did not converge")
    import streammix
    from _common import (DEFAULT_WORKDIR, initial_params, log, markdown_table, median,
                         report_header, timed)
    from bench_chunks import write_array
    from tests.netns_hosts import DaskCluster, Network, unavailable

    why = unavailable()
    if why:
        print(f"bench_cluster needs network namespaces: {why}", file=sys.stderr)
        return 2
    workdir = args.workdir or DEFAULT_WORKDIR
    report_header("bench_cluster: EM across network hosts against the threaded scheduler",
                  ["dask", "distributed", "zarr"])
    t_start = time.perf_counter()
    sizes = [int(x) for x in args.n.split(",")]
    types = args.types.split(",")
    paths = {}
    for n in sizes:
        paths[n] = os.path.join(workdir, f"cluster_n{n}_d{args.d}_K{args.k}_s{args.seed}_"
                                         f"rows{args.chunk_rows}.zarr")
        log(f"data: {paths[n]}")
        write_array(paths[n], n, args.d, args.k, args.seed, args.chunk_rows)
    inits = {}
    for t in types:
        inits[t] = os.path.join(workdir, f"cluster_init_{t}_d{args.d}_K{args.k}.npz")
        np.savez(inits[t], **initial_params(t, args.d, args.k, args.seed))

    results = {}
    # the threaded scheduler first, with no cluster running
    for n in sizes:
        for t in types:
            init = dict(np.load(inits[t]))

            def fit(iters, t=t, n=n, init=init):
                return streammix.GaussianMixture(args.k, covariance_type=t, tol=0.0,
                                                 max_iter=iters, **init).fit(paths[n])

            fit(1)
            per = []
            for _ in range(args.repeats):
                t1, _ = timed(lambda: fit(1))
                tm, _ = timed(lambda: fit(1 + args.iters))
                per.append((tm - t1) / args.iters)
            results[("threads", n, t)] = (median(per), None, None)
            log(f"threads n={n:,} {t}: {median(per):.3f} s per iteration")

    latencies = [float(x) for x in args.latency_ms.split(",")]
    net = Network(os.path.join(workdir, "bench-hosts"))
    try:
        hosts = {name: net.add(name) for name in ("scheduler", "worker1", "worker2",
                                                  "client")}
        namespaces = ",".join(h.ns for h in hosts.values())
        for i, lat in enumerate(latencies):
            cluster = DaskCluster(net, hosts["scheduler"], port=8786 + i, delay_ms=lat)
            cluster.start_scheduler()
            cluster.start_worker(hosts["worker1"])
            cluster.start_worker(hosts["worker2"])
            cluster.wait_workers(2)
            for n in sizes:
                for t in types:
                    done = hosts["client"].run(
                        [sys.executable, os.path.abspath(__file__), "--driver",
                         "--scheduler", cluster.address, "--data", paths[n], "--init",
                         inits[t], "--cov", t, "--namespaces", namespaces, "--iters",
                         str(args.iters), "--repeats", str(args.repeats)], cwd=ROOT,
                        timeout=3600)
                    if done.returncode != 0:
                        raise RuntimeError(done.stderr[-3000:])
                    runs = json.loads(done.stdout.strip().splitlines()[-1])
                    per = median([r[0] for r in runs])
                    results[("cluster", lat, n, t)] = (per, median([r[1] for r in runs]),
                                                       median([r[2] for r in runs]))
                    log(f"cluster +{lat:g} ms n={n:,} {t}: {per:.3f} s per iteration")
            cluster.stop()
    finally:
        net.close()

    rows = []
    for n in sizes:
        for t in types:
            base = results[("threads", n, t)][0]
            for lat in latencies:
                per, nbytes, packets = results[("cluster", lat, n, t)]
                rows.append([f"{n:,}", t, f"{base:.3f}", f"{lat:g}", f"{per:.3f}",
                             f"{(per / base - 1) * 100:+.0f}%", f"{per - base:+.3f}",
                             f"{nbytes / 1024:,.0f}", f"{packets:,.0f}"])
    print(f"d = {args.d}, K = {args.k}, chunks of {args.chunk_rows:,} rows (uncompressed "
          f"Zarr on a shared path); 2 worker hosts x 1 thread against the threaded "
          f"scheduler (2 threads) in one process; latency added by a relay delaying each "
          f"direction in front of every listener (tests/delay_relay.py); medians of "
          f"{args.repeats}\n")
    print(markdown_table(["n", "type", "threaded s/iter", "added one-way ms",
                          "cluster s/iter", "cluster over threaded", "s added",
                          "KiB across hosts per iter", "packets per iter"], rows))
    print(f"\nTotal wall time {time.perf_counter() - t_start:.1f} s.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
