"""benchmarks/bench_estep32.py: the float32 E-step's report runs end to end and shows
float32's rounding, not float64's; it refuses the types without a float32 E-step."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "benchmarks" / "bench_estep32.py"


def _run(*args, timeout=300):
    proc = subprocess.run([sys.executable, str(TOOL), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def test_quick_run_reports_speed_and_single_precision_accuracy():
    rc, out, err = _run("--quick")
    assert rc == 0, err[-3000:]
    assert re.search(r"^- vector width: CPU", out, re.M)
    row = next(line for line in out.splitlines() if line.startswith("| overlap full d=16"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    means, covs, lower = float(cells[8]), float(cells[9]), float(cells[11])
    assert 0 < max(means, covs) < 1e-4 and lower < 1e-6  # float32, not float64, rounding
    assert float(cells[12]) < 1e-10  # the float64 E-step is scikit-learn's
    assert re.search(r"Peaks: dgemm \d+ GFLOP/s, sgemm \d+ GFLOP/s", out)


def test_types_without_a_float32_estep_are_refused():
    rc, _, err = _run("--types", "diag")
    assert rc == 2 and "has no float32 E-step" in err
