"""The command line after checkpoint accidents: a lost pointer on a finished fit, a
damaged array metadata file (one log line, exit 4, then repair and continue)."""

from __future__ import annotations

import json
import os

import streammix
from streammix.persistence import current_version, list_versions

from .conftest import make_workspace, run_cli

COMMON = ["--set", "run.cluster=null", "--set", "run.max_iter=6", "--set", "run.tol=0",
          "--set", "run.checkpoint_interval=null"]


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def test_fit_with_a_lost_pointer_on_a_finished_fit(tmp_path):
    root = str(tmp_path)
    make_workspace(root, n=20_000)
    ck = os.path.join(root, "demo-data/models/cluster-fit")
    first = run_cli("fit", "configs/fit-cluster.yaml", *COMMON, cwd=root)
    assert first.returncode == 0, first.stderr
    versions = list_versions(ck)
    os.remove(os.path.join(ck, "CURRENT.json"))
    assert run_cli("inspect", ck, cwd=root).returncode == 4
    again = run_cli("fit", "configs/fit-cluster.yaml", *COMMON, cwd=root)
    assert again.returncode == 0, again.stderr
    assert "no CURRENT.json pointer" in again.stderr and "nothing to do" in again.stderr
    assert "version None" not in again.stderr and "saved" not in again.stderr
    assert list_versions(ck) == versions and current_version(ck) == versions[-1]
    info = run_cli("inspect", ck, "--json", cwd=root)
    assert info.returncode == 0 and json.loads(info.stdout)["finished"] is True


def test_damaged_array_metadata_one_line_then_repair_and_continue(tmp_path):
    root = str(tmp_path)
    make_workspace(root, n=20_000)
    ck = os.path.join(root, "demo-data/models/cluster-fit")
    whole = os.path.join(root, "demo-data/models/whole")
    assert run_cli("fit", "configs/fit-cluster.yaml", *COMMON, "--set",
                   f"run.checkpoint={whole}", cwd=root).returncode == 0

    done = run_cli("fit", "configs/fit-cluster.yaml", *COMMON, cwd=root)
    assert done.returncode == 0, done.stderr
    newest = current_version(ck)  # the finished fit; newest - 1 is iteration 5 of 6
    with open(os.path.join(ck, f"v{newest:06d}", "means", "zarr.json"), "w") as f:
        f.write("{}")
    for args in (("inspect", ck), ("fit", "configs/fit-cluster.yaml", *COMMON)):
        proc = run_cli(*args, cwd=root)
        assert proc.returncode == 4, proc.stderr
        lines = _error_lines(proc.stderr)
        assert len(lines) == 1 or args[0] == "fit", lines
        assert "means/zarr.json" in lines[-1] and f"version {newest}" in lines[-1]
        assert "Traceback" not in proc.stderr and "Task was destroyed" not in proc.stderr
    fixed = run_cli("repair", ck, cwd=root)
    assert fixed.returncode == 0 and f"now points to version {newest - 1}" in fixed.stderr
    rerun = run_cli("fit", "configs/fit-cluster.yaml", *COMMON, cwd=root)
    assert rerun.returncode == 0, rerun.stderr
    a, b = streammix.load(ck), streammix.load(whole)
    assert (a.means_ == b.means_).all() and a.lower_bounds_ == b.lower_bounds_
