"""benchmarks/bench_full_blas.py: the full kernel against its own BLAS calls runs end to
end, reports a rate for each routine, their combined ceiling and the kernel for every
(d, K), compares the kernel with the ceiling only where it calls dsyrk, and refuses
dimensions where the kernel makes no dtrmm/dsyrk call."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from streammix.kernels import full
from streammix.kernels.jit import python_function as _py

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "benchmarks" / "bench_full_blas.py"
RATE = re.compile(r"^(\d+\.\d) \((\d+)%\)$")


def _run(*args, timeout=300):
    proc = subprocess.run([sys.executable, str(TOOL), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def test_quick_run_reports_each_call_the_ceiling_and_the_kernel():
    rc, out, err = _run("--quick")
    assert rc == 0, err[-3000:]
    assert re.search(r"^- vector width: CPU", out, re.M)
    assert re.search(r"^- dgemm peak .*: \d+\.\d GFLOP/s", out, re.M)
    rows = [line for line in out.splitlines() if re.match(r"^\| \d+ \| \d+ \|", line)]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in rows]
    assert [(int(c[0]), int(c[1])) for c in cells] == [(16, 4), (16, 8), (32, 4), (32, 8)]
    for c in cells:
        d, K = int(c[0]), int(c[1])
        assert int(c[2]) == _py(full.full_block_rows)(d)
        trmm, syrk, both, kernel = (RATE.match(v) for v in c[4:8])
        assert trmm and syrk and both and kernel, c
        t, s, b, k = (float(m.group(1)) for m in (trmm, syrk, both, kernel))
        # the two calls do the same flops: together they run at the harmonic mean
        assert abs(b - 2 / (1 / t + 1 / s)) <= 0.11, c
        assert k > 0
        if _py(full.use_khatri_rao)(K, d):  # d = 16, K = 8: one dgemm scatters them all
            assert c[8] == "n/a (Khatri-Rao scatter)", c
        else:  # the calls' share of the kernel's counted flops, over the ceiling
            share = k * 2 * d * d / (2 * d * d + 10 * d)
            ratio = 100 * share / b
            rounding = ratio * (0.05 / b + 0.05 / k)  # the table's one-decimal rates
            assert abs(int(c[8].rstrip("%")) - ratio) <= 0.5 + rounding + 1e-9, c


def test_dimensions_without_the_blas_path_are_refused():
    rc, _, err = _run("--d", str(full.TRIANGULAR_MIN_D - 8))
    assert rc == 2 and f"below {full.TRIANGULAR_MIN_D}" in err
