"""benchmarks/bench_em.py's grid (issue 17): the n-per-cell rule, the overlapping data
and its start, the report's tables, and a tiny sub-grid run end to end in a subprocess
(a few seconds: one cell of a few thousand rows, a small peak matmul).

Nothing here measures speed: the subprocess runs check the report's shape only.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "benchmarks" / "bench_em.py"


def _load_tool():
    spec = importlib.util.spec_from_file_location("streammix_bench_em", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


B = _load_tool()


def _run(*args, timeout=300):
    """The tool in a subprocess, from the repository root: (returncode, stdout, stderr)."""
    proc = subprocess.run([sys.executable, str(TOOL), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


# ----------------------------------------------------------------------------- the grid
def test_default_grid_is_issue_17s():
    args = B.parse_args([])
    assert args.grid and args.iters == 2 and args.repeats == 3 and not args.memory_on
    cells = args.cells
    assert len(cells) == 5 * 3 * 4 * 2 == 120
    assert {(c["kind"], c["cov_type"], c["d"], c["K"]) for c in cells} == {
        (kind, t, d, K) for kind in ("separated", "overlap")
        for t in ("full", "tied", "diag", "spherical")
        for d in (2, 4, 16, 64, 128) for K in (4, 16, 64)}
    assert len({c["name"] for c in cells}) == 120


def test_sub_grid_and_cases_options():
    args = B.parse_args(["--grid-d", "4,16", "--grid-k", "16", "--grid-types", "diag",
                         "--grid-data", "overlap"])
    assert [(c["d"], c["K"], c["cov_type"], c["kind"]) for c in args.cells] == [
        (4, 16, "diag", "overlap"), (16, 16, "diag", "overlap")]
    cases = B.parse_args(["--cases", "full_d16,diag"])
    assert not cases.grid and cases.iters == 5 and cases.memory_on
    assert [c["name"] for c in cases.cells] == ["full_d16", "diag_d16", "diag_d64"]
    assert B.parse_args(["--cases", "all", "--no-memory"]).memory_on is False
    assert B.parse_args(["--memory"]).memory_on is True
    quick = B.parse_args(["--quick"])
    assert quick.grid and quick.repeats == 2 and len(quick.cells) == 32
    for bad in (["--cases", "full_d16", "--grid-d", "4"], ["--grid-types", "banana"],
                ["--grid-d", "0"], ["--grid-data", "separated,nope"]):
        with pytest.raises(SystemExit):
            B.parse_args(bad)


def test_n_rule_meets_the_target_within_its_bounds():
    seconds, n_min = 0.1, 50_000
    gib = 1 << 30
    for t in B.COV_TYPES:
        for d in B.GRID_D:
            for K in B.GRID_K:
                n, limit = B.grid_n(t, d, K, seconds, n_min, 1.5, 4.0)
                assert n % 1000 == 0 and n >= n_min
                assert n * d * 8 <= 1.5 * gib
                assert n * (8 * d + B.sklearn_bytes_per_row(d, K)) <= 4.0 * gib
                expected = n * B.expected_row_seconds(t, d, K)
                if limit == "":       # set by the time rule: just over the target
                    assert seconds <= expected < seconds + 1000 * B.expected_row_seconds(t, d, K)
                elif limit == "n_min":
                    assert n == n_min and expected >= seconds
                else:                 # capped: under the target
                    assert limit in ("data", "memory") and expected < seconds


def test_n_rule_scales_with_the_target_and_its_bounds():
    n1, limit1 = B.grid_n("diag", 16, 16, 0.1, 50_000, 100.0, 100.0)
    n2, limit2 = B.grid_n("diag", 16, 16, 0.2, 50_000, 100.0, 100.0)
    assert limit1 == limit2 == "" and abs(n2 / n1 - 2) < 0.01
    assert B.grid_n("full", 128, 64, 0.1, 50_000, 1.5, 4.0) == (50_000, "n_min")
    assert B.grid_n("full", 128, 64, 0.1, 12_345, 1.5, 4.0) == (13_000, "n_min")
    n, limit = B.grid_n("spherical", 2, 4, 100.0, 50_000, 0.01, 100.0)
    assert limit == "data" and n == int(0.01 * (1 << 30) // 16) // 1000 * 1000
    n, limit = B.grid_n("spherical", 2, 64, 100.0, 50_000, 100.0, 0.5)
    assert limit == "memory" and n * (16 + B.sklearn_bytes_per_row(2, 64)) <= 0.5 * (1 << 30)
    # the --grid-seconds option reaches the cells
    a = B.parse_args(["--grid-d", "16", "--grid-k", "16", "--grid-types", "diag",
                      "--grid-data", "overlap", "--grid-seconds", "0.2",
                      "--grid-data-gib", "100", "--grid-mem-gib", "100"])
    assert a.cells[0]["n"] == n2


def test_plan_estimates_every_cell():
    args = B.parse_args([])
    for c in args.cells:
        e = B.estimate_cell(c, args.repeats, args.iters)
        assert 0 < e["streammix"] < e["seconds"] and 0 < e["sklearn"] < e["seconds"]


# ----------------------------------------------------------------------------- data
def test_overlap_data_shape_spec_and_determinism():
    n, d, K = 10_000, 3, 5
    X = B.make_overlap_data(n, d, K, seed=0)
    assert X.shape == (n, d) and X.dtype == np.float64 and X.flags.c_contiguous
    assert np.isfinite(X).all()
    np.testing.assert_array_equal(X, B.make_overlap_data(n, d, K, seed=0))
    assert not np.array_equal(X, B.make_overlap_data(n, d, K, seed=1))
    weights, centres, scales = B.overlap_spec(d, K, 0)
    np.testing.assert_array_equal(weights, B.mixture_spec(d, K, 0)[0])  # same weights
    assert centres.shape == (K, d) and scales.shape == (K,)
    assert (np.abs(centres) <= 2.5).all() and ((scales >= 0.5) & (scales <= 2.0)).all()
    # the rows follow the mixture: mean and spread (loose, 10,000 rows)
    mean = weights @ centres
    var = weights @ (centres ** 2 + scales[:, None] ** 2) - mean ** 2
    np.testing.assert_allclose(X.mean(axis=0), mean, atol=0.1)
    np.testing.assert_allclose(X.var(axis=0), var, rtol=0.1)


def test_overlap_data_is_written_in_place():
    n, d, K = 200_000, 16, 8   # 24 MiB of data
    tracemalloc.start()
    try:
        X = B.make_overlap_data(n, d, K, seed=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < X.nbytes + 4 * (1 << 20), f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.parametrize("cov_type,shape", [
    ("full", (5, 3, 3)), ("tied", (3, 3)), ("diag", (5, 3)), ("spherical", (5,))])
def test_overlap_start(cov_type, shape):
    X = B.make_overlap_data(1_000, 3, 5, seed=0)
    init = B.overlap_initial_params(X, cov_type, 5, seed=0)
    np.testing.assert_array_equal(init["weights_init"], np.full(5, 0.2))
    means = init["means_init"]
    assert means.shape == (5, 3) and len({tuple(m) for m in means}) == 5
    assert all((X == m).all(axis=1).any() for m in means)   # rows of X
    prec = init["precisions_init"]
    assert prec.shape == shape
    expected = np.eye(3) if cov_type in ("full", "tied") else np.ones(shape)
    np.testing.assert_array_equal(prec, np.broadcast_to(expected, shape))
    again = B.overlap_initial_params(X, cov_type, 5, seed=0)
    np.testing.assert_array_equal(again["means_init"], means)
    assert B.cell_init("overlap", cov_type, X, 5, 0)["means_init"].tolist() == means.tolist()
    # the separated kind's start is the existing one
    np.testing.assert_array_equal(B.cell_init("separated", cov_type, X, 5, 0)["means_init"],
                                  B.initial_params(cov_type, 3, 5, 0)["means_init"])


# ----------------------------------------------------------------------------- report
def _result(kind, cov_type, d, K, sk, sm, n=100_000):
    return dict(name=B.cell_name(kind, cov_type, d, K), kind=kind, cov_type=cov_type, n=n,
                d=d, K=K, limit="", per_iter={"sklearn": list(sk), "streammix": list(sm)},
                t1={}, tm={}, lower={}, warnings={}, gen_seconds=0.0,
                flops=B.flops_per_iteration(cov_type, n, d, K))


def test_grid_report_marks_and_summaries(capsys):
    args = B.parse_args(["--grid-d", "4,16", "--grid-k", "4", "--grid-types", "full",
                         "--grid-data", "separated,overlap"])
    peak = 1e11
    results = [
        _result("separated", "full", 4, 4, [1.2, 1.0, 1.1], [0.10, 0.11, 0.12]),   # 10x
        _result("separated", "full", 16, 4, [0.5, 0.5, 0.5], [0.2, 0.2, 0.2]),     # 2.5x
        _result("overlap", "full", 4, 4, [3.0, 3.0, 3.0], [0.05, 0.05, 0.05]),      # 60x, short
        # a cell whose scikit-learn time is under 10 floors: the ceiling mark
        _result("overlap", "full", 16, 4, [9 * B.flops_per_iteration("full", 100_000, 16, 4)
                                           / peak] * 3, [0.2] * 3),
    ]
    problems = B.report_grid(results, peak, args)
    out = capsys.readouterr().out
    assert "| data | type | d | K |" in re.sub(r" +", " ", out)
    for col in ("ceiling", "x above floor", "spread", "streammix GFLOP/s (% peak)",
                "floor s/it"):
        assert col in out
    assert "**10.0x**" in out and "**60.0x**" in out and "2.50x" in out
    assert "9.09x-12.0x" in out                      # paired: 1.2/.10, 1.0/.11, 1.1/.12
    assert "9.00x †" in out                          # ceiling under 10
    assert "0.0500 ‡" in out                         # streammix under --grid-seconds
    assert "**separated**" in out and "**overlap**" in out and "K=4" in out
    assert "Cells at >= 10x: 2 of 4 (separated 1 of 2, overlap 1 of 2)" in out
    assert "ceiling < 10x (10x out of reach at the floor): 1" in out
    assert "ratio min 0.12x (overlap full d=16 K=4), median" in out
    assert len(problems) == 1 and "overlap full d=4 K=4" in problems[0]


# ----------------------------------------------------------------------------- runs
TINY = ["--grid-d", "4", "--grid-k", "4", "--grid-types", "diag", "--grid-data", "overlap",
        "--n", "4000", "--repeats", "1", "--iters", "1", "--peak-size", "300"]


def test_tiny_sub_grid_end_to_end():
    rc, out, err = _run(*TINY)
    assert rc == 0, err[-3000:]
    assert out.startswith("## bench_em: issue 17's grid")
    assert re.search(r"^vector width: CPU .*numba targets (AVX-512|AVX2|AVX|SSE2)", out, re.M)
    assert re.search(r"^numba target( pinned)?:", out, re.M)
    header = next(line for line in out.splitlines() if line.startswith("|") and "ceiling" in line)
    assert re.sub(r" +", " ", header).startswith("| data | type | d | K | n | sklearn s/it |")
    assert re.search(r"^\| +overlap \| +diag \| +4 \| +4 \| +4,000 \|", out, re.M)
    assert "**overlap**: scikit-learn s/it / streammix s/it" in out
    assert re.search(r"^Cells at >= 10x: \d of 1 \(overlap \d of 1\)", out, re.M)
    assert "lower_bound_ after 2 iterations" in out and "lower bounds differ" not in out
    assert "Total wall time" in out
    assert "[grid] cell 1/1" in err


def test_plan_lists_the_default_grid_without_timing():
    rc, out, err = _run("--plan")
    assert rc == 0, err[-3000:]
    rows = [line for line in out.splitlines() if re.match(r"^\| +\d+ \|", line)]
    assert len(rows) == 120
    assert re.search(r"^Estimated run time: .* for 120 cells, --repeats 3 --iters 2", out, re.M)
    assert "[peak]" not in err and "[time]" not in err


def test_avx2_pins_numba_to_haswell():
    rc, out, err = _run("--avx2", "--plan", *TINY[:8])
    assert rc == 0, err[-3000:]
    assert "numba target pinned: haswell (AVX2)" in out
    assert re.search(r"numba targets AVX2 \(256-bit\): a compiled float64 a\*x\+y loop uses "
                     r"0 zmm", out)
    m = re.search(r"NUMBA_CACHE_DIR=(\S+) \(temporary, for this run\)", out)
    assert m and not os.path.exists(m.group(1)), "the temporary numba cache is removed"
    assert out.splitlines()[3].startswith("$ ") and "--avx2" in out.splitlines()[3]


def test_byte_floor_bounds_a_cell_that_reads_more_than_it_computes(capsys):
    """With a read bandwidth, the floor is the larger of the flop and the byte floors:
    a diag cell at K = 4, d = 128 reads 1 KiB per row for 3.6 kflop, so at 1 GB/s
    and 1 TFLOP/s the bytes set its floor (and its ceiling)."""
    n, d, K = 100_000, 128, 4
    r = _result("overlap", "diag", d, K, [0.5] * 3, [0.25] * 3, n=n)
    x = B.derived(r, 1e12, bandwidth=1e9)
    assert x["bound"] == "bytes"
    assert x["floor"] == pytest.approx(8 * n * d / 1e9)
    assert x["ceiling"] == pytest.approx(0.5 / (8 * n * d / 1e9))
    assert x["above"] == pytest.approx(0.25 / (8 * n * d / 1e9))
    # without a bandwidth (or with a fast one) the flops bound it, as before
    assert B.derived(r, 1e12)["bound"] == "flops"
    assert B.derived(r, 1e12, bandwidth=1e15)["floor"] == pytest.approx(r["flops"] / 1e12)
    args = B.parse_args(["--grid-d", "128", "--grid-k", "4", "--grid-types", "diag",
                         "--grid-data", "overlap"])
    B.report_grid([r], 1e12, args, bandwidth=1e9)
    out = re.sub(r" +", " ", capsys.readouterr().out)
    assert "| floor s/it | bound | x above floor | ceiling |" in out
    assert "| 0.102 | bytes | 2.44x | 4.88x † |" in out


def test_read_bandwidth_is_measured():
    rate, times = B.measure_read_bandwidth(16, 2)
    assert len(times) == 2 and rate > 1e8       # any machine reads 100 MB/s
