#!/usr/bin/env python
"""Seconds per EM iteration: streammix.GaussianMixture against scikit-learn, same run.

By default: the grid of issue 17, d in {2, 4, 16, 64, 128} x K in {4, 16, 64} x the four
covariance types x two kinds of data (below) = 120 cells, each with its own n. With
``--cases`` instead: the named cases of issue 2 (fixed n, peak memory measured too).

Data (seeded and deterministic, float64, C order, written in place block by block, so
there is no transient copy of the data):

- ``separated`` (the named cases' data too): a blob mixture (``make_data``), weights
  Dirichlet(5), centres N(0, 2^2), covariances L L^T with exp(U(-0.5, 0.5)) on L's
  diagonal and N(0, 0.3^2 / d) below it. Started (``initial_params``) from uniform
  weights, the generating centres moved by N(0, 0.5^2) and the generating covariances
  reduced to the type and inverted. (At d = 2 with K = 64 these blobs overlap as well.)
- ``overlap``: issue 17's overlapping clusters (``make_overlap_data``): centres uniform in
  [-2.5, 2.5]^d, isotropic, each component's scale uniform in [0.5, 2], labels drawn with
  the same Dirichlet(5) weights as ``separated`` (the same weights for a given d, K,
  seed). Started (``overlap_initial_params``) from K distinct rows drawn with a seeded
  rng as the means, uniform weights and identity precisions in the type's shape.

Both systems get the same data and the same weights_init / means_init / precisions_init,
with tol=0 so that neither stops early, and

    per-iteration time = (T(1 + m iterations) - T(1 iteration)) / m

after warm-up fits (which compile or load the numba kernels and start the thread pools;
streammix's on the whole data, so that it takes the same path as the timed fits: a few
chunks run in one numba region, more on the thread pool, with other kernels), so that
start-up, validation, initialisation and scikit-learn's final E-step cancel out. The
systems are interleaved A B A B ... and medians are quoted; the spread of a ratio pairs
the repeats' samples (sklearn_i / streammix_i). Both lower_bound_ must agree to 1e-8
relative (the same computation).

n per grid cell: streammix's iteration should take at least --grid-seconds (0.1 s):

    n = clamp(ceil(grid_seconds / s_row), --grid-n-min (50,000), n_max), rounded up to
        a multiple of 1000 (n_max rounded down)
    s_row = (c0 + c_d d + c_K K + c_Kd K d + c_dd d^2) ns + flops_per_row / RATE

s_row is streammix's expected seconds per row (STREAMMIX_ROW_MODEL, per type): a rate
for the counted flops (``flops_per_iteration`` of one row) plus the costs the count
leaves out (reading the rows, exp and log-sum-exp per component, O(d) loops per
component), which are most of the time at d = 2-4: there the full type took ~6 ns per
row and component on two threads, where 40 GFLOP/s of its 28 counted flops would say
0.7 ns; while diag and spherical at d = 64-128, K = 64 ran 3-8x faster than 10 GFLOP/s.
(A constant rate per type would miss by up to 10x either way.) The coefficients were
fitted to streammix at d in {2, 4, 16, 64, 128} x K in {4, 64}, scaled to two threads,
and err on the fast side (n on the large side). n_max keeps
the data within --grid-data-gib (1.5 GiB) and the data plus scikit-learn's working
arrays (8 (6 K + 3 d) bytes per row estimated; it measured 800-1900 at d = 16-64,
K = 16: several n x K arrays) within --grid-mem-gib (4 GiB). That cap sets n in 30 of
the 120 cells (tied, diag and spherical at d = 2-4, and spherical d = 16-64 at K = 4),
whose streammix iterations are then expected at 0.04-0.1 s; --grid-mem-gib 10 lifts
it (scikit-learn then needs up to ~10 GB, and the grid ~15% longer). The report marks
cells whose streammix iteration took less than --grid-seconds (n capped, or the model
off).
``--plan`` lists every cell's n, what set it, both systems' expected s/it and the
estimated seconds, without timing anything.

Run time of the default grid (--repeats 3 --iters 2, no memory subprocesses): about
1.5 hours on the 2-core AMD EPYC of benchmarks/RESULTS.md (--plan: 89 min; scikit-learn's
fits are ~95% of it, 3 x (T(1) + T(3)) ~ 18 of its iterations per cell, and its speed
varies ~2x with the machine's load). A 0.1 s streammix iteration is a 0.25-8 s
scikit-learn iteration: the model's ratios are 15-100x at d <= 4 (scikit-learn makes
several numpy passes over n x K arrays) and 2-10x at d = 64-128. Shorter runs scale
--grid-seconds down (0.05: ~1 hour, 0.03: ~42 min), at the cost of streammix iterations
under issue 17's 0.1 s.

Memory (named cases by default, the grid with --memory): each (system, cell) is fitted once
more in a fresh process. It warms up on a small data set first, resets its peak-RSS mark,
generates the data (in place, in small blocks, so no transient copy), records the
baseline ru_maxrss, fits, and reports ru_maxrss after the fit minus the baseline: the
peak extra memory of the fit itself. By default at 0.25 n and n for the cases (n for the
grid), to show what grows with n. (The child forks once before doing anything: a process
started by subprocess inherits its parent's ru_maxrss.)

The floor: the larger of the flops of one EM pass (``flops_per_iteration``) divided by
the rate of a numpy matmul of two 4000 x 4000 float64 matrices measured in the same run
(OpenBLAS, whose kernels the report names), and the data's bytes (8 n d: every row is
read once per pass) divided by the read bandwidth measured in the same run (two threads
summing a 1 GiB array); the report's "bound" column says which. At small K and large d
a pass is bound by reading the rows, not by its flops. "x above floor" is streammix's
s/it over the floor's; the "ceiling" is scikit-learn's s/it over the floor's: the
largest speed-up over scikit-learn any implementation doing that many flops and reading
those bytes at those rates could show. Where it is below 10, issue 17's 10x is out of
reach at the floor (marked in the report).

Vector width: the report names the CPU's widest vector extension, the target numba
compiles for (NUMBA_CPU_NAME / NUMBA_CPU_FEATURES if set, else the host) and the widest
registers a compiled a*x+y loop uses (zmm: AVX-512, ymm: AVX2, xmm: SSE), and the
OpenBLAS kernels. ``--avx2`` re-executes the run with numba pinned to haswell (AVX2 + FMA,
no AVX-512): NUMBA_CPU_NAME=haswell and NUMBA_CPU_FEATURES="" (NUMBA_CPU_NAME alone is
not enough: numba then adds the host's features, AVX-512 included), OPENBLAS_CORETYPE=
Haswell unless set, and NUMBA_CACHE_DIR a fresh temporary directory (removed at the end),
so the pinned code neither replaces nor reuses the default cache: every kernel is
compiled afresh in the warm-up fits (untimed; ~30 s of one core for the four types).

Run from the repository root:

    .venv/bin/python benchmarks/bench_em.py                    # the grid: ~1.5 hours
    .venv/bin/python benchmarks/bench_em.py --avx2             # the same, numba on AVX2
    .venv/bin/python benchmarks/bench_em.py --plan             # cells, n, estimated time
    .venv/bin/python benchmarks/bench_em.py --grid-d 16,64 --grid-k 16 --grid-types full
    .venv/bin/python benchmarks/bench_em.py --quick            # a smoke run (< 60 s)
    .venv/bin/python benchmarks/bench_em.py --cases all        # issue 2's cases: ~10-15 min
    .venv/bin/python benchmarks/bench_em.py --cases full_d16,diag_d16 --repeats 5 --iters 3

stdout is the report (markdown, pasteable into benchmarks/RESULTS.md); progress goes to
stderr. Run it when the machine is quiet: the report prints the load average and flags a
busy machine and noisy samples, and contention hurts scikit-learn's BLAS threads more
than streammix, which inflates the ratios.
"""

from __future__ import annotations

import os
import sys


def _clean_maxrss_fork() -> None:
    """Fork once, before anything big is imported, and let the child do the work.

    A process started by subprocess (vfork + exec) inherits the *parent's* peak RSS in
    its ru_maxrss (the kernel keeps the pre-exec high-water mark in signal->maxrss), so
    a memory child spawned by a benchmark that holds 1 GB would report >= 1 GB whatever
    it does. A fork from this small process starts a fresh mark. The parent here only
    relays the child's exit status.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        return
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--_mem-child":
    _clean_maxrss_fork()

import argparse  # noqa: E402
import gc  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
COV_TYPES = ("full", "tied", "diag", "spherical")

# name -> (covariance_type, n, d, K); the cases of issue 2.
CASES = {
    "full_d16": ("full", 1_000_000, 16, 16),
    "tied_d16": ("tied", 1_000_000, 16, 16),
    "diag_d16": ("diag", 1_000_000, 16, 16),
    "spherical_d16": ("spherical", 1_000_000, 16, 16),
    "full_d64": ("full", 200_000, 64, 16),
    "diag_d64": ("diag", 200_000, 64, 16),
}
# --quick: same shapes (d, K), small n.
QUICK_N = {16: 34_000, 64: 8_500}  # 2 streammix chunks, so its thread pool is exercised

# ---- the grid of issue 17
GRID_D = (2, 4, 16, 64, 128)
GRID_K = (4, 16, 64)
DATA_KINDS = ("separated", "overlap")
GRID_SECONDS = 0.1
GRID_N_MIN = 50_000
GRID_N_ROUND = 1_000
GRID_DATA_GIB = 1.5
GRID_MEM_GIB = 4.0
# The n rule: streammix's expected seconds per row of one iteration (2 threads),
#   (c0 + c_d d + c_K K + c_Kd K d + c_dd d^2) ns + flops_per_row / RATE,
# flops_per_row as counted by flops_per_iteration. Fitted to streammix's single-thread
# CPU times at d in {2, 4, 16, 64, 128} x K in {4, 64} (all four types; within 26% at
# every point but one, spherical d = 128 K = 64, 33% fast; the 2-core AMD EPYC of
# benchmarks/RESULTS.md, 2026-12-07, with another job running) and divided by 2.4 for
# two threads (its 2-thread runs at d = K = 16 agree within 15%, mostly on the fast
# side, so that n errs large). The constant and per-component terms are the work the
# flop count leaves out: reading the rows, exp and log-sum-exp, O(d) loops per
# component; at d = 2-4 they are most of the time (full at d = 2: ~6 ns per row and
# component, where 40 GFLOP/s of its 28 counted flops would be 0.7 ns). RATE is the
# fit's marginal rate of the counted flops (the full type's exceeds the dgemm peak: its
# K d term carries part of that cost). Refit when the kernels change much (--plan
# shows the expected s/it; the report marks cells under --grid-seconds).
# (c0, c_d, c_K, c_Kd, c_dd in ns, RATE in GFLOP/s) per type:
STREAMMIX_ROW_MODEL = {
    "full": (3.4, 0.0, 3.1, 0.56, 0.0, 124.0),
    "tied": (3.9, 0.028, 0.35, 0.0, 0.048, 92.0),
    "diag": (5.4, 0.59, 0.56, 0.0, 0.0033, 105.0),
    "spherical": (4.2, 0.025, 0.26, 0.0, 0.005, 70.0),
}
# --quick with the grid: a 32-cell sub-grid with small n.
QUICK_GRID = {"d": (4, 16), "K": (4, 16), "seconds": 0.001, "n_min": 5_000}

# --plan's estimate of scikit-learn's seconds per row of one iteration (2 threads),
#   (c0 + c_d d + c_K K + c_Kd K d + c_Kdd K d^2) ns,
# fitted like streammix's (single thread, d in {2, 16, 128} x K in {4, 64}, within
# +-16%) and scaled to its 2-thread runs at d = K = 16 (x2 full and tied, whose small
# BLAS calls lose to OpenBLAS's threading, x1.3 diag, x1 spherical). scikit-learn's
# times vary 2x with the machine's load (RESULTS.md), and so does the estimate.
SKLEARN_ROW_MODEL = {
    "full": (184.0, 5.4, 87.0, 2.3, 0.155),
    "tied": (210.0, 8.2, 59.0, 0.34, 0.082),
    "diag": (107.0, 4.8, 19.5, 0.127, 0.0),
    "spherical": (99.0, 2.5, 16.0, 0.074, 0.0),
}
# T(1) in iterations (the set-up and, for scikit-learn, a final E-step): measured
# 1.6-2.6 for scikit-learn, 0.9-1.4 for streammix
T1_ITERATIONS = {"sklearn": 2.0, "streammix": 1.1}

SYSTEMS = ("sklearn", "streammix")
GEN_BLOCK_ROWS = 4_096

# --avx2: the environment of the re-executed run
AVX2_CPU = "haswell"
_AVX2_CACHE_ENV = "STREAMMIX_BENCH_AVX2_CACHE"   # the temporary NUMBA_CACHE_DIR to remove
_ARGV_ENV = "STREAMMIX_BENCH_ARGV"               # the command line before re-executing


def warmup_rows(n: int, d: int) -> int:
    """Rows of scikit-learn's warm-up fit: two of streammix's default chunks plus one
    row, at most n."""
    try:
        from streammix.execution.numpy_source import default_chunk_rows
        chunk = default_chunk_rows(d, 8)
    except ImportError:
        chunk = max(1024, (4 << 20) // (8 * d))
    return min(n, 2 * chunk + 1)


def streammix_chunks(n: int, d: int) -> int:
    """How many chunks streammix cuts n rows of d float64 features into by default."""
    try:
        from streammix.execution.numpy_source import default_chunk_rows
        chunk = default_chunk_rows(d, 8)
    except ImportError:
        chunk = max(1024, (4 << 20) // (8 * d))
    return -(-n // chunk)


def streammix_warmup_rows(n: int, d: int) -> int:
    """Rows of streammix's warm-up fit in a memory child: enough chunks that it takes
    the same path as the fit of n rows. A few chunks run in one numba parallel region
    (NumpySource.runs_in_one_region: at most SMALL_JOB_ITEMS_PER_THREAD x threads), more
    go to the thread pool with other kernels; a warm-up on fewer chunks than the fit
    would leave the fit's kernels to be compiled or loaded inside the measured fit. (The
    timed fits warm up on the whole data.)"""
    try:
        from streammix.execution.numpy_source import default_chunk_rows
        from streammix.execution.threads import SMALL_JOB_ITEMS_PER_THREAD, default_n_threads
        chunk = default_chunk_rows(d, 8)
        region = SMALL_JOB_ITEMS_PER_THREAD * default_n_threads()
    except ImportError:
        return n
    return min(n, (region + 1) * chunk + 1)


# ----------------------------------------------------------------------------- data
def mixture_spec(d: int, K: int, seed: int):
    """The generating mixture: weights (K,), centres (K, d), lower Cholesky factors of
    the covariances (K, d, d). Depends only on (d, K, seed)."""
    rng = np.random.default_rng([seed, d, K, 0])
    weights = rng.dirichlet(np.full(K, 5.0))
    centres = rng.normal(0.0, 2.0, size=(K, d))
    chols = np.empty((K, d, d))
    for k in range(K):
        scales = np.exp(rng.uniform(-0.5, 0.5, size=d))
        off = np.tril(rng.normal(0.0, 0.3 / np.sqrt(d), size=(d, d)), -1)
        chols[k] = off + np.diag(scales)
    return weights, centres, chols


def make_data(n: int, d: int, K: int, seed: int) -> np.ndarray:
    """A seeded blob mixture, float64 (n, d) C order, written in place block by block:
    the only temporaries are a few GEN_BLOCK_ROWS x d buffers (~0.5-2 MiB)."""
    weights, centres, chols = mixture_spec(d, K, seed)
    rng = np.random.default_rng([seed, n, d, K, 1])
    X = np.empty((n, d))
    Z = np.empty((GEN_BLOCK_ROWS, d))
    for start in range(0, n, GEN_BLOCK_ROWS):
        b = min(GEN_BLOCK_ROWS, n - start)
        labels = rng.choice(K, size=b, p=weights)
        rng.standard_normal(out=Z[:b])
        out = X[start:start + b]
        for k in range(K):
            idx = np.flatnonzero(labels == k)
            if idx.size:
                out[idx] = Z[idx] @ chols[k].T + centres[k]
    return X


def initial_params(cov_type: str, d: int, K: int, seed: int) -> dict:
    """weights_init, means_init, precisions_init given to BOTH systems: uniform weights,
    the generating centres moved by N(0, 0.5^2) (so EM has work to do), and the
    generating covariances reduced to the covariance type, inverted."""
    _, centres, chols = mixture_spec(d, K, seed)
    rng = np.random.default_rng([seed, d, K, 2])
    covs = chols @ np.transpose(chols, (0, 2, 1))
    if cov_type == "full":
        prec = np.linalg.inv(covs)
        prec = 0.5 * (prec + np.transpose(prec, (0, 2, 1)))
    elif cov_type == "tied":
        prec = np.linalg.inv(covs.mean(axis=0))
        prec = 0.5 * (prec + prec.T)
    elif cov_type == "diag":
        prec = 1.0 / np.diagonal(covs, axis1=1, axis2=2)
    elif cov_type == "spherical":
        prec = 1.0 / np.diagonal(covs, axis1=1, axis2=2).mean(axis=1)
    else:
        raise ValueError(cov_type)
    return {
        "weights_init": np.full(K, 1.0 / K),
        "means_init": centres + rng.normal(0.0, 0.5, size=centres.shape),
        "precisions_init": np.ascontiguousarray(prec),
    }


def overlap_spec(d: int, K: int, seed: int):
    """The overlapping mixture: weights (K,) (``mixture_spec``'s: its generator draws
    them first), centres (K, d) uniform in [-2.5, 2.5], isotropic scales (K,) uniform in
    [0.5, 2]. Depends only on (d, K, seed)."""
    weights = np.random.default_rng([seed, d, K, 0]).dirichlet(np.full(K, 5.0))
    rng = np.random.default_rng([seed, d, K, 10])
    centres = rng.uniform(-2.5, 2.5, size=(K, d))
    scales = rng.uniform(0.5, 2.0, size=K)
    return weights, centres, scales


def make_overlap_data(n: int, d: int, K: int, seed: int) -> np.ndarray:
    """Issue 17's overlapping clusters, float64 (n, d) C order, written in place block by
    block (temporaries of GEN_BLOCK_ROWS x d at most): row = centre + scale * N(0, I)."""
    weights, centres, scales = overlap_spec(d, K, seed)
    rng = np.random.default_rng([seed, n, d, K, 11])
    X = np.empty((n, d))
    for start in range(0, n, GEN_BLOCK_ROWS):
        b = min(GEN_BLOCK_ROWS, n - start)
        labels = rng.choice(K, size=b, p=weights)
        out = X[start:start + b]
        rng.standard_normal(out=out)
        out *= scales[labels, None]
        out += centres[labels]
    return X


def identity_precisions(cov_type: str, d: int, K: int) -> np.ndarray:
    """Identity precisions in the shape of the covariance type's precisions_init."""
    if cov_type == "full":
        return np.ascontiguousarray(np.broadcast_to(np.eye(d), (K, d, d)))
    if cov_type == "tied":
        return np.eye(d)
    if cov_type == "diag":
        return np.ones((K, d))
    if cov_type == "spherical":
        return np.ones(K)
    raise ValueError(cov_type)


def overlap_initial_params(X: np.ndarray, cov_type: str, K: int, seed: int) -> dict:
    """weights_init, means_init, precisions_init given to BOTH systems on the overlapping
    data: uniform weights, K distinct rows of X (seeded draw) and identity precisions."""
    n, d = X.shape
    if n < K:
        raise ValueError(f"{n} rows cannot give {K} distinct means")
    rng = np.random.default_rng([seed, n, d, K, 12])
    rows = rng.choice(n, size=K, replace=False)
    return {
        "weights_init": np.full(K, 1.0 / K),
        "means_init": np.ascontiguousarray(X[rows]),
        "precisions_init": identity_precisions(cov_type, d, K),
    }


def cell_data(kind: str, n: int, d: int, K: int, seed: int) -> np.ndarray:
    if kind == "separated":
        return make_data(n, d, K, seed)
    if kind == "overlap":
        return make_overlap_data(n, d, K, seed)
    raise ValueError(kind)


def cell_init(kind: str, cov_type: str, X: np.ndarray, K: int, seed: int) -> dict:
    """The *_init for data X of the given kind (the overlap kind's means are rows of X)."""
    if kind == "separated":
        return initial_params(cov_type, X.shape[1], K, seed)
    if kind == "overlap":
        return overlap_initial_params(X, cov_type, K, seed)
    raise ValueError(kind)


# ----------------------------------------------------------------------------- fits
def estimator_class(system: str):
    if system == "sklearn":
        from sklearn.mixture import GaussianMixture
    elif system == "streammix":
        from streammix import GaussianMixture
    else:
        raise ValueError(system)
    return GaussianMixture


def make_estimator(system: str, cov_type: str, K: int, max_iter: int, init: dict):
    # init_params only matters to scikit-learn, which runs it even when all three
    # *_init are given (and then overrides it): 'random_from_data' is its cheapest.
    return estimator_class(system)(
        n_components=K, covariance_type=cov_type, tol=0.0, max_iter=max_iter,
        init_params="random_from_data", random_state=0, **init)


def fit(system, X, cov_type, K, max_iter, init, seen_warnings=None):
    """(seconds, fitted estimator). Convergence warnings (expected with tol=0) are
    dropped; any other warning is recorded in seen_warnings."""
    est = make_estimator(system, cov_type, K, max_iter, init)
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        est.fit(X)
        seconds = time.perf_counter() - t0
    if seen_warnings is not None:
        for w in caught:
            if "ConvergenceWarning" not in type(w.message).__name__ and \
                    "did not converge" not in str(w.message):
                seen_warnings.add(f"{type(w.message).__name__}: {str(w.message)[:160]}")
    return seconds, est


# ----------------------------------------------------------------------------- flops
def flops_per_iteration(cov_type: str, n: int, d: int, K: int) -> float:
    """Flops of one EM pass (E-step + statistics), counting a multiply-add as 2.

    full:      n K (2 d^2 + 10 d)  d^2/2 multiply-adds for the triangular whitening and
                                   d^2/2 for the triangular outer product, + O(d) rest
    tied:      n (d^2 + 6 d K)     the outer product once per sample (d^2/2 multiply-adds;
                                   the responsibilities need no whitening) + O(dK)
    diag:      n K 7 d             ~3d for the E-step, ~4d for the statistics
    spherical: n K 6 d
    """
    if cov_type == "full":
        return n * K * (2.0 * d * d + 10.0 * d)
    if cov_type == "tied":
        return n * (1.0 * d * d + 6.0 * d * K)
    if cov_type == "diag":
        return n * K * 7.0 * d
    if cov_type == "spherical":
        return n * K * 6.0 * d
    raise ValueError(cov_type)


def measure_read_bandwidth(mib: int, repeats: int, threads: int = 2) -> tuple[float, list[float]]:
    """Best rate (bytes/s) at which ``threads`` threads read a float64 array of ``mib``
    MiB from memory, each summing its share (numpy's sum releases the GIL): what one EM
    pass over data that does not fit in cache must at least spend reading it."""
    from concurrent.futures import ThreadPoolExecutor

    A = np.ones(mib * MiB // 8)
    parts = np.array_split(A, threads)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(np.sum, parts))  # warm-up (pages, threads)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            list(pool.map(np.sum, parts))
            times.append(time.perf_counter() - t0)
    nbytes = A.nbytes
    del A, parts
    gc.collect()
    return nbytes / min(times), times


def bytes_per_iteration(n: int, d: int) -> float:
    """Bytes one EM pass must read at least: the float64 data, once."""
    return 8.0 * n * d


def measure_peak_flops(size: int, repeats: int) -> tuple[float, list[float]]:
    """Best rate of numpy's matmul of two size x size float64 matrices (2 size^3 flops)."""
    rng = np.random.default_rng(12345)
    A = rng.standard_normal((size, size))
    B = rng.standard_normal((size, size))
    C = np.empty((size, size))
    np.matmul(A, B, out=C)  # warm-up (BLAS threads, pages)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.matmul(A, B, out=C)
        times.append(time.perf_counter() - t0)
    del A, B, C
    gc.collect()
    return 2.0 * size ** 3 / min(times), times


# ----------------------------------------------------------------------------- the grid
def flops_per_row(cov_type: str, d: int, K: int) -> float:
    return flops_per_iteration(cov_type, 1, d, K)


def expected_row_seconds(cov_type: str, d: int, K: int) -> float:
    """The n rule's expected seconds per row of one streammix iteration (two threads):
    STREAMMIX_ROW_MODEL's (c0 + c_d d + c_K K + c_Kd K d + c_dd d^2) ns
    + flops_per_row / RATE."""
    c0, c_d, c_K, c_Kd, c_dd, rate = STREAMMIX_ROW_MODEL[cov_type]
    ns = c0 + c_d * d + c_K * K + c_Kd * K * d + c_dd * d * d
    return ns * 1e-9 + flops_per_row(cov_type, d, K) / (rate * 1e9)


def sklearn_bytes_per_row(d: int, K: int) -> float:
    """Estimated bytes per row of scikit-learn's working arrays in a fit (several n x K
    log-probability / responsibility arrays and n x d temporaries); it measured 810 at
    d = K = 16 and 1900 at d = 64, K = 16 (full), so this errs on the large side."""
    return 8.0 * (6 * K + 3 * d)


def grid_n(cov_type: str, d: int, K: int, seconds: float = GRID_SECONDS,
           n_min: int = GRID_N_MIN, data_gib: float = GRID_DATA_GIB,
           mem_gib: float = GRID_MEM_GIB) -> tuple[int, str]:
    """(n, limit) of a grid cell: n = ceil(seconds / expected_row_seconds) rounded up to
    a multiple of GRID_N_ROUND, at least n_min (rounded up likewise), at most n_max
    (rounded down), where n_max keeps the data (n d 8 bytes) within data_gib GiB and the
    data plus scikit-learn's working arrays within mem_gib GiB. limit says what set n:
    "" (the time rule), "n_min", "data" or "memory"."""
    step = GRID_N_ROUND

    def up(x: float) -> int:
        return max(step, int(math.ceil(x / step)) * step)

    n = up(seconds / expected_row_seconds(cov_type, d, K))
    limit = ""
    if n < n_min:
        n, limit = up(n_min), "n_min"
    n_data = int(data_gib * GiB // (8 * d)) // step * step
    n_mem = int(mem_gib * GiB // (8 * d + sklearn_bytes_per_row(d, K))) // step * step
    if n > min(n_data, n_mem):
        n, limit = (n_data, "data") if n_data <= n_mem else (n_mem, "memory")
    return max(n, 2 * K), limit


def cell_name(kind: str, cov_type: str, d: int, K: int) -> str:
    return f"{kind} {cov_type} d={d} K={K}"


def grid_cells(args) -> list[dict]:
    """The selected grid's cells, data kind by data kind, then type, d, K."""
    cells = []
    for kind in args.grid_data:
        for cov_type in args.grid_types:
            for d in args.grid_d:
                for K in args.grid_k:
                    n, limit = grid_n(cov_type, d, K, args.grid_seconds, args.grid_n_min,
                                      args.grid_data_gib, args.grid_mem_gib)
                    if args.n is not None:
                        n, limit = args.n, "--n"
                    cells.append(dict(name=cell_name(kind, cov_type, d, K), kind=kind,
                                      cov_type=cov_type, n=n, d=d, K=K, limit=limit))
    return cells


def case_cells(args) -> list[dict]:
    cells = []
    for name in args.selected:
        cov_type, n, d, K = case_shape(args, name)
        cells.append(dict(name=name, kind="separated", cov_type=cov_type, n=n, d=d, K=K,
                          limit="--n" if args.n is not None else "case"))
    return cells


def sklearn_row_seconds(cov_type: str, d: int, K: int) -> float:
    """--plan's model of scikit-learn's seconds per row of one iteration (two threads)."""
    c0, c_d, c_K, c_Kd, c_Kdd = SKLEARN_ROW_MODEL[cov_type]
    return (c0 + c_d * d + c_K * K + c_Kd * K * d + c_Kdd * K * d * d) * 1e-9


def generation_seconds(kind: str, n: int, d: int, K: int) -> float:
    """--plan's model of the data generation (one core; measured 60-450 ns per row):
    per row, plus for ``make_data`` per block and component."""
    seconds = n * (40 + 20 * d) * 1e-9
    if kind == "separated":
        seconds += (n / GEN_BLOCK_ROWS) * K * 15e-6
    return seconds


def estimate_cell(cell: dict, repeats: int, iters: int) -> dict:
    """--plan's estimate of a cell: both systems' s/it and the cell's seconds in all
    (data generation, warm-up fits, repeats x (T(1) + T(1 + iters)) for both)."""
    cov_type, n, d, K = cell["cov_type"], cell["n"], cell["d"], cell["K"]
    it = {"streammix": n * expected_row_seconds(cov_type, d, K),
          "sklearn": n * sklearn_row_seconds(cov_type, d, K)}
    w = {"sklearn": warmup_rows(n, d), "streammix": n}
    seconds = generation_seconds(cell["kind"], n, d, K)
    for s in SYSTEMS:
        seconds += (w[s] / n) * T1_ITERATIONS[s] * it[s]                   # warm-up
        seconds += repeats * it[s] * (2 * T1_ITERATIONS[s] + iters)       # timed fits
        seconds += repeats * 2 * 0.01                                      # gc etc.
    return dict(streammix=it["streammix"], sklearn=it["sklearn"], seconds=seconds)


def fmt_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


# ----------------------------------------------------------------------------- memory
def _rss_now() -> int:
    """Current resident set size in bytes (/proc/self/statm, field 2)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _maxrss() -> int:
    """ru_maxrss in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _vm_hwm() -> int:
    with open("/proc/self/status") as f:
        m = re.search(r"VmHWM:\s+(\d+)\s+kB", f.read())
    return int(m.group(1)) * 1024 if m else -1


def _reset_peak_rss() -> bool:
    """Reset the peak-RSS mark (Linux >= 4.0: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def mem_child(spec: dict) -> None:
    """Runs in a fresh process (forked from a small one): one system, one case or cell."""
    system, cov_type = spec["system"], spec["cov_type"]
    n, d, K, seed = spec["n"], spec["d"], spec["K"], spec["seed"]
    kind = spec.get("kind", "separated")
    inherited = _maxrss()
    estimator_class(system)  # import the system
    # warm-up: compile or load the numba kernels, start thread pools, initialise BLAS
    rows = streammix_warmup_rows(n, d) if system == "streammix" else warmup_rows(n, d)
    Xw = cell_data(kind, max(rows, 2 * K), d, K, seed + 1)
    fit(system, Xw, cov_type, K, 1, cell_init(kind, cov_type, Xw, K, seed))
    del Xw
    gc.collect()
    reset_ok = _reset_peak_rss()
    rss_before_data = _rss_now()
    X = cell_data(kind, n, d, K, seed)
    init = cell_init(kind, cov_type, X, K, seed)
    gc.collect()
    base_max = _maxrss()          # high-water mark reached while generating the data
    base_now = _rss_now()         # what the process holds now
    seen: set[str] = set()
    seconds, est = fit(system, X, cov_type, K, spec["iters"], init, seen)
    peak = _maxrss()
    after_now = _rss_now()
    del est
    gc.collect()
    out = {
        "data_bytes": X.nbytes,
        "inherited_maxrss": inherited,
        "reset_ok": reset_ok,
        "rss_before_data": rss_before_data,
        "base_maxrss": base_max,
        "base_rss": base_now,
        "peak_maxrss": peak,
        "vm_hwm": _vm_hwm(),
        "rss_after_fit": after_now,
        "rss_after_free": _rss_now(),
        "extra": peak - base_max,
        "gen_transient": base_max - base_now,
        "seconds": seconds,
        "warnings": sorted(seen),
    }
    sys.stdout.write("MEMRESULT " + json.dumps(out) + "\n")
    sys.stdout.flush()


def run_mem_child(system, cov_type, n, d, K, seed, iters, kind="separated") -> dict:
    spec = dict(system=system, cov_type=cov_type, n=n, d=d, K=K, seed=seed, iters=iters,
                kind=kind)
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--_mem-child", json.dumps(spec)],
        capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("MEMRESULT "):
            return json.loads(line[len("MEMRESULT "):])
    raise RuntimeError(
        f"memory child {system} {kind} {cov_type} n={n} d={d} K={K} failed "
        f"(exit {proc.returncode}):\n"
        f"{proc.stderr[-3000:]}")


# ----------------------------------------------------------------------------- report
_T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f} s] {msg}", file=sys.stderr, flush=True)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git_describe() -> str:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "streammix"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not head:
        return "unknown"
    return head + (" (streammix/ has uncommitted changes)" if dirty else "")


def machine_info() -> list[str]:
    cpu = "unknown"
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        m = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
        cpu = m.group(1).strip() if m else platform.processor() or "unknown"
        m = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
        if m:
            have = set(m.group(1).split())
            flags = " ".join(f for f in ("avx2", "fma", "avx512f") if f in have)
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        with open("/proc/meminfo") as f:
            mem = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1)) / (1 << 20)
        mem_s = f"{mem:.1f} GiB"
    except (OSError, AttributeError):
        mem_s = "unknown"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"CPU: {cpu} [{flags}]",
        f"cores: {os.cpu_count()} logical, {usable} usable by this process; RAM {mem_s}; "
        f"load average at start {load}",
        f"python {platform.python_version()}, numpy {_version('numpy')}, "
        f"numba {_version('numba')}, scikit-learn {_version('scikit-learn')}, "
        f"scipy {_version('scipy')}, streammix {_version('streammix')} "
        f"(git {_git_describe()})",
    ]


def thread_info() -> list[str]:
    lines = []
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                       "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                                       "STREAMMIX_NUM_THREADS") if k in os.environ}
    lines.append("thread env: " + (", ".join(f"{k}={v}" for k, v in env.items())
                                   or "none set (library defaults)"))
    try:
        from threadpoolctl import threadpool_info
        for p in threadpool_info():
            arch = f" architecture={p['architecture']}" if p.get("architecture") else ""
            lines.append(
                f"threadpoolctl: {p.get('user_api')}/{p.get('internal_api')} "
                f"{p.get('version') or ''} num_threads={p.get('num_threads')}{arch} "
                f"({os.path.basename(p.get('filepath', ''))})")
    except ImportError:
        lines.append("threadpoolctl: not installed")
    try:
        import numba
        lines.append(f"numba: NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}")
    except ImportError:
        pass
    try:
        from streammix.execution.threads import default_n_threads
        lines.append(f"streammix chunk thread pool: {default_n_threads()} threads")
    except ImportError:
        pass
    try:
        from streammix.execution.numpy_source import default_chunk_rows
        lines.append("streammix default chunk rows: "
                     + ", ".join(f"d={d}: {default_chunk_rows(d, 8)}" for d in (16, 64)))
    except ImportError:
        pass
    return lines


def fmt_s(x: float) -> str:
    """Seconds with 3 significant digits, fixed point."""
    if x != x:
        return "n/a"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if x == 0:
        return "0"
    digits = max(0, 2 - int(math.floor(math.log10(abs(x)))))
    return f"{x:.{digits}f}"


def fmt_mib(values: list[float]) -> str:
    return " / ".join(f"{v / MiB:.0f}" for v in values) if values else "-"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    return "\n".join([line(header), sep] + [line(r) for r in rows])


# ----------------------------------------------------------------------------- vector width
# (feature flag, name, bits), widest first
_VECTOR_EXTENSIONS = (("avx512f", "AVX-512", 512), ("avx2", "AVX2", 256), ("avx", "AVX", 256),
                      ("sse2", "SSE2", 128))
# numba / LLVM CPU names -> their widest extension (for a pinned name with its own features)
_CPU_NAME_EXTENSION = {
    **dict.fromkeys(("haswell", "broadwell", "skylake", "alderlake", "raptorlake",
                     "meteorlake", "znver1", "znver2", "znver3", "x86-64-v3"), "AVX2"),
    **dict.fromkeys(("skylake-avx512", "cascadelake", "cooperlake", "cannonlake",
                     "icelake-client", "icelake-server", "tigerlake", "rocketlake",
                     "sapphirerapids", "emeraldrapids", "graniterapids", "knl", "knm",
                     "znver4", "znver5", "x86-64-v4"), "AVX-512"),
    **dict.fromkeys(("sandybridge", "ivybridge", "btver2", "bdver1", "bdver2"), "AVX"),
    **dict.fromkeys(("generic", "x86-64", "x86-64-v2", "nehalem", "westmere"), "SSE2"),
}


def widest_extension(features) -> str | None:
    """The widest vector extension among CPU feature names (e.g. 'avx512f', 'avx2')."""
    have = set(features)
    for flag, name, _ in _VECTOR_EXTENSIONS:
        if flag in have:
            return name
    return None


def _extension_bits(name: str | None) -> int:
    return next((bits for _, n, bits in _VECTOR_EXTENSIONS if n == name), 0)


def _cpuinfo_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^flags\s*:\s*(.*)$", f.read(), re.M)
        return set(m.group(1).split()) if m else set()
    except OSError:
        return set()


def codegen_registers() -> dict[str, int] | None:
    """Vector registers in the machine code numba makes, for this process's target, of
    a float64 a*x+y loop (compiled here, not cached): {'zmm': .., 'ymm': .., 'xmm': ..}."""
    try:
        import numba
        from numba import types

        def axpy(a, x, y):
            for i in range(x.shape[0]):
                y[i] += a * x[i]

        fn = numba.njit(fastmath=True, cache=False)(axpy)
        sig = (types.float64, types.float64[::1], types.float64[::1])
        fn.compile(sig)
        asm = fn.inspect_asm(sig)
    except Exception:  # noqa: BLE001 - no numba, no asm: say so in the report
        return None
    return {r: len(re.findall(rf"%{r}\d+", asm)) for r in ("zmm", "ymm", "xmm")}


def numba_target() -> dict:
    """What numba compiles for: the CPU name and features (NUMBA_CPU_NAME /
    NUMBA_CPU_FEATURES, else the host's), the widest extension among them and the widest
    registers a compiled loop uses."""
    import llvmlite.binding as ll
    from numba.core import config

    host = ll.get_host_cpu_name()
    name = config.CPU_NAME or host
    feats = config.CPU_FEATURES
    if feats is None:             # numba adds the host's features (whatever the name)
        fmap = ll.get_host_cpu_features()
        on = {k for k, v in fmap.items() if v}
        if not getattr(config, "ENABLE_AVX", True):
            on = {k for k in on if not k.startswith("avx")}
        source = "the host's features"
        widest = widest_extension(on)
    elif feats.strip() == "":     # the CPU name's own features
        source = f"{name}'s own features"
        widest = _CPU_NAME_EXTENSION.get(name.lower())
    else:
        on = {f[1:] for f in feats.split(",") if f.startswith("+")}
        source = "the features NUMBA_CPU_FEATURES lists"
        widest = widest_extension(on)
    regs = codegen_registers()
    if regs is None:
        code = None
    elif regs["zmm"]:
        code = "AVX-512"
    elif regs["ymm"]:
        code = "AVX2" if widest in ("AVX2", "AVX-512") or widest is None else "AVX"
    else:
        code = "SSE2"
    return dict(host=host, name=name, features=feats, source=source, widest=widest,
                regs=regs, code=code, env_name=os.environ.get("NUMBA_CPU_NAME"),
                env_features=os.environ.get("NUMBA_CPU_FEATURES"))


def openblas_kernels() -> list[str]:
    """'<architecture> (<library>)' of each OpenBLAS threadpoolctl sees (numpy's, which
    measures the peak and runs scikit-learn's matmuls, and scipy's, which streammix's
    kernels call)."""
    try:
        import scipy.linalg  # noqa: F401  (load scipy's OpenBLAS too)
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [f"{p.get('architecture') or '?'} ({os.path.basename(p.get('filepath', ''))})"
            for p in threadpool_info() if p.get("internal_api") == "openblas"]


def vector_info() -> list[str]:
    """The report's vector-width lines."""
    flags = _cpuinfo_flags()
    cpu = widest_extension(flags)
    lines = []
    try:
        t = numba_target()
    except ImportError:
        return [f"vector width: CPU {cpu or 'unknown'} ({_extension_bits(cpu)}-bit); "
                "numba not installed"]
    widest = t["code"] or t["widest"] or "unknown"
    regs = t["regs"]
    probe = ("could not inspect the machine code" if regs is None else
             f"a compiled float64 a*x+y loop uses {regs['zmm']} zmm, {regs['ymm']} ymm, "
             f"{regs['xmm']} xmm register operands")
    lines.append(f"vector width: CPU {cpu or 'unknown'} ({_extension_bits(cpu)}-bit); numba "
                 f"targets {widest} ({_extension_bits(widest)}-bit): {probe}")
    if t["env_name"] is None and t["env_features"] is None:
        lines.append(f"numba target: the host, cpu={t['name']} with {t['source']} (widest "
                     f"{t['widest']}); NUMBA_CPU_NAME and NUMBA_CPU_FEATURES not set")
    else:
        env = ", ".join(f"{k}={os.environ[k]!r}" for k in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")
                        if k in os.environ)
        label = t["code"] or t["widest"] or "unknown"
        lines.append(f"numba target pinned: {t['name']} ({label}) -- {env}: cpu={t['name']} "
                     f"with {t['source']} (widest {t['widest'] or 'unknown'}); host cpu "
                     f"{t['host']}")
        if t["features"] is None and t["env_name"]:
            lines.append("  note: NUMBA_CPU_FEATURES is not set, so numba adds the host's "
                         "features to the pinned name (AVX-512 stays on where the host has "
                         "it); pin with NUMBA_CPU_FEATURES='' too, as --avx2 does")
    if os.environ.get("NUMBA_CACHE_DIR"):
        lines.append(f"NUMBA_CACHE_DIR={os.environ['NUMBA_CACHE_DIR']}"
                     + (" (temporary, for this run)" if os.environ.get(_AVX2_CACHE_ENV) else ""))
    blas = openblas_kernels()
    if blas:
        core = os.environ.get("OPENBLAS_CORETYPE")
        lines.append("OpenBLAS kernels: " + ", ".join(blas)
                     + (f"; OPENBLAS_CORETYPE={core}" if core else "")
                     + " (the peak matmul, scikit-learn's BLAS calls and streammix's dgemms)")
    return lines


def reexec_avx2(argv: list[str]) -> None:
    """--avx2: run again (os.execve, same arguments minus --avx2) with numba pinned to
    haswell (AVX2 + FMA, no AVX-512), OpenBLAS to its Haswell kernels unless
    OPENBLAS_CORETYPE is set, and a fresh temporary NUMBA_CACHE_DIR (removed at the end)
    so the pinned code neither replaces nor reuses the default numba cache."""
    import tempfile

    cache = tempfile.mkdtemp(prefix="bench_em-avx2-numba-cache-")
    env = dict(os.environ)
    env.update({"NUMBA_CPU_NAME": AVX2_CPU, "NUMBA_CPU_FEATURES": "",
                "NUMBA_CACHE_DIR": cache, _AVX2_CACHE_ENV: cache,
                _ARGV_ENV: json.dumps(sys.argv if argv == sys.argv[1:] else
                                      [sys.argv[0]] + list(argv))})
    env.setdefault("OPENBLAS_CORETYPE", "Haswell")
    rest = [a for a in argv if a != "--avx2"]
    log(f"[avx2] re-executing with NUMBA_CPU_NAME={AVX2_CPU} NUMBA_CPU_FEATURES='' "
        f"OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']} NUMBA_CACHE_DIR={cache}")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__)] + rest, env)


def _remove_avx2_cache() -> None:
    cache = os.environ.get(_AVX2_CACHE_ENV)
    if cache and cache == os.environ.get("NUMBA_CACHE_DIR") and \
            os.path.basename(cache).startswith("bench_em-avx2-numba-cache-"):
        shutil.rmtree(cache, ignore_errors=True)


# ----------------------------------------------------------------------------- main
def _csv(p, option: str, text: str, conv, allowed=None) -> tuple:
    out = []
    for tok in (t.strip() for t in text.split(",")):
        if not tok:
            continue
        try:
            value = conv(tok)
        except ValueError:
            p.error(f"{option}: cannot read {tok!r}")
        if allowed is not None and value not in allowed:
            p.error(f"{option}: {tok!r} is not one of {', '.join(map(str, allowed))}")
        if conv is int and value < 1:
            p.error(f"{option}: values must be >= 1, got {value}")
        if value not in out:
            out.append(value)
    if not out:
        p.error(f"{option} selected nothing")
    return tuple(out)


GRID_OPTIONS = ("grid_d", "grid_k", "grid_types", "grid_data", "grid_seconds", "grid_n_min",
                "grid_data_gib", "grid_mem_gib", "memory")


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="streammix vs scikit-learn GaussianMixture: seconds per EM iteration, "
                    "GFLOP/s and distance\nfrom the flop floor. By default on issue 17's "
                    "grid: d x K x covariance type x data\nkind (120 cells), n per cell "
                    "from --grid-seconds. With --cases: issue 2's named cases\n(fixed n, "
                    "with peak memory).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples (from the repository root, .venv/bin/python):\n"
               "  benchmarks/bench_em.py              the whole grid (~1.5 h on 2 cores)\n"
               "  benchmarks/bench_em.py --plan       its cells, n and estimated time; "
               "nothing timed\n"
               "  benchmarks/bench_em.py --avx2       the grid with numba pinned to haswell "
               "(AVX2)\n"
               "  benchmarks/bench_em.py --grid-d 16,64 --grid-k 16 --grid-types full,diag "
               "--grid-data overlap\n"
               "  benchmarks/bench_em.py --quick      a smoke run (< 60 s)\n"
               "  benchmarks/bench_em.py --cases full_d16,diag_d16 --repeats 5 --iters 3\n"
               "stdout is the report (markdown), stderr the progress; see the module "
               "docstring for the method.")
    p.add_argument("--quick", action="store_true",
                   help="smoke run (< 60 s): the grid d in {4,16} x K in {4,16} with "
                        f"--grid-seconds {QUICK_GRID['seconds']} and --grid-n-min "
                        f"{QUICK_GRID['n_min']:,} (unless given); with --cases, small n "
                        f"({QUICK_N[16]:,} rows at d=16, {QUICK_N[64]:,} at d=64); "
                        "--iters 2 --repeats 2 unless given")
    p.add_argument("--cases", default=None,
                   help="run issue 2's named cases instead of the grid: comma-separated "
                        "case names or covariance types, from: " + ", ".join(CASES)
                        + ", or all")
    p.add_argument("--plan", action="store_true",
                   help="list the cells (or cases) with n, the expected s/it of both "
                        "systems and the estimated seconds of the run, and exit: nothing "
                        "is timed")
    p.add_argument("--avx2", action="store_true",
                   help="re-execute this run with numba pinned to haswell (AVX2 + FMA, no "
                        "AVX-512: NUMBA_CPU_NAME=haswell, NUMBA_CPU_FEATURES=''), "
                        "OPENBLAS_CORETYPE=Haswell unless set, and a fresh temporary "
                        "NUMBA_CACHE_DIR (all kernels compiled anew, untimed)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timing repeats per system (A B A B ...); default 3 (2 with --quick)")
    p.add_argument("--iters", "-m", type=int, default=None,
                   help="m in (T(1+m) - T(1)) / m; default 2 for the grid, 5 for --cases "
                        "(2 with --quick)")
    p.add_argument("--n", type=int, default=None,
                   help="override n for every selected cell or case")
    p.add_argument("--bandwidth-mib", type=int, default=1024,
                   help="MiB of the array whose read rate sets the byte floor (default 1024)")
    p.add_argument("--peak-size", type=int, default=4000,
                   help="matrix size of the matmul that measures the flop rate (default 4000)")
    p.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("grid (the default; not with --cases)")
    g.add_argument("--grid-d", default=None,
                   help="comma-separated d values (default " + ",".join(map(str, GRID_D)) + ")")
    g.add_argument("--grid-k", default=None,
                   help="comma-separated K values (default " + ",".join(map(str, GRID_K)) + ")")
    g.add_argument("--grid-types", default=None,
                   help="comma-separated covariance types (default " + ",".join(COV_TYPES) + ")")
    g.add_argument("--grid-data", default=None,
                   help="comma-separated data kinds (default " + ",".join(DATA_KINDS) + ")")
    g.add_argument("--grid-seconds", type=float, default=None,
                   help="seconds one streammix iteration should take, which sets each "
                        f"cell's n (default {GRID_SECONDS}; {QUICK_GRID['seconds']} with "
                        "--quick)")
    g.add_argument("--grid-n-min", type=int, default=None,
                   help=f"smallest n of a cell (default {GRID_N_MIN:,}; "
                        f"{QUICK_GRID['n_min']:,} with --quick)")
    g.add_argument("--grid-data-gib", type=float, default=None,
                   help=f"largest data of a cell, n d 8 bytes, in GiB (default {GRID_DATA_GIB})")
    g.add_argument("--grid-mem-gib", type=float, default=None,
                   help="largest data plus scikit-learn's estimated working arrays, "
                        f"8 n (d + 6 K + 3 d) bytes, in GiB (default {GRID_MEM_GIB})")
    g.add_argument("--memory", action="store_true",
                   help="also measure each cell's peak memory in fresh processes (off by "
                        "default for the grid)")
    m = p.add_argument_group("memory")
    m.add_argument("--no-memory", action="store_true",
                   help="--cases: skip the per-(system, case) memory subprocesses")
    m.add_argument("--mem-sizes", default=None,
                   help="fractions of n at which to measure memory, e.g. '0.25,1' to see "
                        "what grows with n (default '0.25,1' for --cases; '1' for the grid "
                        "and with --quick)")
    m.add_argument("--mem-iters", type=int, default=2,
                   help="EM iterations of each memory fit (default 2)")
    m.add_argument("--mem-jobs", type=int, default=2,
                   help="memory subprocesses run at once (default 2; peak RSS is per "
                        "process, so this does not change the figures)")
    args = p.parse_args(argv)
    args.grid = args.cases is None
    if not args.grid:
        given = [o for o in GRID_OPTIONS if getattr(args, o) not in (None, False)]
        if given:
            p.error(", ".join("--" + o.replace("_", "-") for o in given) + ": grid "
                    "options; --cases runs the named cases (their memory too, unless "
                    "--no-memory)")
    if args.repeats is None:
        args.repeats = 2 if args.quick else 3
    if args.iters is None:
        args.iters = 2 if (args.quick or args.grid) else 5
    if args.mem_sizes is None:
        args.mem_sizes = "1" if (args.quick or args.grid) else "0.25,1"
    if min(args.repeats, args.iters, args.mem_iters, args.mem_jobs) < 1:
        p.error("--repeats, --iters, --mem-iters and --mem-jobs must be >= 1")
    if args.n is not None and args.n < 2:
        p.error("--n must be >= 2")
    try:
        args.mem_fracs = sorted({float(x) for x in args.mem_sizes.split(",") if x.strip()})
    except ValueError:
        p.error(f"--mem-sizes: expected comma-separated fractions, got {args.mem_sizes!r}")
    if not args.mem_fracs or any(not 0 < f <= 64 for f in args.mem_fracs):
        p.error("--mem-sizes: fractions must be in (0, 64]")
    args.memory_on = args.memory if args.grid else not args.no_memory

    if args.grid:
        quick = args.quick
        args.grid_d = _csv(p, "--grid-d", args.grid_d, int) if args.grid_d else \
            (QUICK_GRID["d"] if quick else GRID_D)
        args.grid_k = _csv(p, "--grid-k", args.grid_k, int) if args.grid_k else \
            (QUICK_GRID["K"] if quick else GRID_K)
        args.grid_types = _csv(p, "--grid-types", args.grid_types, str, COV_TYPES) \
            if args.grid_types else COV_TYPES
        args.grid_data = _csv(p, "--grid-data", args.grid_data, str, DATA_KINDS) \
            if args.grid_data else DATA_KINDS
        if args.grid_seconds is None:
            args.grid_seconds = QUICK_GRID["seconds"] if quick else GRID_SECONDS
        if args.grid_n_min is None:
            args.grid_n_min = QUICK_GRID["n_min"] if quick else GRID_N_MIN
        if args.grid_data_gib is None:
            args.grid_data_gib = GRID_DATA_GIB
        if args.grid_mem_gib is None:
            args.grid_mem_gib = GRID_MEM_GIB
        if not args.grid_seconds > 0 or args.grid_n_min < 1 or \
                not args.grid_data_gib > 0 or not args.grid_mem_gib > 0:
            p.error("--grid-seconds, --grid-n-min, --grid-data-gib and --grid-mem-gib "
                    "must be positive")
        args.selected = []
        args.cells = grid_cells(args)
        return args

    selected = []
    for tok in (t.strip() for t in args.cases.split(",")):
        if not tok:
            continue
        if tok == "all":
            names = list(CASES)
        elif tok in CASES:
            names = [tok]
        elif tok in COV_TYPES:
            names = [c for c, spec in CASES.items() if spec[0] == tok]
        else:
            p.error(f"unknown case {tok!r}; choose from {', '.join(CASES)}, a covariance "
                    "type, or all")
        selected += [c for c in names if c not in selected]
    if not selected:
        p.error("--cases selected nothing")
    args.selected = selected
    args.cells = case_cells(args)
    return args


def case_shape(args, name):
    cov_type, n, d, K = CASES[name]
    if args.quick:
        n = QUICK_N[d]
    if args.n is not None:
        n = args.n
    return cov_type, n, d, K


def time_cell(cell: dict, args) -> dict:
    """Generate the cell's data, warm both systems up, then time them interleaved."""
    kind, cov_type, n, d, K = (cell[k] for k in ("kind", "cov_type", "n", "d", "K"))
    name, m = cell["name"], args.iters
    log(f"[time] {name}: generating n={n:,} ...")
    t0 = time.perf_counter()
    X = cell_data(kind, n, d, K, args.seed)
    init = cell_init(kind, cov_type, X, K, args.seed)
    gen_seconds = time.perf_counter() - t0
    seen = {s: set() for s in SYSTEMS}
    # warm-up: JIT / numba cache, thread pools, BLAS. streammix fits the whole data: on
    # fewer chunks it may take another path (one numba region instead of the pool, see
    # streammix_warmup_rows) and leave kernels to load or compile in the first timed fit.
    for system in SYSTEMS:
        rows = n if system == "streammix" else warmup_rows(n, d)
        fit(system, X[:rows], cov_type, K, 1, init, seen[system])
    per_iter = {s: [] for s in SYSTEMS}
    t1 = {s: [] for s in SYSTEMS}
    tm = {s: [] for s in SYSTEMS}
    lower = {}
    for rep in range(args.repeats):
        for system in SYSTEMS:  # A B A B ...
            a, _ = fit(system, X, cov_type, K, 1, init, seen[system])
            b, est = fit(system, X, cov_type, K, 1 + m, init, seen[system])
            lower[system] = float(est.lower_bound_)
            del est
            t1[system].append(a)
            tm[system].append(b)
            per_iter[system].append((b - a) / m)
            log(f"[time] {name} rep {rep + 1}/{args.repeats} {system}: T(1)={a:.3f} s "
                f"T(1+{m})={b:.3f} s -> {(b - a) / m:.4f} s/iter")
    del X, init
    gc.collect()
    return dict(cell, per_iter=per_iter, t1=t1, tm=tm, lower=lower, warnings=seen,
                flops=flops_per_iteration(cov_type, n, d, K), gen_seconds=gen_seconds)


def derived(r: dict, peak: float, bandwidth: float | None = None) -> dict:
    """Medians, ratio and its spread over the paired repeats, floor, ceiling, rate. The
    floor is the larger of the flops at the peak rate and, given the read bandwidth,
    the data's bytes read once; ``bound`` names which."""
    sk = statistics.median(r["per_iter"]["sklearn"])
    sm = statistics.median(r["per_iter"]["streammix"])
    pairs = [a / b for a, b in zip(r["per_iter"]["sklearn"], r["per_iter"]["streammix"])
             if a > 0 and b > 0]
    flop_floor = r["flops"] / peak
    byte_floor = bytes_per_iteration(r["n"], r["d"]) / bandwidth if bandwidth else 0.0
    floor = max(flop_floor, byte_floor)
    ok = sk > 0 and sm > 0
    return dict(sk=sk, sm=sm, ratio=sk / sm if ok else float("nan"),
                bound="bytes" if byte_floor > flop_floor else "flops",
                lo=min(pairs) if pairs else float("nan"),
                hi=max(pairs) if pairs else float("nan"), floor=floor,
                above=sm / floor if sm > 0 else float("nan"),
                ceiling=sk / floor if sk > 0 else float("nan"),
                gflops=r["flops"] / sm / 1e9 if sm > 0 else float("nan"),
                pct=100 * r["flops"] / sm / peak if sm > 0 else float("nan"))


def fmt_x(x: float) -> str:
    """A ratio: 3 significant digits and an x."""
    if x != x:
        return "n/a"
    return (f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}") + "x"


TARGET_RATIO = 10.0
BELOW_CEILING = "†"      # the 10x target is out of reach at the floor
BELOW_SECONDS = "‡"      # streammix's iteration took less than --grid-seconds


def ratio_text(x: dict) -> str:
    t = fmt_x(x["ratio"])
    if x["ratio"] >= TARGET_RATIO:
        t = f"**{t}**"
    if x["ceiling"] < TARGET_RATIO:
        t += " " + BELOW_CEILING
    return t


def n_rule_text(args) -> str:
    """One line on how the grid's n were chosen."""
    if args.n is not None:
        return f"n = {args.n:,} in every cell (--n)"
    return (f"n per cell for a streammix iteration of >= {args.grid_seconds:g} s: n = "
            f"ceil({args.grid_seconds:g} s / s_row) rounded up to {GRID_N_ROUND:,}, in "
            f"[{args.grid_n_min:,}, n_max], s_row = (c0 + c_d d + c_K K + c_Kd K d + "
            "c_dd d^2) ns + flops_per_row / RATE, per type (c0, c_d, c_K, c_Kd, c_dd, "
            "RATE GFLOP/s) " + "; ".join(f"{t} {STREAMMIX_ROW_MODEL[t]}" for t in COV_TYPES)
            + f"; n_max: data <= {args.grid_data_gib:g} GiB and data + scikit-learn's "
            f"estimated 8 (6K + 3d) bytes per row <= {args.grid_mem_gib:g} GiB")


def print_plan(args, cells: list[dict]) -> None:
    """--plan: the cells, their n and the estimated seconds, nothing timed."""
    est = [estimate_cell(c, args.repeats, args.iters) for c in cells]
    total = sum(e["seconds"] for e in est) + 10.0  # + the peak matmuls, imports
    print()
    if args.grid:
        print(f"plan: {len(cells)} cells; {n_rule_text(args)}")
    else:
        print(f"plan: {len(cells)} named cases")
    print("estimate: scikit-learn s/it = n (c0 + c_d d + c_K K + c_Kd K d + c_Kdd K d^2) "
          "ns, per type (c0, c_d, c_K, c_Kd, c_Kdd) " + "; ".join(
              f"{t} {SKLEARN_ROW_MODEL[t]}" for t in COV_TYPES)
          + f"; per cell: data generation, warm-ups, {args.repeats} x (T(1) + "
          f"T(1+{args.iters})) per system with T(1) = {T1_ITERATIONS['sklearn']:g} "
          f"(scikit-learn) and {T1_ITERATIONS['streammix']:g} (streammix) iterations; "
          "scikit-learn's times vary ~2x with the machine's load"
          + ("; memory subprocesses not included" if args.memory_on else ""))
    print()
    header = ["#", "cell", "n", "set by", "data MiB", "chunks", "GFLOP/it",
              "streammix s/it (model)", "sklearn s/it (model)", "cell s (est.)"]
    rows = []
    for i, (c, e) in enumerate(zip(cells, est), 1):
        rows.append([str(i), c["name"], f"{c['n']:,}", c["limit"] or "time",
                     f"{c['n'] * c['d'] * 8 / MiB:.0f}", str(streammix_chunks(c["n"], c["d"])),
                     f"{flops_per_iteration(c['cov_type'], c['n'], c['d'], c['K']) / 1e9:.2f}",
                     fmt_s(e["streammix"]), fmt_s(e["sklearn"]), f"{e['seconds']:.1f}"])
    print(markdown_table(header, rows))
    print()
    print(f"Estimated run time: {fmt_duration(total)}"
          + (f" ({total:.0f} s)" if total >= 120 else "") + f" for {len(cells)} "
          f"cells, --repeats {args.repeats} --iters {args.iters}"
          + (", plus the memory subprocesses" if args.memory_on else "") + ".")


def report_grid(results: list[dict], peak: float, args,
                bandwidth: float | None = None) -> list[str]:
    """The grid's per-cell table, the per-kind summaries and the counts. Returns the
    grid's problems (cells under the --grid-seconds target)."""
    xs = [derived(r, peak, bandwidth) for r in results]
    print(f"Ratio = scikit-learn s/it / streammix s/it (median), **bold** at >= "
          f"{TARGET_RATIO:g}x; spread = min-max of the repeats' paired ratios; floor = "
          f"the larger of the flops at the measured peak and"
          + (" the data's bytes read once at the measured read bandwidth" if bandwidth
             else " (no bandwidth measured) nothing else")
          + f" (bound: which); x above floor = streammix s/it / floor s/it; ceiling = "
          f"scikit-learn s/it / floor s/it (the most any implementation doing these flops "
          f"and reading these bytes could gain), {BELOW_CEILING} where it is < "
          f"{TARGET_RATIO:g} (the target is then out of reach at the floor); "
          f"{BELOW_SECONDS}: streammix's iteration under --grid-seconds "
          f"{args.grid_seconds:g} s.")
    print()
    header = ["data", "type", "d", "K", "n", "sklearn s/it", "streammix s/it", "ratio",
              "spread", "streammix GFLOP/s (% peak)", "floor s/it", "bound", "x above floor",
              "ceiling"]
    if args.memory_on:
        header += ["sklearn extra MiB", "streammix extra MiB"]
    rows = []
    short = []
    for r, x in zip(results, xs):
        sm_text = fmt_s(x["sm"])
        if x["sm"] < args.grid_seconds:
            sm_text += " " + BELOW_SECONDS
            short.append(f"{r['name']} ({fmt_s(x['sm'])} s, n={r['n']:,}"
                         + (f", n set by {r['limit']}" if r["limit"] else "") + ")")
        ceiling = fmt_x(x["ceiling"])
        if x["ceiling"] < TARGET_RATIO:
            ceiling += " " + BELOW_CEILING
        row = [r["kind"], r["cov_type"], str(r["d"]), str(r["K"]), f"{r['n']:,}",
               fmt_s(x["sk"]), sm_text, ratio_text(x),
               f"{fmt_x(x['lo'])}-{fmt_x(x['hi'])}" if x["lo"] == x["lo"] else "n/a",
               f"{x['gflops']:.1f} ({x['pct']:.0f}%)" if x["gflops"] == x["gflops"] else "n/a",
               fmt_s(x["floor"]), x["bound"], fmt_x(x["above"]), ceiling]
        if args.memory_on:
            row += [fmt_mib([m["extra"] for m in r.get("memory", {}).get(s, [])])
                    for s in SYSTEMS]
        rows.append(row)
    print(markdown_table(header, rows))
    print()

    # ---- summary: one table per data kind, rows (type, d), columns K
    Ks = [K for K in args.grid_k if any(r["K"] == K for r in results)]
    for kind in args.grid_data:
        by = {(r["cov_type"], r["d"], r["K"]): x for r, x in zip(results, xs)
              if r["kind"] == kind}
        if not by:
            continue
        print(f"**{kind}**: scikit-learn s/it / streammix s/it")
        print()
        srows = []
        for cov_type in args.grid_types:
            for d in args.grid_d:
                if not any((cov_type, d, K) in by for K in Ks):
                    continue
                srows.append([cov_type, str(d)] + [
                    ratio_text(by[(cov_type, d, K)]) if (cov_type, d, K) in by else "-"
                    for K in Ks])
        print(markdown_table(["type", "d"] + [f"K={K}" for K in Ks], srows))
        print()
    ok = [(r, x) for r, x in zip(results, xs) if x["ratio"] == x["ratio"]]
    hit = [r for r, x in ok if x["ratio"] >= TARGET_RATIO]
    capped = [r for r, x in zip(results, xs) if x["ceiling"] < TARGET_RATIO]
    per_kind = ", ".join(
        f"{kind} {sum(r['kind'] == kind for r in hit)} of "
        f"{sum(r['kind'] == kind for r in results)}" for kind in args.grid_data
        if any(r["kind"] == kind for r in results))
    line = (f"Cells at >= {TARGET_RATIO:g}x: {len(hit)} of {len(results)} ({per_kind}); "
            f"ceiling < {TARGET_RATIO:g}x (10x out of reach at the floor): {len(capped)}")
    if capped:
        line += " (" + ", ".join(r["name"] for r in capped) + ")"
    if ok:
        ratios = sorted(ok, key=lambda rx: rx[1]["ratio"])
        lo, hi = ratios[0], ratios[-1]
        med = statistics.median(x["ratio"] for _, x in ok)
        line += (f"; ratio min {fmt_x(lo[1]['ratio'])} ({lo[0]['name']}), median "
                 f"{fmt_x(med)}, max {fmt_x(hi[1]['ratio'])} ({hi[0]['name']})")
    print(line + ".")
    below = [f"{r['name']} ({fmt_x(x['ratio'])})" for r, x in ok if x["ratio"] < TARGET_RATIO]
    if below:
        print()
        print(f"Below {TARGET_RATIO:g}x: " + ", ".join(below) + ".")
    print()
    problems = []
    if short:
        problems.append(f"{len(short)} cells had a streammix iteration under --grid-seconds "
                        f"{args.grid_seconds:g} s (n too small for the target; raise "
                        "--grid-seconds, or correct STREAMMIX_ROW_MODEL): "
                        + "; ".join(short))
    return problems


def report_cases(results: list[dict], peak: float, args) -> None:
    header = ["case", "n", "d", "K", "sklearn s/it", "streammix s/it", "sklearn/streammix",
              "floor s/it", "streammix GFLOP/s (% peak)", "sklearn GFLOP/s (% peak)"]
    if args.memory_on:
        header += ["sklearn extra MiB", "streammix extra MiB"]
    rows = []
    for r in results:
        sk = statistics.median(r["per_iter"]["sklearn"])
        sm = statistics.median(r["per_iter"]["streammix"])
        floor = r["flops"] / peak

        def rate(t):
            if t <= 0:
                return "n/a"
            g = r["flops"] / t
            return f"{g / 1e9:.1f} ({100 * g / peak:.0f}%)"

        row = [r["name"], f"{r['n']:,}", str(r["d"]), str(r["K"]), fmt_s(sk), fmt_s(sm),
               f"{sk / sm:.2f}x" if sm > 0 and sk > 0 else "n/a", fmt_s(floor), rate(sm),
               rate(sk)]
        if args.memory_on:
            row += [fmt_mib([x["extra"] for x in r.get("memory", {}).get(s, [])])
                    for s in SYSTEMS]
        rows.append(row)
    print(markdown_table(header, rows))
    print()


def print_details(results: list[dict], args, problems: list[str]) -> None:
    """Every sample, the lower bounds and the memory figures; sanity checks go to
    problems."""
    m = args.iters
    print("<details><summary>details</summary>")
    print()
    print("```")
    for r in results:
        name = r["name"]
        head = (f"{name} ({r['cov_type']}, n={r['n']:,}, d={r['d']}, K={r['K']}"
                if not args.grid else f"{name} (n={r['n']:,}")
        print(f"{head}, streammix chunks {streammix_chunks(r['n'], r['d'])}, "
              f"{r['flops'] / 1e9:.2f} GFLOP/iter, data generated in "
              f"{r['gen_seconds']:.1f} s):")
        for s in SYSTEMS:
            samples = ", ".join(f"{x:.4f}" for x in r["per_iter"][s])
            print(f"  {s:9s} s/iter [{samples}]  median T(1)={statistics.median(r['t1'][s]):.3f}"
                  f" s  T(1+{m})={statistics.median(r['tm'][s]):.3f} s")
            for w in sorted(r["warnings"][s]):
                print(f"  {s:9s} warning: {w}")
                problems.append(f"{name} {s}: {w}")
            xs = r["per_iter"][s]
            med = statistics.median(xs)
            if len(xs) > 1 and med > 0 and (max(xs) - min(xs)) > 0.2 * med:
                problems.append(f"{name} {s}: noisy timings, per-iteration samples span "
                                f"{min(xs):.4g}..{max(xs):.4g} s around median {med:.4g} s "
                                "(a busy machine? rerun with more --repeats)")
        lb_sk, lb_sm = r["lower"]["sklearn"], r["lower"]["streammix"]
        rel = abs(lb_sk - lb_sm) / max(abs(lb_sk), 1e-300)
        print(f"  lower_bound_ after {1 + m} iterations: sklearn {lb_sk:.12g}, streammix "
              f"{lb_sm:.12g} (relative difference {rel:.2e})")
        if not rel < 1e-8:
            problems.append(f"{name}: lower bounds differ by {rel:.2e} relative "
                            "(not the same computation?)")
        for s in SYSTEMS:
            for x in r.get("memory", {}).get(s, []):
                print(f"  memory {s:9s} n={x['n']:,}: data {x['data_bytes'] / MiB:.1f} MiB, "
                      f"RSS before data {x['rss_before_data'] / MiB:.1f}, after data "
                      f"{x['base_rss'] / MiB:.1f} (max {x['base_maxrss'] / MiB:.1f}), peak in fit "
                      f"{x['peak_maxrss'] / MiB:.1f} -> extra {x['extra'] / MiB:.1f} MiB; RSS "
                      f"after fit {x['rss_after_fit'] / MiB:.1f}; fit {x['seconds']:.2f} s")
                if not x["reset_ok"]:
                    problems.append(f"{name} {s}: could not reset the peak RSS; the baseline "
                                    "may include the warm-up's peak")
                if x["inherited_maxrss"] >= x["base_maxrss"]:
                    problems.append(f"{name} {s}: inherited ru_maxrss "
                                    f"{x['inherited_maxrss'] / MiB:.0f} MiB >= baseline; "
                                    "memory figure unreliable")
                if x["gen_transient"] > 16 * MiB:
                    problems.append(f"{name} {s}: data generation left a transient peak of "
                                    f"{x['gen_transient'] / MiB:.0f} MiB above the baseline")
                for w in x["warnings"]:
                    problems.append(f"{name} {s} (memory run): {w}")
    print("```")
    print()
    print("</details>")
    print()


def measure_memory(cells: list[dict], args) -> None:
    """Fresh processes per (system, cell) and size; the results go to cell['memory']."""
    jobs = []
    for cell in cells:
        for frac in args.mem_fracs:
            nn = max(int(round(cell["n"] * frac)), 2 * cell["K"])
            for system in SYSTEMS:
                jobs.append((cell, system, nn))

    def mem_job(job):
        cell, system, nn = job
        log(f"[memory] {cell['name']} n={nn:,} {system} ...")
        r = run_mem_child(system, cell["cov_type"], nn, cell["d"], cell["K"], args.seed,
                          args.mem_iters, cell["kind"])
        r["n"] = nn
        log(f"[memory] {cell['name']} n={nn:,} {system}: extra {r['extra'] / MiB:.1f} MiB "
            f"over {r['base_maxrss'] / MiB:.1f} MiB (data {r['data_bytes'] / MiB:.1f} MiB)")
        return r

    # Peak RSS is per process, so children may run side by side (their fit times,
    # shown in the details, are then not comparable; nothing here is timed).
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(args.mem_jobs) as pool:
        for (cell, system, _), r in zip(jobs, pool.map(mem_job, jobs)):
            cell.setdefault("memory", {}).setdefault(system, []).append(r)
    for cell in cells:
        for v in cell.get("memory", {}).values():
            v.sort(key=lambda r: r["n"])


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.avx2:
        reexec_avx2(argv)  # does not return
    try:
        return run(args)
    finally:
        _remove_avx2_cache()


def run(args) -> int:
    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    m = args.iters
    cells = args.cells

    exe = sys.executable
    if exe.startswith(os.getcwd() + os.sep):
        exe = os.path.relpath(exe)
    argv0 = json.loads(os.environ[_ARGV_ENV]) if os.environ.get(_ARGV_ENV) else sys.argv
    print("## bench_em" + (": issue 17's grid" if args.grid else ""))
    print()
    print("```")
    print(f"$ {shlex.join([exe] + argv0)}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    for line in machine_info():
        print(line)
    for line in vector_info():
        print(line)
    print("```")
    sys.stdout.flush()

    if args.plan:
        print_plan(args, cells)
        return 0

    # ---- memory first: fresh processes, nothing else running in this one
    if args.memory_on:
        measure_memory(cells, args)

    # ---- the machine's flop rate
    log(f"[peak] numpy matmul {args.peak_size} x {args.peak_size} ...")
    peak, peak_times = measure_peak_flops(args.peak_size, 1 if args.quick else 3)
    log(f"[peak] {peak / 1e9:.1f} GFLOP/s")
    bandwidth, bw_times = measure_read_bandwidth(args.bandwidth_mib, 1 if args.quick else 3)
    log(f"[peak] read bandwidth {bandwidth / 2**30:.1f} GiB/s")

    import sklearn.mixture  # noqa: F401  (load both before reporting thread pools)
    import streammix  # noqa: F401

    # ---- timing
    est = [estimate_cell(c, args.repeats, args.iters)["seconds"] for c in cells]
    results = []
    t_cells = time.perf_counter()
    for i, cell in enumerate(cells):
        if args.grid:
            log(f"[grid] cell {i + 1}/{len(cells)}: {cell['name']}, n={cell['n']:,}"
                + (f" (set by {cell['limit']})" if cell["limit"] else ""))
        results.append(time_cell(cell, args))
        if args.grid and i + 1 < len(cells):
            spent = time.perf_counter() - t_cells
            left = sum(est[i + 1:]) * spent / max(sum(est[:i + 1]), 1e-9)
            log(f"[grid] {i + 1}/{len(cells)} cells in {fmt_duration(spent)}; about "
                f"{fmt_duration(left)} left")

    # ---- report
    print()
    print("```")
    for line in thread_info():
        print(line)
    print(f"peak: numpy matmul {args.peak_size}x{args.peak_size} float64, best of "
          f"{len(peak_times)}: {peak / 1e9:.1f} GFLOP/s "
          f"(times {', '.join(f'{t:.3f}' for t in peak_times)} s)")
    print(f"read bandwidth: 2 threads summing a {args.bandwidth_mib} MiB float64 array, best "
          f"of {len(bw_times)}: {bandwidth / 2**30:.1f} GiB/s "
          f"(times {', '.join(f'{t:.4f}' for t in bw_times)} s)")
    print(f"timing: per-iteration = (T(1+{m}) - T(1)) / {m}, median of {args.repeats} "
          "interleaved repeats (sklearn, streammix, sklearn, streammix, ...), after a "
          "warm-up fit (1 iteration) of streammix on the data and of scikit-learn on "
          "min(n, 2 streammix chunks + 1) rows; same data and *_init for both, tol=0")
    if args.grid:
        print(f"grid: d {','.join(map(str, args.grid_d))} x K "
              f"{','.join(map(str, args.grid_k))} x {','.join(args.grid_types)} x data "
              f"{','.join(args.grid_data)} = {len(cells)} cells")
        print(f"n: {n_rule_text(args)}")
        print("data: separated = blobs, centres N(0, 2^2), generating covariances, start "
              "from perturbed centres and the generating precisions; overlap = centres "
              "U[-2.5, 2.5]^d, isotropic scales U[0.5, 2], start from K distinct rows, "
              "identity precisions; both: Dirichlet(5) weights, uniform weights_init, "
              f"seed {args.seed}")
    if args.memory_on:
        sizes = ", ".join("n" if f == 1 else f"{f:g} n" for f in args.mem_fracs)
        print(f"memory: peak ru_maxrss of the fit ({args.mem_iters} EM iterations) minus "
              "ru_maxrss after generating the data, fresh process per system and case, "
              f"after a warm-up fit and a peak-RSS reset; MiB at {sizes}")
    print("floor: max(flops per iteration / peak, 8 n d bytes / read bandwidth); flops "
          "full n K (2d^2 + 10d), tied n (d^2 + 6dK), diag n K 7d, spherical n K 6d")
    print("```")
    print()
    problems = []
    if args.grid:
        problems += report_grid(results, peak, args, bandwidth)
    else:
        report_cases(results, peak, args)

    # ---- details: every sample, and sanity checks
    print_details(results, args, problems)
    load1 = os.getloadavg()[0]
    if load_start > 0.7 or load1 > 2.7:
        problems.append(f"the machine was busy (1-minute load average {load_start:.2f} at the "
                        f"start, {load1:.2f} at the end, on {os.cpu_count()} cores; this run "
                        "adds up to ~2): timings and the peak rate are unreliable, and "
                        "scikit-learn's BLAS threads suffer more from contention than streammix")
    if problems:
        print("Problems:")
        for p_ in problems:
            print(f"- {p_}")
        print()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"Total wall time {time.perf_counter() - t_start:.1f} s; load average at end {load}.")
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
