"""`make demo`: the out-of-core story end to end on an embedded default.

1. generate a few million rows from a known mixture, written chunk by chunk to a Zarr
   array on disk (never whole in memory);
2. start a local Dask cluster (worker processes on this machine);
3. fit a GaussianMixture from the Zarr path, one line per EM iteration, saving a
   crash-safe checkpoint after every iteration (kill it and run it again: it resumes;
   run it again after it finished: it returns at once from the checkpoint);
4. show the fitted components against the truth, and stream predictions to Zarr.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
import warnings

import numpy as np


def make_truth(d: int, k: int, seed: int):
    """A seeded mixture: well-separated means, random full covariances, uneven weights."""
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=6.0, size=(k, d))
    A = rng.normal(scale=0.5, size=(k, d, d))
    covs = A @ A.transpose(0, 2, 1) + 0.5 * np.eye(d)
    weights = rng.dirichlet(np.full(k, 5.0))
    return weights, means, covs


def write_dataset(path: str, n: int, d: int, truth, chunk_rows: int, seed: int) -> None:
    """Draw n rows from ``truth`` and write them to a Zarr array, one chunk at a time."""
    import zarr

    weights, means, covs = truth
    chol = np.linalg.cholesky(covs)
    # uncompressed: EM re-reads the data every iteration, and an uncompressed local chunk
    # is memory-mapped straight into the kernel (noisy float64 data shrink by ~5% with
    # Blosc-LZ4, whose decoding costs ~+40% per diag pass; zarr's default zstd ~+130%)
    z = zarr.create_array(store=path, shape=(n, d), chunks=(chunk_rows, d), dtype="float64",
                          overwrite=True, compressors=None)
    for i, start in enumerate(range(0, n, chunk_rows)):
        rng = np.random.default_rng([seed, i])
        m = min(chunk_rows, n - start)
        labels = rng.choice(len(weights), size=m, p=weights)
        eps = rng.normal(size=(m, d))
        z[start : start + m] = means[labels] + np.einsum("nij,nj->ni", chol[labels], eps)


def truth_match(fitted_means: np.ndarray, true_means: np.ndarray) -> np.ndarray:
    """For each fitted component, the true component it stands for: the one-to-one
    pairing with the smallest total distance between means (Hungarian algorithm)."""
    from scipy.optimize import linear_sum_assignment

    D = np.linalg.norm(fitted_means[:, None, :] - true_means[None, :, :], axis=2)
    rows, cols = linear_sum_assignment(D)
    match = np.empty(len(fitted_means), dtype=np.int64)
    match[rows] = cols
    return match


class _HelpFormatter(argparse.RawDescriptionHelpFormatter,
                     argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and an option's default in --help where it says
    something (not None, False or 0, and not when the help already gives it)."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if default in (None, False, 0, argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


def _silent(*args, **kwargs) -> None:
    """``print`` under --quiet."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="streammix demo", description=__doc__,
                                 formatter_class=_HelpFormatter)
    ap.add_argument("--n", type=int, default=3_000_000, help="rows to generate")
    ap.add_argument("--d", type=int, default=8, help="features")
    ap.add_argument("--k", type=int, default=6, help="components")
    ap.add_argument("--covariance-type", default="full",
                    choices=("full", "tied", "diag", "spherical"),
                    help="the fit's covariance type")
    ap.add_argument("--n-init", type=int, default=None,
                    help="EM restarts, the best kept (default: 3 below 1,000,000 rows, where "
                         "a restart is cheap and one start may stop in a local optimum; "
                         "else 1)")
    ap.add_argument("--workers", type=int, default=2, help="local Dask worker processes")
    ap.add_argument("--dir", default="demo-data", help="where the Zarr arrays go")
    ap.add_argument("--seed", type=int, default=0,
                    help="random seed of the data and of the fit (default: 0)")
    ap.add_argument("--fresh", action="store_true",
                    help="delete the previous run's checkpoint first")
    # the global options of every streammix command, before or after "demo"
    ap.add_argument("--scheduler", metavar="ADDRESS", default=None,
                    help="fit on a running Dask scheduler instead of a local cluster")
    ap.add_argument("-q", "--quiet", action="store_true",
                    help="print nothing but warnings and errors")
    ap.add_argument("--no-progress", action="store_true",
                    help="no line per EM iteration")
    ap.add_argument("-v", "--verbose", action="count", default=0,
                    help="accepted for symmetry: the demo already prints every iteration")
    ap.add_argument("--log-format", choices=("text",), default="text",
                    help="the demo prints a walkthrough as text (JSON logs are for the job "
                         "commands)")
    args = ap.parse_args(argv)
    say = _silent if args.quiet else print  # the walkthrough; warnings and errors always

    from distributed import Client, LocalCluster

    from . import GaussianMixture, write_predictions
    from .persistence import current_version, list_versions

    os.makedirs(args.dir, exist_ok=True)
    ck_path = os.path.join(args.dir, "checkpoint")
    if args.fresh and os.path.exists(ck_path):
        import shutil

        shutil.rmtree(ck_path)
    data_path = os.path.join(args.dir, "points.zarr")
    truth = make_truth(args.d, args.k, args.seed)
    t0 = time.perf_counter()
    write_dataset(data_path, args.n, args.d, truth, chunk_rows=100_000, seed=args.seed)
    size_mib = args.n * args.d * 8 / 2**20
    say(f"[1/4] wrote {args.n:,} x {args.d} rows ({size_mib:,.0f} MiB) from a "
          f"{args.k}-component mixture to {data_path} in {time.perf_counter() - t0:.1f} s")

    with contextlib.ExitStack() as stack:
        if args.scheduler:
            client = stack.enter_context(Client(args.scheduler))
            say(f"[2/4] Dask scheduler at {args.scheduler}; dashboard "
                f"{client.dashboard_link}")
        else:
            cluster = stack.enter_context(LocalCluster(
                n_workers=args.workers, threads_per_worker=1, processes=True,
                host="127.0.0.1", dashboard_address=":0"))
            client = stack.enter_context(Client(cluster))
            say(f"[2/4] local Dask cluster: {args.workers} worker processes at "
                f"{cluster.scheduler_address}; dashboard {client.dashboard_link}")
        quiet_fit = args.quiet or args.no_progress
        n_init = args.n_init or (3 if args.n < 1_000_000 else 1)
        gmm = GaussianMixture(args.k, covariance_type=args.covariance_type, tol=1e-6,
                              max_iter=200, random_state=args.seed, n_init=n_init,
                              verbose=0 if quiet_fit else 2, verbose_interval=1)
        say(f"[3/4] fitting {gmm!r} from {data_path}, checkpoint {ck_path}")
        if current_version(ck_path) is not None:
            say(f"      a checkpoint exists (version {current_version(ck_path)}): resuming "
                  "from it (use --fresh to start over)")
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            gmm.fit(data_path, checkpoint=ck_path, checkpoint_every=1)
        fit_s = time.perf_counter() - t0
        say(f"      checkpoint versions on disk: {list_versions(ck_path)} (current "
              f"{current_version(ck_path)}); streammix.load({ck_path!r}) gives the model")
        say(f"      {gmm.n_iter_} iterations, converged={gmm.converged_}, {fit_s:.1f} s "
              f"(k-means|| initialisation included), mean log-likelihood "
              f"{gmm.lower_bound_:.6f}")

        w_true, m_true, _ = truth
        match = truth_match(gmm.means_, m_true)
        say("\n        k   weight  true w.  |mean - true mean|  mean (first 3 coordinates)")
        for k in np.argsort(-gmm.weights_):
            j = int(match[k])
            err = np.linalg.norm(m_true[j] - gmm.means_[k])
            head = ", ".join(f"{v:7.3f}" for v in gmm.means_[k][:3])
            say(f"      {k:3d}   {gmm.weights_[k]:.4f}   {w_true[j]:.4f}   {err:17.4f}   "
                  f"[{head}, ...]")
        worst = float(np.max(np.linalg.norm(m_true[match] - gmm.means_, axis=1)))
        spread = float(np.sqrt(np.max(np.linalg.eigvalsh(truth[2]))))
        if worst <= spread:
            say(f"      every true component found: its fitted mean within {worst:.3f} of "
                f"the truth (components spread ~{spread:.1f})")
        else:
            say(f"      NOT the true mixture: a fitted mean lies {worst:.2f} from the truth "
                f"(components spread ~{spread:.1f}): EM stopped in a local optimum (two "
                "components on one cluster, one on two); rerun with more restarts, e.g. "
                f"--n-init {max(3, 2 * n_init)} --fresh")

        pred_path = os.path.join(args.dir, "predictions.zarr")
        t0 = time.perf_counter()
        group = write_predictions(gmm, data_path, pred_path, overwrite=True)
        counts = np.bincount(group["labels"][:], minlength=args.k)
        say(f"\n[4/4] wrote labels, responsibilities and log-density for every row to "
              f"{pred_path} in {time.perf_counter() - t0:.1f} s; rows per component: "
              f"{counts.tolist()}")
        say(f"      BIC {gmm.bic(data_path):,.1f}   mean log-likelihood "
              f"{gmm.score(data_path):.6f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
