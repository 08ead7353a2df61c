"""The Bayesian mixtures on the command line: `fit` (configs/bayesian-fit.yaml) and
`predict`/`score` with a BayesianGaussianMixture, `update` with an
OnlineBayesianGaussianMixture, what `inspect` and `report` show of them (the effective
number of components, the posterior concentration, the sorted weights), `select`
refusing them, and bad priors as config errors."""

import glob
import json
import os

import numpy as np
import pytest
import zarr

import streammix
from streammix import BayesianGaussianMixture, OnlineBayesianGaussianMixture
from streammix.cli import exit_code, main
from streammix.cli.config import ESTIMATORS, ConfigError, load_config
from streammix.persistence import current_version

from .conftest import N_TRUE, REPO, make_workspace, points, run_cli

CK = "demo-data/models/bayesian"


@pytest.fixture(scope="module")
def bayes_ws(tmp_path_factory):
    """A workspace (20,000 rows, 6 true clusters in 8-d) where configs/bayesian-fit.yaml
    has run."""
    root = str(tmp_path_factory.mktemp("bayes"))
    make_workspace(root, n=20_000)
    proc = run_cli("fit", "configs/bayesian-fit.yaml", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root, proc


def _check_png(path, width, height):
    import matplotlib.image as mpimg

    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(path)
    assert img.shape[:2] == (height, width)
    assert img[..., :3].std() > 0.05  # not blank


def _write(path, data: dict) -> str:
    path.write_text(json.dumps(data, indent=1))  # JSON is YAML
    return str(path)


def _blobs(n=2600, seed=0):
    """Three 2-d clusters: 1000 rows at (-4, 0), 1000 at (4, 0), 600 at (0, 6)."""
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal([-4, 0], 1, (n * 5 // 13, 2)),
                        rng.normal([4, 0], 1, (n * 5 // 13, 2)),
                        rng.normal([0, 6], 0.7, (n - 2 * (n * 5 // 13), 2))])
    return X[rng.permutation(len(X))]


# ------------------------------------------------------------------ fit
def test_fit_example_finds_the_number_of_components(bayes_ws):
    root, proc = bayes_ws
    assert "iteration 1: evidence lower bound" in proc.stderr
    assert f"{N_TRUE} components with a weight above 1%" in proc.stderr
    model = streammix.load(os.path.join(root, CK))
    assert type(model) is BayesianGaussianMixture
    assert model.converged_ and model.n_components == 12
    assert model.effective_n_components() == N_TRUE
    assert not hasattr(model, "bic")
    # the same fit as the library's on the same array
    ref = BayesianGaussianMixture(
        n_components=12, covariance_type="full", init_params="k-means++",
        weight_concentration_prior_type="dirichlet_process", weight_concentration_prior=0.01,
        max_iter=500, tol=1e-3, random_state=0).fit(
            os.path.join(root, "demo-data/points.zarr"))
    np.testing.assert_allclose(model.means_, ref.means_, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(model.weights_, ref.weights_, rtol=1e-9, atol=1e-12)
    # a rerun is a no-op
    version = current_version(os.path.join(root, CK))
    again = run_cli("fit", "configs/bayesian-fit.yaml", cwd=root)
    assert again.returncode == 0 and "nothing to do" in again.stderr, again.stderr
    assert f"{N_TRUE} components with a weight above 1%" in again.stderr
    assert current_version(os.path.join(root, CK)) == version


def test_json_log_of_a_bayesian_fit(bayes_ws):
    root, _ = bayes_ws
    proc = run_cli("--log-format", "json", "fit", "configs/bayesian-fit.yaml", cwd=root)
    assert proc.returncode == 0, proc.stderr
    last = json.loads(proc.stderr.splitlines()[-1])
    assert last["effective_n_components"] == N_TRUE and last["up_to_date"] is True


def test_predict_and_score_with_a_bayesian_model(bayes_ws):
    root, _ = bayes_ws
    model = streammix.load(os.path.join(root, CK))
    X = points(root)
    proc = run_cli("score", "configs/score.yaml", "--set", f"outputs.model={CK}", "--set",
                   "outputs.path=bayes-scores.zarr", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "BayesianGaussianMixture" in proc.stderr and "6 with a weight above 1%" in proc.stderr
    g = zarr.open_group(os.path.join(root, "bayes-scores.zarr"), mode="r")
    np.testing.assert_allclose(g["log_density"][:], model.score_samples(X), rtol=1e-10)
    assert np.array_equal(g["labels"][:], model.predict(X))
    assert g["anomaly"][:].sum() == 20  # the lowest 0.1% of 20,000 rows
    proc = run_cli("predict", "configs/score.yaml", "--set", f"outputs.model={CK}", "--set",
                   "outputs.path=bayes-pred.zarr", "--set", "outputs.anomaly=null", "--set",
                   "outputs.write=[labels, proba]", cwd=root)
    assert proc.returncode == 0, proc.stderr
    g = zarr.open_group(os.path.join(root, "bayes-pred.zarr"), mode="r")
    np.testing.assert_allclose(g["proba"][:], model.predict_proba(X), atol=1e-12)
    # only the components in use label rows
    assert set(np.unique(g["labels"][:])) <= set(np.flatnonzero(model.weights_ > 0.01))


# ------------------------------------------------------------------ inspect / report
def test_inspect_shows_the_effective_components_and_the_concentration(bayes_ws):
    root, _ = bayes_ws
    model = streammix.load(os.path.join(root, CK))
    text = run_cli("inspect", CK, cwd=root)
    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert f"effective   {N_TRUE} of 12 components have a weight above 1%" in out
    assert "evidence lower bound (ELBO)" in out and "mean log-likelihood" not in out
    assert "Dirichlet process" in out and "Beta(a, b)" in out
    info = json.loads(run_cli("inspect", CK, "--json", cwd=root).stdout)
    b = info["bayesian"]
    assert b["effective_n_components"] == N_TRUE and b["effective_threshold"] == 0.01
    assert b["effective_components"] == [int(k) for k in np.flatnonzero(model.weights_ > 0.01)]
    assert b["weight_concentration_prior_type"] == "dirichlet_process"
    assert b["weight_concentration_prior"] == 0.01
    a, bb = model.weight_concentration_
    np.testing.assert_allclose(b["weight_concentration"]["beta_a"], a, rtol=1e-12)
    np.testing.assert_allclose(b["weight_concentration"]["beta_b"], bb, rtol=1e-12)
    assert info["lower_bound_kind"] == "evidence lower bound (ELBO)"
    assert info["converged"] is True and info["n_iter"] == model.n_iter_
    assert [c["concentration"] for c in info["components"]] == [
        [float(x), float(y)] for x, y in zip(a, bb)]
    for k in range(12):  # each stick's Beta parameters are on its row of the text table
        assert f"{a[k]:10.4g} {bb[k]:10.4g}" in out


def test_report_draws_the_sorted_weights(bayes_ws):
    root, _ = bayes_ws
    proc = run_cli("report", CK, "--out", "bayes-report", "--config",
                   "configs/bayesian-fit.yaml", "--sample", "2000", cwd=root)
    assert proc.returncode == 0, proc.stderr
    out = os.path.join(root, "bayes-report")
    assert sorted(n for n in os.listdir(out) if n.endswith(".png")) == [
        "components.png", "loglik.png", "weights.png"]
    _check_png(os.path.join(out, "weights.png"), 800, 400)
    _check_png(os.path.join(out, "loglik.png"), 800, 640)
    _check_png(os.path.join(out, "components.png"), 1050, 1000)


def test_weights_plot_marks_the_threshold_and_the_count(tmp_path, monkeypatch):
    """The figure itself: bars in decreasing order, the 1% line, the count in the
    title, tick labels without an offset."""
    from streammix.cli.commands import report
    from streammix.cli.plotting import pyplot

    model = BayesianGaussianMixture(n_components=6, init_params="k-means++",
                                    random_state=0, max_iter=300).fit(_blobs())
    plt = pyplot()
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    report.plot_weights(model, str(tmp_path / "w.png"))
    report.plot_loglik(model, str(tmp_path / "l.png"))
    ax, trace = figures[0].axes[0], figures[1].axes[0]
    assert trace.get_ylabel() == "evidence lower bound (ELBO)"
    assert trace.yaxis.get_offset_text().get_text() == ""  # -5200 reads -5200
    assert all("e" not in t.get_text() for t in trace.get_yticklabels())
    assert "3 above 1% weight" in trace.get_title()
    heights = [p.get_height() for p in ax.patches]
    assert heights == sorted(model.weights_, reverse=True)
    assert "3 of 6 components above 1% weight" in ax.get_title()
    assert any(np.allclose(line.get_ydata(), 0.01) for line in ax.get_lines())
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        str(k) for k in np.argsort(-model.weights_, kind="stable")]
    assert ax.yaxis.get_offset_text().get_text() == ""
    for fig in figures:
        fig.clf()


# ------------------------------------------------------------------ array priors, align_to
def test_array_priors_from_yaml_and_a_dirichlet_distribution_keeps_labels(tmp_path):
    np.save(tmp_path / "night1.npy", _blobs(seed=0))
    np.save(tmp_path / "night2.npy", _blobs(seed=1))
    cfg = _write(tmp_path / "nightly.yaml", {
        "source": {"type": "npy", "path": "night1.npy", "chunk_rows": 1000},
        "model": {"estimator": "BayesianGaussianMixture", "n_components": 3,
                  "weight_concentration_prior_type": "dirichlet_distribution",
                  "mean_prior": [0, 0], "covariance_prior": [[1, 0], [0, 1]],
                  "init_params": "k-means++"},
        "run": {"checkpoint": "ck", "align_to": "previous", "on_mismatch": "restart",
                "max_iter": 300, "random_state": 0}})
    first = run_cli("fit", cfg, cwd=str(tmp_path))
    assert first.returncode == 0, first.stderr
    night1 = streammix.load(str(tmp_path / "ck"))
    np.testing.assert_array_equal(night1.mean_prior_, [0.0, 0.0])
    np.testing.assert_array_equal(night1.covariance_prior_, np.eye(2))
    # another seed numbers the clusters differently on its own...
    alone = BayesianGaussianMixture(
        n_components=3, weight_concentration_prior_type="dirichlet_distribution",
        mean_prior=[0, 0], covariance_prior=np.eye(2), init_params="k-means++",
        max_iter=300, random_state=1, chunk_size=1000).fit(np.load(tmp_path / "night2.npy"))
    assert list(streammix.align(alone, night1)) != [0, 1, 2]  # the test can fail
    # ...but aligned to the previous model it keeps its labels
    second = run_cli("fit", cfg, "--set", "source.path=night2.npy", "--set",
                     "run.random_state=1", cwd=str(tmp_path))
    assert second.returncode == 0, second.stderr
    assert "aligning labels to the previous model" in second.stderr
    night2 = streammix.load(str(tmp_path / "ck"))
    dist = np.linalg.norm(night2.means_[:, None] - night1.means_[None], axis=2)
    assert list(dist.argmin(axis=1)) == [0, 1, 2] and np.max(np.diag(dist)) < 0.3


# ------------------------------------------------------------------ update
def test_update_with_an_online_bayesian_mixture(tmp_path):
    X = _blobs(6000, seed=3)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for i in range(3):
        np.save(incoming / f"b-{i:03d}.npy", X[i * 1500:(i + 1) * 1500])
    model_section = {"estimator": "OnlineBayesianGaussianMixture", "n_components": 6,
                     "weight_concentration_prior": 0.01, "mean_prior": [0, 0],
                     "init_size": 1500, "random_state": 0}
    cfg = _write(tmp_path / "update.yaml", {
        "source": {"type": "directory", "path": "incoming"},
        "model": model_section,
        "run": {"checkpoint": "ck", "batch_size": 500}})
    proc = run_cli("update", cfg, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "with a weight above 1%" in proc.stderr and "batch mean score" in proc.stderr
    ck = str(tmp_path / "ck")
    m1 = streammix.load(ck)
    assert type(m1) is OnlineBayesianGaussianMixture and m1.n_samples_seen_ == 4500
    # the same as the library over the same batches (500 rows each)
    params = {k: v for k, v in model_section.items() if k != "estimator"}
    ref = OnlineBayesianGaussianMixture(**params)
    for a in range(0, 4500, 500):
        ref.partial_fit(X[a:a + 500])
    np.testing.assert_array_equal(m1.means_, ref.means_)
    np.testing.assert_array_equal(m1.weights_, ref.weights_)
    assert m1.effective_n_components() == 3
    # nothing new: a no-op; a new file: the same model continues (mean_prior, a list
    # in the config and an array in the checkpoint, is the same parameter)
    again = run_cli("update", cfg, cwd=str(tmp_path))
    assert again.returncode == 0 and "nothing to do" in again.stderr, again.stderr
    np.save(incoming / "b-003.npy", X[4500:6000])
    more = run_cli("update", cfg, cwd=str(tmp_path))
    assert more.returncode == 0, more.stderr
    for a in range(4500, 6000, 500):
        ref.partial_fit(X[a:a + 500])
    m2 = streammix.load(ck)
    assert m2.n_samples_seen_ == 6000
    np.testing.assert_array_equal(m2.means_, ref.means_)
    # inspect: the effective components, the batch score labelled for what it is
    text = run_cli("inspect", ck, cwd=str(tmp_path)).stdout
    assert "effective   3 of 6 components have a weight above 1%" in text
    assert "not a likelihood" in text and "Beta(a, b)" in text
    info = json.loads(run_cli("inspect", ck, "--json", cwd=str(tmp_path)).stdout)
    assert info["bayesian"]["effective_n_components"] == 3
    assert info["n_updates"] == ref.n_updates_ == 9  # the first 1500 rows initialise
    # other priors than the checkpoint's: refused, naming them
    other = run_cli("update", cfg, "--set", "model.weight_concentration_prior=0.5",
                    "--set", "model.mean_prior=[1, 1]", cwd=str(tmp_path))
    assert other.returncode == 4, other.stderr
    assert "weight_concentration_prior: checkpoint 0.01 vs config 0.5" in other.stderr
    assert "mean_prior: checkpoint [0.0, 0.0] vs config [1, 1]" in other.stderr
    # report: the sticks and the component timeline
    rep = run_cli("report", ck, "--out", "rep", "--sample", "500", cwd=str(tmp_path))
    assert rep.returncode == 0, rep.stderr
    _check_png(str(tmp_path / "rep" / "weights.png"), 800, 400)
    assert (tmp_path / "rep" / "timeline.png").exists()


# ------------------------------------------------------------------ refusals
def test_select_refuses_a_bayesian_mixture_and_says_what_to_do(bayes_ws, tmp_path):
    root, _ = bayes_ws
    plot = tmp_path / "selection.png"
    proc = run_cli("select", "configs/select.yaml", "--set",
                   "model.estimator=BayesianGaussianMixture", "--set",
                   f"select.plot={plot}", "--set", f"run.checkpoint={tmp_path}/sel", cwd=root)
    assert proc.returncode == 2, proc.stderr
    assert "BIC/AIC" in proc.stderr and "streammix fit" in proc.stderr
    assert "effective number of components" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not plot.exists() and not (tmp_path / "sel").exists()


def test_a_bad_prior_is_a_config_error_without_traceback(bayes_ws, tmp_path):
    root, _ = bayes_ws
    cfg = tmp_path / "bad.yaml"
    with open(os.path.join(root, "configs/bayesian-fit.yaml")) as f:
        text = f.read()
    cfg.write_text(text.replace("weight_concentration_prior: 0.01",
                                "weight_concentration_prior: -1")
                   .replace("../demo-data", os.path.join(root, "demo-data"))
                   .replace("models/bayesian", "models/never"))
    proc = run_cli("fit", str(cfg), cwd=root)
    assert proc.returncode == 2, proc.stderr
    assert "weight_concentration_prior" in proc.stderr and "-1" in proc.stderr
    assert str(cfg) in proc.stderr and "Traceback" not in proc.stderr
    assert not os.path.exists(os.path.join(root, "demo-data/models/never"))


@pytest.mark.parametrize("sets, message", [
    (["model.mean_prior=abc"], "model.mean_prior: expected a list of numbers"),
    (["model.mean_prior=[0, true]"], "model.mean_prior: expected a list of numbers"),
    (["model.covariance_prior=[[1, 0]]"], "model.covariance_prior: expected a square matrix"),
    (["model.covariance_prior=[[1, 2], [2, 1]]"], "symmetric positive-definite"),
    (["model.covariance_type=diag", "model.covariance_prior=[1, -1]"],
     "a list of numbers > 0 for diag"),
    (["model.covariance_type=spherical", "model.covariance_prior=[1]"],
     "a number > 0 for spherical"),
    (["model.mean_prior=[0, 0, 0]", "model.covariance_prior=[[1, 0], [0, 1]]"],
     "mean_prior has 3 values but covariance_prior is for 2 features"),
    (["model.weight_concentration_prior_type=dirichlet"],
     "expected one of ['dirichlet_process', 'dirichlet_distribution']"),
    (["model.mean_precision_prior=0"], "mean_precision_prior"),
    (["model.max_components=8"], "not a parameter of BayesianGaussianMixture"),
])
def test_bad_priors_name_the_key(tmp_path, sets, message):
    path = os.path.join(REPO, "configs", "bayesian-fit.yaml")
    with pytest.raises(ConfigError) as err:
        load_config(path, sets)
    assert message in str(err.value)
    assert exit_code(err.value) == 2


@pytest.mark.parametrize("sets, message", [
    (["model.mean_prior=[0, 0]"], "model.mean_prior: has 2 values but the data have 8"),
    (["model.covariance_type=diag", "model.covariance_prior=[1, 1]"],
     "model.covariance_prior: is for 2 features but the data have 8"),
    (["model.degrees_of_freedom_prior=3"], "must be greater than n_features - 1 = 7"),
    (["run.align_to=previous"], "Dirichlet-process prior"),
    (["model.estimator=OnlineBayesianGaussianMixture", "run.max_iter=null",
      "run.tol=null", "model.init_params=k-means++"], "use `streammix update`"),
])
def test_fit_refuses_before_any_work(bayes_ws, tmp_path, sets, message, capsys):
    root, _ = bayes_ws
    ck = tmp_path / "ck"
    args = ["--no-progress", "fit", os.path.join(root, "configs/bayesian-fit.yaml"),
            "--set", f"run.checkpoint={ck}"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not ck.exists()


def test_update_refuses_a_batch_bayesian_mixture(bayes_ws, capsys):
    """With or without --follow (refused before any broker is contacted)."""
    root, _ = bayes_ws
    cfg = os.path.join(root, "configs/bayesian-fit.yaml")
    redis = ["--set", "source.type=redis", "--set", "source.url=redis://127.0.0.1:9/0",
             "--set", "source.stream=points"]
    for args in ([cfg], [cfg, "--follow", *redis]):
        assert main(["--no-progress", "update", *args]) == 2
        err = capsys.readouterr().err
        assert "needs OnlineGaussianMixture or OnlineBayesianGaussianMixture; got " \
               "BayesianGaussianMixture" in err, err


# ------------------------------------------------------------------ the example configs
@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO, "configs", "*.yaml"))),
                         ids=os.path.basename)
def test_every_example_config_is_valid(path):
    cfg = load_config(path)
    assert cfg.estimator in ESTIMATORS


def test_update_follow_with_an_online_bayesian_mixture(tmp_path, redis_server):
    """`update --follow` from a Redis stream: the same model as partial_fit over the
    same batches (whole messages of 100 rows, 500 rows a batch)."""
    pytest.importorskip("redis")
    from .test_follow_update import Followers, _produce, _rows, _wait

    X = _blobs(4000, seed=5)
    _produce(redis_server.client(), X)
    ck = str(tmp_path / "ck")
    model_section = {"estimator": "OnlineBayesianGaussianMixture", "n_components": 6,
                     "weight_concentration_prior": 0.01, "init_size": 1000,
                     "random_state": 0}
    cfg = _write(tmp_path / "follow.yaml", {
        "source": {"type": "redis", "url": redis_server.url, "stream": "points",
                   "n_features": 2},
        "model": model_section,
        "run": {"checkpoint": ck, "batch_size": 500, "max_wait": 2.0,
                "checkpoint_interval": None}})
    followers = Followers(tmp_path)
    try:
        proc = followers.start(cfg)
        _wait("the whole stream", lambda: _rows(ck) == len(X), proc, followers)
        code, _ = followers.stop(proc)
        assert code == 0, followers.stderr(proc)
    finally:
        followers.close()
    model = streammix.load(ck)
    assert type(model) is OnlineBayesianGaussianMixture
    ref = OnlineBayesianGaussianMixture(
        **{k: v for k, v in model_section.items() if k != "estimator"})
    for a in range(0, len(X), 500):
        ref.partial_fit(X[a:a + 500])
    np.testing.assert_array_equal(model.means_, ref.means_)
    np.testing.assert_array_equal(model.weights_, ref.weights_)
    assert model.effective_n_components() == 3
