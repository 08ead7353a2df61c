"""A kernel's cache never outlives the parts it inlined: after a numba source changes,
the next process drops the caches (numba stamps a function with its own file only)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_a_changed_kernel_source_drops_the_caches(tmp_path):
    import shutil

    import streammix

    src = os.path.dirname(streammix.__file__)
    copy = tmp_path / "streammix"
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns("*.nbi", "*.nbc", "*.stamp"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    env.pop("NUMBA_CACHE_DIR", None)
    code = ("import numpy as np, streammix\n"
            "from streammix.math.covariances import get_covariance_type\n"
            "g = streammix.GaussianMixture(2, covariance_type='diag', max_iter=1,"
            " random_state=0).fit(np.random.default_rng(0).normal(size=(500, 2)))\n")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                   cwd=tmp_path)
    caches = lambda: sorted(p.name for p in copy.rglob("*.nbi"))  # noqa: E731
    before = caches()
    assert before and (copy / "__pycache__" / "numba-sources.stamp").exists()
    # an unchanged tree keeps its caches
    subprocess.run([sys.executable, "-c", "import streammix"], env=env, check=True,
                   cwd=tmp_path)
    assert caches() == before
    # a part of a kernel changes (here only its mtime): every cache goes
    part = copy / "kernels" / "_common.py"
    os.utime(part, ns=(part.stat().st_atime_ns, part.stat().st_mtime_ns + 10**9))
    subprocess.run([sys.executable, "-c", "import streammix"], env=env, check=True,
                   cwd=tmp_path)
    assert caches() == []
    # a change elsewhere (the command line) keeps them
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                   cwd=tmp_path)
    before = caches()
    cli = copy / "cli" / "console.py"
    os.utime(cli, ns=(cli.stat().st_atime_ns, cli.stat().st_mtime_ns + 10**9))
    subprocess.run([sys.executable, "-c", "import streammix"], env=env, check=True,
                   cwd=tmp_path)
    assert caches() == before
