#!/usr/bin/env python
"""Seconds per EM iteration against the number of chunks (work units, issue 20).

The same rows (bench_em's seeded blob mixture, n x d, float64) are written to
uncompressed Zarr arrays cut into --chunks chunk counts. For each, streammix fits diag,
K components, from the same weights_init / means_init / precisions_init with tol=0:

  units      the default: a pass is a task per work unit (2**k consecutive chunk files,
             about 4 per thread), summed by the in-memory fold
  per chunk  the previous design: a task per chunk (UNITS_PER_THREAD set so high that a
             unit is one chunk), summed by the same fold

(--persisted: a dask array read from them once and persisted in memory, on the
cluster regrouped into units held where their chunks are) on Dask's threaded scheduler
and, with --cluster, on a LocalCluster of 2 worker
processes (1 thread each). The in-memory kernel on the same rows is the floor. Per
iteration = (T(1 + m iterations) - T(1 iteration)) / m, medians of --repeats,
interleaved; on the cluster also the scheduler process's CPU seconds per iteration.

    .venv/bin/python benchmarks/bench_chunks.py --cluster
    .venv/bin/python benchmarks/bench_chunks.py --n 1000000 --chunks 20,200,2000,20000
    .venv/bin/python benchmarks/bench_chunks.py --cluster --persisted --n 2000000 \
        --chunks 20,200,2000    # the issue's table: a persisted dask array
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    DEFAULT_WORKDIR,
    initial_params,
    iter_data_blocks,
    log,
    markdown_table,
    median,
    report_header,
    timed,
)


def write_array(path: str, n: int, d: int, K: int, seed: int, chunk_rows: int) -> None:
    import zarr

    if os.path.isdir(path) and zarr.open_array(path, mode="r").attrs.get("complete"):
        return
    shutil.rmtree(path, ignore_errors=True)
    arr = zarr.create_array(path, shape=(n, d), chunks=(chunk_rows, d), dtype="float64",
                            compressors=None)
    start = 0
    for block in iter_data_blocks(n, d, K, seed):
        arr[start:start + len(block)] = block
        start += len(block)
    arr.attrs["complete"] = True


def per_iteration(fit, iters: int) -> float:
    t1, _ = timed(lambda: fit(1))
    tm, _ = timed(lambda: fit(1 + iters))
    return (tm - t1) / iters


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=8)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunks", default="20,200,2000,20000")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cluster", action="store_true", help="also a 2-worker LocalCluster")
    ap.add_argument("--persisted", action="store_true",
                    help="fit a dask array persisted in (cluster) memory, read from the "
                         "Zarr arrays once, instead of the Zarr arrays themselves")
    ap.add_argument("--baseline-max-chunks", type=int, default=2000,
                    help="time the per-chunk design up to this many chunks only (at 20,000 "
                         "chunks on a cluster one of its iterations takes over a minute)")
    ap.add_argument("--workdir", default=DEFAULT_WORKDIR)
    args = ap.parse_args()

    import streammix
    import streammix.execution.dask_source as dask_source

    report_header("bench_chunks: seconds per EM iteration against the chunk count",
                  ["dask", "distributed", "zarr"])
    counts = [int(c) for c in args.chunks.split(",")]
    paths = {}
    for c in counts:
        rows = -(-args.n // c)
        paths[c] = os.path.join(args.workdir, f"chunks_n{args.n}_d{args.d}_K{args.k}_"
                                              f"s{args.seed}_rows{rows}.zarr")
        log(f"data: {paths[c]}")
        write_array(paths[c], args.n, args.d, args.k, args.seed, rows)
    init = initial_params("diag", args.d, args.k, args.seed)
    X = np.concatenate(list(iter_data_blocks(args.n, args.d, args.k, args.seed)))

    def fitter(data, client=None):
        def fit(iters):
            return streammix.GaussianMixture(args.k, covariance_type="diag", tol=0.0,
                                             max_iter=iters, client=client,
                                             **init).fit(data)
        return fit

    def with_units(per_thread, fn):
        def run(iters):
            saved = dask_source.UNITS_PER_THREAD
            dask_source.UNITS_PER_THREAD = per_thread
            try:
                return fn(iters)
            finally:
                dask_source.UNITS_PER_THREAD = saved
        return run

    systems = {"units": 4, "per chunk": 10**9}
    wheres = ["threads"] + (["cluster"] if args.cluster else [])
    mem_fit = fitter(X)
    mem_fit(2)  # warm-up: kernels compiled or loaded
    samples: dict = {}
    sched_cpu: dict = {}
    clients = []
    for where in wheres:
        # the threaded runs first, with no cluster in this process (its scheduler's event
        # loop would compete for the GIL with the per-chunk Python)
        client = cluster = None
        if where == "cluster":
            from distributed import Client, LocalCluster

            cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                   dashboard_address=":0")
            client = Client(cluster)
        clients.append((where, client))
        runs = [(c, name, per_thread) for c in counts for name, per_thread in systems.items()
                if not (name == "per chunk" and c > args.baseline_max_chunks)]
        data = dict(paths)
        if args.persisted:
            for c in counts:
                X_c = streammix.read_zarr(paths[c])
                data[c] = client.persist(X_c) if client is not None else X_c.persist()
                if client is not None:
                    from distributed import futures_of, wait

                    wait(futures_of(data[c]))
        for c, name, per_thread in runs:
            with_units(per_thread, fitter(data[c], client))(2)  # warm-up
        for r in range(args.repeats):
            if where == "threads":
                samples.setdefault("in-memory", []).append(per_iteration(mem_fit, args.iters))
            for c, name, per_thread in runs:
                fit = with_units(per_thread, fitter(data[c], client))
                cpu0 = client.run_on_scheduler(time.process_time) if client else 0.0
                s = per_iteration(fit, args.iters)
                if client is not None:
                    cpu = client.run_on_scheduler(time.process_time) - cpu0
                    sched_cpu.setdefault((where, c, name), []).append(
                        cpu / (2 + 2 * args.iters))  # iterations in the two fits
                samples.setdefault((where, c, name), []).append(s)
            log(f"{where}: repeat {r + 1}/{args.repeats} done")
        if client is not None:
            client.close()
            cluster.close()
    floor = median(samples["in-memory"])
    rows = []
    for where, client in clients:
        base = {}
        for c in counts:
            for name in systems:
                if (where, c, name) not in samples:
                    continue
                s = median(samples[(where, c, name)])
                base.setdefault(name, s)
                cpu = sched_cpu.get((where, c, name))
                rows.append([where, f"{c:,}", name, f"{s:.3f}", f"{s / floor:.2f}x",
                             f"{s / base[name]:.2f}x",
                             f"{median(cpu):.3f}" if cpu else "-"])
    print(f"{'persisted dask arrays' if args.persisted else 'uncompressed Zarr arrays'}; "
          f"n = {args.n:,} x {args.d}, diag, K = {args.k}; in-memory kernel "
          f"{floor:.3f} s per iteration; medians of {args.repeats}\n")
    print(markdown_table(["scheduler", "chunks", "pass", "s per iteration", "/ in-memory",
                          f"/ {counts[0]} chunks", "scheduler CPU s per iteration"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
