#!/usr/bin/env python
"""Seconds per variational iteration: streammix.BayesianGaussianMixture against
scikit-learn's, and against streammix's own GaussianMixture, in the same run.

All three get the same data (bench_em's seeded blob mixture) and the same start: the
posterior after one streammix iteration from k-means, set as the fitted attributes of
both Bayesian estimators with warm_start=True (a model migrated from scikit-learn does
exactly this), and its expected weights, means and precisions as GaussianMixture's
weights_init / means_init / precisions_init. tol=0, so nobody stops early.

    per-iteration time = (T(1 + m iterations) - T(1 iteration)) / m

so that validation, the priors' pass and scikit-learn's final E-step cancel out. The
systems are interleaved and medians are quoted. The report also checks that both
Bayesian fits end on the same evidence lower bound (relative difference).

    .venv/bin/python benchmarks/bench_bayesian.py              # 1,000,000 x 16, K = 16
    .venv/bin/python benchmarks/bench_bayesian.py --quick      # a smoke run
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (  # noqa: E402
    log,
    make_data,
    markdown_table,
    median,
    noisy,
    report_footer,
    report_header,
)

POSTERIOR = ("weight_concentration_", "mean_precision_", "means_", "degrees_of_freedom_",
             "covariances_", "precisions_cholesky_", "converged_", "lower_bound_")


def starting_point(X, cov_type, K):
    """The posterior after one streammix iteration from k-means (random_state 0)."""
    from streammix import BayesianGaussianMixture

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BayesianGaussianMixture(n_components=K, covariance_type=cov_type, max_iter=1,
                                       random_state=0).fit(X)


def bayes_fit(system, X, start, cov_type, K, max_iter):
    if system == "sklearn":
        from sklearn.mixture import BayesianGaussianMixture
    else:
        from streammix import BayesianGaussianMixture
    m = BayesianGaussianMixture(n_components=K, covariance_type=cov_type, max_iter=max_iter,
                                tol=0, warm_start=True)
    for name in POSTERIOR:
        v = getattr(start, name)
        setattr(m, name, tuple(np.array(a) for a in v) if isinstance(v, tuple)
                else np.array(v) if isinstance(v, np.ndarray) else v)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(X)
    return time.perf_counter() - t0, m


def gmm_fit(X, start, cov_type, K, max_iter):
    from streammix import GaussianMixture

    m = GaussianMixture(K, covariance_type=cov_type, max_iter=max_iter, tol=0,
                        weights_init=start.weights_, means_init=start.means_,
                        precisions_init=start.precisions_)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(X)
    return time.perf_counter() - t0, m


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=16)
    ap.add_argument("--K", type=int, default=16)
    ap.add_argument("--iters", type=int, default=2, help="m: iterations timed beyond the first")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--types", default="full,tied,diag,spherical")
    ap.add_argument("--quick", action="store_true", help="n = 100,000, 1 repeat")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.repeats = 100_000, 1
    load_start = os.getloadavg()[0]
    t_start = time.perf_counter()
    report_header("BayesianGaussianMixture: seconds per variational iteration",
                  ["numpy", "numba", "scikit-learn"])
    problems: list[str] = []
    log(f"data {args.n} x {args.d}, K = {args.K}")
    X = make_data(args.n, args.d, args.K, seed=0)
    rows, details = [], []
    m = args.iters
    for cov_type in args.types.split(","):
        start = starting_point(X, cov_type, args.K)
        # warm-up: compile or load the kernels, start the thread pools
        bayes_fit("streammix", X[:20_000], start, cov_type, args.K, 1)
        gmm_fit(X[:20_000], start, cov_type, args.K, 1)
        per = {"sklearn": [], "streammix": [], "gmm": []}
        ends = {}
        for r in range(args.repeats):
            for system in ("sklearn", "streammix", "gmm"):
                if system == "gmm":
                    t1, _ = gmm_fit(X, start, cov_type, args.K, 1)
                    tm, fitted = gmm_fit(X, start, cov_type, args.K, 1 + m)
                else:
                    t1, _ = bayes_fit(system, X, start, cov_type, args.K, 1)
                    tm, fitted = bayes_fit(system, X, start, cov_type, args.K, 1 + m)
                    ends[system] = float(np.squeeze(fitted.lower_bound_))
                per[system].append((tm - t1) / m)
                log(f"{cov_type} {system} repeat {r}: {(tm - t1) / m:.4f} s/iteration")
        for system, xs in per.items():
            noisy(xs, f"{cov_type} {system}", problems)
        sk, ours, gmm = (median(per[s]) for s in ("sklearn", "streammix", "gmm"))
        agree = abs(ends["sklearn"] - ends["streammix"]) / abs(ends["sklearn"])
        rows.append([cov_type, f"{sk:.3f}", f"{ours:.4f}", f"**{sk / ours:.1f}x**",
                     f"{gmm:.4f}", f"{ours / gmm:.2f}", f"{agree:.1e}"])
        details.append(f"{cov_type}: sklearn {per['sklearn']}, streammix {per['streammix']}, "
                       f"GaussianMixture {per['gmm']}")
    print(f"n = {args.n:,}, d = {args.d}, K = {args.K}; seconds per iteration, median of "
          f"{args.repeats} (each (T(1 + {m}) - T(1)) / {m}).")
    print()
    print(markdown_table(["covariance", "scikit-learn", "streammix", "speed-up",
                          "streammix GaussianMixture", "Bayesian / GMM",
                          "ELBO rel. diff."], rows))
    print()
    print("<details><summary>samples</summary>")
    print()
    print("```")
    for line in details:
        print(line)
    report_footer(problems, load_start, t_start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
