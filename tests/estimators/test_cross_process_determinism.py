"""The same seed, data and chunking give the same bits in every process (design.md).

Each subprocess fits every covariance type on a numpy, a dask and a Zarr input (read
directly from its chunk files) and prints the fitted parameters' bytes; three processes
(different heap addresses, thread timings, k-means draws only through random_state)
must print the same bytes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import zarr

SCRIPT = r"""
import sys, warnings
import numpy as np, dask.array as da
from streammix import GaussianMixture
warnings.simplefilter("ignore")
X = np.load(sys.argv[1])
for cov in ("full", "diag", "tied", "spherical"):
    for src in (X, da.from_array(X, chunks=(1000, 4)), sys.argv[2]):
        gm = GaussianMixture(n_components=3, covariance_type=cov, tol=0, max_iter=5,
                             random_state=0,
                             means_init=np.array([[-3.0] * 4, [0.5] * 4, [3.0] * 4])).fit(src)
        print(cov, type(src).__module__, np.concatenate(
            [gm.weights_.ravel(), gm.means_.ravel(), gm.covariances_.ravel(),
             [gm.lower_bound_]]).tobytes().hex())
"""


def test_same_seed_same_bits_across_processes(tmp_path):
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(loc=c, size=(3000, 4)) for c in (-4, 0, 4)])
    np.save(tmp_path / "x.npy", X)
    zarr.create_array(store=str(tmp_path / "x.zarr"), data=X, chunks=(1000, 4),
                      compressors=None)

    def run():
        return subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "x.npy"),
                               str(tmp_path / "x.zarr")], check=True, capture_output=True,
                              text=True, timeout=600).stdout

    first = run()
    assert first.count("\n") == 12
    for _ in range(2):
        assert run() == first
