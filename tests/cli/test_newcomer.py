"""What a newcomer's first hour ran into on the command line: clear errors for data given
where a checkpoint is expected and for files that are not .npy arrays, advice after a
fit that hit max_iter that works when followed, `inspect | head` ending quietly, the
same dtype rules in every command (and source.dtype casting Zarr data chunk by chunk),
one config for predict and score, the help texts, and global options before or after
every command."""

import json
import os
import pickle
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
import zarr

import streammix

from .conftest import run_cli

FIT = """\
source: {type: zarr, path: data.zarr}
model: {estimator: GaussianMixture, n_components: 3, covariance_type: diag}
run: {checkpoint: models/fit, max_iter: 100, random_state: 0}
"""
UPDATE = """\
source: {type: zarr, path: data.zarr}
model: {estimator: OnlineGaussianMixture, n_components: 3, covariance_type: diag}
run: {checkpoint: models/online, batch_size: 1000, random_state: 0}
"""
SCORE = """\
source: {type: zarr, path: data.zarr}
outputs:
  model: models/fit
  path: scores.zarr
  write: [log_density, labels]
  anomaly: {quantile: 0.01}
"""
SELECT = """\
source: {type: zarr, path: data.zarr}
model: {estimator: GaussianMixture}
run: {checkpoint: models/selected, max_iter: 50, random_state: 0}
select: {n_components: [2, 3], covariance_types: [diag]}
"""
NOT_FLOAT = "streammix reads float32 or float64 data"
HINT = "(in a config: source.dtype: float64 casts the data when read)"


def _blobs(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    return centres[rng.integers(0, 3, n)] + rng.normal(size=(n, 2))


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A small workspace: a float Zarr array and its configs, integer copies, files
    that are not .npy arrays, and a fitted checkpoint (models/fit)."""
    root = tmp_path_factory.mktemp("newcomer")
    X = _blobs()
    z = zarr.create_array(str(root / "data.zarr"), shape=X.shape, chunks=(1000, 2),
                          dtype="float64")
    z[:] = X
    ints = np.round(X * 10).astype(np.int64)
    zi = zarr.create_array(str(root / "ints.zarr"), shape=X.shape, chunks=(1000, 2),
                           dtype="int64")
    zi[:] = ints
    np.save(root / "ints.npy", ints)
    os.makedirs(root / "intdir")
    np.save(root / "intdir" / "a.npy", ints)
    (root / "garbage.npy").write_bytes(np.random.default_rng(1).bytes(4096))
    np.save(root / "objects.npy", np.array([[1, "a"], [2, "b"]], dtype=object),
            allow_pickle=True)
    (root / "pickled.npy").write_bytes(pickle.dumps(X[:10]))
    with open(root / "archive.npy", "wb") as f:  # an .npz under a .npy name
        np.savez(f, X=X[:10])
    for name, text in (("fit.yaml", FIT), ("update.yaml", UPDATE), ("score.yaml", SCORE),
                       ("select.yaml", SELECT)):
        (root / name).write_text(text)
    proc = run_cli("fit", "fit.yaml", cwd=str(root))
    assert proc.returncode == 0, proc.stderr
    return root


def _quietly_failed(proc, code):
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


# ------------------------------------------------------------ 1. not a checkpoint
def test_a_data_array_or_file_given_as_a_checkpoint_is_named_for_what_it_is(ws):
    (ws / "empty").mkdir(exist_ok=True)
    runs = {"a Zarr array or group (data?)": [("inspect", "data.zarr"),
                                              ("inspect", "data.zarr", "--json"),
                                              ("inspect", "data.zarr",
                                               "--checkpoint-version", "1"),
                                              ("repair", "data.zarr"),
                                              ("report", "data.zarr", "--out", "rep"),
                                              ("score", "score.yaml", "--set",
                                               "outputs.model=data.zarr")],
            "a file (data?)": [("inspect", "ints.npy")],
            "a folder no fit or save wrote": [("inspect", "empty")]}
    for what, commands in runs.items():
        for args in commands:
            proc = run_cli(*args, cwd=str(ws))
            _quietly_failed(proc, 4)
            assert f"is not a streammix checkpoint: it is {what}" in proc.stderr, args
            assert "run.checkpoint of a `streammix fit`" in proc.stderr  # what to give
            assert "streammix repair" not in proc.stderr, (args, proc.stderr)
            assert "fit(checkpoint=" not in proc.stderr and "save()" not in proc.stderr
    assert not os.path.exists(ws / "rep")


# ------------------------------------------------------------ 2. max_iter advice
def test_the_advice_after_max_iter_is_a_command_that_works(ws):
    args = ("fit", "fit.yaml", "--set", "run.checkpoint=models/short", "--set",
            "run.max_iter=2", "--set", "run.tol=1e-12")
    first = run_cli(*args, cwd=str(ws))
    assert first.returncode == 0, first.stderr
    warning = [line for line in first.stderr.splitlines() if "ConvergenceWarning" in line]
    assert len(warning) == 1, first.stderr
    assert "increase max_iter" not in warning[0]
    advised = re.search(r"`(streammix fit [^`]*)`", warning[0]).group(1)
    assert "--set run.max_iter=100 --set run.on_mismatch=restart" in advised
    # what the library's message suggests alone fails: another fit in the checkpoint
    refused = run_cli(*args[:-4], "--set", "run.max_iter=100", "--set", "run.tol=1e-12",
                      cwd=str(ws))
    _quietly_failed(refused, 4)
    assert "run.on_mismatch: restart" in refused.stderr
    # the advice (with this run's other --set, as it says) works
    followed = run_cli(*shlex.split(advised)[1:], *args[2:4], *args[6:], cwd=str(ws))
    assert followed.returncode == 0, followed.stderr
    model = streammix.load(str(ws / "models" / "short"))
    assert model.max_iter == 100 and model.n_iter_ > 2


# ------------------------------------------------------------ 3. not .npy arrays
@pytest.mark.parametrize("name, message", [
    ("garbage.npy", "not a .npy array file (no .npy header"),
    ("pickled.npy", "not a .npy array file (no .npy header"),
    ("archive.npy", "not a .npy array file (a .npz archive"),
    ("objects.npy", "holds Python objects (dtype object): object arrays are refused"),
])
def test_a_file_that_is_not_a_npy_array_is_refused_by_name(ws, name, message):
    proc = run_cli("fit", "fit.yaml", "--set", "source.type=npy", "--set",
                   f"source.path={name}", "--set", "run.checkpoint=models/npy", cwd=str(ws))
    _quietly_failed(proc, 3)
    assert f"{ws / name}: {message}" in proc.stderr, proc.stderr
    assert "allow_pickle" not in proc.stderr and "pickle.load" not in proc.stderr
    assert not os.path.exists(ws / "models" / "npy")


def test_update_refuses_a_file_that_is_not_a_npy_array(ws):
    os.makedirs(ws / "bad", exist_ok=True)
    (ws / "bad" / "a.npy").write_bytes((ws / "objects.npy").read_bytes())
    proc = run_cli("update", "update.yaml", "--set", "source.type=directory", "--set",
                   "source.path=bad", "--set", "run.checkpoint=models/bad", cwd=str(ws))
    _quietly_failed(proc, 3)
    assert "a.npy: holds Python objects" in proc.stderr and "object arrays are refused" \
        in proc.stderr


def test_report_data_that_is_not_a_npy_array_is_refused_by_name(ws):
    for name, message in (("garbage.npy", "not a .npy array file"),
                          ("objects.npy", "object arrays are refused")):
        proc = run_cli("report", "models/fit", "--out", "rep-npy", "--data", name,
                       cwd=str(ws))
        _quietly_failed(proc, 3)
        assert f"{name}: " in proc.stderr and message in proc.stderr, proc.stderr
        assert "allow_pickle" not in proc.stderr
    assert not os.path.exists(ws / "rep-npy")


# ------------------------------------------------------------ 4. stdout closed early
def test_inspect_into_a_reader_that_stops_early_exits_quietly(ws, tmp_path):
    X = np.random.default_rng(0).normal(size=(1000, 100))
    with pytest.warns(streammix.ConvergenceWarning):
        model = streammix.GaussianMixture(60, covariance_type="diag", max_iter=2,
                                          random_state=0).fit(X)
    ck = str(tmp_path / "wide")
    model.save(ck)
    # ~200 kB of JSON: more than a pipe holds, so the writer meets the closed pipe
    p = subprocess.Popen([sys.executable, "-m", "streammix", "inspect", ck, "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ws),
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert p.stdout.readline() == b"{\n"
    p.stdout.close()
    err = p.stderr.read().decode()
    p.stderr.close()
    assert p.wait(timeout=120) == 0, err
    assert err == "", err  # no ResourceWarning, no BrokenPipeError
    shell = subprocess.run(f"{shlex.quote(sys.executable)} -m streammix inspect "
                           f"{shlex.quote(ck)} | head -1", shell=True, capture_output=True,
                           text=True, cwd=str(ws), timeout=120)
    assert shell.stdout.startswith("checkpoint") and shell.stderr == "", shell.stderr


# ------------------------------------------------------------ 5-6. dtypes
def test_update_refuses_integer_data_as_fit_does(ws):
    for kind, path in (("npy", "ints.npy"), ("zarr", "ints.zarr")):
        fit = run_cli("fit", "fit.yaml", "--set", f"source.type={kind}", "--set",
                      f"source.path={path}", "--set", "run.checkpoint=models/fit-ints",
                      cwd=str(ws))
        _quietly_failed(fit, 3)
        update_kind, update_path = ("directory", "intdir") if kind == "npy" else (kind, path)
        update = run_cli("update", "update.yaml", "--set", f"source.type={update_kind}",
                         "--set", f"source.path={update_path}", "--set",
                         f"run.checkpoint=models/upd-{kind}", cwd=str(ws))
        _quietly_failed(update, 3)
        for proc in (fit, update):
            assert f"has an integer dtype (int64); {NOT_FLOAT} {HINT}" in proc.stderr, \
                proc.stderr
        assert not os.path.exists(ws / "models" / f"upd-{kind}" / "CURRENT.json")
    # and the hint works for update as it does for fit
    cast = run_cli("update", "update.yaml", "--set", "source.path=ints.zarr", "--set",
                   "source.dtype=float64", "--set", "run.checkpoint=models/upd-cast",
                   cwd=str(ws))
    assert cast.returncode == 0, cast.stderr
    assert streammix.load(str(ws / "models" / "upd-cast")).n_samples_seen_ == 3000


def test_source_dtype_casts_a_zarr_source_chunk_by_chunk(ws):
    from streammix.cli.config import load_config
    from streammix.cli.sources import open_source

    cfg = load_config(str(ws / "fit.yaml"), [f"source.path={ws / 'ints.zarr'}",
                                             "source.dtype=float64"])
    X = open_source(cfg)  # lazy: one task per Zarr chunk, each cast on its own
    assert X.dtype == np.float64 and X.chunks[0] == (1000, 1000, 1000)
    np.testing.assert_array_equal(X.compute(),
                                  zarr.open_array(str(ws / "ints.zarr"), mode="r")[:])
    args = ("fit", "fit.yaml", "--set", "source.path=ints.zarr", "--set",
            "source.dtype=float64", "--set", "run.checkpoint=models/fit-cast")
    fitted = run_cli(*args, cwd=str(ws))
    assert fitted.returncode == 0, fitted.stderr
    again = run_cli(*args, cwd=str(ws))
    assert again.returncode == 0 and "nothing to do" in again.stderr, again.stderr


# ------------------------------------------------------------ 7. predict with a score config
def test_one_config_serves_score_and_predict(ws):
    score = run_cli("score", "score.yaml", cwd=str(ws))
    assert score.returncode == 0, score.stderr
    assert "anomaly" in zarr.open_group(str(ws / "scores.zarr"), mode="r")
    predict = run_cli("predict", "score.yaml", cwd=str(ws))
    assert predict.returncode == 0, predict.stderr
    assert "outputs.anomaly is used by `streammix score`" in predict.stderr
    group = zarr.open_group(str(ws / "scores.zarr"), mode="r")
    assert sorted(group.keys()) == ["labels", "log_density"]  # no stale anomaly flags
    assert "anomaly_threshold" not in group.attrs


# ------------------------------------------------------------ 8. help
def _help(capsys, *args) -> str:
    from streammix.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_help_texts(capsys):
    from streammix._version import __version__

    report = _help(capsys, "report", "--help")
    for option, text in (("--set KEY=VALUE", "with --config: override one of its keys"),
                         ("--sample N", "points in the scatter plot"),
                         ("--checkpoint-version N", "plot checkpoint version N")):
        assert re.search(re.escape(option) + r"\s+" + re.escape(text), report), option
    for command in ("inspect", "report", "repair"):
        shown = _help(capsys, command, "--help")
        assert "--scheduler" not in shown and "--workers" not in shown, command
        assert "debug lines and tracebacks" in shown  # -v, as the README says
    for command in ("fit", "update", "predict", "score", "select"):
        shown = _help(capsys, command, "--help")
        assert "--scheduler ADDRESS" in shown and "--workers N" in shown, command
    # --version after a command is streammix's version, as before it
    for args in (("--version",), ("inspect", "CKPT", "--version"), ("fit", "--version")):
        assert _help(capsys, *args).strip() == f"streammix {__version__}"


def test_the_old_checkpoint_version_spelling_says_what_it_is_now(ws):
    proc = run_cli("inspect", "models/fit", "--version", "1", cwd=str(ws))
    assert proc.returncode == 2 and "--checkpoint-version 1" in proc.stderr, proc.stderr
    ok = run_cli("inspect", "models/fit", "--checkpoint-version", "1", "--json", cwd=str(ws))
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["version"] == 1


def test_inspect_and_report_accept_the_cluster_options_a_wrapper_passes(ws):
    from streammix.cli import build_parser

    for args in (["inspect", "C", "--scheduler", "tcp://x:1", "--workers", "2"],
                 ["repair", "C", "--workers", "2"]):
        assert build_parser().parse_args(args).workers == 2


# ------------------------------------------------------------ 9. global options
COMMANDS = {
    "fit": ("fit", "fit.yaml"),
    "update": ("update", "update.yaml"),
    "predict": ("predict", "score.yaml", "--set", "outputs.path=pred.zarr"),
    "score": ("score", "score.yaml", "--set", "outputs.path=q.zarr"),
    "select": ("select", "select.yaml"),
    "inspect": ("inspect", "models/fit"),
    "report": ("report", "models/fit", "--out", "report-q", "--sample", "200"),
    "repair": ("repair", "models/fit"),
}


def test_global_options_parse_before_or_after_every_command():
    from streammix.cli import build_parser

    options = ["-q", "-v", "--log-format", "json", "--no-progress"]
    for name, args in COMMANDS.items():
        before = build_parser().parse_args([*options, *args])
        after = build_parser().parse_args([*args, *options])
        for ns in (before, after):
            assert (ns.quiet, ns.verbose, ns.log_format, ns.no_progress) == \
                (True, 1, "json", True), (name, ns)
        assert build_parser().parse_args(args).quiet is False


@pytest.mark.parametrize("name", list(COMMANDS))
def test_quiet_before_or_after_every_command(ws, name):
    args = COMMANDS[name]
    for argv in (("-q", *args), (*args, "-q")):
        proc = run_cli(*argv, cwd=str(ws))
        assert proc.returncode == 0, (argv, proc.stderr)
        assert " INFO " not in proc.stderr, (argv, proc.stderr)
    if name != "inspect":  # (which logs nothing but errors: its summary is on stdout)
        loud = run_cli(*args, cwd=str(ws))  # and without it: the info lines
        assert loud.returncode == 0 and " INFO " in loud.stderr, (name, loud.stderr)
