#!/usr/bin/env python
"""Online (stepwise) EM (issue 4): partial_fit throughput against batch EM, and the time
one stepwise pass takes to reach converged batch EM's held-out log-likelihood.

Data: bench_em's seeded blob mixture, d = 16, K = 16, float64: n = 1,000,000 training rows
(the rows of bench_em's d16 cases) and 200,000 held-out rows of the same mixture (another
random stream). Both estimators start from the same parameters (bench_em's
``initial_params``: weights_init / means_init / precisions_init), so
``OnlineGaussianMixture`` skips its buffering and initialisation.

(1) Throughput, diag and full. Batch EM: rows/s of one EM iteration of
    ``streammix.GaussianMixture`` on the n rows, per-iteration time = (T(1+m) - T(1)) / m
    after a warm-up fit. Online: rows/s of ``OnlineGaussianMixture.partial_fit`` over the
    same n rows in batches of 1,000 / 10,000 / 100,000 (a fresh model from the same start
    each time, after a warm-up on a few batches; the clock covers the whole loop: input
    checks, the statistics kernels, the blend, the M-step, re-seeding checks). Interleaved
    (batch, 10,000, 1,000, 100,000, batch, ...), medians quoted. Target: at batch size
    10,000, at least 80% of the batch kernel's rows/s; the table gives both the ratio of
    the medians and the median of each repeat's ratio (batch EM and the 10,000-row pass
    timed back to back, so less exposed to a shared machine's drift).
(2) Time to quality, diag and full. Batch EM from the start to convergence (tol = 1e-6,
    as scikit-learn counts it: change of the mean log-likelihood); its held-out mean
    log-likelihood L*. Then one pass of stepwise EM (default alpha, t0) in batches of
    10,000 over the same rows: its time, its held-out log-likelihood after the pass, and
    the first point (every --eval-every batches; the evaluation itself is off the clock)
    where it is within 1% of L*, i.e. (L* - L) / |L*| <= 0.01. The table also gives the
    gap of the start itself: from bench_em's start (close to the generating mixture) the
    1% bar is easy; --start far begins from random rows as means and the data's
    covariance, where batch EM needs many iterations.

Run from the repository root:

    .venv/bin/python benchmarks/bench_online.py            # full: a few minutes
    .venv/bin/python benchmarks/bench_online.py --quick    # smoke run (< 60 s)
    .venv/bin/python benchmarks/bench_online.py --cases diag --repeats 5
    .venv/bin/python benchmarks/bench_online.py --parts quality --start far

stdout is the report (markdown, for benchmarks/RESULTS.md); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from _common import (
    report_footer,
    fmt_s,
    initial_params,
    log,
    make_data,
    markdown_table,
    median,
    noisy,
    report_header,
    thread_info,
    timed,
)

D, K = 16, 16
COV_TYPES = ("diag", "full")
FULL = dict(n=1_000_000, n_test=200_000, batches=(1_000, 10_000, 100_000), repeats=5,
            iters=3, tol=1e-6, quality_batch=10_000, eval_every=5)
QUICK = dict(n=100_000, n_test=20_000, batches=(1_000, 10_000, 100_000), repeats=2,
             iters=2, tol=1e-4, quality_batch=10_000, eval_every=1)
TARGET_THROUGHPUT = 0.80   # partial_fit at batch 10,000 vs one batch EM iteration
QUALITY_BAR = 0.01         # within 1% of converged batch EM's held-out log-likelihood


def start_params(X, cov_type, args) -> dict:
    """weights_init / means_init / precisions_init both estimators start from.

    'bench_em': bench_em's initial_params (the generating covariances and centres moved
    by N(0, 0.5^2): a good start). 'far': a harder one, like a random_from_data init:
    K distinct random training rows as means, equal weights, every component with the
    covariance of the whole data."""
    if args.start == "bench_em":
        return initial_params(cov_type, D, K, args.seed)
    import numpy as np

    rng = np.random.default_rng([args.seed, 7])
    means = X[np.sort(rng.choice(X.shape[0], K, replace=False))].copy()
    C = np.cov(X[:100_000].T)
    if cov_type == "full":
        P = np.linalg.inv(C)
        prec = np.repeat((0.5 * (P + P.T))[None], K, axis=0)
    else:
        prec = np.repeat((1.0 / np.diag(C))[None], K, axis=0)
    return {"weights_init": np.full(K, 1.0 / K), "means_init": means,
            "precisions_init": np.ascontiguousarray(prec)}


def batch_gmm(cov_type, max_iter, tol, init):
    from streammix import GaussianMixture

    return GaussianMixture(n_components=K, covariance_type=cov_type, tol=tol,
                           max_iter=max_iter, random_state=0, **init)


def online_gmm(cov_type, init):
    from streammix import OnlineGaussianMixture

    return OnlineGaussianMixture(n_components=K, covariance_type=cov_type, random_state=0,
                                 **init)


def partial_fit_pass(model, X, batch: int):
    for s in range(0, X.shape[0], batch):
        model.partial_fit(X[s:s + batch])
    return model


# ----------------------------------------------------------------------------- (1)
def run_throughput(X, cov_type, args, seen):
    init = start_params(X, cov_type, args)
    n, m = X.shape[0], args.iters
    # warm-up: batch EM on the data, partial_fit on a few batches of each size
    timed(lambda: batch_gmm(cov_type, 1, 0.0, init).fit(X), seen)
    for b in args.batches:
        timed(lambda: partial_fit_pass(online_gmm(cov_type, init), X[:min(n, 3 * b)], b), seen)
    keys = ["batch"] + list(args.batches)
    per_iter, online_s, updates = [], {b: [] for b in args.batches}, {}
    for rep in range(args.repeats):
        a, _ = timed(lambda: batch_gmm(cov_type, 1, 0.0, init).fit(X), seen)
        c, _ = timed(lambda: batch_gmm(cov_type, 1 + m, 0.0, init).fit(X), seen)
        per_iter.append((c - a) / m)
        log(f"[throughput {cov_type}] rep {rep + 1}/{args.repeats} batch EM: "
            f"{(c - a) / m:.4f} s/iter ({n / ((c - a) / m):,.0f} rows/s)")
        # the target's batch size right after batch EM, so the two are timed close together
        for b in sorted(args.batches, key=lambda size: size != 10_000):
            sec, model = timed(lambda: partial_fit_pass(online_gmm(cov_type, init), X, b), seen)
            online_s[b].append(sec)
            updates[b] = int(model.n_updates_)
            log(f"[throughput {cov_type}] rep {rep + 1}/{args.repeats} partial_fit batch {b:,}: "
                f"{sec:.3f} s ({n / sec:,.0f} rows/s, {model.n_updates_} updates)")
    return dict(keys=keys, per_iter=per_iter, online_s=online_s, updates=updates, n=n)


# ----------------------------------------------------------------------------- (2)
def run_quality(X, X_test, cov_type, args, seen):
    init = start_params(X, cov_type, args)
    # how good is the start itself? (max_iter=0: the initial parameters, no EM step)
    _, start = timed(lambda: batch_gmm(cov_type, 0, args.tol, init).fit(X), seen)
    L_start = float(start.score(X_test))
    log(f"[quality {cov_type}] batch EM to convergence (tol={args.tol:g}) ...")
    sec_batch, gmm = timed(lambda: batch_gmm(cov_type, args.max_iter, args.tol, init).fit(X),
                           seen)
    L_star = float(gmm.score(X_test))
    log(f"[quality {cov_type}] batch EM: {sec_batch:.2f} s, {gmm.n_iter_} iterations, "
        f"converged {gmm.converged_}, held-out {L_star:.6f}")
    model = online_gmm(cov_type, init)
    b = args.quality_batch
    clock = 0.0
    reached = None
    trace = []
    n_batches = -(-X.shape[0] // b)
    for i, s in enumerate(range(0, X.shape[0], b), start=1):
        t0 = time.perf_counter()
        model.partial_fit(X[s:s + b])
        clock += time.perf_counter() - t0
        if i % args.eval_every == 0 or i == n_batches:
            L = float(model.score(X_test))      # off the clock
            gap = (L_star - L) / abs(L_star)
            trace.append((i, clock, L, gap))
            if reached is None and gap <= QUALITY_BAR:
                reached = (i, min(s + b, X.shape[0]), clock)
    L_end, gap_end = trace[-1][2], trace[-1][3]
    log(f"[quality {cov_type}] stepwise pass: {clock:.2f} s, held-out {L_end:.6f} "
        f"(gap {100 * gap_end:.3f}%), 1% bar reached at {reached}")
    return dict(L_start=L_start, gap_start=(L_star - L_start) / abs(L_star),
                sec_batch=sec_batch, n_iter=int(gmm.n_iter_), converged=bool(gmm.converged_),
                L_star=L_star, sec_online=clock, L_end=L_end, gap_end=gap_end,
                reached=reached, trace=trace, updates=int(model.n_updates_),
                eta_end=float(model.eta_))


# ----------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="OnlineGaussianMixture.partial_fit throughput and time to quality "
                    "against batch EM (streammix.GaussianMixture).")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: n={QUICK['n']:,}, {QUICK['n_test']:,} held out, "
                        f"tol={QUICK['tol']:g}, --repeats 2 --iters 2 (< 60 s)")
    p.add_argument("--cases", default="diag,full",
                   help="covariance types, comma-separated, from diag, full (default both)")
    p.add_argument("--parts", default="throughput,quality",
                   help="which measurements: throughput, quality (default both)")
    p.add_argument("--n", type=int, default=None, help="training rows (default 1,000,000)")
    p.add_argument("--n-test", type=int, default=None, help="held-out rows (default 200,000)")
    p.add_argument("--batches", default=None,
                   help="partial_fit batch sizes, comma-separated (default 1000,10000,100000)")
    p.add_argument("--repeats", type=int, default=None,
                   help="interleaved throughput repeats; default 3 (2 with --quick)")
    p.add_argument("--iters", "-m", type=int, default=None,
                   help="m in (T(1+m) - T(1)) / m for batch EM; default 3 (2 with --quick)")
    p.add_argument("--tol", type=float, default=None,
                   help="batch EM convergence tolerance for (2) (default 1e-6; 1e-4 with --quick)")
    p.add_argument("--max-iter", type=int, default=1000,
                   help="batch EM iteration cap for (2) (default 1000)")
    p.add_argument("--eval-every", type=int, default=None,
                   help="held-out evaluation every this many stepwise batches in (2) "
                        "(default 5; 1 with --quick)")
    p.add_argument("--start", choices=("bench_em", "far"), default="bench_em",
                   help="the common start: bench_em's initial_params (default; close to the "
                        "truth) or 'far' (random rows as means, the data's covariance)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    base = QUICK if args.quick else FULL
    args.n = args.n or base["n"]
    args.n_test = args.n_test or base["n_test"]
    args.repeats = args.repeats or base["repeats"]
    args.iters = args.iters or base["iters"]
    args.tol = base["tol"] if args.tol is None else args.tol
    args.eval_every = args.eval_every or base["eval_every"]
    args.quality_batch = base["quality_batch"]
    try:
        args.batches = (tuple(int(x) for x in args.batches.split(",") if x.strip())
                        if args.batches else base["batches"])
    except ValueError:
        p.error(f"--batches: expected comma-separated integers, got {args.batches!r}")
    if min(args.n, args.n_test, args.repeats, args.iters, args.max_iter, args.eval_every,
           *args.batches) < 1:
        p.error("sizes, --repeats, --iters, --max-iter and --eval-every must be >= 1")
    if args.n_test == args.n:
        args.n_test += 1   # make_data's stream depends on n: keep the held-out rows distinct
    args.covs = [c.strip() for c in args.cases.split(",") if c.strip()]
    args.parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    for c in args.covs:
        if c not in COV_TYPES:
            p.error(f"unknown case {c!r}; choose from {', '.join(COV_TYPES)}")
    for x in args.parts:
        if x not in ("throughput", "quality"):
            p.error(f"unknown part {x!r}; choose from throughput, quality")
    if not args.covs or not args.parts:
        p.error("nothing selected")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    report_header("bench_online")
    import streammix  # noqa: F401

    log(f"[data] n={args.n:,} (+{args.n_test:,} held out) d={D} K={K} ...")
    X = make_data(args.n, D, K, args.seed)
    X_test = make_data(args.n_test, D, K, args.seed)
    problems: list[str] = []
    seen: set[str] = set()
    thr, qual = {}, {}
    for cov_type in args.covs:
        if "throughput" in args.parts:
            thr[cov_type] = run_throughput(X, cov_type, args, seen)
        if "quality" in args.parts:
            qual[cov_type] = run_quality(X, X_test, cov_type, args, seen)

    from streammix import OnlineGaussianMixture

    defaults = OnlineGaussianMixture().get_params()
    print("```")
    for line in thread_info():
        print(line)
    print(f"data: bench_em's blob mixture, float64, n={args.n:,} training rows, "
          f"{args.n_test:,} held-out rows, d={D}, K={K}, seed {args.seed}; both estimators "
          f"start from the same *_init (--start {args.start}; no buffering for the online "
          "model)")
    print(f"online: OnlineGaussianMixture defaults alpha={defaults['alpha']}, "
          f"t0={defaults['t0']}, eta_min={defaults['eta_min']}")
    if thr:
        print(f"throughput: batch EM rows/s = n / ((T(1+{args.iters}) - T(1)) / {args.iters}); "
              "partial_fit rows/s = n / (time of the loop over all batches); medians of "
              f"{args.repeats} interleaved repeats after warm-ups")
    if qual:
        print(f"quality: batch EM tol={args.tol:g} (max_iter {args.max_iter}); stepwise: one "
              f"pass in batches of {args.quality_batch:,}, held-out log-likelihood every "
              f"{args.eval_every} batches (off the clock); bar: within "
              f"{100 * QUALITY_BAR:g}% of batch EM's held-out mean log-likelihood")
    print("```")
    print()
    if thr:
        header = ["covariance", "batch EM rows/s"]
        header += [f"partial_fit {b:,} rows/s" for b in args.batches]
        ref_b = 10_000 if 10_000 in args.batches else args.batches[len(args.batches) // 2]
        header += [f"{ref_b:,} vs batch (target >= {100 * TARGET_THROUGHPUT:.0f}%)",
                   f"{ref_b:,} vs batch, median of the repeats' ratios"]
        rows = []
        for cov_type, r in thr.items():
            n = r["n"]
            t_batch = median(r["per_iter"])
            rate_batch = n / t_batch if t_batch > 0 else float("nan")
            rates = {b: n / median(r["online_s"][b]) for b in args.batches}
            frac = rates[ref_b] / rate_batch
            # each repeat times batch EM and partial_fit seconds apart: the median of the
            # per-repeat ratios is less exposed to the machine's drift than the ratio
            # of the medians
            paired = median([t_b / t_o for t_b, t_o in zip(r["per_iter"], r["online_s"][ref_b])])
            rows.append([cov_type, f"{rate_batch:,.0f}"]
                        + [f"{rates[b]:,.0f} ({100 * rates[b] / rate_batch:.0f}%)"
                           for b in args.batches]
                        + [f"{100 * frac:.0f}% ({'ok' if frac >= TARGET_THROUGHPUT else 'below'})",
                           f"{100 * paired:.0f}%"])
        print(f"partial_fit throughput against one batch EM iteration (n={args.n:,}, d={D}, "
              f"K={K}; percentages of the batch EM rate)")
        print()
        print(markdown_table(header, rows))
        print()
    if qual:
        header = ["covariance", "start: gap", "batch EM: s to converge", "iterations", "held-out LL",
                  "stepwise 1 pass: s", "held-out LL", "gap", "1% bar reached after",
                  "s to 1% bar / batch s to converge"]
        rows = []
        for cov_type, r in qual.items():
            if r["reached"]:
                i, rows_seen, sec = r["reached"]
                where = f"{rows_seen:,} rows, {fmt_s(sec)} s"
                ratio = f"{sec / r['sec_batch']:.3f}" if r["sec_batch"] > 0 else "n/a"
            else:
                where, ratio = "not reached", "n/a"
            rows.append([cov_type, f"{100 * r['gap_start']:.2f}%", fmt_s(r["sec_batch"]),
                         f"{r['n_iter']}{'' if r['converged'] else ' (not converged)'}",
                         f"{r['L_star']:.5f}", fmt_s(r["sec_online"]), f"{r['L_end']:.5f}",
                         f"{100 * r['gap_end']:.3f}%", where, ratio])
        print("gap = (L* - L) / |L*|, L* = batch EM's held-out mean log-likelihood after "
              "convergence; start = the initial parameters both begin from")
        print()
        print(f"Time to quality: one stepwise pass (batches of {args.quality_batch:,}) against "
              f"batch EM to convergence (tol={args.tol:g}), same start, n={args.n:,}")
        print()
        print(markdown_table(header, rows))
        print()

    print("<details><summary>details</summary>")
    print()
    print("```")
    for cov_type, r in thr.items():
        samples = ", ".join(f"{x:.4f}" for x in r["per_iter"])
        print(f"{cov_type} batch EM s/iter [{samples}]")
        noisy(r["per_iter"], f"{cov_type} batch EM", problems)
        for b in args.batches:
            samples = ", ".join(f"{x:.4f}" for x in r["online_s"][b])
            print(f"{cov_type} partial_fit batch {b:,}: s per pass [{samples}], "
                  f"{r['updates'][b]} updates")
            noisy(r["online_s"][b], f"{cov_type} partial_fit batch {b:,}", problems)
    for cov_type, r in qual.items():
        print(f"{cov_type} start: held-out LL {r['L_start']:.6f} (gap {100 * r['gap_start']:+.3f}%)")
        print(f"{cov_type} stepwise trace (batches, s on the clock, held-out LL, gap):")
        for i, sec, L, gap in r["trace"]:
            print(f"  {i:5d}  {sec:8.3f}  {L:.6f}  {100 * gap:+.3f}%")
        print(f"  {r['updates']} updates, last eta {r['eta_end']:.4f}")
        if not r["converged"]:
            problems.append(f"{cov_type}: batch EM did not converge in {args.max_iter} iterations "
                            f"at tol={args.tol:g}")
        if r["reached"] is None:
            problems.append(f"{cov_type}: one stepwise pass did not reach within "
                            f"{100 * QUALITY_BAR:g}% of batch EM (gap {100 * r['gap_end']:.3f}%)")
    report_footer(problems, load_start, t_start, seen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
