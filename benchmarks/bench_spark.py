#!/usr/bin/env python
"""streammix against Apache Spark MLlib's GaussianMixture (issue 3): seconds per EM
iteration, full covariance (the only type Spark has), same machine, same run.

Data: bench_em's seeded blob mixture, n = 1,000,000, d = 16, K = 16, float64: the same
rows as bench_em's full_d16 case. streammix fits them as a numpy array (its in-process
thread pool, 2 threads here); Spark runs in ``local[2]`` (2 cores, driver memory 8g) on
the same rows, stored once as a Parquet file of ``features`` vectors in --workdir
(written by Spark itself from a CSV of the rows printed with 17 significant digits, or
from a Parquet file of columns when pyarrow is installed, then VectorAssembler), so the
values are bit-identical. The DataFrame given to Spark is not cached: Spark's fit then
persists its training instances (MEMORY_AND_DISK) itself, which is its fastest path and
what a user gets.

Spark's GaussianMixture cannot be given initial parameters, so the two are compared per
iteration, each from its own start:

    per-iteration time = (T(maxIter = 1 + m) - T(maxIter = 1)) / m,   tol = 0

for both (Spark: setTol(0.0); streammix: tol=0 from bench_em's initial parameters),
after a warm-up fit of each (JVM JIT, numba kernels). Reading the data, Spark's random
initialisation (a sample of the data) and its caching are in both T(1) and T(1+m) and
cancel. The systems are interleaved (Spark, streammix, Spark, streammix, ...) and
medians are quoted. Target: streammix at least 5x faster.

pyspark and Java are benchmark-only dependencies. Without them the script prints how to
install them and exits 0:

    .venv/bin/pip install pyspark        # and a Java 17 or 21 runtime:
    sudo apt-get install openjdk-17-jre-headless     # or set JAVA_HOME

Run from the repository root:

    .venv/bin/python benchmarks/bench_spark.py            # full: a few minutes
    .venv/bin/python benchmarks/bench_spark.py --quick    # smoke run (n = 20,000, < 60 s)
    .venv/bin/python benchmarks/bench_spark.py --repeats 5 --iters 5 --workdir /data/bench

stdout is the report (markdown, for benchmarks/RESULTS.md); progress (and Spark's own
log lines) go to stderr.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import time

import numpy as np

from _common import (
    report_footer,
    DEFAULT_WORKDIR,
    MiB,
    dir_bytes,
    fmt_s,
    initial_params,
    iter_data_blocks,
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
COV = "full"
FULL = dict(n=1_000_000, repeats=3, iters=3)
QUICK = dict(n=20_000, repeats=2, iters=2)
SYSTEMS = ("spark", "streammix")

INSTALL_HELP = """\
bench_spark: skipped, {why}.

pyspark and a Java runtime are benchmark-only dependencies of streammix (the tests never
need them). To run this benchmark:

    .venv/bin/pip install pyspark                    # Spark 4.x bundles its jars
    sudo apt-get install openjdk-17-jre-headless     # or any Java 17/21; or set JAVA_HOME
    .venv/bin/python benchmarks/bench_spark.py
"""


def java_version() -> str | None:
    """`java -version`'s first line, or None without a Java runtime."""
    java = None
    if os.environ.get("JAVA_HOME"):
        cand = os.path.join(os.environ["JAVA_HOME"], "bin", "java")
        if os.access(cand, os.X_OK):
            java = cand
    java = java or shutil.which("java")
    if java is None:
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (out.stderr or out.stdout).strip().splitlines()
    return text[0] if out.returncode == 0 and text else None


def skip(why: str) -> int:
    print(INSTALL_HELP.format(why=why))
    return 0


# ----------------------------------------------------------------------------- spark
def start_spark(cores: int):
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    spark = (SparkSession.builder
             .master(f"local[{cores}]")
             .appName("streammix-bench-spark")
             .config("spark.driver.memory", "8g")
             .config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.driver.host", "127.0.0.1")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.shuffle.partitions", str(2 * cores))
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def spark_blas(spark) -> str:
    """Which BLAS Spark's linear algebra uses (dev.ludovic.netlib): a pure-Java one, or a
    native one when libblas.so.3 is installed (e.g. apt-get install libopenblas0)."""
    blas = spark._jvm.dev.ludovic.netlib.blas
    parts = []
    for kind in ("JavaBLAS", "NativeBLAS"):
        try:
            parts.append(f"{kind} = {getattr(blas, kind).getInstance().getClass().getName()}")
        except Exception as exc:  # noqa: BLE001 - absent native BLAS raises
            parts.append(f"{kind} unavailable ({type(exc).__name__})")
    return "; ".join(parts)


def spark_data(spark, workdir: str, n: int, seed: int, partitions: int) -> str:
    """Path of a Parquet file with one ``features`` vector column holding the rows of
    make_data(n, D, K, seed), written once (chunk by chunk, never whole in Python) and
    cached under a name that encodes n, d, K and seed."""
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql.types import DoubleType, StructField, StructType

    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, f"spark_blobs_n{n}_d{D}_K{K}_seed{seed}.parquet")
    if os.path.exists(os.path.join(path, "_SUCCESS")):
        return path
    shutil.rmtree(path, ignore_errors=True)
    cols = [f"x{j}" for j in range(D)]
    t0 = time.perf_counter()
    if importlib.util.find_spec("pyarrow") is not None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        raw = path + ".columns.parquet"
        schema = pa.schema([(c, pa.float64()) for c in cols])
        with pq.ParquetWriter(raw, schema) as w:
            for block in iter_data_blocks(n, D, K, seed):
                w.write_table(pa.Table.from_arrays([pa.array(block[:, j]) for j in range(D)],
                                                   schema=schema))
        df = spark.read.parquet(raw)
        how = "pyarrow Parquet columns"
    else:
        raw = path + ".csv"
        with open(raw, "w") as f:
            for block in iter_data_blocks(n, D, K, seed):
                np.savetxt(f, block, fmt="%.17g", delimiter=",")
        schema = StructType([StructField(c, DoubleType(), False) for c in cols])
        df = spark.read.csv(raw, schema=schema, header=False)
        how = "CSV (%.17g, pyarrow not installed)"
    log(f"[data] rows written as {how} in {time.perf_counter() - t0:.1f} s; Spark converts ...")
    feats = VectorAssembler(inputCols=cols, outputCol="features").transform(df).select("features")
    feats.repartition(partitions).write.mode("overwrite").parquet(path)
    if os.path.isdir(raw):
        shutil.rmtree(raw)
    else:
        os.remove(raw)
    return path


def spark_fit(df, max_iter: int, seed: int):
    """(seconds, (numIter, mean log-likelihood)) of one Spark fit."""
    from pyspark.ml.clustering import GaussianMixture as SparkGMM

    gmm = SparkGMM(featuresCol="features", k=K, maxIter=max_iter, tol=0.0, seed=seed)
    seconds, model = timed(lambda: gmm.fit(df))
    s = model.summary
    return seconds, (int(s.numIter), float(s.logLikelihood))


def streammix_fit(X, max_iter: int, init: dict, seen):
    from streammix import GaussianMixture

    est = GaussianMixture(n_components=K, covariance_type=COV, tol=0.0, max_iter=max_iter,
                          random_state=0, **init)
    seconds, est = timed(lambda: est.fit(X), seen)
    return seconds, (int(est.n_iter_), float(est.lower_bound_))


# ----------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="streammix vs Spark MLlib GaussianMixture (local[2], full covariance): "
                    "seconds per EM iteration.")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: n={QUICK['n']:,}, --repeats 2 --iters 2 (< 60 s)")
    p.add_argument("--n", type=int, default=None, help=f"rows (default {FULL['n']:,})")
    p.add_argument("--repeats", type=int, default=None,
                   help="interleaved repeats; default 3 (2 with --quick)")
    p.add_argument("--iters", "-m", type=int, default=None,
                   help="m in (T(1+m) - T(1)) / m; default 3 (2 with --quick)")
    p.add_argument("--cores", type=int, default=2, help="Spark local[cores] (default 2)")
    p.add_argument("--partitions", type=int, default=None,
                   help="Parquet part files of the Spark data (default 2 x cores)")
    p.add_argument("--workdir", default=DEFAULT_WORKDIR,
                   help=f"where Spark's copy of the data is cached (default {DEFAULT_WORKDIR})")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    base = QUICK if args.quick else FULL
    args.n = args.n or base["n"]
    args.repeats = args.repeats or base["repeats"]
    args.iters = args.iters or base["iters"]
    args.partitions = args.partitions or 2 * args.cores
    if min(args.n, args.repeats, args.iters, args.cores, args.partitions) < 1:
        p.error("--n, --repeats, --iters, --cores and --partitions must be >= 1")
    if args.n < 5 * K:
        p.error(f"--n must be at least {5 * K}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if importlib.util.find_spec("pyspark") is None:
        return skip("pyspark is not installed")
    jv = java_version()
    if jv is None:
        return skip("no Java runtime found (`java` on PATH or $JAVA_HOME/bin/java)")
    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    report_header("bench_spark", ["pyspark", "pyarrow"])
    m = args.iters

    log(f"[spark] starting local[{args.cores}] ({jv}) ...")
    try:
        spark = start_spark(args.cores)
    except Exception as exc:  # noqa: BLE001 - a broken Java/Spark install: say so, skip
        return skip(f"Spark failed to start ({type(exc).__name__}: {str(exc)[:300]})")
    problems: list[str] = []
    try:
        log(f"[data] n={args.n:,} d={D} K={K} ...")
        path = spark_data(spark, args.workdir, args.n, args.seed, args.partitions)
        df = spark.read.parquet(path)
        parts = df.rdd.getNumPartitions()
        X = make_data(args.n, D, K, args.seed)
        # the same rows? compare Spark's column means with numpy's
        from pyspark.ml.stat import Summarizer

        row = df.select(Summarizer.mean(df.features).alias("m"), Summarizer.count(df.features)
                        .alias("c")).first()
        sp_mean, sp_count = np.asarray(row["m"].toArray()), int(row["c"])
        mean_err = float(np.max(np.abs(sp_mean - X.mean(axis=0))) / np.max(np.abs(X.mean(axis=0))))
        if sp_count != args.n or not mean_err < 1e-10:
            problems.append(f"Spark's data differ from numpy's: {sp_count:,} rows, column "
                            f"means differ by {mean_err:.2e} relative")
        init = initial_params(COV, D, K, args.seed)
        seen: set[str] = set()
        log("[warm-up] spark ...")
        sec, _ = spark_fit(df, 2, args.seed)
        log(f"[warm-up] spark maxIter=2: {sec:.2f} s; streammix ...")
        sec, _ = streammix_fit(X, 1, init, seen)
        log(f"[warm-up] streammix: {sec:.2f} s")
        per_iter = {s: [] for s in SYSTEMS}
        t1 = {s: [] for s in SYSTEMS}
        tm = {s: [] for s in SYSTEMS}
        info = {}
        for rep in range(args.repeats):
            for s in SYSTEMS:
                if s == "spark":
                    a, _ = spark_fit(df, 1, args.seed)
                    b, info[s] = spark_fit(df, 1 + m, args.seed)
                else:
                    a, _ = streammix_fit(X, 1, init, seen)
                    b, info[s] = streammix_fit(X, 1 + m, init, seen)
                t1[s].append(a)
                tm[s].append(b)
                per_iter[s].append((b - a) / m)
                log(f"[time] rep {rep + 1}/{args.repeats} {s}: T(1)={a:.3f} s T(1+{m})={b:.3f} s"
                    f" -> {(b - a) / m:.4f} s/iter")
        try:
            blas = spark_blas(spark)
        except Exception as exc:  # noqa: BLE001 - informative only
            blas = f"unknown ({type(exc).__name__})"
    finally:
        spark.stop()

    print("```")
    for line in thread_info():
        print(line)
    print(f"spark: local[{args.cores}], driver memory 8g, {jv}; data {path} "
          f"({dir_bytes(path) / MiB:.0f} MiB, {parts} partitions), not cached by us (Spark's "
          "fit persists its instances)")
    print(f"spark BLAS: {blas}")
    print(f"timing: per-iteration = (T(1+{m}) - T(1)) / {m} with maxIter = 1 and 1+{m}, tol=0, "
          f"median of {args.repeats} interleaved repeats (spark, streammix, ...), after a "
          "warm-up fit of each; streammix from bench_em's initial parameters, Spark from its "
          f"own random start (seed {args.seed})")
    print("```")
    print()
    med = {s: median(per_iter[s]) for s in SYSTEMS}
    header = ["data", "covariance", "Spark local[2] s/it", "streammix s/it",
              "Spark / streammix", "target >= 5x"]
    ratio = med["spark"] / med["streammix"] if med["streammix"] > 0 else float("nan")
    rows = [[f"{args.n:,} x {D}, K={K}", COV, fmt_s(med["spark"]), fmt_s(med["streammix"]),
             f"{ratio:.1f}x", "yes" if ratio >= 5 else "no"]]
    print(markdown_table(header, rows))
    print()
    print("<details><summary>details</summary>")
    print()
    print("```")
    for s in SYSTEMS:
        samples = ", ".join(f"{x:.4f}" for x in per_iter[s])
        print(f"{s:9s} s/iter [{samples}]  median T(1)={median(t1[s]):.3f} s  "
              f"T(1+{m})={median(tm[s]):.3f} s")
        noisy(per_iter[s], s, problems)
    n_sp, ll_sp = info["spark"]
    n_sm, lb_sm = info["streammix"]
    print(f"spark: numIter {n_sp} of maxIter {1 + m}, final log-likelihood {ll_sp:.10g} "
          f"(mean {ll_sp / args.n:.6f} per row)")
    print(f"streammix: n_iter_ {n_sm}, lower_bound_ {lb_sm:.10g} (mean log-likelihood before "
          "the last M-step)")
    print(f"data check: Spark count {sp_count:,}, column means relative difference from numpy "
          f"{mean_err:.2e}")
    if n_sp != 1 + m:
        problems.append(f"Spark ran {n_sp} iterations, not {1 + m}: the per-iteration figure "
                        "is off")
    if n_sm != 1 + m:
        problems.append(f"streammix ran {n_sm} iterations, not {1 + m}")
    report_footer(problems, load_start, t_start, [f"streammix: {w}" for w in seen])
    return 0


if __name__ == "__main__":
    sys.exit(main())
