"""Kernels run the same code whether a process compiled them or loaded them from numba's
cache (kernels/jit.py): otherwise the first process after an install computed other
bits, in the last place, than every later one."""

import os
import subprocess
import sys

import pytest

from streammix.kernels import diag

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_SCRIPT = """
import hashlib, numpy as np, streammix
from tests.conftest import make_blobs
X, _ = make_blobs(30_000, 8, 6, seed=0)
m = streammix.OnlineGaussianMixture(6, covariance_type="diag", eta_min=0.01, random_state=0)
for a in range(0, 30_000, 10_000):
    m.partial_fit(X[a:a + 10_000])
print(hashlib.sha256(m.means_.tobytes() + m.covariances_.tobytes()).hexdigest())
"""


@pytest.mark.slow
def test_a_process_that_compiles_the_kernels_gets_the_bits_of_one_that_loads_them(tmp_path):
    """Two processes on an empty numba cache (NUMBA_CACHE_DIR): the first compiles the
    online path (a parallel region and fast-math kernels), the second loads it."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache"),
           "PYTHONPATH": REPO}
    runs = [subprocess.run([sys.executable, "-c", _SCRIPT], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=600) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
    assert os.listdir(tmp_path / "numba-cache")  # the first run saved what it compiled
    assert runs[0].stdout == runs[1].stdout


def test_entries_are_cached_and_parts_are_not():
    assert diag.diag_stats_chunks._cache.__class__.__name__ != "NullCache"
    assert diag._diag_stats_chunks._cache.__class__.__name__ == "NullCache"
    assert diag._diag_stats._cache.__class__.__name__ == "NullCache"
    assert diag.diag_stats_chunks.py_func is diag._diag_stats_chunks.py_func

