#!/usr/bin/env python
"""Checkpoints (issue 5): time of ``model.save(path)`` and ``streammix.load(path)`` for a
fitted full-covariance model with K = 64, d = 128, against one EM iteration at
n = 1,000,000, d = 128, K = 64 (full).

The model: ``streammix.GaussianMixture(64, covariance_type='full', max_iter=1)`` fitted
from bench_em's initial parameters on 20,000 rows of bench_em's blob mixture (d = 128,
K = 64); and an ``OnlineGaussianMixture`` started from the same parameters and updated
with one batch of those rows (its checkpoint also holds the running statistics, another
K x d x d array). Each is saved --repeats times to a fresh checkpoint directory (a new
checkpoint: the lock, the root group, one version, its verification, the pointer), then
--repeats times as the next version of one existing checkpoint (what
``fit(checkpoint=..., checkpoint_every=k)`` does; with keep_last=3, the oldest version is
deleted after the commit), and loaded --repeats times (every checksum verified). The
loaded model is checked against the saved one. Medians are quoted. The checkpoints go
to a fresh directory under --workdir (default: the system temp dir), deleted at the end;
the files are in the page cache when they are loaded, so a load from cold storage is
slower.

One EM iteration at n = 1,000,000 (about 2.2 TFLOP for full, d = 128, K = 64: tens of
seconds here) is by default measured at n = 100,000 and multiplied by 10 (the cost is
linear in n; the report says so); --em-n 1000000 measures it directly. Per-iteration
time = (T(1 + m) - T(1)) / m after a warm-up fit. (From bench_em's start the first
iteration is several times slower than the next ones at d = 128: its responsibilities
are rarely exactly 0 and often subnormal, while later ones are mostly exact zeros that
the kernel skips; T(1) absorbs that.) The same fit is also timed with
``checkpoint=<fresh dir>, checkpoint_every=1``: the difference per iteration is what
checkpointing every iteration costs (its payload also holds the fit's progress: the
current, best and first restart's parameters).

Run from the repository root:

    .venv/bin/python benchmarks/bench_checkpoint.py            # full: ~2-3 min
    .venv/bin/python benchmarks/bench_checkpoint.py --quick    # smoke run (< 60 s)
    .venv/bin/python benchmarks/bench_checkpoint.py --em-n 1000000 --repeats 3

stdout is the report (markdown, for benchmarks/RESULTS.md); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from _common import (
    report_footer,
    MiB,
    dir_bytes,
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

D, K = 128, 64
COV = "full"
TARGET_N = 1_000_000
FULL = dict(fit_n=20_000, em_n=100_000, repeats=5, em_repeats=2, iters=2)
QUICK = dict(fit_n=5_000, em_n=2_000, repeats=3, em_repeats=1, iters=2)


def flops_full(n: int) -> float:
    """bench_em's count for one full-covariance EM pass: n K (2 d^2 + 10 d)."""
    return n * K * (2.0 * D * D + 10.0 * D)


def build_models(args, seen):
    """(GaussianMixture, OnlineGaussianMixture), both fitted as the docstring says."""
    from streammix import GaussianMixture, OnlineGaussianMixture

    X = make_data(args.fit_n, D, K, args.seed)
    init = initial_params(COV, D, K, args.seed)
    sec, gmm = timed(lambda: GaussianMixture(K, covariance_type=COV, max_iter=1, tol=0.0,
                                             random_state=0, **init).fit(X), seen)
    log(f"[model] GaussianMixture K={K} d={D} full, 1 iteration on {args.fit_n:,} rows: {sec:.1f} s")
    online = OnlineGaussianMixture(K, covariance_type=COV, random_state=0, **init)
    sec, _ = timed(lambda: online.partial_fit(X), seen)
    log(f"[model] OnlineGaussianMixture, one batch of {args.fit_n:,} rows: {sec:.1f} s")
    return {"GaussianMixture": gmm, "OnlineGaussianMixture": online}


def same_model(a, b) -> str | None:
    """None if b has a's fitted parameters exactly, else what differs."""
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        x, y = np.asarray(getattr(a, name)), np.asarray(getattr(b, name, None))
        if x.shape != y.shape or not np.array_equal(x, y):
            return name
    if type(a) is not type(b):
        return f"type {type(b).__name__}"
    return None


def time_persistence(model, root: str, label: str, repeats: int, seen, problems) -> dict:
    import streammix

    fresh, nxt, loads = [], [], []
    size = 0
    for r in range(repeats):      # new checkpoint each time
        path = os.path.join(root, f"{label}-fresh-{r}")
        sec, _ = timed(lambda: model.save(path), seen)
        fresh.append(sec)
        size = dir_bytes(path)
    series = os.path.join(root, f"{label}-series")
    model.save(series)            # version 1; then time versions 2..repeats+1
    for r in range(repeats):
        sec, _ = timed(lambda: model.save(series), seen)
        nxt.append(sec)
    loaded = None
    for r in range(repeats):
        path = os.path.join(root, f"{label}-fresh-{r}")
        sec, loaded = timed(lambda: streammix.load(path), seen)
        loads.append(sec)
    diff = same_model(model, loaded)
    if diff:
        problems.append(f"{label}: the loaded model differs from the saved one ({diff})")
    for r in range(repeats):
        shutil.rmtree(os.path.join(root, f"{label}-fresh-{r}"), ignore_errors=True)
    series_versions = sorted(x for x in os.listdir(series) if x.startswith("v"))
    shutil.rmtree(series, ignore_errors=True)
    log(f"[persistence] {label}: save {median(fresh):.3f} s (new), {median(nxt):.3f} s (next "
        f"version), load {median(loads):.3f} s, {size / MiB:.1f} MiB")
    return dict(fresh=fresh, next=nxt, load=loads, size=size, versions=series_versions)


def time_em(args, root: str, seen) -> dict:
    """Per-iteration time of full EM at n = args.em_n, without and with checkpoint_every=1,
    and the number of versions each checkpointed fit saved (CURRENT.json's version)."""
    import json

    from streammix import GaussianMixture

    n, m = args.em_n, args.iters
    log(f"[em] generating n={n:,} d={D} ...")
    X = make_data(n, D, K, args.seed)
    init = initial_params(COV, D, K, args.seed)
    counter = [0]

    def fit(max_iter, checkpoint):
        """(seconds, saves)"""
        kw = {}
        if checkpoint:
            counter[0] += 1
            kw = dict(checkpoint=os.path.join(root, f"fit-{counter[0]}"), checkpoint_every=1)
        est = GaussianMixture(K, covariance_type=COV, max_iter=max_iter, tol=0.0,
                              random_state=0, **init)
        sec, _ = timed(lambda: est.fit(X, **kw), seen)
        saves = 0
        if checkpoint:
            try:
                with open(os.path.join(kw["checkpoint"], "CURRENT.json")) as f:
                    saves = int(json.load(f)["version"])
            except (OSError, ValueError, KeyError):
                saves = -1
            shutil.rmtree(kw["checkpoint"], ignore_errors=True)
        return sec, saves

    sec, _ = fit(1, False)
    log(f"[em] warm-up: {sec:.2f} s")
    out = {"plain": [], "checkpoint": [], "per_save": [], "saves": None}
    for rep in range(args.em_repeats):
        a, _ = fit(1, False)
        b, _ = fit(1 + m, False)
        c, _ = fit(1, True)
        e, saves = fit(1 + m, True)
        out["plain"].append((b - a) / m)
        out["checkpoint"].append((e - c) / m)
        out["saves"] = saves
        if saves > 0:
            out["per_save"].append((e - b) / saves)
        log(f"[em] rep {rep + 1}/{args.em_repeats}: T(1)={a:.2f} s T(1+{m})={b:.2f} s -> "
            f"{(b - a) / m:.3f} s/iter; with checkpoint_every=1: T(1)={c:.2f} s "
            f"T(1+{m})={e:.2f} s ({saves} saves) -> {(e - c) / m:.3f} s/iter")
    return out


def save_breakdown(model, root: str, repeats: int) -> dict[str, float]:
    """Median seconds per save spent in each step of CheckpointWriter.save (the steps
    wrapped with timers; 'other' is the rest: payload, bookkeeping)."""
    import streammix.persistence.storage as storage
    import streammix.persistence.store as store
    import streammix.persistence.version_format as fmt
    from streammix.persistence import model_to_payload

    spent: dict[str, list[float]] = {}
    patches = [(fmt, "encode_version", "encode (bytes, JSON)"),
               (fmt, "manifest_for", "manifest (SHA-256)"),
               (storage, "_sync_all", "fdatasync/fsync (parallel)"),
               (storage.Storage, "rename", "rename into place"),
               (storage.Storage, "write_text_atomic", "pointer (write, fsync, rename)"),
               (store.CheckpointWriter, "_prune", "prune old versions")]
    originals = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]

    def timed_call(fn, label):
        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent.setdefault(label, []).append(time.perf_counter() - t)
        return wrapper

    path = os.path.join(root, "breakdown")
    totals = []
    try:
        for obj, name, label in patches:
            setattr(obj, name, timed_call(getattr(obj, name), label))
        with store.CheckpointWriter(path, keep_last=3) as writer:
            for _ in range(repeats + 1):
                arrays, state = model_to_payload(model)
                t = time.perf_counter()
                writer.save(arrays, state)
                totals.append(time.perf_counter() - t)
    finally:
        for obj, name, fn in originals:
            setattr(obj, name, fn)
        shutil.rmtree(path, ignore_errors=True)
    out = {label: median(v[1:]) for label, v in spent.items()}  # the first save warms up
    out["total"] = median(totals[1:])
    known = sum(v for k, v in out.items() if k != "total")
    out["other (payload, open/write, lock, listing)"] = max(0.0, out["total"] - known)
    arrays, _ = model_to_payload(model)
    out["files per version"] = float(len(fmt.encode_version(arrays, {})) + 1)  # + manifest
    return out


def time_cadence(args, root: str, seen) -> list[dict]:
    """Whole-fit times without a checkpoint, with checkpoint_every=1, and with the
    configs' default cadence (checkpoint_every=1, checkpoint_interval=10), interleaved,
    medians of args.em_repeats (at least 3)."""
    from streammix import GaussianMixture

    cases = []
    X_small = make_data(1_000, 3, 3, args.seed)
    cases.append(("1,000 x 3, K=3, full, 200 iterations", X_small,
                  dict(n_components=3, covariance_type="full", tol=0.0, max_iter=200,
                       random_state=0)))
    X_big = make_data(args.em_n, D, K, args.seed)
    cases.append((f"{args.em_n:,} x {D}, K={K}, full, 8 iterations", X_big,
                  dict(n_components=K, covariance_type="full", tol=0.0, max_iter=8,
                       random_state=0, **initial_params(COV, D, K, args.seed))))
    modes = {"none": {}, "every iteration": dict(checkpoint_every=1),
             "default cadence": dict(checkpoint_every=1, checkpoint_interval=10.0)}
    out = []
    counter = [0]
    for label, X, kw in cases:
        GaussianMixture(**kw).fit(X)  # warm-up (compiles, page cache)
        times = {m: [] for m in modes}
        saves = {}
        for rep in range(max(5, args.em_repeats)):
            for mode, extra in modes.items():
                ck_kw = {}
                if extra:
                    counter[0] += 1
                    ck_kw = dict(checkpoint=os.path.join(root, f"cadence-{counter[0]}"), **extra)
                est = GaussianMixture(**kw)
                sec, _ = timed(lambda: est.fit(X, **ck_kw), seen)
                times[mode].append(sec)
                if extra:
                    import streammix.persistence as P

                    saves[mode] = P.current_version(ck_kw["checkpoint"])
                    shutil.rmtree(ck_kw["checkpoint"], ignore_errors=True)
                else:
                    saves["iterations"] = est.n_iter_
        log(f"[cadence] {label}: " + ", ".join(f"{m} {median(t):.3f} s"
                                                for m, t in times.items()))
        out.append(dict(label=label, times=times, saves=saves))
    return out


def print_cadence(results: list[dict]) -> None:
    print("Whole fits: no checkpoint, checkpoint_every=1, and the configs' default cadence "
          "(checkpoint_every=1, checkpoint_interval=10 s: a save waits 10 s and 20x the last "
          "save's time); medians, interleaved")
    print()
    header = ["fit", "iterations", "no checkpoint s", "every iteration s (saves)",
              "overhead", "default cadence s (saves)", "overhead"]
    rows = []
    for r in results:
        t, sv = r["times"], r["saves"]
        base = median(t["none"])
        every, default = median(t["every iteration"]), median(t["default cadence"])
        rows.append([r["label"], str(sv.get("iterations")), fmt_s(base),
                     f"{fmt_s(every)} ({sv.get('every iteration')})",
                     f"{100 * (every - base) / base:+.1f}%",
                     f"{fmt_s(default)} ({sv.get('default cadence')})",
                     f"{100 * (default - base) / base:+.1f}%"])
    print(markdown_table(header, rows))
    print()


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="streammix checkpoints: save/load time of a K=64, d=128 full model "
                    "against one EM iteration at n=1M.")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: model fitted on {QUICK['fit_n']:,} rows, EM iteration "
                        f"measured at n={QUICK['em_n']:,} (x{TARGET_N // QUICK['em_n']}), "
                        f"--repeats {QUICK['repeats']} (< 60 s)")
    p.add_argument("--repeats", type=int, default=None,
                   help=f"saves and loads per model (default {FULL['repeats']})")
    p.add_argument("--em-n", type=int, default=None,
                   help=f"n at which one EM iteration is measured, then scaled to {TARGET_N:,} "
                        f"(default {FULL['em_n']:,}; {TARGET_N} measures it directly)")
    p.add_argument("--em-repeats", type=int, default=None,
                   help=f"repeats of the EM timing (default {FULL['em_repeats']})")
    p.add_argument("--iters", "-m", type=int, default=None,
                   help=f"m in (T(1+m) - T(1)) / m (default {FULL['iters']})")
    p.add_argument("--fit-n", type=int, default=None,
                   help=f"rows the saved model is fitted on (default {FULL['fit_n']:,})")
    p.add_argument("--no-em", action="store_true", help="only time save and load")
    p.add_argument("--d", type=int, default=D, help=f"features of the saved model (default {D})")
    p.add_argument("--k", type=int, default=K, help=f"components of the saved model (default {K})")
    p.add_argument("--target-n", type=int, default=TARGET_N,
                   help=f"rows of the EM iteration saves are compared with (default {TARGET_N:,})")
    p.add_argument("--cadence", action="store_true",
                   help="also time whole fits with checkpointing at the configs' default "
                        "cadence (checkpoint_every=1, checkpoint_interval=10) and at every "
                        "iteration, against no checkpoint: a 1,000-row fit of a tiny model "
                        "(many fast iterations) and --em-n rows of the d x K model")
    p.add_argument("--workdir", default=None,
                   help="where the checkpoints are written (a fresh temporary directory "
                        "inside it, deleted at the end; default: the system temp dir)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    base = QUICK if args.quick else FULL
    for k in ("repeats", "em_n", "em_repeats", "iters", "fit_n"):
        if getattr(args, k) is None:
            setattr(args, k, base[k])
    if min(args.repeats, args.em_n, args.em_repeats, args.iters) < 1:
        p.error("--repeats, --em-n, --em-repeats and --iters must be >= 1")
    if args.fit_n < K:
        p.error(f"--fit-n must be at least {K}")
    return args


def main(argv=None) -> int:
    global D, K, TARGET_N
    args = parse_args(argv)
    D, K, TARGET_N = args.d, args.k, args.target_n
    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    report_header("bench_checkpoint", ["zarr", "numcodecs"])
    import streammix  # noqa: F401

    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
    root = tempfile.mkdtemp(prefix="streammix-bench-ckpt-", dir=args.workdir)
    problems: list[str] = []
    seen: set[str] = set()
    try:
        models = build_models(args, seen)
        pers = {label: time_persistence(model, root, label, args.repeats, seen, problems)
                for label, model in models.items()}
        em = None if args.no_em else time_em(args, root, seen)
        cadence = time_cadence(args, root, seen) if args.cadence else None
        breakdown = {label: save_breakdown(model, root, args.repeats)
                     for label, model in models.items()}
    finally:
        shutil.rmtree(root, ignore_errors=True)

    scale = TARGET_N / args.em_n
    print("```")
    for line in thread_info():
        print(line)
    print(f"checkpoints in {os.path.dirname(root)} (a fresh temporary directory, removed at "
          f"the end); median of {args.repeats} saves to new checkpoints, {args.repeats} saves "
          f"as the next version of one checkpoint (keep_last=3), {args.repeats} loads")
    if em:
        how = ("measured directly" if args.em_n == TARGET_N else
               f"measured at n={args.em_n:,} and multiplied by {scale:g}")
        print(f"EM iteration at n={TARGET_N:,}: {how}; (T(1+{args.iters}) - T(1)) / "
              f"{args.iters}, median of {args.em_repeats}, after a warm-up fit; "
              f"{flops_full(TARGET_N) / 1e12:.2f} TFLOP per iteration at n={TARGET_N:,}")
    print("```")
    print()
    it_1m = median(em["plain"]) * scale if em else float("nan")
    header = ["model", "K", "d", "checkpoint MiB", "save s (new)", "save s (next version)",
              "load s"]
    if em:
        header += [f"EM iteration s at n={TARGET_N:,}", "save / iteration", "load / iteration"]
    rows = []
    for label, r in pers.items():
        s_new, s_next, ld = median(r["fresh"]), median(r["next"]), median(r["load"])
        row = [label, str(K), str(D), f"{r['size'] / MiB:.1f}", fmt_s(s_new), fmt_s(s_next),
               fmt_s(ld)]
        if em:
            row += [fmt_s(it_1m) + ("" if args.em_n == TARGET_N else f" (x{scale:g})"),
                    f"{100 * max(s_new, s_next) / it_1m:.1f}%", f"{100 * ld / it_1m:.1f}%"]
        rows.append(row)
    print(f"Save and load of a fitted full-covariance model, K={K}, d={D}, against one EM "
          f"iteration at n={TARGET_N:,}")
    print()
    print(markdown_table(header, rows))
    print()
    if em:
        plain, ck = median(em["plain"]), median(em["checkpoint"])
        per_save = median(em["per_save"])
        header = ["n", "s/it", "s/it with checkpoint_every=1", "difference",
                  "s per save in the fit", f"save / iteration at n={TARGET_N:,}"]
        rows = [[f"{args.em_n:,}", fmt_s(plain), fmt_s(ck), fmt_s(ck - plain), fmt_s(per_save),
                 f"{100 * per_save / it_1m:.1f}%"]]
        print(f"GaussianMixture.fit(X, checkpoint=..., checkpoint_every=1) against fit(X): "
              f"full, d={D}, K={K}; s per save = (T_checkpoint(1+{args.iters}) - "
              f"T(1+{args.iters})) / saves, {em['saves']} saves (one per iteration and one "
              "at the end)")
        print()
        print(markdown_table(header, rows))
        print()
    print("Where a save goes (median seconds per save; 'other' is the rest of "
          "CheckpointWriter.save)")
    print()
    labels = list(breakdown)
    steps = [k for k in breakdown[labels[0]] if k not in ("total", "files per version")]
    rows = [[step] + [fmt_s(breakdown[m][step]) for m in labels] for step in steps]
    rows.append(["total"] + [fmt_s(breakdown[m]["total"]) for m in labels])
    rows.append(["files per version"] + [f"{breakdown[m]['files per version']:.0f}"
                                         for m in labels])
    print(markdown_table(["step"] + labels, rows))
    print()
    if cadence:
        print_cadence(cadence)
    print("<details><summary>details</summary>")
    print()
    print("```")
    for label, r in pers.items():
        for k in ("fresh", "next", "load"):
            samples = ", ".join(f"{x:.4f}" for x in r[k])
            print(f"{label} {k:5s} s [{samples}]")
            noisy(r[k], f"{label} {k}", problems)
        print(f"{label}: versions left in the series checkpoint: {', '.join(r['versions'])}")
    if em:
        for k in ("plain", "checkpoint", "per_save"):
            xs = em[k]
            unit = "s/save" if k == "per_save" else "s/iter"
            print(f"EM n={args.em_n:,} {k:10s} {unit} [{', '.join(f'{x:.3f}' for x in xs)}]")
            noisy(xs, f"EM {k}", problems)
    report_footer(problems, load_start, t_start, seen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
