"""Helpers for the command-line tests: a workspace holding a copy of configs/ and the
generated data the examples point at, and a runner for `python -m streammix`."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
N_ROWS, N_FEATURES, N_TRUE = 60_000, 8, 6


def run_cli(*args, cwd, timeout=300, env=None):
    """`python -m streammix ARGS` in ``cwd``; returns the CompletedProcess."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "streammix", "--no-progress", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=full_env)


def make_workspace(root, n=N_ROWS, seed=0):
    """root/configs (copied from the repository) and root/demo-data/points.zarr."""
    from streammix.demo import make_truth, write_dataset

    shutil.copytree(os.path.join(REPO, "configs"), os.path.join(root, "configs"))
    os.makedirs(os.path.join(root, "demo-data"))
    truth = make_truth(N_FEATURES, N_TRUE, 0)
    write_dataset(os.path.join(root, "demo-data", "points.zarr"), n, N_FEATURES, truth,
                  chunk_rows=15_000, seed=seed)
    return truth


@pytest.fixture(scope="module")
def fitted_workspace(tmp_path_factory):
    """A workspace where configs/fit-cluster.yaml has run (2 local worker processes)."""
    root = str(tmp_path_factory.mktemp("cli"))
    truth = make_workspace(root)
    proc = run_cli("fit", "configs/fit-cluster.yaml", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root, truth, proc


def points(root):
    import zarr

    return np.asarray(zarr.open_array(os.path.join(root, "demo-data", "points.zarr"),
                                      mode="r")[:])
