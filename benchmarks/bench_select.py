#!/usr/bin/env python
"""A grid of candidates fitted together (``streammix.select``) against the same candidates
fitted one after another, on Zarr arrays (zstd and uncompressed): wall time and bytes
read.

Grid: K = 2..12 x {full, diag} (22 candidates) on bench_em's seeded blob mixture,
init_params='k-means++' (a sample: the EM passes dominate), tol=1e-3, max_iter as given.
"bytes read" counts the chunk files' sizes each time one is read (a file read twice is
counted twice). The chosen model must be the same bits either way (checked).

    .venv/bin/python benchmarks/bench_select.py                  # 2,000,000 x 16
    .venv/bin/python benchmarks/bench_select.py --n 10000000     # the issue's size (long)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import DEFAULT_WORKDIR, ensure_zarr, log, markdown_table, report_footer, \
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2_000_000)
    ap.add_argument("--d", type=int, default=16)
    ap.add_argument("--chunk-rows", type=int, default=62_500)
    ap.add_argument("--kmax", type=int, default=12)
    ap.add_argument("--max-iter", type=int, default=30)
    ap.add_argument("--codecs", default="zstd,none")
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
        path, _ = ensure_zarr(args.workdir, args.n, args.d, 16, 0, args.chunk_rows, codec)
        warnings.simplefilter("ignore")
        counter["bytes"] = 0
        t0 = time.perf_counter()
        grid = select(path, n_components=ks, covariance_types=types, **kw)
        t_grid, b_grid = time.perf_counter() - t0, counter["bytes"]
        log(f"{codec}: together {t_grid:.1f} s, {b_grid / 2**30:.2f} GiB")
        counter["bytes"] = 0
        t0 = time.perf_counter()
        scores = []
        for t in types:
            for k in ks:
                m = GaussianMixture(k, covariance_type=t, **kw).fit(path)
                scores.append((m.bic(path), k, t, m))
        t_seq, b_seq = time.perf_counter() - t0, counter["bytes"]
        log(f"{codec}: one after another {t_seq:.1f} s, {b_seq / 2**30:.2f} GiB")
        best_seq = min(scores, key=lambda s: (s[0], s[1]))[3]
        same = all(np.array_equal(getattr(grid.best, a), getattr(best_seq, a))
                   for a in ("weights_", "means_", "covariances_"))
        if not same:
            problems.append(f"{codec}: the chosen models differ")
        iters = sum(r["n_iter"] for r in grid.table)
        rows.append([codec, f"{len(ks) * len(types)}", f"{iters}", f"{t_seq:.1f}",
                     f"{t_grid:.1f}", f"**{t_seq / t_grid:.1f}x**",
                     f"{b_seq / 2**30:.2f}", f"{b_grid / 2**30:.2f}",
                     f"{b_seq / max(b_grid, 1):.1f}x",
                     f"K={grid.best.n_components} {grid.best.covariance_type}"
                     + (" (same bits)" if same else " DIFFERENT")])
    print(f"n = {args.n:,} x {args.d}, chunks of {args.chunk_rows:,} rows; K = 2..{args.kmax}"
          f" x {{full, diag}}; max_iter {args.max_iter}, tol 1e-3, init k-means++; "
          "bytes include the passes that score BIC (one per candidate one after another, "
          "one shared)")
    print()
    print(markdown_table(["codec", "candidates", "EM iterations", "one by one s",
                          "together s", "speed-up", "one by one GiB read",
                          "together GiB read", "fewer bytes", "chosen"], rows))
    print()
    print("<details><summary>notes</summary>")
    print()
    print("```")
    report_footer(problems, load_start, t_start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
