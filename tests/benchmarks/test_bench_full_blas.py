"""benchmarks/bench_full_blas.py: the full kernel against its own BLAS calls runs end to
end, reports a rate for each routine, their ceiling and the kernel for every (d, K),
and refuses dimensions where the kernel makes no dtrmm/dsyrk call."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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
    assert [tuple(int(c) for c in line.strip("|").split("|")[:2]) for line in rows] == \
        [(16, 4), (32, 4)]
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert int(cells[2]) == {16: 1024, 32: 1024}[int(cells[0])]  # full_block_rows
        trmm, syrk, both, kernel = (RATE.match(c) for c in cells[4:8])
        assert trmm and syrk and both and kernel, line
        t, s, b = (float(m.group(1)) for m in (trmm, syrk, both))
        assert min(t, s) <= b <= max(t, s)  # the two calls' combined rate lies between them
        assert float(kernel.group(1)) > 0
        assert re.match(r"^\d+%$", cells[8]), line  # K = 4 < d / 2: dsyrk, not Khatri-Rao


def test_dimensions_without_the_blas_path_are_refused():
    rc, _, err = _run("--d", "8")
    assert rc == 2 and "below 16" in err
