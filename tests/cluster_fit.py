"""Fit every covariance type through a Dask cluster and save the results: run on a
namespaced client host by the cluster tests (``python -m tests.cluster_fit ...``), as a
user's script would run on their own machine.

--init names an .npz with, per covariance type T, T_weights, T_means, T_precisions (the
shared start); --out gets T_weights, T_means, T_covariances, T_lower_bound, T_n_iter.
--upload copies a local Zarr array to --source (an s3:// URL) first.
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--scheduler", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--storage-options", default="{}")
    p.add_argument("--init", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--types", default="full,tied,diag,spherical")
    p.add_argument("--max-iter", type=int, default=4)
    p.add_argument("--upload", default=None)
    p.add_argument("--worker-stats", default=None,
                   help="write each worker's spill-to-disk count here (JSON)")
    args = p.parse_args(argv)
    options = json.loads(args.storage_options)
    if args.upload:
        import s3fs

        fs = s3fs.S3FileSystem(**options)
        bucket, key = args.source.removeprefix("s3://").split("/", 1)
        if not fs.exists(bucket):
            fs.mkdir(bucket)
        fs.put(args.upload, f"{bucket}/{key}", recursive=True)

    from distributed import Client

    from streammix import GaussianMixture, read_zarr

    init = np.load(args.init)
    out = {}
    with Client(args.scheduler, timeout=30) as client:
        X = read_zarr(args.source, storage_options=options or None)
        for t in args.types.split(","):
            g = GaussianMixture(int(init[f"{t}_means"].shape[0]), covariance_type=t, tol=0,
                                max_iter=args.max_iter, client=client,
                                weights_init=init[f"{t}_weights"],
                                means_init=init[f"{t}_means"],
                                precisions_init=init[f"{t}_precisions"]).fit(X)
            out.update({f"{t}_weights": g.weights_, f"{t}_means": g.means_,
                        f"{t}_covariances": g.covariances_,
                        f"{t}_lower_bound": g.lower_bound_, f"{t}_n_iter": g.n_iter_})
        if args.worker_stats:
            with open(args.worker_stats, "w") as f:
                json.dump(client.run(_spill_writes), f)
    np.savez(args.out, **out)


def _spill_writes(dask_worker) -> int:
    """How many times this worker wrote data to its spill directory."""
    metrics = getattr(dask_worker.data, "cumulative_metrics", {})
    return int(sum(v for (label, unit), v in metrics.items()
                   if label == "disk-write" and unit == "count"))


if __name__ == "__main__":
    main()
