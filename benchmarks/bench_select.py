#!/usr/bin/env python
"""A grid of candidates fitted together (``streammix.select``) against the same candidates
fitted one after another, on Zarr arrays (zstd, uncompressed, and zstd served over HTTP
from a loopback web server): wall time and bytes read.

Grid: K = 2..12 x {full, diag} (22 candidates) on bench_em's seeded blob mixture,
init_params='k-means++' (a sample: the EM passes dominate), tol=1e-3, max_iter as given.
"bytes read" counts the chunk files' sizes each time one is read (a file read twice is
counted twice); over HTTP, the body bytes the server sent. The chosen model must be the
same bits either way (checked).

Sharing saves reading and decoding, not the kernels' work, so the report also gives the
most it could save: one bare pass (read and decode every chunk, 2 threads) is timed, and
the *gain from reads alone* is the one-by-one time over that time less the passes sharing
removes (sharing also saves per-pass scheduling and k-means++ sampling, so it can exceed it).

    .venv/bin/python benchmarks/bench_select.py                  # 2,000,000 x 16
    .venv/bin/python benchmarks/bench_select.py --n 10000000 --codecs zstd,none,http
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _http_store import served  # noqa: E402
from _common import DEFAULT_WORKDIR, dir_bytes, ensure_zarr, log, markdown_table, report_footer, \
    report_header  # noqa: E402


def counting_reads():
    """Patch the chunk-file readers to count bytes; returns the counter dict."""
    import streammix.execution.zarr_chunks as zc

    counter = {"bytes": 0}
    real_read, real_into = zc.ChunkFile.read, zc.ChunkFile.read_into

    def read(ref, reuse=False):
        counter["bytes"] += os.path.getsize(ref.path) if ref.stamp else 0
        return real_read(ref, reuse)

    def read_into(ref, out):
        counter["bytes"] += os.path.getsize(ref.path) if ref.stamp else 0
        real_into(ref, out)

    zc.ChunkFile.read, zc.ChunkFile.read_into = read, read_into
    return counter


def bare_pass(source: str) -> float:
    """Seconds to read and decode every chunk once (dask's threads, as a fit reads
    them), with nothing computed on the rows but a sum; best of 2."""
    from streammix import read_zarr

    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        read_zarr(source).sum().compute()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2_000_000)
    ap.add_argument("--d", type=int, default=16)
    ap.add_argument("--chunk-rows", type=int, default=62_500)
    ap.add_argument("--kmax", type=int, default=12)
    ap.add_argument("--max-iter", type=int, default=30)
    ap.add_argument("--codecs", default="zstd,none,http",
                    help="comma-separated: zstd, none (uncompressed), http (the zstd array "
                         "served over HTTP on a loopback port)")
    ap.add_argument("--workdir", default=DEFAULT_WORKDIR)
    args = ap.parse_args(argv)
    load_start = os.getloadavg()[0]
    t_start = time.perf_counter()
    report_header("select: a grid of candidates sharing their passes",
                  ["numpy", "numba", "dask", "zarr"])
    from streammix import GaussianMixture, select

    counter = counting_reads()
    ks = list(range(2, args.kmax + 1))
    types = ["full", "diag"]
    kw = dict(random_state=0, init_params="k-means++", tol=1e-3, max_iter=args.max_iter)
    rows, problems = [], []
    for codec in args.codecs.split(","):
        stored = "zstd" if codec == "http" else codec
        path, _ = ensure_zarr(args.workdir, args.n, args.d, 16, 0, args.chunk_rows, stored)
        with contextlib.ExitStack() as stack:
            if codec == "http":
                base, served_bytes = stack.enter_context(served(os.path.dirname(path)))
                source = f"{base}/{os.path.basename(path)}"
            else:
                source, served_bytes = path, None

            def read_bytes(reset=False):
                if served_bytes is not None:
                    return served_bytes(reset)
                b = counter["bytes"]
                if reset:
                    counter["bytes"] = 0
                return b

            t_pass = bare_pass(source)
            pass_bytes = dir_bytes(path)
            read_bytes(reset=True)
            log(f"{codec}: one bare pass {t_pass:.2f} s, {pass_bytes / 2**30:.3f} GiB")
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            grid = select(source, n_components=ks, covariance_types=types, **kw)
            t_grid, b_grid = time.perf_counter() - t0, read_bytes(reset=True)
            log(f"{codec}: together {t_grid:.1f} s, {b_grid / 2**30:.2f} GiB")
            t0 = time.perf_counter()
            scores = []
            for t in types:
                for k in ks:
                    m = GaussianMixture(k, covariance_type=t, **kw).fit(source)
                    scores.append((m.bic(source), k, t, m))
            t_seq, b_seq = time.perf_counter() - t0, read_bytes(reset=True)
            log(f"{codec}: one after another {t_seq:.1f} s, {b_seq / 2**30:.2f} GiB")
        best_seq = min(scores, key=lambda s: (s[0], s[1]))[3]
        same = all(np.array_equal(getattr(grid.best, a), getattr(best_seq, a))
                   for a in ("weights_", "means_", "covariances_"))
        if not same:
            problems.append(f"{codec}: the chosen models differ")
        iters = sum(r["n_iter"] for r in grid.table)
        saved = (b_seq - b_grid) / pass_bytes * t_pass
        ceiling = t_seq / max(t_seq - saved, 1e-9)
        rows.append([codec, f"{len(ks) * len(types)}", f"{iters}", f"{t_pass:.2f}",
                     f"{t_seq:.1f}", f"{t_grid:.1f}", f"**{t_seq / t_grid:.2f}x**",
                     f"{ceiling:.2f}x", f"{b_seq / 2**30:.2f}", f"{b_grid / 2**30:.2f}",
                     f"{b_seq / max(b_grid, 1):.1f}x",
                     f"K={grid.best.n_components} {grid.best.covariance_type}"
                     + (" (same bits)" if same else " DIFFERENT")])
    print(f"n = {args.n:,} x {args.d}, chunks of {args.chunk_rows:,} rows; K = 2..{args.kmax}"
          f" x {{full, diag}}; max_iter {args.max_iter}, tol 1e-3, init k-means++; "
          "bytes include the passes that score BIC (one per candidate one after another, "
          "one shared); gain from reads alone: one by one s / (one by one s - bare pass s x the passes "
          "sharing removes): what sharing would gain if it saved only reading and decoding (it "
          "also saves per-pass scheduling and the k-means++ sampling)")
    print()
    print(markdown_table(["codec", "candidates", "EM iterations", "bare pass s",
                          "one by one s", "together s", "speed-up", "gain from reads alone", "one by one GiB read",
                          "together GiB read", "fewer bytes", "chosen"], rows))
    print()
    print("<details><summary>notes</summary>")
    print()
    print("```")
    report_footer(problems, load_start, t_start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
