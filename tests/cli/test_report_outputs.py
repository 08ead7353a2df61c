"""`streammix report` writes nothing unless every plot could be made, and never into the
checkpoint or the data (run in-process: a small model, a few hundred rows)."""

import os

import numpy as np
import pytest
import zarr

import streammix
from streammix import GaussianMixture
from streammix.cli import main

from ..execution.test_outputs import tree_digest


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """root/x.zarr (400 x 2), root/x3.zarr (3 features) and root/ck, a model of x.zarr."""
    root = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(-2, 1, (200, 2)), rng.normal(2, 1, (200, 2))])
    zarr.create_array(str(root / "x.zarr"), data=X, chunks=(100, 2))
    zarr.create_array(str(root / "x3.zarr"), data=rng.normal(size=(50, 3)), chunks=(50, 3))
    GaussianMixture(2, random_state=0).fit(X).save(str(root / "ck"))
    return root


def report(*args) -> int:
    return main(["--no-progress", "report", *map(str, args)])


@pytest.mark.parametrize("data", ["missing.zarr", "missing.npy", "x3.zarr", "ck"])
def test_bad_data_fails_before_any_png_is_written(ws, tmp_path, data, capsys):
    out = tmp_path / "report"
    code = report(ws / "ck", "--out", out, "--data", ws / data, "--sample", 100)
    assert code == 3, capsys.readouterr().err  # bad or missing data
    assert not out.exists() or not os.listdir(out)  # no loglik.png left behind


def test_bad_data_leaves_an_existing_report_as_it_was(ws, tmp_path):
    out = tmp_path / "report"
    assert report(ws / "ck", "--out", out, "--data", ws / "x.zarr", "--sample", 200) == 0
    assert sorted(os.listdir(out)) == [".streammix-report", "components.png", "loglik.png"]
    before = tree_digest(out)
    assert report(ws / "ck", "--out", out, "--data", ws / "x3.zarr") == 3
    assert tree_digest(out) == before


@pytest.mark.parametrize("where", ["ck", "ck/inside", "x.zarr", "x.zarr/inside"])
def test_out_may_not_be_the_checkpoint_or_the_data(ws, where, capsys):
    before = {p: tree_digest(ws / p) for p in ("ck", "x.zarr")}
    code = report(ws / "ck", "--out", ws / where, "--data", ws / "x.zarr", "--sample", 100)
    assert code == 2
    assert "choose another directory" in capsys.readouterr().err
    assert {p: tree_digest(ws / p) for p in ("ck", "x.zarr")} == before
    assert streammix.load(str(ws / "ck")).n_components == 2


def test_out_may_not_be_an_existing_file(ws, tmp_path):
    out = tmp_path / "report.png"
    out.write_bytes(b"mine")
    assert report(ws / "ck", "--out", out) == 2
    assert out.read_bytes() == b"mine"


def test_a_users_folder_gets_the_pngs_beside_its_files_never_over_them(ws, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert report(ws / "ck", "--out", out, "--sample", 100) == 0  # added beside notes.txt
    assert (out / "notes.txt").read_text() == "mine" and (out / "loglik.png").exists()
    assert report(ws / "ck", "--out", out, "--sample", 100) == 0  # a rerun replaces ours
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "loglik.png").write_bytes(b"my own plot")
    capsys.readouterr()
    assert report(ws / "ck", "--out", theirs, "--sample", 100) == 2
    assert "loglik.png, not written by `streammix report`" in capsys.readouterr().err
    assert (theirs / "loglik.png").read_bytes() == b"my own plot"
    assert sorted(os.listdir(theirs)) == ["loglik.png"]
