"""Config validation: every problem is named (file, key, what was expected) before any
work starts; --set overrides; relative paths resolve against the config's directory."""

import os

import pytest

from streammix.cli import exit_code
from streammix.cli.config import ConfigError, MissingDataError, check_source_exists, load_config

BASE = """\
source:
  type: zarr
  path: data/points.zarr
model:
  estimator: GaussianMixture
  n_components: 3
  covariance_type: diag
run:
  checkpoint: models/fit
  max_iter: 50
"""


def write(tmp_path, text, name="job.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_valid_config_defaults_and_relative_paths(tmp_path):
    cfg = load_config(write(tmp_path, BASE))
    assert cfg.source["path"] == os.path.join(str(tmp_path), "data", "points.zarr")
    assert cfg.run["checkpoint"] == os.path.join(str(tmp_path), "models", "fit")
    assert cfg.run["checkpoint_every"] == 1 and cfg.run["on_mismatch"] == "error"
    assert cfg.estimator_params() == {"n_components": 3, "covariance_type": "diag",
                                      "max_iter": 50}


def test_set_overrides_parse_yaml_and_resolve_from_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.makedirs("elsewhere", exist_ok=True)
    cfg = load_config(write(tmp_path / "elsewhere", BASE),
                      ["model.n_components=5", "run.tol=1e-4", "run.checkpoint=ck",
                       "run.cluster.workers=2"])
    assert cfg.model["n_components"] == 5
    assert cfg.run["tol"] == 1e-4
    assert cfg.run["checkpoint"] == os.path.join(str(tmp_path), "ck")
    assert cfg.run["cluster"] == {"workers": 2, "threads_per_worker": 1}


@pytest.mark.parametrize("text, overrides, message", [
    (BASE.replace("n_components", "n_componets"), [],
     "model.n_componets: not a parameter of GaussianMixture; did you mean 'n_components'"),
    (BASE.replace("type: zarr", "type: zar"), [], "source.type: expected one of"),
    (BASE.replace("max_iter: 50", "max_iter: fifty"), [], "run.max_iter: expected an integer"),
    (BASE.replace("max_iter: 50", "max_iter: true"), [], "run.max_iter: expected an integer"),
    (BASE + "outputs:\n  writ: [labels]\n", [], "outputs.writ: unknown key; did you mean 'write'"),
    (BASE + "ouputs:\n  path: x\n", [], "ouputs: unknown section; did you mean 'outputs'"),
    (BASE, ["model.covariance_type=ful"], "covariance_type"),
    (BASE, ["model.n_components=0"], "n_components must be >= 1"),
    (BASE, ["model.estep_dtype=float16"], "expected one of ['float64', 'float32']"),
    (BASE, ["model.estep_dtype=float32"], "estep_dtype='float32' is for covariance_type "
                                          "'full'"),  # BASE is diag
    (BASE, ["run.cluster.workrs=2"], "run.cluster.workrs (set on the command line): unknown key"),
    (BASE, ["nodot"], "expected section.key=value"),
    (BASE, ["model.tol=1e-3"], "run.tol"),  # fine alone...
    (BASE + "outputs:\n  anomaly: {threshold: 1, quantile: 0.1}\n", [],
     "give exactly one of threshold or quantile"),
    (BASE + "outputs:\n  anomaly: {quantile: 2}\n", [], "must be in (0, 1)"),
    (BASE + "outputs:\n  write: [labels, probs]\n", [], "unknown outputs ['probs']"),
    (BASE + "select:\n  n_components: [0, 2]\n", [], "integers >= 1"),
    ("source: [1\n", [], "not valid YAML"),
    ("- a\n- b\n", [], "expected a mapping of sections"),
    (BASE.replace("estimator: GaussianMixture", "estimator: OnlineGMM"), [],
     "model.estimator: expected one of"),
    (BASE.replace("estimator: GaussianMixture", "estimator: OnlineGaussianMixture"), [],
     "run.max_iter: OnlineGaussianMixture has no max_iter"),
])
def test_invalid_configs_name_file_key_and_expectation(tmp_path, text, overrides, message):
    path = write(tmp_path, text)
    if overrides == ["model.tol=1e-3"]:  # the same key in model and run must agree
        path = write(tmp_path, text.replace("max_iter: 50", "max_iter: 50\n  tol: 0.01"))
    with pytest.raises(ConfigError) as err:
        load_config(path, overrides)
    assert message in str(err.value)
    assert exit_code(err.value) == 2
    if "set on the command line" not in message and "section.key" not in message:
        assert path in str(err.value)


def test_float32_estep_is_a_model_parameter(tmp_path):
    cfg = load_config(write(tmp_path, BASE.replace("diag", "full")),
                      ["model.estep_dtype=float32"])
    assert cfg.estimator_params()["estep_dtype"] == "float32"


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "nope.yaml"))


def test_missing_data_path_is_a_data_error(tmp_path):
    cfg = load_config(write(tmp_path, BASE))
    with pytest.raises(MissingDataError, match=r"source.path: .*points.zarr' does not exist") as e:
        check_source_exists(cfg)
    assert exit_code(e.value) == 3
