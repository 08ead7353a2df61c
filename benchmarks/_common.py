"""Helpers shared by bench_dask.py, bench_spark.py, bench_online.py and bench_checkpoint.py.

They follow bench_em.py's conventions and reuse its data (``make_data``: the same seeded
blob mixture, so "the 1M x 16 x 16 data" is the same rows in every benchmark), its
initial parameters and its report helpers; what is new here is writing that data to a
Zarr array chunk by chunk, timing helpers and peak-memory helpers based on VmHWM.
"""

from __future__ import annotations

import gc
import os
import re
import shlex
import shutil
import statistics
import sys
import time
import warnings

import numpy as np

from bench_em import (  # noqa: F401  (re-exported)
    GEN_BLOCK_ROWS,
    MiB,
    _git_describe,
    _reset_peak_rss,
    _rss_now,
    _version,
    _vm_hwm,
    fmt_s,
    initial_params,
    machine_info,
    make_data,
    markdown_table,
    mixture_spec,
    thread_info,
)

DEFAULT_WORKDIR = os.path.join(os.environ.get("TMPDIR", "/tmp"), "streammix-bench")
_T0 = time.perf_counter()


def log(msg: str) -> None:
    """Progress line on stderr (stdout is the report)."""
    print(f"[{time.perf_counter() - _T0:7.1f} s] {msg}", file=sys.stderr, flush=True)


def clean_maxrss_fork() -> None:
    """Fork once and let the child do the work (see bench_em._clean_maxrss_fork): a
    process started by subprocess inherits its parent's ru_maxrss. Our memory figures
    use VmHWM after a reset (/proc/self/clear_refs), which is not inherited, but the
    fork keeps ru_maxrss meaningful as a fallback."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        return
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def vm_rss() -> int:
    """Current VmRSS in bytes."""
    with open("/proc/self/status") as f:
        m = re.search(r"VmRSS:\s+(\d+)\s+kB", f.read())
    return int(m.group(1)) * 1024 if m else _rss_now()


# ----------------------------------------------------------------------------- report
def report_header(name: str, extra_versions: list[str] | None = None) -> None:
    """Print the report's header: command line, date, machine, versions, git commit,
    load average (the conventions of bench_em.py)."""
    exe = sys.executable
    if exe.startswith(os.getcwd() + os.sep):
        exe = os.path.relpath(exe)
    print(f"## {name}")
    print()
    print("```")
    print(f"$ {shlex.join([exe] + sys.argv)}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    for line in machine_info():
        print(line)
    if extra_versions:
        print(", ".join(f"{d} {_version(d)}" for d in extra_versions))
    print("```")
    print()
    sys.stdout.flush()


def busy_problem(load_start: float) -> str | None:
    load1 = os.getloadavg()[0]
    if load_start > 0.7 or load1 > 2.7:
        return (f"the machine was busy (1-minute load average {load_start:.2f} at the start, "
                f"{load1:.2f} at the end, on {os.cpu_count()} cores; this run adds up to "
                "~2): absolute timings are unreliable, compare ratios only")
    return None


def print_problems(problems: list[str]) -> None:
    if problems:
        print("Problems:")
        for p in problems:
            print(f"- {p}")
        print()


def report_footer(problems: list[str], load_start: float, t_start: float,
                  warnings_seen=()) -> None:
    """Close the details block, then list the problems (warnings, a busy machine) and
    the total wall time: the common end of every benchmark's report."""
    print("```")
    print()
    print("</details>")
    print()
    problems.extend(sorted(warnings_seen))
    busy = busy_problem(load_start)
    if busy:
        problems.append(busy)
    print_problems(problems)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"Total wall time {time.perf_counter() - t_start:.1f} s; load average at end {load}.")


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def noisy(xs, what: str, problems: list[str]) -> None:
    if len(xs) > 1:
        med = statistics.median(xs)
        if med > 0 and (max(xs) - min(xs)) > 0.2 * med:
            problems.append(f"{what}: noisy timings, samples span {min(xs):.4g}..{max(xs):.4g} "
                            f"s around median {med:.4g} s (a busy machine? more --repeats)")


def timed(fn, seen: set | None = None):
    """(seconds, fn()) with convergence warnings dropped and others recorded in seen."""
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - t0
    if seen is not None:
        for w in caught:
            if "ConvergenceWarning" in type(w.message).__name__ or \
                    "did not converge" in str(w.message):
                continue
            seen.add(f"{type(w.message).__name__}: {str(w.message)[:160]}")
    return seconds, out


# ----------------------------------------------------------------------------- data
def iter_data_blocks(n: int, d: int, K: int, seed: int):
    """The rows of bench_em.make_data(n, d, K, seed), block by block (GEN_BLOCK_ROWS
    rows each): the same random stream, so the concatenation is bit-identical to it."""
    weights, centres, chols = mixture_spec(d, K, seed)
    rng = np.random.default_rng([seed, n, d, K, 1])
    Z = np.empty((GEN_BLOCK_ROWS, d))
    for start in range(0, n, GEN_BLOCK_ROWS):
        b = min(GEN_BLOCK_ROWS, n - start)
        labels = rng.choice(K, size=b, p=weights)
        rng.standard_normal(out=Z[:b])
        out = np.empty((b, d))
        for k in range(K):
            idx = np.flatnonzero(labels == k)
            if idx.size:
                out[idx] = Z[idx] @ chols[k].T + centres[k]
        yield out


def zarr_name(n: int, d: int, K: int, seed: int, chunk_rows: int, codec: str) -> str:
    return f"blobs_n{n}_d{d}_K{K}_seed{seed}_rows{chunk_rows}_{codec}.zarr"


def ensure_zarr(workdir: str, n: int, d: int, K: int, seed: int, chunk_rows: int,
                codec: str = "zstd") -> tuple[str, bool]:
    """(path, created): a float64 Zarr array on disk holding make_data(n, d, K, seed),
    chunked by ``chunk_rows`` rows. Written chunk by chunk (never whole in memory) under
    a temporary name, marked complete and renamed, so an interrupted write is redone;
    cached between runs under a name that encodes n, d, K, seed, chunking and codec."""
    import zarr

    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, zarr_name(n, d, K, seed, chunk_rows, codec))
    if os.path.isdir(path):
        try:
            arr = zarr.open_array(path, mode="r")
            if arr.attrs.get("complete") and arr.shape == (n, d):
                return path, False
        except Exception:  # noqa: BLE001 - anything odd: rewrite it
            pass
        shutil.rmtree(path)
    tmp = path + f".partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    if codec == "zstd":
        compressors = "auto"          # zarr v3's default: zstd level 0
    elif codec == "none":
        compressors = None
    elif codec == "lz4":
        from zarr.codecs import BloscCodec

        compressors = BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
    else:
        raise ValueError(f"codec must be 'zstd', 'lz4' or 'none', got {codec!r}")
    arr = zarr.create_array(store=tmp, shape=(n, d), chunks=(chunk_rows, d), dtype="float64",
                            compressors=compressors)
    buf = np.empty((chunk_rows, d))
    filled = 0
    written = 0
    t0 = time.perf_counter()
    for block in iter_data_blocks(n, d, K, seed):
        pos = 0
        while pos < len(block):
            take = min(len(block) - pos, chunk_rows - filled)
            buf[filled:filled + take] = block[pos:pos + take]
            filled += take
            pos += take
            if filled == chunk_rows:
                arr[written:written + filled] = buf
                written += filled
                filled = 0
                if written % (20 * chunk_rows) == 0:
                    log(f"  writing {os.path.basename(path)}: {written:,}/{n:,} rows "
                        f"({time.perf_counter() - t0:.0f} s)")
    if filled:
        arr[written:written + filled] = buf[:filled]
        written += filled
    assert written == n
    arr.attrs.update({"complete": True, "generator": "bench_em.make_data stream",
                      "n": n, "d": d, "K": K, "seed": seed})
    os.rename(tmp, path)
    return path, True


def zarr_to_numpy(path: str) -> np.ndarray:
    """The Zarr array as one float64 C-order numpy array, filled chunk by chunk."""
    import zarr

    arr = zarr.open_array(path, mode="r")
    n, d = arr.shape
    X = np.empty((n, d), dtype=arr.dtype)
    step = arr.chunks[0]
    for s in range(0, n, step):
        X[s:s + step] = arr[s:s + step]
    return X


def dir_bytes(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total

