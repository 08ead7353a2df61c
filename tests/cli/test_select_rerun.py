"""`streammix select` run again on unchanged inputs is a no-op: no new checkpoint
version, no rewritten selection.json or plot (run in-process on a few hundred rows)."""

import json
import os

import numpy as np
import pytest
import zarr

import streammix
from streammix.cli import main
from streammix.persistence import current_version, list_versions


def _workspace(root, seed=0):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(-3, 1, (200, 2)), rng.normal(3, 0.5, (200, 2))])
    zarr.create_array(str(root / "x.zarr"), data=X, chunks=(100, 2), overwrite=True)
    config = root / "select.yaml"
    config.write_text("source:\n  type: zarr\n  path: x.zarr\nmodel:\n"
                      "  estimator: GaussianMixture\n  n_init: 1\nselect:\n"
                      "  n_components: [1, 2, 3]\n  covariance_types: [full, diag]\n"
                      "  plot: selection.png\nrun:\n  checkpoint: models/selected\n"
                      "  max_iter: 50\n  random_state: 0\n")
    return str(config)


def _mtimes(*paths):
    return [os.stat(p).st_mtime_ns for p in paths]


def test_rerunning_select_on_unchanged_inputs_saves_nothing(tmp_path, capsys):
    config = _workspace(tmp_path)
    ck = str(tmp_path / "models" / "selected")
    files = (os.path.join(ck, "selection.json"), str(tmp_path / "selection.png"))
    assert main(["--no-progress", "select", config]) == 0
    first = capsys.readouterr()
    assert "chosen by BIC" in first.out and "saved the chosen model" in first.err
    versions, current = list_versions(ck), current_version(ck)
    assert streammix.load(ck).n_components == 2
    with open(files[0]) as f:
        selection = f.read()
    stamps = _mtimes(*files)

    assert main(["--no-progress", "select", config]) == 0
    second = capsys.readouterr()
    assert "nothing to do" in second.err and "already holds the chosen model" in second.err
    assert "saved the chosen model" not in second.err
    assert list_versions(ck) == versions and current_version(ck) == current
    assert _mtimes(*files) == stamps  # neither the summary nor the plot was rewritten
    with open(files[0]) as f:
        assert f.read() == selection
    assert json.loads(selection)["chosen"]["n_components"] == 2


def test_select_on_changed_data_saves_a_new_version(tmp_path, capsys):
    config = _workspace(tmp_path)
    ck = str(tmp_path / "models" / "selected")
    assert main(["--no-progress", "select", config]) == 0
    before = current_version(ck)
    capsys.readouterr()
    _workspace(tmp_path, seed=1)  # other rows: every candidate is fitted again
    assert main(["--no-progress", "select", config]) == 0
    assert "saved the chosen model" in capsys.readouterr().err
    assert current_version(ck) == before + 1


def _tree(path):
    out = {}
    for here, _, names in os.walk(path):
        for n in names:
            with open(os.path.join(here, n), "rb") as f:
                out[os.path.relpath(os.path.join(here, n), path)] = f.read()
    return out


@pytest.mark.parametrize("plot, problem", [
    ("x.zarr/zarr.json", "overlaps the data"),
    ("models/selected/zarr.json", "overlaps the checkpoint"),
    ("models", "overlaps the checkpoint"),
    ("notes.txt", "is an existing file that is not a PNG"),
    ("plots", "is a folder"),
])
def test_select_plot_never_replaces_data_a_checkpoint_or_a_users_file(tmp_path, capsys,
                                                                       plot, problem):
    config = _workspace(tmp_path)
    assert main(["--no-progress", "select", config]) == 0  # a checkpoint to protect
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "plots").mkdir()
    before = _tree(tmp_path)
    capsys.readouterr()
    assert main(["--no-progress", "select", config,
                 "--set", f"select.plot={tmp_path / plot}"]) == 2
    err = capsys.readouterr().err
    assert "select.plot" in err and problem in err
    assert _tree(tmp_path) == before  # nothing written, nothing replaced


def test_a_checkpoint_inside_the_data_is_refused_before_anything_is_made(tmp_path, capsys):
    config = _workspace(tmp_path)
    before = _tree(tmp_path / "x.zarr")
    assert main(["--no-progress", "select", config,
                 "--set", f"run.checkpoint={tmp_path / 'x.zarr' / 'models'}"]) == 2
    assert "overlaps source.path" in capsys.readouterr().err
    assert _tree(tmp_path / "x.zarr") == before


@pytest.mark.parametrize("command, estimator", [("fit", "GaussianMixture"),
                                                ("update", "OnlineGaussianMixture")])
def test_fit_and_update_refuse_a_checkpoint_inside_the_data(tmp_path, capsys, command,
                                                            estimator):
    _workspace(tmp_path)
    config = tmp_path / f"{command}.yaml"
    config.write_text(f"source:\n  type: zarr\n  path: x.zarr\nmodel:\n  estimator: "
                      f"{estimator}\n  n_components: 2\nrun:\n  checkpoint: x.zarr/ck\n")
    before = _tree(tmp_path / "x.zarr")
    assert main(["--no-progress", command, str(config)]) == 2
    assert "overlaps source.path" in capsys.readouterr().err
    assert _tree(tmp_path / "x.zarr") == before


def test_select_shares_its_passes_and_chooses_the_same_bits(tmp_path, capsys):
    """select.shared_passes (the default without run.checkpoint) fits the candidates
    together: each candidate's iterations and the chosen model's arrays equal the
    one-by-one fits' exactly, and BIC/AIC to rounding (the shared scoring pass sums the
    log-likelihood through the statistics' fold, ``score`` per row); the checkpointed
    run keeps the per-candidate checkpoints, the shared one makes none."""
    config = _workspace(tmp_path)
    text = open(config).read()
    one_by_one = tmp_path / "one.yaml"
    one_by_one.write_text(text.replace("models/selected", "models/one"))
    together = tmp_path / "together.yaml"
    together.write_text(text.replace("models/selected", "models/together").replace(
        "  plot: selection.png\n", "  plot: selection.png\n  shared_passes: true\n"))
    assert main(["--no-progress", "select", str(one_by_one)]) == 0
    first = capsys.readouterr()
    assert "together" not in first.err
    assert main(["--no-progress", "select", str(together)]) == 0
    second = capsys.readouterr()
    assert "candidates together" in second.err
    assert os.path.isdir(tmp_path / "models" / "one-candidates")
    assert not os.path.exists(tmp_path / "models" / "together-candidates")

    def summary(name):
        with open(tmp_path / "models" / name / "selection.json") as f:
            return json.load(f)

    a, b = summary("one"), summary("together")
    for ra, rb in zip(a["results"], b["results"], strict=True):
        for key in ("covariance_type", "n_components", "n_parameters", "n_iter",
                    "converged"):
            assert ra[key] == rb[key], key
        for key in ("bic", "aic", "mean_loglik"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-12), key
    assert a["chosen"]["n_components"] == b["chosen"]["n_components"] == 2
    ma, mb = streammix.load(str(tmp_path / "models" / "one")), \
        streammix.load(str(tmp_path / "models" / "together"))
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert np.array_equal(getattr(ma, attr), getattr(mb, attr)), attr

    # without a checkpoint the default is to share: the table is printed, nothing saved
    bare = tmp_path / "bare.yaml"
    bare.write_text(text.replace("run:\n  checkpoint: models/selected\n", "run:\n"))
    assert main(["--no-progress", "select", str(bare)]) == 0
    third = capsys.readouterr()
    assert "candidates together" in third.err and "chosen by BIC" in third.out
