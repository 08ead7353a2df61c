"""Every Python example in docs/ runs (against real servers started here)."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


def blocks(name: str, language: str) -> list[str]:
    with open(os.path.join(DOCS, name)) as f:
        return re.findall(rf"```{language}\n(.*?)```", f.read(), flags=re.S)


def python_blocks(name: str) -> list[str]:
    return blocks(name, "python")


def test_streams_guide_example_runs(redis_server, tmp_path, monkeypatch, capsys):
    (block,) = python_blocks("streams.md")
    monkeypatch.chdir(tmp_path)
    exec(compile(block.replace("redis://localhost:6379/0", redis_server.url),
                 "docs/streams.md", "exec"), {})
    assert capsys.readouterr().out.strip() == "5000.0"


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
    for text, real in [('"tls://scheduler.example.org:8786"', None),
                       ('"ca.pem"', client["ca"]), ('"client.pem"', client["cert"]),
                       ('"client.key"', client["key"]),
                       ('"/shared/data/points.zarr"', data)]:
        assert block.count(text) == 1, text
        if real is not None:
            block = block.replace(text, repr(real))
    cluster_security = Security(
        tls_ca_file=node["ca"], tls_scheduler_cert=node["cert"], tls_scheduler_key=node["key"],
        tls_worker_cert=node["cert"], tls_worker_key=node["key"],
        tls_client_cert=client["cert"], tls_client_key=client["key"],
        require_encryption=True)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tls://",
                      host="127.0.0.1", security=cluster_security,
                      dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tls://127.0.0.1:")
        block = block.replace('"tls://scheduler.example.org:8786"',
                              repr(cluster.scheduler_address))
        exec(compile(block, "docs/cluster.md", "exec"), {})
    assert capsys.readouterr().out.strip() == "True"
    fitted = streammix.load(str(tmp_path / "models" / "points"), finished=True)
    # the same fit on Dask's threaded scheduler in this process: the same bits
    ref = streammix.GaussianMixture(n_components=3, random_state=0).fit(data)
    assert fitted.n_iter_ == ref.n_iter_
    np.testing.assert_array_equal(fitted.means_, ref.means_)
    np.testing.assert_array_equal(fitted.covariances_, ref.covariances_)
    np.testing.assert_array_equal(fitted.weights_, ref.weights_)


def test_cluster_guide_configs_load(tmp_path):
    """Every YAML block of docs/cluster.md is valid YAML; each whole config (one with a
    top-level source:) passes the CLI's validation, TLS files included."""
    import yaml

    from streammix.cli.config import load_config

    configs = 0
    for i, text in enumerate(blocks("cluster.md", "yaml")):
        data = yaml.safe_load(text)
        assert isinstance(data, dict), text
        if "source" not in data:
            continue
        configs += 1
        folder = tmp_path / f"job{i}"
        folder.mkdir()
        tls = data["run"]["cluster"].get("tls") or {}
        for name in tls.values():  # the client's certificate files, relative to the config
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text("")
        (folder / "job.yaml").write_text(text)
        cfg = load_config(str(folder / "job.yaml"))
        cluster = cfg.run["cluster"]
        assert cluster["scheduler"].startswith("tls://" if tls else "tcp://")
        if tls:
            assert cluster["tls"]["ca_file"] == str(folder / tls["ca_file"])
    assert configs == 3


@pytest.mark.parametrize("name", sorted(n for n in os.listdir(DOCS) if n.endswith(".md")))
def test_every_doc_example_is_covered(name):
    """A new guide with Python examples needs its own test above."""
    covered = {"streams.md", "cluster.md", "bayesian.md"}
    assert name in covered or not python_blocks(name), f"docs/{name} has untested examples"


def test_bayesian_guide_example_prints_what_it_shows(capsys):
    """docs/bayesian.md: the example runs and prints the output the guide shows."""
    import warnings

    code, shown = python_blocks("bayesian.md")[0], blocks("bayesian.md", "text")[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, "docs/bayesian.md", "exec"), {})
    assert capsys.readouterr().out.strip() == shown.strip()


def test_bayesian_guide_migration_continues_a_scikit_learn_model(tmp_path, monkeypatch):
    """docs/bayesian.md's migration snippet: a scikit-learn model continued on a Zarr
    array gives scikit-learn's own continuation."""
    import warnings

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
        space = {"sk_model": sk_model}
        exec(compile(python_blocks("bayesian.md")[1], "docs/bayesian.md", "exec"), space)
        sk_model.set_params(warm_start=True).fit(X)
    np.testing.assert_allclose(space["ours"].means_, sk_model.means_, rtol=1e-8)
