#!/usr/bin/env python
"""The opt-in float32 E-step (``GaussianMixture(estep_dtype='float32')``): its speed and
its accuracy against streammix's float64 E-step and scikit-learn, same run.

Cells: bench_em's data kinds (separated and overlapping clusters, the same generators,
starts and n rule: ``bench_em.grid_n``) for 'full', the covariance type that has a
float32 E-step, at d in {16, 32, 64, 128} x K in {4, 16} by default (at d = 16, K = 16
the estimator keeps float64, which is faster there: a check that the two agree). In
each cell the three fits (scikit-learn, streammix float64, streammix float32) get the same data
and the same weights_init / means_init / precisions_init with tol=0, and

    per-iteration time = (T(1 + m iterations) - T(1 iteration)) / m

after warm-up fits, interleaved A B C A B C ..., medians quoted (bench_em's method).

Accuracy, from the fits of 1 + m iterations: the largest relative difference of the
float32 fit's means, covariances and weights from the float64 fit's (each array's
largest absolute difference over its largest absolute value), and of its lower bound;
the float64 fit against scikit-learn's for scale (bench_em requires 1e-8 there).

The flop rates: a numpy matmul of two 4000 x 4000 matrices in float64 and in float32
(OpenBLAS's dgemm and sgemm peaks, two threads), and each fit's counted flops
(``bench_em.flops_per_iteration``) over its seconds.

Run from the repository root (about 7 minutes on 2 cores with the defaults):

    .venv/bin/python benchmarks/bench_estep32.py
    .venv/bin/python benchmarks/bench_estep32.py --d 64 --k 4,16 --kinds overlap
    .venv/bin/python benchmarks/bench_estep32.py --quick          # a smoke run (< 60 s)

stdout is the report (markdown, as in benchmarks/RESULTS.md), progress goes to stderr.
Run it when the machine is quiet.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_em  # noqa: E402

SYSTEMS = ("sklearn", "float64", "float32")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--d", default="16,32,64,128",
                   help="comma-separated d (default 16,32,64,128)")
    p.add_argument("--k", default="4,16", help="comma-separated K (default 4,16)")
    p.add_argument("--types", default="full",
                   help="covariance types with a float32 E-step: 'full' (the default)")
    p.add_argument("--kinds", default="separated,overlap", help="bench_em's data kinds")
    p.add_argument("--seconds", type=float, default=0.1,
                   help="a float64 streammix iteration's target seconds, which sets n "
                        "(bench_em.grid_n; default 0.1)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--iters", "-m", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: d=16, K=4, full, overlap, n from 0.01 s, 1 repeat")
    args = p.parse_args(argv)
    if args.quick:
        args.d, args.k, args.types, args.kinds = "16", "4", "full", "overlap"
        args.seconds, args.repeats, args.iters = 0.01, 1, 2
    args.d = [int(v) for v in args.d.split(",")]
    args.k = [int(v) for v in args.k.split(",")]
    args.types = args.types.split(",")
    args.kinds = args.kinds.split(",")
    for t in args.types:
        if t != "full":
            p.error(f"--types: {t!r} has no float32 E-step (only 'full')")
    return args


def make(system: str, cov_type: str, K: int, iters: int, init: dict):
    """The estimator of a system ('sklearn', or streammix's E-step dtype)."""
    if system == "sklearn":
        from sklearn.mixture import GaussianMixture
        return GaussianMixture(K, covariance_type=cov_type, tol=0.0, max_iter=iters,
                               init_params="random_from_data", random_state=0, **init)
    from streammix import GaussianMixture
    return GaussianMixture(K, covariance_type=cov_type, tol=0.0, max_iter=iters,
                           random_state=0, estep_dtype=system, **init)


def fit(system, X, cov_type, K, iters, init):
    """(seconds, fitted estimator); tol=0's convergence warnings dropped."""
    est = make(system, cov_type, K, iters, init)
    gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        est.fit(X)
        return time.perf_counter() - t0, est


def matmul_peak(dtype, size: int = 4000, repeats: int = 3) -> float:
    """Best flop rate of numpy's size x size matmul in ``dtype``."""
    rng = np.random.default_rng(1)
    A = rng.standard_normal((size, size)).astype(dtype)
    B = rng.standard_normal((size, size)).astype(dtype)
    C = A @ B
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.matmul(A, B, out=C)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * size ** 3 / best


def rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def run_cell(kind, cov_type, d, K, args) -> dict:
    n, _ = bench_em.grid_n(cov_type, d, K, seconds=args.seconds,
                           n_min=2_000 if args.quick else bench_em.GRID_N_MIN)
    name = f"{kind} {cov_type} d={d} K={K}"
    bench_em.log(f"[estep32] {name}: n={n:,}")
    X = bench_em.cell_data(kind, n, d, K, args.seed)
    init = bench_em.cell_init(kind, cov_type, X, K, args.seed)
    for system in SYSTEMS:  # warm-up: kernels loaded, thread pools started
        fit(system, X if system != "sklearn" else X[:bench_em.warmup_rows(n, d)],
            cov_type, K, 1, init)
    per_iter = {s: [] for s in SYSTEMS}
    last = {}
    m = args.iters
    for rep in range(args.repeats):
        for system in SYSTEMS:
            a, _ = fit(system, X, cov_type, K, 1, init)
            b, est = fit(system, X, cov_type, K, 1 + m, init)
            per_iter[system].append((b - a) / m)
            last[system] = est
    f64, f32, sk = last["float64"], last["float32"], last["sklearn"]
    out = dict(name=name, n=n, d=d, K=K, cov_type=cov_type,
               flops=bench_em.flops_per_iteration(cov_type, n, d, K),
               s={s: statistics.median(v) for s, v in per_iter.items()},
               means=rel(f32.means_, f64.means_), covs=rel(f32.covariances_, f64.covariances_),
               weights=rel(f32.weights_, f64.weights_),
               lb=abs(f32.lower_bound_ - f64.lower_bound_) / abs(f64.lower_bound_),
               ref_means=rel(f64.means_, sk.means_),
               ref_covs=rel(f64.covariances_, sk.covariances_))
    del X, init, last
    gc.collect()
    return out


def report(rows, dpeak, speak) -> None:
    print("| cell | n | scikit-learn s/it | float64 s/it | float32 s/it | float32 speed-up "
          "| x scikit-learn (64 / 32) | float32 GFLOP/s (% of sgemm peak) "
          "| means | covariances | weights | lower bound | float64 vs scikit-learn |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        sk, a, b = r["s"]["sklearn"], r["s"]["float64"], r["s"]["float32"]
        rate = r["flops"] / b if b > 0 else float("nan")
        print(f"| {r['name']} | {r['n']:,} | {sk:.4f} | {a:.4f} | {b:.4f} | "
              f"{a / b:.2f}x | {sk / a:.1f}x / {sk / b:.1f}x | "
              f"{rate / 1e9:.0f} ({100 * rate / speak:.0f}%) | {r['means']:.1e} | "
              f"{r['covs']:.1e} | {r['weights']:.1e} | {r['lb']:.1e} | "
              f"{max(r['ref_means'], r['ref_covs']):.1e} |")
    ups = [r["s"]["float64"] / r["s"]["float32"] for r in rows]
    print()
    print(f"float32 speed-up per iteration over float64: median {statistics.median(ups):.2f}x, "
          f"{min(ups):.2f}-{max(ups):.2f}x over {len(rows)} cells; largest relative "
          f"difference from the float64 fit: means {max(r['means'] for r in rows):.1e}, "
          f"covariances {max(r['covs'] for r in rows):.1e}, lower bound "
          f"{max(r['lb'] for r in rows):.1e}. Peaks: dgemm {dpeak / 1e9:.0f} GFLOP/s, "
          f"sgemm {speak / 1e9:.0f} GFLOP/s.")


def main(argv=None) -> None:
    args = parse_args(argv)
    for line in bench_em.machine_info() + bench_em.vector_info():
        print(f"- {line}")
    dpeak, speak = matmul_peak(np.float64), matmul_peak(np.float32)
    print(f"- method: (T(1+{args.iters}) - T(1)) / {args.iters}, median of {args.repeats} "
          f"interleaved repeats; n from a float64 iteration of {args.seconds:g} s; "
          f"`{' '.join(['benchmarks/bench_estep32.py'] + (argv if argv is not None else sys.argv[1:]))}`")
    print()
    rows = [run_cell(kind, t, d, K, args) for kind in args.kinds for t in args.types
            for d in args.d for K in args.k]
    report(rows, dpeak, speak)


if __name__ == "__main__":
    main()
