#!/usr/bin/env python
"""Exact EM on Dask/Zarr (issue 3): seconds per EM iteration against the in-memory
kernel, linear scaling in n, flat memory.

(a) overhead: n = 10,000,000, d = 16, K = 16, diag and full. The data (bench_em's seeded
    blob mixture, float64) are written once to a Zarr array on disk, chunked by rows
    (250,000-row chunks; --codec none (default: float data barely compress), lz4
    (Blosc-LZ4, byte shuffle) or zstd (zarr's default)), generated chunk by chunk and
    never whole in memory, and cached in --workdir under a name that encodes n, d, K,
    seed, chunking and codec. streammix reads the chunk files of a local Zarr array
    directly (streammix/execution/zarr_chunks.py: mapped when uncompressed, decoded once
    otherwise). Systems, interleaved A B C A B C ..., medians quoted:
      in-memory  streammix.GaussianMixture on the same rows as one numpy array (1.28 GB)
      threads    GaussianMixture().fit(<zarr path>) with no Dask client: Dask's threaded
                 scheduler in this process
      cluster    GaussianMixture(client=c).fit(<zarr path>) with
                 c = Client(LocalCluster(n_workers=2, threads_per_worker=1))
    All get the same weights_init / means_init / precisions_init (bench_em's
    initial_params) and tol=0. Dask overhead = (Dask s/it / in-memory s/it - 1), in %;
    target < 20%.
(b) scaling: n = 1M, 4M, 16M, diag, Zarr, threaded scheduler: seconds per iteration
    (should be linear in n) and the peak extra memory of a fit in a fresh subprocess
    (should be flat in n).

Per-iteration time = (T(1 + m iterations) - T(1 iteration)) / m after a warm-up fit of
every system (numba kernels compiled or loaded from the cache, in the cluster's workers
too), so start-up, validation (the first pass also checks every chunk for NaN/inf) and
the initial parameters cancel out.

Memory (b): a fresh process (forked once first, as in bench_em) opens the Zarr array,
warms up on its first two chunks, resets its peak-RSS mark (/proc/self/clear_refs),
then fits --mem-iters iterations; extra = VmHWM after the fit - VmRSS before it.

Run from the repository root:

    .venv/bin/python benchmarks/bench_dask.py            # full (data ~4.5 GB in /tmp)
    .venv/bin/python benchmarks/bench_dask.py --quick    # smoke run, tiny sizes (< 60 s)
    .venv/bin/python benchmarks/bench_dask.py --cases overhead_diag,scaling --repeats 5
    .venv/bin/python benchmarks/bench_dask.py --workdir /data/bench --codec zstd

stdout is the report (markdown, for benchmarks/RESULTS.md); progress goes to stderr.
Run it on a quiet machine. The first run writes the Zarr arrays (about 1 min per GB).
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--_mem-child":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _common import clean_maxrss_fork

    clean_maxrss_fork()

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402


from _common import (  # noqa: E402
    report_footer,
    DEFAULT_WORKDIR,
    MiB,
    _reset_peak_rss,
    _vm_hwm,
    dir_bytes,
    ensure_zarr,
    fmt_s,
    initial_params,
    log,
    markdown_table,
    median,
    noisy,
    report_header,
    thread_info,
    timed,
    vm_rss,
    zarr_to_numpy,
)

D, K = 16, 16
OVERHEAD_CASES = {"overhead_diag": "diag", "overhead_full": "full"}
ALL_CASES = list(OVERHEAD_CASES) + ["scaling"]
SYSTEMS = ("in-memory", "threads", "cluster", "threads-persisted", "cluster-persisted")
DEFAULT_SYSTEMS = ("in-memory", "threads", "cluster", "threads-persisted",
                   "cluster-persisted")
FULL = dict(n=10_000_000, scaling=(1_000_000, 4_000_000, 16_000_000), chunk_rows=250_000,
            repeats=3, iters=3)
QUICK = dict(n=200_000, scaling=(50_000, 200_000, 800_000), chunk_rows=25_000,
             repeats=2, iters=2)


# ----------------------------------------------------------------------------- fits
def make_gmm(cov_type: str, max_iter: int, init: dict, client=None):
    from streammix import GaussianMixture

    return GaussianMixture(n_components=K, covariance_type=cov_type, tol=0.0,
                           max_iter=max_iter, random_state=0, client=client, **init)


def fit(system, data, cov_type, max_iter, init, client, seen):
    """(seconds, lower_bound_) of one fit. data: the numpy array for 'in-memory', the
    Zarr path otherwise."""
    est = make_gmm(cov_type, max_iter, init,
                   client if system.startswith("cluster") else None)
    seconds, est = timed(lambda: est.fit(data), seen)
    return seconds, float(est.lower_bound_)


def persisted(path, client):
    """The Zarr array decoded once into memory: this process's (threads) or the
    workers' (cluster), as a user's ``X = X.persist()`` before ``fit``."""
    import dask.array as da
    from distributed import wait

    X = da.from_zarr(path)
    t0 = time.perf_counter()
    if client is None:
        X = X.persist(scheduler="threads")
    else:
        X = client.persist(X)
        with client.as_current():
            wait(X)
    log(f"[data] persisted {'in the workers' if client else 'in this process'} "
        f"({time.perf_counter() - t0:.1f} s)")
    return X


def assert_no_default_client():
    """The threaded runs must not silently go to the LocalCluster: our client is made
    with set_as_default=False, so streammix's client=None finds none."""
    from streammix.execution.dask_source import active_client

    if active_client() is not None:
        raise RuntimeError("a distributed Client is active: the 'threads' system would use it")


# ----------------------------------------------------------------------------- memory
def mem_child(spec: dict) -> None:
    """Fresh process: peak extra memory of fitting the Zarr array at spec['path']."""
    import dask.array as da
    import zarr

    from streammix import GaussianMixture  # noqa: F401  (import before the baseline)

    path, cov_type, iters = spec["path"], spec["cov_type"], spec["iters"]
    init = initial_params(cov_type, D, K, spec["seed"])
    arr = zarr.open_array(path, mode="r")
    warm = da.from_zarr(arr)[: min(arr.shape[0], 2 * arr.chunks[0])]
    make_gmm(cov_type, 1, init).fit(warm)       # compile/load kernels, start thread pool
    del warm
    gc.collect()
    reset_ok = _reset_peak_rss()
    base = vm_rss()
    hwm_after_reset = _vm_hwm()
    seen: set[str] = set()
    seconds, _ = timed(lambda: make_gmm(cov_type, iters, init).fit(path), seen)
    peak = _vm_hwm()
    out = {"reset_ok": reset_ok, "base_rss": base, "hwm_after_reset": hwm_after_reset,
           "peak_hwm": peak, "extra": peak - base, "seconds": seconds,
           "warnings": sorted(seen)}
    sys.stdout.write("MEMRESULT " + json.dumps(out) + "\n")
    sys.stdout.flush()


def run_mem_child(path, cov_type, seed, iters) -> dict:
    spec = dict(path=path, cov_type=cov_type, seed=seed, iters=iters)
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--_mem-child", json.dumps(spec)],
        capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("MEMRESULT "):
            return json.loads(line[len("MEMRESULT "):])
    raise RuntimeError(f"memory child for {path} failed (exit {proc.returncode}):\n"
                       f"{proc.stderr[-3000:]}")


# ----------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="streammix on Dask/Zarr: per-iteration overhead against the in-memory "
                    "kernel (threaded scheduler and a 2-worker LocalCluster), scaling in n.")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: n={QUICK['n']:,} and scaling n="
                        f"{'/'.join(f'{x:,}' for x in QUICK['scaling'])} in "
                        f"{QUICK['chunk_rows']:,}-row chunks, --repeats 2 --iters 2 (< 60 s)")
    p.add_argument("--cases", default="all",
                   help="comma-separated, from: " + ", ".join(ALL_CASES) + " (default: all)")
    p.add_argument("--systems", default=",".join(DEFAULT_SYSTEMS),
                   help="for the overhead cases, from: " + ", ".join(SYSTEMS) + " (default: all)")
    p.add_argument("--workdir", default=DEFAULT_WORKDIR,
                   help=f"where the Zarr arrays are written and cached (default {DEFAULT_WORKDIR})")
    p.add_argument("--repeats", type=int, default=None,
                   help="interleaved timing repeats; default 3 (2 with --quick)")
    p.add_argument("--iters", "-m", type=int, default=None,
                   help="m in (T(1+m) - T(1)) / m; default 3 (2 with --quick)")
    p.add_argument("--n", type=int, default=None, help="n of the overhead cases (default 10M)")
    p.add_argument("--scaling-n", default=None,
                   help="comma-separated n of the scaling case (default 1000000,4000000,16000000)")
    p.add_argument("--chunk-rows", type=int, default=None,
                   help="rows per Zarr chunk (default 250,000; 25,000 with --quick)")
    p.add_argument("--codec", choices=("zstd", "lz4", "none"), default="none",
                   help="Zarr compression: none (default), Blosc-LZ4 with byte shuffle, "
                        "or zarr's default zstd (level 0)")
    p.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    p.add_argument("--mem-iters", type=int, default=2,
                   help="EM iterations of each memory fit (default 2)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    base = QUICK if args.quick else FULL
    args.repeats = args.repeats or base["repeats"]
    args.iters = args.iters or base["iters"]
    args.n = args.n or base["n"]
    args.chunk_rows = args.chunk_rows or base["chunk_rows"]
    if args.scaling_n:
        try:
            args.scaling = tuple(int(x) for x in args.scaling_n.split(",") if x.strip())
        except ValueError:
            p.error(f"--scaling-n: expected comma-separated integers, got {args.scaling_n!r}")
    else:
        args.scaling = base["scaling"]
    if min(args.repeats, args.iters, args.mem_iters, args.n, args.chunk_rows,
           *args.scaling) < 1:
        p.error("--repeats, --iters, --mem-iters, --n, --chunk-rows and --scaling-n must be >= 1")
    args.selected = []
    for tok in (t.strip() for t in args.cases.split(",")):
        if not tok:
            continue
        names = ALL_CASES if tok == "all" else [tok]
        for name in names:
            if name not in ALL_CASES:
                p.error(f"unknown case {name!r}; choose from {', '.join(ALL_CASES)} or all")
            if name not in args.selected:
                args.selected.append(name)
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    for s in args.systems:
        if s not in SYSTEMS:
            p.error(f"unknown system {s!r}; choose from {', '.join(SYSTEMS)}")
    if not args.selected or not args.systems:
        p.error("nothing selected")
    return args


def run_overhead(args, problems) -> dict:
    """Case (a): {case: {...}} for the selected overhead cases."""
    cases = [c for c in args.selected if c in OVERHEAD_CASES]
    if not cases:
        return {}
    n, m = args.n, args.iters
    log(f"[data] Zarr n={n:,} d={D} chunks of {args.chunk_rows:,} rows in {args.workdir} ...")
    t0 = time.perf_counter()
    path, created = ensure_zarr(args.workdir, n, D, K, args.seed, args.chunk_rows, args.codec)
    log(f"[data] {path} ({'written' if created else 'cached'}, {dir_bytes(path) / MiB:,.0f} MiB"
        f" on disk, {time.perf_counter() - t0:.1f} s)")
    X = None
    if "in-memory" in args.systems:
        log("[data] loading it into one numpy array ...")
        X = zarr_to_numpy(path)
    client = cluster = None
    if any(s.startswith("cluster") for s in args.systems):
        from distributed import Client, LocalCluster

        log("[cluster] starting LocalCluster(n_workers=2, threads_per_worker=1) ...")
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster, set_as_default=False)
    assert_no_default_client()
    results = {}
    try:
        for case in cases:
            cov_type = OVERHEAD_CASES[case]
            init = initial_params(cov_type, D, K, args.seed)
            seen = {s: set() for s in args.systems}
            data = {s: (X if s == "in-memory" else path) for s in args.systems}
            for s in args.systems:  # decoded once, held in memory (the user's X.persist())
                if s.endswith("-persisted"):
                    data[s] = persisted(path, client if s.startswith("cluster") else None)
            for s in args.systems:  # warm-up: kernels compiled/loaded, pools and workers up
                sec, _ = fit(s, data[s], cov_type, 1, init, client, seen[s])
                log(f"[{case}] warm-up {s}: {sec:.2f} s")
            per_iter = {s: [] for s in args.systems}
            t1 = {s: [] for s in args.systems}
            tm = {s: [] for s in args.systems}
            lower = {}
            for rep in range(args.repeats):
                for s in args.systems:
                    a, _ = fit(s, data[s], cov_type, 1, init, client, seen[s])
                    b, lb = fit(s, data[s], cov_type, 1 + m, init, client, seen[s])
                    lower[s] = lb
                    t1[s].append(a)
                    tm[s].append(b)
                    per_iter[s].append((b - a) / m)
                    log(f"[{case}] rep {rep + 1}/{args.repeats} {s}: T(1)={a:.3f} s "
                        f"T(1+{m})={b:.3f} s -> {(b - a) / m:.4f} s/iter")
            results[case] = dict(cov_type=cov_type, n=n, per_iter=per_iter, t1=t1, tm=tm,
                                 lower=lower, warnings=seen)
    finally:
        if client is not None:
            client.close()
            cluster.close()
    results["_path"] = path
    return results


def run_scaling(args, problems) -> dict:
    if "scaling" not in args.selected:
        return {}
    m = args.iters
    cov_type = "diag"
    init = initial_params(cov_type, D, K, args.seed)
    paths = {}
    for n in args.scaling:
        t0 = time.perf_counter()
        paths[n], created = ensure_zarr(args.workdir, n, D, K, args.seed, args.chunk_rows,
                                        args.codec)
        log(f"[scaling] data n={n:,}: {'written' if created else 'cached'} "
            f"({time.perf_counter() - t0:.1f} s)")
    mem = {}
    if not args.no_memory:  # fresh processes, one at a time, before anything big here
        for n in args.scaling:
            log(f"[scaling] memory n={n:,} ...")
            mem[n] = run_mem_child(paths[n], cov_type, args.seed, args.mem_iters)
            log(f"[scaling] memory n={n:,}: extra {mem[n]['extra'] / MiB:.1f} MiB over "
                f"{mem[n]['base_rss'] / MiB:.1f} MiB")
    assert_no_default_client()
    seen: set[str] = set()
    fit("threads", paths[args.scaling[0]], cov_type, 1, init, None, seen)  # warm-up
    per_iter = {n: [] for n in args.scaling}
    lower = {}
    for rep in range(args.repeats):
        for n in args.scaling:
            a, _ = fit("threads", paths[n], cov_type, 1, init, None, seen)
            b, lb = fit("threads", paths[n], cov_type, 1 + m, init, None, seen)
            lower[n] = lb
            per_iter[n].append((b - a) / m)
            log(f"[scaling] rep {rep + 1}/{args.repeats} n={n:,}: T(1)={a:.3f} s "
                f"T(1+{m})={b:.3f} s -> {(b - a) / m:.4f} s/iter")
    return dict(per_iter=per_iter, mem=mem, lower=lower, warnings=seen, paths=paths)


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    report_header("bench_dask", ["dask", "distributed", "zarr", "numcodecs"])
    import streammix  # noqa: F401

    problems: list[str] = []
    scaling = run_scaling(args, problems)   # first: its memory children want a small parent
    overhead = run_overhead(args, problems)
    m = args.iters

    print("```")
    for line in thread_info():
        print(line)
    print(f"data: bench_em's blob mixture, float64, d={D}, K={K}, seed {args.seed}; Zarr v3 "
          f"arrays in {args.workdir}, {args.chunk_rows:,}-row chunks, codec {args.codec}")
    print(f"timing: per-iteration = (T(1+{m}) - T(1)) / {m}, median of {args.repeats} "
          "interleaved repeats, after a warm-up fit of each system; same *_init, tol=0")
    print("systems: in-memory = GaussianMixture on the rows as one numpy array; threads = "
          "the Zarr path, no client (Dask's threaded scheduler); cluster = the Zarr path, "
          "client=Client(LocalCluster(n_workers=2, threads_per_worker=1)); *-persisted = "
          "da.from_zarr(path).persist() (decoded once, in this process / in the workers)")
    if scaling and not args.no_memory:
        print(f"memory: fresh process per n; VmHWM after a {args.mem_iters}-iteration fit "
              "minus VmRSS before it (after a warm-up on 2 chunks and a peak-RSS reset)")
    print("```")
    print()

    if overhead:
        path = overhead.pop("_path")
        systems = args.systems
        header = ["case", "n", "d", "K", "chunks"]
        header += [f"{s} s/it" for s in systems]
        dask_systems = [s for s in systems if s != "in-memory"]
        if "in-memory" in systems:
            header += [f"{s} overhead" for s in dask_systems]
        rows = []
        import zarr

        n_chunks = zarr.open_array(path, mode="r").nchunks
        for case, r in overhead.items():
            med = {s: median(r["per_iter"][s]) for s in systems}
            row = [case, f"{r['n']:,}", str(D), str(K), str(n_chunks)]
            row += [fmt_s(med[s]) for s in systems]
            if "in-memory" in systems:
                for s in dask_systems:
                    base = med["in-memory"]
                    if base > 0:
                        ov = 100.0 * (med[s] / base - 1.0)
                        row.append(f"{ov:+.0f}% ({'ok' if ov < 20 else 'over 20%'})")
                    else:
                        row.append("n/a")
            rows.append(row)
        print("Dask overhead: seconds per EM iteration from a Zarr array on disk against the "
              "in-memory kernel (target: overhead < 20%)")
        print()
        print(markdown_table(header, rows))
        print()

    if scaling:
        ns = list(scaling["per_iter"])
        med = {n: median(scaling["per_iter"][n]) for n in ns}
        n0 = ns[0]
        header = ["n", "chunks", "s/it", "s/it per 1M rows", "rows/s", "time vs linear"]
        if scaling["mem"]:
            header += ["peak extra MiB"]
        rows = []
        for n in ns:
            per_m = med[n] / n * 1e6
            lin = med[n] / (med[n0] * n / n0) if med[n0] > 0 else float("nan")
            row = [f"{n:,}", str(-(-n // args.chunk_rows)), fmt_s(med[n]), fmt_s(per_m),
                   f"{n / med[n]:,.0f}" if med[n] > 0 else "n/a", f"{lin:.2f}x"]
            if scaling["mem"]:
                row.append(f"{scaling['mem'][n]['extra'] / MiB:.0f}")
            rows.append(row)
        print(f"Scaling (diag, d={D}, K={K}, Zarr, threaded scheduler): time per iteration "
              "should be linear in n (time vs linear = s/it / (s/it at the smallest n x n "
              "ratio) near 1.00), peak extra memory flat")
        print()
        print(markdown_table(header, rows))
        print()

    # ---- details
    print("<details><summary>details</summary>")
    print()
    print("```")
    for case, r in overhead.items():
        print(f"{case} ({r['cov_type']}, n={r['n']:,}):")
        for s in args.systems:
            samples = ", ".join(f"{x:.4f}" for x in r["per_iter"][s])
            print(f"  {s:17s} s/iter [{samples}]  median T(1)={median(r['t1'][s]):.3f} s  "
                  f"T(1+{m})={median(r['tm'][s]):.3f} s  lower_bound_ {r['lower'][s]:.12g}")
            noisy(r["per_iter"][s], f"{case} {s}", problems)
            for w in sorted(r["warnings"][s]):
                problems.append(f"{case} {s}: {w}")
        lbs = list(r["lower"].values())
        spread = (max(lbs) - min(lbs)) / max(abs(lbs[0]), 1e-300)
        print(f"  lower_bound_ relative spread across systems: {spread:.2e}")
        if not spread < 1e-8:
            problems.append(f"{case}: lower bounds differ by {spread:.2e} relative across "
                            "systems (not the same computation?)")
    if scaling:
        for n in scaling["per_iter"]:
            samples = ", ".join(f"{x:.4f}" for x in scaling["per_iter"][n])
            print(f"scaling n={n:,}: s/iter [{samples}]  lower_bound_ {scaling['lower'][n]:.12g}"
                  f"  ({dir_bytes(scaling['paths'][n]) / MiB:,.0f} MiB on disk)")
            noisy(scaling["per_iter"][n], f"scaling n={n:,}", problems)
            x = scaling["mem"].get(n)
            if x:
                print(f"  memory: RSS before fit {x['base_rss'] / MiB:.1f} MiB, VmHWM after reset "
                      f"{x['hwm_after_reset'] / MiB:.1f}, after fit {x['peak_hwm'] / MiB:.1f} -> "
                      f"extra {x['extra'] / MiB:.1f} MiB; fit {x['seconds']:.2f} s")
                if not x["reset_ok"]:
                    problems.append(f"scaling n={n:,}: could not reset the peak RSS; the "
                                    "memory figure may include the warm-up's peak")
                for w in x["warnings"]:
                    problems.append(f"scaling n={n:,} (memory run): {w}")
        for w in sorted(scaling["warnings"]):
            problems.append(f"scaling: {w}")
    report_footer(problems, load_start, t_start)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--_mem-child":
        try:
            mem_child(json.loads(sys.argv[2]))
        except BaseException:
            import traceback

            traceback.print_exc()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    sys.exit(main())
