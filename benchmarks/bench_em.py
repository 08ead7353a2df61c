#!/usr/bin/env python
"""Seconds per EM iteration: streammix.GaussianMixture against scikit-learn, same run.

Both systems get the same data (a seeded blob mixture, float64, C order) and the same
initial parameters (weights_init / means_init / precisions_init built deterministically
from the generating mixture, means perturbed), with tol=0 so that neither stops early.

    per-iteration time = (T(1 + m iterations) - T(1 iteration)) / m

after a warm-up fit (which compiles or loads the numba kernels and starts the thread
pools), so that start-up, validation, initialisation and scikit-learn's final E-step
cancel out. The systems are interleaved A B A B ... and medians are quoted.

Memory: each (system, case) is fitted once more in a fresh process. It warms up on a
small data set first, resets its peak-RSS mark, generates the data (in place, in small
blocks, so no transient copy), records the baseline ru_maxrss, fits, and reports
ru_maxrss after the fit minus the baseline: the peak extra memory of the fit itself.
By default at 0.25 n and n, to show what grows with n. (The child forks once before
doing anything: a process started by subprocess inherits its parent's ru_maxrss.)

The floor: flops of one EM pass (see ``flops_per_iteration``) divided by the rate of a
numpy matmul of two 4000 x 4000 float64 matrices measured in the same run.

Run from the repository root:

    .venv/bin/python benchmarks/bench_em.py            # full: ~10-15 min on a quiet machine
    .venv/bin/python benchmarks/bench_em.py --quick    # a smoke run (< 60 s)
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
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

MiB = 1 << 20
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

SYSTEMS = ("sklearn", "streammix")
GEN_BLOCK_ROWS = 4_096


def warmup_rows(n: int, d: int) -> int:
    """Rows of the warm-up fit: two of streammix's default chunks plus one row (so its
    thread pool starts too), at most n."""
    try:
        from streammix.execution.numpy_source import default_chunk_rows
        chunk = default_chunk_rows(d, 8)
    except ImportError:
        chunk = max(1024, (4 << 20) // (8 * d))
    return min(n, 2 * chunk + 1)


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
    tied:      n (d^2 + 6 d K)     whitening and the outer product once per sample
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
    """Runs in a fresh process (forked from a small one): one system, one case."""
    system, cov_type = spec["system"], spec["cov_type"]
    n, d, K, seed = spec["n"], spec["d"], spec["K"], spec["seed"]
    inherited = _maxrss()
    estimator_class(system)  # import the system
    # warm-up: compile or load the numba kernels, start thread pools, initialise BLAS
    Xw = make_data(warmup_rows(n, d), d, K, seed + 1)
    fit(system, Xw, cov_type, K, 1, initial_params(cov_type, d, K, seed))
    del Xw
    gc.collect()
    reset_ok = _reset_peak_rss()
    rss_before_data = _rss_now()
    X = make_data(n, d, K, seed)
    init = initial_params(cov_type, d, K, seed)
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


def run_mem_child(system, cov_type, n, d, K, seed, iters) -> dict:
    spec = dict(system=system, cov_type=cov_type, n=n, d=d, K=K, seed=seed, iters=iters)
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--_mem-child", json.dumps(spec)],
        capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("MEMRESULT "):
            return json.loads(line[len("MEMRESULT "):])
    raise RuntimeError(
        f"memory child {system} {cov_type} n={n} failed (exit {proc.returncode}):\n"
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
            lines.append(
                f"threadpoolctl: {p.get('user_api')}/{p.get('internal_api')} "
                f"{p.get('version') or ''} num_threads={p.get('num_threads')} "
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


# ----------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="streammix vs scikit-learn GaussianMixture: seconds per EM iteration, "
                    "peak extra memory, distance from the flop floor.")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: small n ({QUICK_N[16]:,} rows at d=16, {QUICK_N[64]:,} "
                        "at d=64), --iters 2 --repeats 2 unless given (< 60 s)")
    p.add_argument("--cases", default="all",
                   help="comma-separated case names or covariance types, from: "
                        + ", ".join(CASES) + " (default: all)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timing repeats per system (A B A B ...); default 3 (2 with --quick)")
    p.add_argument("--iters", "-m", type=int, default=None,
                   help="m in (T(1+m) - T(1)) / m; default 5 (2 with --quick)")
    p.add_argument("--no-memory", action="store_true",
                   help="skip the per-(system, case) memory subprocesses")
    p.add_argument("--mem-sizes", default=None,
                   help="fractions of n at which to measure memory, e.g. '0.25,1' to see "
                        "what grows with n (default '0.25,1'; '1' with --quick)")
    p.add_argument("--mem-iters", type=int, default=2,
                   help="EM iterations of each memory fit (default 2)")
    p.add_argument("--mem-jobs", type=int, default=2,
                   help="memory subprocesses run at once (default 2; peak RSS is per "
                        "process, so this does not change the figures)")
    p.add_argument("--n", type=int, default=None,
                   help="override n for every selected case")
    p.add_argument("--peak-size", type=int, default=4000,
                   help="matrix size of the matmul that measures the flop rate (default 4000)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 2 if args.quick else 3
    if args.iters is None:
        args.iters = 2 if args.quick else 5
    if args.mem_sizes is None:
        args.mem_sizes = "1" if args.quick else "0.25,1"
    if min(args.repeats, args.iters, args.mem_iters, args.mem_jobs) < 1:
        p.error("--repeats, --iters, --mem-iters and --mem-jobs must be >= 1")
    try:
        args.mem_fracs = sorted({float(x) for x in args.mem_sizes.split(",") if x.strip()})
    except ValueError:
        p.error(f"--mem-sizes: expected comma-separated fractions, got {args.mem_sizes!r}")
    if not args.mem_fracs or any(not 0 < f <= 64 for f in args.mem_fracs):
        p.error("--mem-sizes: fractions must be in (0, 64]")
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
    return args


def case_shape(args, name):
    cov_type, n, d, K = CASES[name]
    if args.quick:
        n = QUICK_N[d]
    if args.n is not None:
        n = args.n
    return cov_type, n, d, K


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    m = args.iters

    out = []
    emit = out.append
    exe = sys.executable
    if exe.startswith(os.getcwd() + os.sep):
        exe = os.path.relpath(exe)
    cmd = shlex.join([exe] + sys.argv)
    emit("## bench_em")
    emit("")
    emit("```")
    emit(f"$ {cmd}")
    emit(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    for line in machine_info():
        emit(line)
    emit("```")
    for line in out:
        print(line)
    out.clear()
    sys.stdout.flush()

    # ---- memory first: fresh processes, nothing else running in this one
    mem: dict[tuple[str, str], list[dict]] = {}
    if not args.no_memory:
        jobs = []
        for name in args.selected:
            cov_type, n, d, K = case_shape(args, name)
            for frac in args.mem_fracs:
                nn = max(int(round(n * frac)), 2 * K)
                for system in SYSTEMS:
                    jobs.append((name, system, cov_type, nn, d, K))

        def mem_job(job):
            name, system, cov_type, nn, d, K = job
            log(f"[memory] {name} n={nn:,} {system} ...")
            r = run_mem_child(system, cov_type, nn, d, K, args.seed, args.mem_iters)
            r["n"] = nn
            log(f"[memory] {name} n={nn:,} {system}: extra {r['extra'] / MiB:.1f} MiB over "
                f"{r['base_maxrss'] / MiB:.1f} MiB (data {r['data_bytes'] / MiB:.1f} MiB)")
            return r

        # Peak RSS is per process, so children may run side by side (their fit times,
        # shown in the details, are then not comparable; nothing here is timed).
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(args.mem_jobs) as pool:
            for job, r in zip(jobs, pool.map(mem_job, jobs)):
                mem.setdefault((job[0], job[1]), []).append(r)
        for v in mem.values():
            v.sort(key=lambda r: r["n"])

    # ---- the machine's flop rate
    log(f"[peak] numpy matmul {args.peak_size} x {args.peak_size} ...")
    peak, peak_times = measure_peak_flops(args.peak_size, 1 if args.quick else 3)
    log(f"[peak] {peak / 1e9:.1f} GFLOP/s")

    import sklearn.mixture  # noqa: F401  (load both before reporting thread pools)
    import streammix  # noqa: F401

    # ---- timing
    results = {}
    for name in args.selected:
        cov_type, n, d, K = case_shape(args, name)
        log(f"[time] {name}: generating n={n:,} d={d} K={K} ...")
        X = make_data(n, d, K, args.seed)
        init = initial_params(cov_type, d, K, args.seed)
        seen = {s: set() for s in SYSTEMS}
        for system in SYSTEMS:  # warm-up: JIT / numba cache, thread pools, BLAS
            fit(system, X[:warmup_rows(n, d)], cov_type, K, 1, init, seen[system])
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
        del X
        gc.collect()
        results[name] = dict(cov_type=cov_type, n=n, d=d, K=K, per_iter=per_iter, t1=t1,
                             tm=tm, lower=lower, warnings=seen,
                             flops=flops_per_iteration(cov_type, n, d, K))

    # ---- report
    print()
    print("```")
    for line in thread_info():
        print(line)
    print(f"peak: numpy matmul {args.peak_size}x{args.peak_size} float64, best of "
          f"{len(peak_times)}: {peak / 1e9:.1f} GFLOP/s "
          f"(times {', '.join(f'{t:.3f}' for t in peak_times)} s)")
    print(f"timing: per-iteration = (T(1+{m}) - T(1)) / {m}, median of {args.repeats} "
          "interleaved repeats (sklearn, streammix, sklearn, streammix, ...), after a "
          f"warm-up fit on min(n, 2 streammix chunks + 1) rows; same data and *_init for both, tol=0")
    if not args.no_memory:
        sizes = ", ".join("n" if f == 1 else f"{f:g} n" for f in args.mem_fracs)
        print(f"memory: peak ru_maxrss of the fit ({args.mem_iters} EM iterations) minus "
              "ru_maxrss after generating the data, fresh process per system and case, "
              f"after a warm-up fit and a peak-RSS reset; MiB at {sizes}")
    print("floor: flops per iteration / peak; full n K (2d^2 + 10d), tied n (d^2 + 6dK), "
          "diag n K 7d, spherical n K 6d")
    print("```")
    print()
    header = ["case", "n", "d", "K", "sklearn s/it", "streammix s/it", "sklearn/streammix",
              "floor s/it", "streammix GFLOP/s (% peak)", "sklearn GFLOP/s (% peak)"]
    if not args.no_memory:
        header += ["sklearn extra MiB", "streammix extra MiB"]
    rows = []
    for name, r in results.items():
        sk = statistics.median(r["per_iter"]["sklearn"])
        sm = statistics.median(r["per_iter"]["streammix"])
        floor = r["flops"] / peak

        def rate(t):
            if t <= 0:
                return "n/a"
            g = r["flops"] / t
            return f"{g / 1e9:.1f} ({100 * g / peak:.0f}%)"

        row = [name, f"{r['n']:,}", str(r["d"]), str(r["K"]), fmt_s(sk), fmt_s(sm),
               f"{sk / sm:.2f}x" if sm > 0 and sk > 0 else "n/a", fmt_s(floor), rate(sm), rate(sk)]
        if not args.no_memory:
            row += [fmt_mib([x["extra"] for x in mem.get((name, s), [])]) for s in SYSTEMS]
        rows.append(row)
    print(markdown_table(header, rows))
    print()

    # ---- details: every sample, and sanity checks
    print("<details><summary>details</summary>")
    print()
    print("```")
    problems = []
    for name, r in results.items():
        print(f"{name} ({r['cov_type']}, n={r['n']:,}, d={r['d']}, K={r['K']}, "
              f"{r['flops'] / 1e9:.2f} GFLOP/iter):")
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
            for x in mem.get((name, s), []):
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
