"""write_predictions never deletes what it should not: the data it reads, a checkpoint,
a user's file or folder; an earlier output only with overwrite=True. Every refusal
leaves the target byte for byte as it was."""

import hashlib
import os

import dask.array as da
import numpy as np
import pytest
import zarr

import streammix
from streammix import GaussianMixture, write_predictions
from streammix.errors import OutputExistsError


def tree_digest(path) -> str:
    """SHA-256 over every file name and content (and every folder name) below path."""
    h = hashlib.sha256()
    if os.path.isfile(path):
        with open(path, "rb") as f:
            h.update(f.read())
        return h.hexdigest()
    for here, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        h.update(os.path.relpath(here, path).encode() + b"/\0")
        for name in sorted(files):
            h.update(name.encode() + b"\0")
            with open(os.path.join(here, name), "rb") as f:
                h.update(f.read())
    return h.hexdigest()


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """root/x.zarr (300 x 3, 3 chunks), a model fitted on it, its checkpoint root/ck."""
    root = tmp_path_factory.mktemp("outputs")
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-3, 1, (150, 3)), rng.normal(3, 1, (150, 3))])
    zarr.create_array(str(root / "x.zarr"), data=X, chunks=(100, 3))
    model = GaussianMixture(2, random_state=0).fit(X)
    model.save(str(root / "ck"))
    return root, X, model


def _targets(root):
    """name -> (target path, thing that must survive)"""
    ck = root / "ck"
    inside_ck = next(ck / n for n in sorted(os.listdir(ck)) if (ck / n).is_dir())
    user = root / "user-folder"
    user.mkdir(exist_ok=True)
    (user / "notes.txt").write_text("keep me")
    plain = root / "plain.bin"
    plain.write_bytes(b"\x00\x01 not zarr")
    return {
        "the input": (root / "x.zarr", root / "x.zarr"),
        "inside the input": (root / "x.zarr" / "c", root / "x.zarr"),
        "new path inside the input": (root / "x.zarr" / "preds", root / "x.zarr"),
        "the checkpoint": (ck, ck),
        "inside the checkpoint": (inside_ck, ck),
        "new path inside the checkpoint": (ck / "preds", ck),
        "a folder with a user's file": (user, user),
        "a folder holding the checkpoint": (root, root),
        "an existing file": (plain, plain),
    }


@pytest.mark.parametrize("name", ["the input", "inside the input",
                                  "new path inside the input", "the checkpoint",
                                  "inside the checkpoint", "new path inside the checkpoint",
                                  "a folder with a user's file",
                                  "a folder holding the checkpoint", "an existing file"])
def test_overwrite_refuses_what_is_not_an_earlier_output(ws, name):
    root, X, model = ws
    target, keep = _targets(root)[name]
    before = tree_digest(keep)
    for overwrite in (True, False):
        with pytest.raises(OutputExistsError, match="choose another path") as err:
            write_predictions(model, str(root / "x.zarr"), str(target), overwrite=overwrite)
        assert os.path.basename(str(target)) in str(err.value)
    assert tree_digest(keep) == before
    assert not os.path.exists(root / "x.zarr" / "preds")
    assert not os.path.exists(root / "ck" / "preds")
    loaded = streammix.load(str(root / "ck"))
    np.testing.assert_array_equal(loaded.means_, model.means_)
    np.testing.assert_array_equal(zarr.open_array(str(root / "x.zarr"), mode="r")[:], X)


@pytest.mark.parametrize("form", ["path", "pathlike", "zarr", "read_zarr", "from_zarr",
                                  "derived"])
def test_every_form_of_the_input_is_protected(ws, form):
    root, X, model = ws
    src = root / "x.zarr"
    Xin = {"path": lambda: str(src), "pathlike": lambda: src,
           "zarr": lambda: zarr.open_array(str(src), mode="r"),
           "read_zarr": lambda: streammix.read_zarr(str(src)),
           "from_zarr": lambda: da.from_zarr(str(src)),
           "derived": lambda: streammix.read_zarr(str(src)) * 1.0}[form]()
    before = tree_digest(src)
    with pytest.raises(OutputExistsError, match="which is being read"):
        write_predictions(model, Xin, src, overwrite=True)
    with pytest.raises(OutputExistsError, match="which is being read"):
        write_predictions(model, Xin, os.path.join(str(src), "new"), overwrite=True)
    assert tree_digest(src) == before


def test_an_earlier_output_needs_overwrite_and_is_then_replaced(ws, tmp_path):
    root, X, model = ws
    out = str(tmp_path / "pred.zarr")
    first = write_predictions(model, str(root / "x.zarr"), out, outputs=("log_density",))
    assert first.attrs["streammix_outputs"] == ["log_density"]
    before = tree_digest(out)
    with pytest.raises(OutputExistsError, match="overwrite=True") as err:
        write_predictions(model, str(root / "x.zarr"), out, outputs=("labels",))
    assert "pred.zarr" in str(err.value) and "earlier streammix outputs" in str(err.value)
    assert tree_digest(out) == before
    group = write_predictions(model, str(root / "x.zarr"), out, outputs=("labels", "proba"),
                              overwrite=True)
    again = zarr.open_group(out, mode="r")
    assert sorted(again.array_keys()) == ["labels", "proba"]  # replaced, not merged
    np.testing.assert_array_equal(again["labels"][:], model.predict(X))
    np.testing.assert_allclose(again["proba"][:], model.predict_proba(X), rtol=1e-12)
    assert group.attrs["streammix_outputs"] == ["labels", "proba"]


def test_a_half_written_output_is_recognised_as_ours(ws, tmp_path):
    root, X, model = ws
    bad = X.copy()
    bad[250, 1] = np.nan  # the last chunk fails, after the group was created
    out = str(tmp_path / "pred.zarr")
    with pytest.raises(ValueError, match="250"):
        write_predictions(model, da.from_array(bad, chunks=(100, 3)), out)
    assert zarr.open_group(out, mode="r").attrs["streammix_outputs"]
    with pytest.raises(OutputExistsError, match="earlier streammix outputs"):
        write_predictions(model, X, out)
    group = write_predictions(model, X, out, outputs=("labels",), overwrite=True)
    np.testing.assert_array_equal(group["labels"][:], model.predict(X))


def test_an_empty_folder_may_be_used(ws, tmp_path):
    _, X, model = ws
    out = tmp_path / "empty"
    out.mkdir()
    group = write_predictions(model, X, out, outputs=("labels",))
    np.testing.assert_array_equal(group["labels"][:], model.predict(X))


def test_urls_refuse_the_source_and_foreign_groups(ws):
    _, X, model = ws
    src = "memory://streammix-test-outputs/x.zarr"
    zarr.create_array(src, data=X, chunks=(100, 3))
    with pytest.raises(OutputExistsError, match="which is being read"):
        write_predictions(model, src, src, overwrite=True)
    with pytest.raises(OutputExistsError, match="which is being read"):
        write_predictions(model, src, src + "/preds", overwrite=True)
    foreign = "memory://streammix-test-outputs/foreign"
    zarr.open_group(foreign, mode="w").attrs["owner"] = "someone else"
    with pytest.raises(OutputExistsError, match="not an earlier streammix output"):
        write_predictions(model, src, foreign, overwrite=True)
    assert zarr.open_group(foreign, mode="r").attrs["owner"] == "someone else"
    np.testing.assert_array_equal(zarr.open_array(src, mode="r")[:], X)
    out = "memory://streammix-test-outputs/pred"
    write_predictions(model, src, out, outputs=("labels",))
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        write_predictions(model, src, out, outputs=("labels",))
    group = write_predictions(model, src, out, outputs=("labels",), overwrite=True)
    np.testing.assert_array_equal(group["labels"][:], model.predict(X))


def test_cli_predict_refuses_with_exit_code_2(ws, tmp_path, capsys):
    from streammix.cli import main

    root, X, model = ws
    config = tmp_path / "predict.yaml"
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    for target, keep in ((root / "x.zarr", root / "x.zarr"), (root / "ck", root / "ck"),
                         (root / "ck" / "preds", root / "ck"), (user, user)):
        config.write_text(f"source:\n  type: zarr\n  path: {root / 'x.zarr'}\noutputs:\n"
                          f"  model: {root / 'ck'}\n  path: {target}\n  write: [labels]\n"
                          "  overwrite: true\n")
        before = tree_digest(keep)
        assert main(["--no-progress", "predict", str(config)]) == 2
        err = capsys.readouterr().err
        assert "outputs.path" in err and "choose another path" in err, err
        assert tree_digest(keep) == before
    out = tmp_path / "pred.zarr"
    config.write_text(f"source:\n  type: zarr\n  path: {root / 'x.zarr'}\noutputs:\n"
                      f"  model: {root / 'ck'}\n  path: {out}\n  write: [labels]\n"
                      "  overwrite: false\n")
    assert main(["--no-progress", "predict", str(config)]) == 0
    np.testing.assert_array_equal(zarr.open_array(str(out / "labels"), mode="r")[:],
                                  model.predict(X))
    assert main(["--no-progress", "predict", str(config)]) == 2
    assert "outputs.overwrite: true" in capsys.readouterr().err


def test_an_earlier_output_holding_a_checkpoint_is_not_replaced(ws, tmp_path):
    _, X, model = ws
    out = tmp_path / "pred.zarr"
    write_predictions(model, X, out, outputs=("labels",))
    model.save(str(out / "kept"))  # someone saved a model inside the output group
    before = tree_digest(out)
    with pytest.raises(OutputExistsError, match="holds the streammix checkpoint"):
        write_predictions(model, X, out, outputs=("labels",), overwrite=True)
    assert tree_digest(out) == before
    np.testing.assert_array_equal(streammix.load(str(out / "kept")).means_, model.means_)
