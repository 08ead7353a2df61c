"""`streammix demo` (what `make demo` runs), small: global options before or after the
command, -q prints nothing, the walkthrough ends with predictions for every row."""

import os

import numpy as np
import pytest
import zarr

import streammix

from .conftest import run_cli

SMALL = ("--n", "20000", "--workers", "1")


@pytest.mark.slow
def test_the_demo_runs_end_to_end_and_global_options_go_before_or_after(tmp_path):
    # 100,000 rows, seed 0: one EM start stops in a local optimum there (two components
    # on one cluster); the demo's restarts find the truth and say how close they came
    walk = run_cli("demo", "--n", "100000", "--workers", "1", "--dir", str(tmp_path / "a"),
                   cwd=str(tmp_path))
    assert walk.returncode == 0, walk.stderr
    assert "every true component found" in walk.stdout, walk.stdout
    for step in ("[1/4]", "[2/4]", "[3/4]", "[4/4]"):
        assert step in walk.stdout
    assert "Iteration" not in walk.stdout  # --no-progress (before the command): no lines
    labels = zarr.open_group(str(tmp_path / "a" / "predictions.zarr"), mode="r")["labels"]
    assert labels.shape == (100_000,)
    model = streammix.load(str(tmp_path / "a" / "checkpoint"))
    assert np.isfinite(model.lower_bound_) and model.n_components == 6

    for args in (("-q", "demo", *SMALL), ("demo", "-q", *SMALL)):
        out = tmp_path / args[0].strip("-")
        quiet = run_cli(*args, "--dir", str(out), cwd=str(tmp_path))
        assert quiet.returncode == 0, quiet.stderr
        assert quiet.stdout == ""  # -q before or after "demo": nothing but warnings/errors
        assert os.path.isdir(out / "predictions.zarr")


def test_demo_help_shows_the_defaults(tmp_path):
    shown = run_cli("demo", "--help", cwd=str(tmp_path))
    assert shown.returncode == 0
    assert "(default: 3000000)" in shown.stdout and "(default: demo-data)" in shown.stdout
    bad = run_cli("demo", "--log-format", "json", cwd=str(tmp_path))
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
