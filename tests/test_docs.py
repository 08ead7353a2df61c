"""The documentation stays true: every Python example of the README and of docs/ runs
(against real servers started here, with small data where an example names a big or
remote data set), every `streammix ...` command shown parses with the command line's own
parser, every YAML block parses and every complete config validates, every link leads
somewhere, and the HTML site builds with warnings as errors.

Examples are adapted only by text substitutions that must match (`run_example`), so an
edited example fails here instead of silently running something else."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import warnings
from dataclasses import dataclass
from urllib.parse import urlparse

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
# every Markdown page a user reads: the README and the guides, as paths from the root
PAGES = ["README.md"] + sorted(f"docs/{n}" for n in os.listdir(DOCS) if n.endswith(".md"))
# the fenced-block languages the tests below know what to do with
PYTHON, SHELL, YAML = "python", "sh", "yaml"
INERT = {"text", "ini", "{eval-rst}", "{include}", "{toctree}"}  # output, a systemd unit,
# and the site's own directives (the build test checks those)


# --------------------------------------------------------------------------- reading pages
@dataclass
class Block:
    page: str      # path from the repository root
    language: str  # the info string's first word
    line: int      # 1-based line of the block's first content line in the page
    code: str      # the content, with the fence's indentation removed


_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


def fenced_blocks(page: str) -> list[Block]:
    """The fenced code blocks of a Markdown page, in order, nested in list items too."""
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        lines = f.read().split("\n")
    out, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = len(m["indent"]), m["fence"]
        language = (m["info"].strip().split() or [""])[0]
        body, j = [], i + 1
        while j < len(lines) and not re.match(rf"^ *{re.escape(fence[0])}{{{len(fence)},}}\s*$",
                                               lines[j]):
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        out.append(Block(page, language, i + 2, "\n".join(body) + "\n"))
        i = j + 1
    return out


def blocks_of(page: str, language: str) -> list[Block]:
    return [b for b in fenced_blocks(page) if b.language == language]


def blocks(name: str, language: str) -> list[str]:
    """The code of docs/NAME's blocks in LANGUAGE."""
    return [b.code for b in blocks_of(f"docs/{name}", language)]


def python_blocks(name: str) -> list[str]:
    return blocks(name, PYTHON)


def prose(page: str, inline_code: bool = False) -> str:
    """A page without its fenced blocks, and without its inline code unless asked (for
    links: a link inside code is no link)."""
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        lines = f.read().split("\n")
    for b in fenced_blocks(page):
        for k in range(b.line - 2, b.line + b.code.count("\n")):
            if 0 <= k < len(lines):
                lines[k] = ""
    text = "\n".join(lines)
    return text if inline_code else re.sub(r"`[^`\n]*`", "", text)


# --------------------------------------------------------------------------- running examples
# page -> indices (among the page's Python blocks) that some test below runs
COVERED: dict[str, set[int]] = {}


def covers(*examples: tuple[str, int]):
    """Mark a test as running these (page, Python block index) examples."""
    for page, index in examples:
        COVERED.setdefault(page, set()).add(index)
    return lambda test: test


def example(page: str, index: int) -> Block:
    return blocks_of(page, PYTHON)[index]


def run_example(page: str, index: int, replace: dict[str, str] | None = None,
                namespace: dict | None = None) -> dict:
    """Run a Python example; each `replace` key must occur in it. Tracebacks show the
    page's own line numbers. Returns the namespace it ran in."""
    block = example(page, index)
    code = block.code
    for old, new in (replace or {}).items():
        assert old in code, f"{page}: example {index} no longer contains {old!r}"
        code = code.replace(old, new)
    space = {"__name__": "__docs__"} if namespace is None else namespace
    exec(compile("\n" * (block.line - 1) + code, os.path.join(ROOT, page), "exec"), space)
    return space


def write_zarr(path, X, chunk_rows: int = 1000):
    import zarr

    z = zarr.create_array(store=str(path), shape=X.shape, chunks=(chunk_rows, X.shape[1]),
                          dtype="float64", compressors=None)
    z[:] = X
    return str(path)


def test_every_doc_example_is_covered():
    """A page with a Python example that no test runs fails here (add a test with
    @covers); so does a fenced block in a language the tests do not check."""
    missing, unknown = [], []
    for page in PAGES:
        n = len(blocks_of(page, PYTHON))
        missing += [f"{page}: Python example {i}" for i in range(n)
                    if i not in COVERED.get(page, set())]
        unknown += [f"{b.page}:{b.line - 1}: ```{b.language or '(no language)'}"
                    for b in fenced_blocks(page)
                    if b.language not in {PYTHON, SHELL, YAML} | INERT]
    stale = [f"{page}: example {i}" for page, done in COVERED.items() for i in done
             if i >= len(blocks_of(page, PYTHON))]
    assert not missing, "examples no test runs:\n" + "\n".join(missing)
    assert not unknown, "blocks of a language no test checks:\n" + "\n".join(unknown)
    assert not stale, "tests cover examples that are gone:\n" + "\n".join(stale)


@covers(("README.md", 0))
def test_readme_in_memory_quick_start(capsys):
    space = run_example("README.md", 0, {"1_000_000": "5_000"})
    assert space["labels"].shape == (5_000,)
    assert space["gmm"].converged_
    out = capsys.readouterr().out
    assert "(16, 16)" in out


@covers(("README.md", 1), ("docs/out-of-core.md", 0))
@pytest.mark.parametrize("page", ["README.md", "docs/out-of-core.md"])
def test_dask_zarr_quick_start(page, tmp_path, capsys):
    """The S3 URLs become local Zarr paths (the same code path for every fsspec store:
    tests/execution covers S3 and HTTP against real servers)."""
    import dask.array as da
    import zarr

    from tests.conftest import make_blobs

    X, _ = make_blobs(8000, 3, 4, seed=3)
    data = write_zarr(tmp_path / "points.zarr", X)
    out = str(tmp_path / "predictions.zarr")
    space = run_example(page, 1 if page == "README.md" else 0,
                        {'"s3://bucket/points.zarr"': repr(data),
                         '"s3://bucket/predictions.zarr"': repr(out)})
    assert isinstance(space["labels"], da.Array)
    written = zarr.open_group(out, mode="r")
    np.testing.assert_array_equal(written["labels"][:], space["labels"].compute())
    assert "initialization" in capsys.readouterr().out.lower()  # verbose=2 reports


@covers(("docs/out-of-core.md", 1))
def test_out_of_core_select_example(tmp_path, monkeypatch, capsys):
    from tests.conftest import make_blobs

    X, _ = make_blobs(6000, 2, 4, seed=2)
    write_zarr(tmp_path / "points.zarr", X, chunk_rows=500)
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        space = run_example("docs/out-of-core.md", 1, {"range(2, 9)": "range(2, 6)"})
    assert len(space["grid"].table) == 8
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[0] == str(space["grid"].best.n_components) and len(lines) == 4


@covers(("docs/performance.md", 0))
def test_performance_guide_float32_estep_example(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a capped max_iter may leave it unconverged
        space = run_example("docs/performance.md", 0, {"200_000": "8_000",
                                                       "50_000": "2_000"})
    shown = float(capsys.readouterr().out)
    assert shown == np.abs(space["fast"].means_ - space["exact"].means_).max()
    assert 0 < shown < 1e-4  # float32's rounding, not float64's
    assert space["fast"].estep_dtype == "float32"


@covers(("README.md", 2))
def test_readme_bayesian_quick_start(tmp_path, monkeypatch, capsys):
    from tests.conftest import make_blobs

    X, _ = make_blobs(3000, 2, 3, seed=5)
    write_zarr(tmp_path / "points.zarr", X, chunk_rows=500)
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning on this small fit is fine
        space = run_example("README.md", 2)
    assert 1 <= space["bgmm"].effective_n_components() <= 20
    assert capsys.readouterr().out.strip()


def _stream(n_batches: int = 6, rows: int = 1500, d: int = 4):
    from tests.conftest import make_blobs

    X, _ = make_blobs(n_batches * rows, d, 4, seed=7)
    return [X[i * rows:(i + 1) * rows] for i in range(n_batches)]


@covers(("README.md", 3), ("docs/online.md", 0))
@pytest.mark.parametrize("page", ["README.md", "docs/online.md"])
def test_online_quick_start(page, tmp_path, monkeypatch):
    """`batches()` is the reader's own source of batches; points.zarr a small array."""
    stream = _stream()
    write_zarr(tmp_path / "points.zarr", np.vstack(stream), chunk_rows=1500)
    monkeypatch.chdir(tmp_path)
    space = run_example(page, 3 if page == "README.md" else 0,
                        namespace={"batches": lambda: iter(stream)})
    model = space["model"]
    assert model.n_updates_ > 0 and model.means_.shape[1] == 4  # moves may merge some


@covers(("docs/online.md", 1))
def test_online_guide_moves_example():
    """The moves example on the stream it describes: four clusters, a fifth born at full
    capacity (tests/drift_streams.py's 'born', shortened): a merge frees a slot, then a
    birth on the novel points."""
    from tests.drift_streams import born

    space = run_example("docs/online.md", 1, namespace={
        "OnlineGaussianMixture": __import__("streammix").OnlineGaussianMixture,
        "batches": lambda: (X for _, X, _ in born(n_batches=60, batch=1000))})
    events = space["model"].events_
    assert any(e["event"] == "merge" for e in events)
    assert any(e["event"] == "birth" and e["reason"] == "novel points" for e in events)


@covers(("docs/online.md", 2))
def test_online_guide_alignment_example(capsys):
    space = run_example("docs/online.md", 2)
    assert capsys.readouterr().out.strip() == "True"
    weights = space["shown"].weights_
    assert np.all(np.diff(weights) <= 0)  # heaviest first


@covers(("docs/checkpoints.md", 0))
def test_checkpoint_guide_example(tmp_path, monkeypatch):
    """`gmm`, `model`, `online` and `batches` are what the guide says they are."""
    import streammix

    stream = _stream()
    write_zarr(tmp_path / "points.zarr", np.vstack(stream))
    monkeypatch.chdir(tmp_path)
    fitted = streammix.GaussianMixture(3, random_state=0).fit(stream[0])
    space = run_example("docs/checkpoints.md", 0, namespace={
        "streammix": streammix, "gmm": streammix.GaussianMixture(3, random_state=0),
        "model": fitted, "online": streammix.OnlineGaussianMixture(3, random_state=0),
        "batches": stream})
    np.testing.assert_array_equal(space["model"].means_, fitted.means_)
    resumed = streammix.load("ck/")
    np.testing.assert_array_equal(resumed.means_, space["gmm"].means_)
    again = streammix.GaussianMixture(3, random_state=0).fit("points.zarr", checkpoint="ck/")
    assert again.n_iter_ == space["gmm"].n_iter_  # a finished checkpoint returns at once
    assert streammix.load("ck-online/").n_updates_ == space["online"].n_updates_


@covers(("docs/streams.md", 0))
def test_streams_guide_example_runs(redis_server, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run_example("docs/streams.md", 0, {"redis://localhost:6379/0": redis_server.url})
    assert capsys.readouterr().out.strip() == "5000.0"


@covers(("docs/cluster.md", 0))
def test_cluster_guide_example_runs_over_tls(tmp_path, monkeypatch, capsys):
    """The guide's example against a real TLS cluster (mutual TLS, encryption required),
    from a Zarr array on a path the worker sees; the same bits as without a cluster."""
    import zarr
    from distributed import LocalCluster
    from distributed.security import Security

    import streammix
    from tests.conftest import make_blobs
    from tests.tls_certs import TestCA

    (block,) = python_blocks("cluster.md")
    ca = TestCA(str(tmp_path / "tls"))
    node, client = ca.issue("node", ["127.0.0.1"]), ca.issue("client")
    X, _ = make_blobs(6000, 2, 3, seed=11)
    data = str(tmp_path / "shared" / "points.zarr")
    z = zarr.create_array(store=data, shape=X.shape, chunks=(1000, 2), dtype="float64",
                          compressors=None)
    z[:] = X
    monkeypatch.chdir(tmp_path)
    replace = {}
    for text, real in [('"tls://scheduler.example.org:8786"', None),
                       ('"ca.pem"', client["ca"]), ('"client.pem"', client["cert"]),
                       ('"client.key"', client["key"]),
                       ('"/shared/data/points.zarr"', data)]:
        assert block.count(text) == 1, text
        if real is not None:
            replace[text] = repr(real)
    cluster_security = Security(
        tls_ca_file=node["ca"], tls_scheduler_cert=node["cert"], tls_scheduler_key=node["key"],
        tls_worker_cert=node["cert"], tls_worker_key=node["key"],
        tls_client_cert=client["cert"], tls_client_key=client["key"],
        require_encryption=True)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tls://",
                      host="127.0.0.1", security=cluster_security,
                      dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tls://127.0.0.1:")
        replace['"tls://scheduler.example.org:8786"'] = repr(cluster.scheduler_address)
        run_example("docs/cluster.md", 0, replace)
    assert capsys.readouterr().out.strip() == "True"
    fitted = streammix.load(str(tmp_path / "models" / "points"), finished=True)
    # the same fit on Dask's threaded scheduler in this process: the same bits
    ref = streammix.GaussianMixture(n_components=3, random_state=0).fit(data)
    assert fitted.n_iter_ == ref.n_iter_
    np.testing.assert_array_equal(fitted.means_, ref.means_)
    np.testing.assert_array_equal(fitted.covariances_, ref.covariances_)
    np.testing.assert_array_equal(fitted.weights_, ref.weights_)


@covers(("docs/bayesian.md", 0))
def test_bayesian_guide_example_prints_what_it_shows(capsys):
    """docs/bayesian.md: the example runs and prints the output the guide shows."""
    shown = blocks("bayesian.md", "text")[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_example("docs/bayesian.md", 0)
    assert capsys.readouterr().out.strip() == shown.strip()


@covers(("docs/bayesian.md", 1))
def test_bayesian_guide_migration_continues_a_scikit_learn_model(tmp_path, monkeypatch):
    """docs/bayesian.md's migration snippet: a scikit-learn model continued on a Zarr
    array gives scikit-learn's own continuation."""
    import zarr
    from sklearn.mixture import BayesianGaussianMixture

    from tests.conftest import make_blobs

    X, _ = make_blobs(3000, 3, 3, seed=5)
    z = zarr.create_array(store=str(tmp_path / "big-data.zarr"), shape=X.shape,
                          chunks=(500, 3), dtype="float64")
    z[:] = X
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk_model = BayesianGaussianMixture(n_components=4, max_iter=3, random_state=0).fit(X)
        space = run_example("docs/bayesian.md", 1, namespace={"sk_model": sk_model})
        sk_model.set_params(warm_start=True).fit(X)
    np.testing.assert_allclose(space["ours"].means_, sk_model.means_, rtol=1e-8)


# --------------------------------------------------------------------------- shell and YAML
def shell_commands(block: Block) -> list[list[str]]:
    """The commands of a shell block: continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", block.code)
    return [words for line in text.split("\n")
            if (words := shlex.split(line, comments=True))]


SHELL_COMMANDS = [(b.page, b.line, words) for page in PAGES for b in blocks_of(page, SHELL)
                  for words in shell_commands(b)]


def _makefile_targets() -> set[str]:
    with open(os.path.join(ROOT, "Makefile")) as f:
        return set(re.findall(r"^([\w.-]+):", f.read(), flags=re.M))


@pytest.mark.parametrize(
    "page,line,words", SHELL_COMMANDS,
    ids=[f"{p}:{n}:{' '.join(w[:2])}" for p, n, w in SHELL_COMMANDS])
def test_shell_examples_use_real_commands_and_options(page, line, words, tmp_path):
    """`streammix ...` parses with the CLI's own parser (so the command and every option
    exist, as `streammix CMD --help` lists them), and a config of configs/ it names
    validates with its --set overrides; `make X` is a target of the Makefile; a script
    run from the repository exists."""
    from streammix.cli import CONFIG_COMMANDS, build_parser
    from streammix.cli.config import load_config

    where = f"{page}:{line}: {shlex.join(words)}"
    program = words[0]
    if program in ("dask", "export", "pip"):  # Dask's CLI, the environment, pip
        return
    if program == "make":
        assert set(words[1:]) <= _makefile_targets(), where
        return
    if program.endswith("python"):
        script = os.path.join(ROOT, words[1])
        assert os.path.isfile(script), where
        result = subprocess.run([sys.executable, script, "--help"], capture_output=True,
                                text=True, cwd=ROOT, timeout=120)
        assert result.returncode == 0, f"{where}\n{result.stderr}"
        for option in (w.split("=")[0] for w in words[2:] if w.startswith("--")):
            assert option in result.stdout, f"{where}: {option} is not an option"
        return
    assert program == "streammix", f"{where}: a command the docs tests do not know"
    if "demo" in words:
        return  # `streammix demo` takes the demo's own options (tests/cli/test_demo.py)
    try:
        args = build_parser().parse_args(words[1:])
    except SystemExit as exc:  # argparse's usage error
        pytest.fail(f"{where}: not a valid command line (exit {exc.code})")
    if args.command in CONFIG_COMMANDS and args.config.startswith("configs/"):
        load_config(os.path.join(ROOT, args.config), args.set)


def _subcommand_options() -> dict[str, set[str]]:
    import argparse

    from streammix.cli import build_parser

    parser = build_parser()
    top = {o for a in parser._actions for o in a.option_strings}
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {name: top | {o for a in p._actions for o in a.option_strings}
            for name, p in sub.choices.items()}


@pytest.mark.parametrize("page", PAGES)
def test_commands_named_in_the_text_exist(page):
    """`streammix CMD ... --option` written inline names a real command and its options."""
    options = _subcommand_options()
    bad = []
    for command, rest in re.findall(r"`streammix ([a-z]+)((?: [^`]*)?)`",
                                    prose(page, inline_code=True)):
        if command not in options:
            bad.append(f"streammix {command}: no such command")
        elif command != "demo":
            bad += [f"streammix {command} {o}: no such option"
                    for o in re.findall(r"--[a-z][\w-]*", rest) if o not in options[command]]
    assert not bad, f"{page}:\n" + "\n".join(bad)


YAML_BLOCKS = [b for page in PAGES for b in blocks_of(page, YAML)]


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=[f"{b.page}:{b.line}" for b in YAML_BLOCKS])
def test_yaml_examples_parse_and_whole_configs_validate(block, tmp_path):
    """Every YAML block is valid YAML; each whole config (one with a top-level source:)
    passes the CLI's validation, TLS files included."""
    import yaml

    from streammix.cli.config import load_config

    data = yaml.safe_load(block.code)
    assert isinstance(data, dict), f"{block.page}:{block.line}"
    if "source" not in data:
        return
    tls = ((data.get("run") or {}).get("cluster") or {}).get("tls") or {}
    for name in tls.values():  # the client's certificate files, relative to the config
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    (tmp_path / "job.yaml").write_text(block.code)
    cfg = load_config(str(tmp_path / "job.yaml"))
    assert cfg.model


def test_cluster_guide_configs_load(tmp_path):
    """docs/cluster.md's three whole configs name their scheduler, with TLS files
    relative to the config."""
    import yaml

    from streammix.cli.config import load_config

    configs = 0
    for i, text in enumerate(blocks("cluster.md", YAML)):
        data = yaml.safe_load(text)
        if "source" not in data:
            continue
        configs += 1
        folder = tmp_path / f"job{i}"
        folder.mkdir()
        tls = data["run"]["cluster"].get("tls") or {}
        for name in tls.values():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text("")
        (folder / "job.yaml").write_text(text)
        cluster = load_config(str(folder / "job.yaml")).run["cluster"]
        assert cluster["scheduler"].startswith("tls://" if tls else "tcp://")
        if tls:
            assert cluster["tls"]["ca_file"] == str(folder / tls["ca_file"])
    assert configs == 3


# --------------------------------------------------------------------------- links
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's (and MyST's) anchor of a heading."""
    text = re.sub(r"`([^`]*)`", r"\1", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: str) -> set[str]:
    lines = prose(page, inline_code=True).split("\n")
    return {_slug(m[1]) for line in lines if (m := re.match(r"^#{1,6} +(.*?)#*\s*$", line))}


@pytest.mark.parametrize("page", PAGES)
def test_links_lead_somewhere(page):
    """Relative links name files of the repository (and headings that exist); links out
    of the repository go to public websites only (never a local path outside it)."""
    bad = []
    for m in _LINK.finditer(prose(page)):
        target = m[1] or m[2]
        url = urlparse(target)
        if url.scheme:
            host = url.hostname or ""
            if url.scheme not in ("http", "https") or host in ("localhost", "") \
                    or re.match(r"^(127\.|10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.)", host) \
                    or "." not in host:
                bad.append(f"{target}: not a public website")
            continue
        path, _, anchor = target.partition("#")
        resolved = os.path.normpath(os.path.join(ROOT, os.path.dirname(page), path)) \
            if path else os.path.join(ROOT, page)
        if os.path.commonpath([resolved, ROOT]) != ROOT:
            bad.append(f"{target}: outside the repository")
        elif not os.path.exists(resolved):
            bad.append(f"{target}: no such file")
        elif anchor and resolved.endswith(".md") and \
                anchor not in _anchors(os.path.relpath(resolved, ROOT)):
            bad.append(f"{target}: no heading with that anchor")
    assert not bad, f"{page}:\n" + "\n".join(bad)


def test_index_lists_every_guide():
    """docs/index.md links every page of docs/ (the site's navigation is made from it)."""
    listed = {os.path.normpath(os.path.join("docs", m[1] or m[2]).partition("#")[0])
              for m in _LINK.finditer(prose("docs/index.md"))}
    pages = {p for p in PAGES if p.startswith("docs/")} - {"docs/index.md", "docs/results.md"}
    assert pages <= listed, f"not in docs/index.md: {sorted(pages - listed)}"


def test_readme_is_short():
    """The README is what a new user needs first; the rest lives in docs/."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        assert len(f.read()) < 10_000


# --------------------------------------------------------------------------- the site
def test_docs_site_builds_without_warnings(tmp_path):
    """`make docs`'s build (Sphinx, MyST, autodoc), warnings as errors, offline."""
    for module in ("sphinx", "myst_parser", "furo"):
        pytest.importorskip(module, reason="the docs extra is not installed "
                                           "(pip install -e '.[docs]')")
    out = tmp_path / "html"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), DOCS, str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not result.stderr.strip(), result.stderr
    api = (out / "api.html").read_text()
    for name in ("GaussianMixture", "BayesianGaussianMixture", "OnlineGaussianMixture",
                 "OnlineBayesianGaussianMixture", "align", "relabel", "canonical_order",
                 "load", "read_zarr", "write_predictions", "CheckpointError"):
        assert f'id="streammix.{name}"' in api, name
    remote = re.compile(r"""<(?:script|link|img)[^>]+(?:src|href)=["'](?:https?:)?//""")
    for page in out.glob("*.html"):
        found = remote.search(page.read_text())
        assert not found, f"{page.name} loads {found[0]!r} from the network"
