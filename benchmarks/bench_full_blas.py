#!/usr/bin/env python
"""Full covariance against its own BLAS calls: how close the statistics pass comes to
the rate of the two BLAS routines it is made of, at the shapes it calls them with.

Per block of B rows (``full_block_rows(d)``: 1024 at d = 32) and per component, the
full kernel's pass is one triangular whitening (dtrmm, B x d times d x d: B d^2 flops
counted) and one symmetric scatter (dsyrk, B d^2), plus O(d) loops (centring, norms,
scaling by the responsibilities). With few components for the dimension (no
Khatri-Rao scatter, ``use_khatri_rao``), the pass can therefore run no faster than
those two calls do at those shapes, whatever the rest costs: their rate is the
kernel's *BLAS ceiling*, and how far it sits under the machine's dgemm peak says what
part of issue 17's "50% of the dgemm peak" BLAS itself leaves to the kernel.

Measured in one run:

- the dgemm peak: numpy's matmul of two 4000 x 4000 float64 matrices (numpy's BLAS at
  its own thread count: one per core here);
- the calls alone: a numba parallel region of numba's threads (one per core by
  default), each calling the
  same routines the kernel calls (``streammix.kernels.blas_calls``' dtrmm and dsyrk
  intrinsics, BLAS held at one thread) on its own B x d block, R times;
- the kernel: per-iteration seconds of ``GaussianMixture(covariance_type='full')``
  on bench_em's overlapping clusters (its data, starts and n rule), (T(1+m) - T(1)) / m,
  median of the repeats, and its counted flops n K (2 d^2 + 10 d) over them. The
  iteration also holds the M-step and per-iteration overheads, small at these n.

Run from the repository root (about a minute on 2 cores with the defaults):

    .venv/bin/python benchmarks/bench_full_blas.py
    .venv/bin/python benchmarks/bench_full_blas.py --d 32 --k 4,8
    .venv/bin/python benchmarks/bench_full_blas.py --quick      # a smoke run (< 60 s)

stdout is the report (markdown), progress goes to stderr. Run it when the machine is
quiet.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_em  # noqa: E402
from bench_estep32 import fit  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--d", default="16,32,48,64,128",
                   help="comma-separated d (default 16,32,48,64,128)")
    p.add_argument("--k", default="4,8", help="comma-separated K (default 4,8)")
    p.add_argument("--seconds", type=float, default=0.1,
                   help="a streammix iteration's target seconds, which sets n "
                        "(bench_em.grid_n; default 0.1)")
    p.add_argument("--call-seconds", type=float, default=0.5,
                   help="seconds of each routine's timing loop (default 0.5)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--iters", "-m", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: d = 16 and 32, K = 4 and 8, n from 0.01 s, 2 repeats")
    args = p.parse_args(argv)
    if args.quick:
        args.d, args.k = "16,32", "4,8"
        args.seconds, args.call_seconds, args.repeats, args.iters = 0.01, 0.05, 2, 3
    args.d = [int(v) for v in args.d.split(",")]
    args.k = [int(v) for v in args.k.split(",")]
    from streammix.kernels.full import TRIANGULAR_MIN_D

    for d in args.d:
        if d < TRIANGULAR_MIN_D:
            p.error(f"--d: {d} is below {TRIANGULAR_MIN_D} (TRIANGULAR_MIN_D), where the "
                    "kernel does not call dtrmm/dsyrk (numba's np.dot there)")
    return args


def _call_loops():
    """The numba functions that time the kernel's two calls, one thread per core
    (compiled on first use: this module's import stays cheap)."""
    from numba import njit, prange

    from streammix.kernels.blas_calls import syrk_accumulate, trmm_upper_right

    @njit(parallel=True, cache=False)
    def trmm_loop(Z, U, reps):
        for t in prange(Z.shape[0]):
            for _ in range(reps):
                trmm_upper_right(Z[t], Z.shape[1], U)

    @njit(parallel=True, cache=False)
    def syrk_loop(W, C, reps):
        for t in prange(W.shape[0]):
            for _ in range(reps):
                syrk_accumulate(W[t], W.shape[1], C[t])

    return trmm_loop, syrk_loop


def call_rates(d: int, B: int, threads: int, seconds: float, loops) -> tuple[float, float]:
    """(dtrmm, dsyrk) flop rates, B d^2 flops per call, ``threads`` threads each calling
    the routine on its own B x d block: the best of 3 timed loops of about ``seconds``."""
    from streammix.kernels.blas import single_threaded_blas

    trmm_loop, syrk_loop = loops
    rng = np.random.default_rng(d)
    # U = I + a small upper triangle: repeated whitening in place stays finite
    U = np.triu(rng.uniform(-1, 1, (d, d)) * (1e-3 / d), 1) + np.eye(d)
    Z = rng.standard_normal((threads, B, d))
    C = np.zeros((threads, d, d))
    flops = float(B) * d * d
    rates = []
    with single_threaded_blas():
        for fn, args in ((trmm_loop, (Z, U)), (syrk_loop, (Z, C))):
            fn(*args, 1)  # compile, warm up
            t0 = time.perf_counter()
            fn(*args, 3)
            per_call = max((time.perf_counter() - t0) / 3, 1e-7)
            reps = max(3, int(seconds / per_call))
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                fn(*args, reps)
                best = min(best, time.perf_counter() - t0)
            rates.append(threads * reps * flops / best)
            if not np.isfinite(Z).all():
                raise RuntimeError("the timing loop's block overflowed")
    return rates[0], rates[1]


def kernel_seconds(d: int, K: int, args) -> tuple[int, float]:
    """(n, seconds) of a full-covariance EM iteration at d, K."""
    n, _ = bench_em.grid_n("full", d, K, seconds=args.seconds,
                           n_min=2_000 if args.quick else bench_em.GRID_N_MIN)
    bench_em.log(f"[full_blas] kernel d={d} K={K}: n={n:,}")
    X = bench_em.cell_data("overlap", n, d, K, args.seed)
    init = bench_em.cell_init("overlap", "full", X, K, args.seed)
    fit("float64", X, "full", K, 1, init)  # warm-up
    m = args.iters
    per_iter = []
    for _ in range(args.repeats):
        a, _ = fit("float64", X, "full", K, 1, init)
        b, _ = fit("float64", X, "full", K, 1 + m, init)
        per_iter.append((b - a) / m)
    del X, init
    gc.collect()
    return n, statistics.median(per_iter)


def _pct(rate: float, peak: float) -> str:
    return f"{rate / 1e9:.1f} ({100 * rate / peak:.0f}%)"


def main(argv=None) -> None:
    args = parse_args(argv)
    import numba

    from streammix.kernels import full as full_kernels
    from streammix.kernels.jit import python_function as py

    for line in bench_em.machine_info() + bench_em.vector_info():
        print(f"- {line}")
    threads = numba.get_num_threads()
    peak, _ = bench_em.measure_peak_flops(4000, 1 if args.quick else 3)
    print(f"- dgemm peak (numpy matmul 4000 x 4000, float64): {peak / 1e9:.1f} GFLOP/s; "
          f"the calls: {threads} threads, one per core, BLAS at one thread each")
    cmd = " ".join(["benchmarks/bench_full_blas.py"]
                   + (argv if argv is not None else sys.argv[1:]))
    print(f"- kernel: (T(1+{args.iters}) - T(1)) / {args.iters}, median of {args.repeats}; "
          f"n from an iteration of {args.seconds:g} s; `{cmd}`")
    print()
    loops = _call_loops()
    rows = []
    for d in args.d:
        B = int(py(full_kernels.full_block_rows)(d))
        bench_em.log(f"[full_blas] calls d={d}: B={B}")
        trmm, syrk = call_rates(d, B, threads, args.call_seconds, loops)
        both = 2.0 / (1.0 / trmm + 1.0 / syrk)  # 2 B d^2 flops in the two calls' time
        for K in args.k:
            n, s = kernel_seconds(d, K, args)
            s = s if s > 0 else float("nan")
            rate = bench_em.flops_per_iteration("full", n, d, K) / s
            blas_part = n * K * 2.0 * d * d / s  # the flops the two calls do, per second
            kr = bool(py(full_kernels.use_khatri_rao)(K, d))
            rows.append((d, K, B, n, trmm, syrk, both, rate, blas_part, kr))
    print("| d | K | block rows | n | dtrmm GFLOP/s (% peak) | dsyrk GFLOP/s (% peak) "
          "| both calls: the BLAS ceiling | kernel GFLOP/s (% peak) | kernel / ceiling |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for d, K, B, n, trmm, syrk, both, rate, blas_part, kr in rows:
        ratio = "n/a (Khatri-Rao scatter)" if kr else f"{100 * blas_part / both:.0f}%"
        print(f"| {d} | {K} | {B} | {n:,} | {_pct(trmm, peak)} | {_pct(syrk, peak)} | "
              f"{_pct(both, peak)} | {_pct(rate, peak)} | {ratio} |")
    print()
    print("BLAS ceiling: the rate of one dtrmm plus one dsyrk at the kernel's shapes (their "
          "flops over the sum of their times), the most the kernel could reach if its "
          "O(d) loops cost nothing. Kernel rates count n K (2 d^2 + 10 d) flops per "
          "iteration (bench_em's count); kernel / ceiling compares the calls' share "
          "of them, n K 2 d^2, with the ceiling; 'Khatri-Rao scatter': many components for d, "
          "one dgemm for every component's scatter instead of K dsyrk calls, so no "
          "ceiling from dsyrk applies.")


if __name__ == "__main__":
    main()
