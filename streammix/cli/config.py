"""Job configs: YAML files with a validated schema, `--set key=value` overrides, and
errors that name the file, the key and what was expected, before any work starts.

A config has five sections (only the ones a command needs are required):

- ``source``: where the data are (type zarr / npy / directory / parquet, path or URL).
- ``model``: the estimator and every one of its parameters (scikit-learn's names):
  GaussianMixture or BayesianGaussianMixture (`fit`, `predict`, `score`; `select` only
  GaussianMixture), OnlineGaussianMixture or OnlineBayesianGaussianMixture (`update`).
  Array-valued parameters (a Bayesian mixture's mean_prior and covariance_prior) are
  YAML lists.
- ``run``: checkpoint path, checkpoint_every, keep_last, max_iter, tol, random_state,
  align_to, on_mismatch, batch_size (online updates) and the Dask cluster.
- ``outputs``: where predictions/scores go, which ones, the anomaly threshold.
- ``select``: the candidates of ``streammix select`` (K range, covariance types).

Relative paths in a file are relative to the file's directory (a cron job's working
directory does not matter); paths given with ``--set`` are relative to the current one.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import StreammixError


class ConfigError(StreammixError, ValueError):
    """The config file or the command line is unusable (exit code 2)."""


class MissingDataError(StreammixError, ValueError):
    """A configured data path does not exist (exit code 3)."""


@dataclass(frozen=True)
class Field:
    """One config key: the Python types it accepts, whether it is required, its default,
    the allowed values, and what it means (shown in errors)."""

    types: tuple
    doc: str
    default: Any = None
    choices: tuple | None = None
    check: Callable[[Any], str | None] | None = None  # returns a problem or None
    is_path: bool = False


def _positive(v) -> str | None:
    return None if v > 0 else "must be > 0"


def _at_least_zero(v) -> str | None:
    return None if v >= 0 else "must be >= 0"


def _probability(v) -> str | None:
    return None if 0 < v < 1 else "must be in (0, 1)"


def _output_names(v) -> str | None:
    bad = [x for x in v if x not in ("labels", "proba", "log_density")]
    return f"unknown outputs {bad}: expected a list of labels, proba, log_density" if bad \
        else (None if v else "must not be empty")


def _is_count(k) -> bool:
    return isinstance(k, int) and not isinstance(k, bool) and k >= 1


def _k_list(v) -> str | None:
    if isinstance(v, dict):
        if set(v) - {"min", "max", "step"} or not {"min", "max"} <= set(v):
            return "a range is {min: K1, max: K2} (and optionally step)"
        if not all(_is_count(x) for x in v.values()) or v["min"] > v["max"]:
            return "min, max and step must be integers >= 1 with min <= max"
        return None
    ok = all(_is_count(k) for k in v)
    return None if ok and v else "must be a non-empty list of integers >= 1"


def _cov_list(v) -> str | None:
    bad = [x for x in v if x not in ("full", "tied", "diag", "spherical")]
    return f"unknown covariance types {bad}" if bad or not v else None


INT, FLOAT, STR, BOOL, LIST, DICT = (int,), (int, float), (str,), (bool,), (list,), (dict,)

SCHEMA: dict[str, dict[str, Field]] = {
    "source": {
        "type": Field(STR, "kind of source",
                      choices=("zarr", "npy", "directory", "parquet", "redis")),
        "url": Field(STR, "redis: the server, redis://host:6379/0 (a password in it is "
                          "never logged)"),
        "stream": Field(STR, "redis: the stream's key"),
        "group": Field(STR, "redis: the consumer group (created when missing)",
                       default="streammix"),
        "consumer": Field(STR, "redis: this reader's name in the group (default: host "
                               "and process id)"),
        "start": Field(STR, "redis: where a new group starts", default="earliest",
                       choices=("earliest", "latest")),
        "format": Field(STR, "redis: message format", default="packed",
                        choices=("packed", "json")),
        "field": Field(STR, "redis: the message field holding the data", default="x"),
        "n_features": Field(INT, "redis: values per row (packed: several rows per message "
                                 "when set; default: one row per message)",
                            check=_positive),
        "path": Field(STR, "path or URL of the data", is_path=True),
        "pattern": Field(STR, "file name pattern in a directory source", default="*.npy"),
        "columns": Field(LIST, "parquet columns to use as features (default: all "
                               "numeric); redis json: numeric fields forming a row"),
        "chunk_rows": Field(INT, "rows per chunk for npy/parquet/directory sources",
                            default=262_144, check=_positive),
        "dtype": Field(STR, "cast the data to this dtype when read (e.g. integer data); "
                            "redis packed: the values' type (little-endian)",
                       choices=("float32", "float64")),
        "storage_options": Field(DICT, "zarr at a URL: options of its filesystem "
                                       "(s3: endpoint_url, key, secret, ...), passed "
                                       "to every worker with the array"),
        "persist": Field(BOOL, "keep the decoded chunks in (cluster) memory for the EM "
                               "passes instead of re-reading them", default=False),
    },
    "model": {},  # the estimator's own parameters, checked against it (see check_model)
    "run": {
        "checkpoint": Field(STR, "checkpoint directory or URL", is_path=True),
        "checkpoint_every": Field(INT, "save every N iterations / batches", default=1,
                                  check=_positive),
        "checkpoint_interval": Field(FLOAT, "seconds at least between saves (and at "
                                            "least 20x the last save's time, so saving "
                                            "costs under 5%); 0: only the 20x rule; null: "
                                            "exactly every checkpoint_every",
                                     default=10.0, check=_at_least_zero),
        "keep_last": Field(INT, "checkpoint versions kept", default=3, check=_positive),
        "max_iter": Field(INT, "EM iterations at most (model.max_iter)"),
        "tol": Field(FLOAT, "convergence threshold (model.tol)"),
        "random_state": Field(INT, "seed (model.random_state)"),
        "align_to": Field(STR, "'previous' (the model in the checkpoint) or a checkpoint "
                               "path whose labels a refit keeps", is_path=True),
        "on_mismatch": Field(STR, "what fit does when the checkpoint holds another fit",
                             default="error", choices=("error", "restart")),
        "batch_size": Field(INT, "rows per online update batch", default=10_000,
                            check=_positive),
        "max_wait": Field(FLOAT, "--follow: seconds after a batch's first message after "
                                 "which a partial batch is used", default=1.0,
                          check=_positive),
        "on_bad_batch": Field(STR, "what update does with a batch holding NaN/inf or "
                                   "other bad values", default="error",
                              choices=("error", "skip")),
        "cluster": Field(DICT, "Dask cluster: scheduler (address) and/or workers (N)"),
    },
    "outputs": {
        "path": Field(STR, "Zarr group written by predict/score", is_path=True),
        "model": Field(STR, "checkpoint of the model to use (default: run.checkpoint)",
                       is_path=True),
        "write": Field(LIST, "outputs to write", check=_output_names),
        "overwrite": Field(BOOL, "replace existing outputs", default=True),
        "anomaly": Field(DICT, "flag rows by log-density: threshold: X or quantile: q"),
        "stream": Field(STR, "score --follow: the redis stream the results go to"),
        "url": Field(STR, "score --follow: the redis server of outputs.stream (default: "
                          "source.url)"),
    },
    "select": {
        "n_components": Field(LIST + DICT, "candidate numbers of components: a list, or "
                                             "{min: 2, max: 10}", check=_k_list),
        "covariance_types": Field(LIST, "candidate covariance types",
                                  default=["full", "diag"], check=_cov_list),
        "criterion": Field(STR, "what picks the model", default="bic",
                           choices=("bic", "aic")),
        "plot": Field(STR, "PNG of the BIC/AIC curves", is_path=True),
        "shared_passes": Field(BOOL, "fit the candidates together, every pass over the "
                                     "data shared (default: true without run.checkpoint; "
                                     "with one, one by one, each fit resumable)"),
    },
}

CLUSTER_KEYS: dict[str, Field] = {
    "scheduler": Field(STR, "address of a running Dask scheduler (tcp://host:8786)"),
    "workers": Field(INT, "local worker processes to start", check=_positive),
    "threads_per_worker": Field(INT, "threads per local worker", default=1,
                                check=_positive),
    "tls": Field(DICT, "TLS for a tls:// scheduler: {ca_file, cert, key} (PEM files)"),
}
TLS_KEYS: dict[str, Field] = {
    "ca_file": Field(STR, "the certificate authority that signed the cluster's "
                          "certificates", is_path=True),
    "cert": Field(STR, "this client's certificate", is_path=True),
    "key": Field(STR, "this client's private key (may be the cert file itself)",
                 is_path=True),
}
ANOMALY_KEYS: dict[str, Field] = {
    "threshold": Field(FLOAT, "flag rows whose log-density is below this"),
    "quantile": Field(FLOAT, "flag this fraction of rows with the lowest log-density",
                      check=_probability),
}

ESTIMATORS = ("GaussianMixture", "OnlineGaussianMixture", "BayesianGaussianMixture",
              "OnlineBayesianGaussianMixture")
#: the estimators `streammix fit` runs (batch EM) and those `streammix update` runs
BATCH_ESTIMATORS = ("GaussianMixture", "BayesianGaussianMixture")
ONLINE_ESTIMATORS = ("OnlineGaussianMixture", "OnlineBayesianGaussianMixture")
#: the variational Bayesian mixtures (priors on the weights, no BIC/AIC)
BAYESIAN_ESTIMATORS = ("BayesianGaussianMixture", "OnlineBayesianGaussianMixture")
#: a component of a Bayesian mixture is in use when its weight is above this
EFFECTIVE_THRESHOLD = 0.01
# estimator parameters that make no sense in a file (set by the command line instead)
_NOT_IN_CONFIG = {"client", "verbose", "verbose_interval"}
# run keys that are estimator parameters
_RUN_TO_MODEL = ("max_iter", "tol", "random_state")


@dataclass
class Config:
    """A validated config: plain dicts per section, with defaults filled in, paths
    resolved, and the file name for messages."""

    path: str
    source: dict
    model: dict
    run: dict
    outputs: dict
    select: dict

    def estimator_params(self) -> dict:
        """The estimator's constructor arguments (model section + run's EM keys)."""
        params = {k: v for k, v in self.model.items() if k != "estimator"}
        for k in _RUN_TO_MODEL:
            if self.run.get(k) is not None:
                params[k] = self.run[k]
        return params

    @property
    def estimator(self) -> str:
        return self.model.get("estimator", "GaussianMixture")


def _type_name(types: tuple) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false",
             list: "a list", dict: "a mapping"}
    if types == FLOAT:
        return "a number"
    return " or ".join(names[t] for t in types)


def _is_instance(value, types: tuple) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)


def value_hint(value, choices) -> str:
    """'; did you mean X?' for a mistyped value (case-insensitive), else ''."""
    if not isinstance(value, str):
        return ""
    lowered = {str(c).lower(): c for c in choices}
    if value.lower() in lowered:
        return f"; did you mean {lowered[value.lower()]!r}?"
    close = difflib.get_close_matches(value, [str(c) for c in choices], n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


# estimator parameters with a fixed set of values (checked here for a did-you-mean)
MODEL_CHOICES = {"covariance_type": ("full", "tied", "diag", "spherical"),
                 "init_params": ("kmeans", "k-means++", "random", "random_from_data"),
                 "estep_dtype": ("float64", "float32"),
                 "weight_concentration_prior_type": ("dirichlet_process",
                                                     "dirichlet_distribution")}


def estimator_name(model_or_name) -> str:
    """The estimator's name (a name is returned as is)."""
    return model_or_name if isinstance(model_or_name, str) else type(model_or_name).__name__


def is_online(model_or_name) -> bool:
    """Whether the estimator (a model or its name) is an online one (`streammix update`)."""
    return estimator_name(model_or_name) in ONLINE_ESTIMATORS


def is_bayesian(model_or_name) -> bool:
    """Whether the estimator (a model or its name) is a variational Bayesian mixture."""
    return estimator_name(model_or_name) in BAYESIAN_ESTIMATORS


def did_you_mean(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f"; known keys: {sorted(known)}"


def _where(path: str, key: str, overridden: set[str]) -> str:
    return f"{path}: {key}" + (" (set on the command line)" if key in overridden else "")


def _check_fields(values: dict, fields: dict[str, Field], prefix: str, path: str,
                  overridden: set[str]) -> dict:
    out = {}
    for key, value in values.items():
        full = f"{prefix}.{key}"
        if key not in fields:
            raise ConfigError(f"{_where(path, full, overridden)}: unknown key"
                              f"{did_you_mean(key, fields)}")
        f = fields[key]
        if value is None:
            out[key] = None
            continue
        if not _is_instance(value, f.types):
            raise ConfigError(f"{_where(path, full, overridden)}: expected "
                              f"{_type_name(f.types)} ({f.doc}); got {value!r}")
        if f.choices is not None and value not in f.choices:
            raise ConfigError(f"{_where(path, full, overridden)}: expected one of "
                              f"{list(f.choices)}; got {value!r}{value_hint(value, f.choices)}")
        if f.check is not None:
            problem = f.check(value)
            if problem:
                raise ConfigError(f"{_where(path, full, overridden)}: {problem}; got {value!r}")
        out[key] = value
    for key, f in fields.items():
        if key not in out and f.default is not None:
            out[key] = f.default
    return out


def _estimator_class(name: str):
    from .. import (
        BayesianGaussianMixture,
        GaussianMixture,
        OnlineBayesianGaussianMixture,
        OnlineGaussianMixture,
    )

    return {"GaussianMixture": GaussianMixture,
            "OnlineGaussianMixture": OnlineGaussianMixture,
            "BayesianGaussianMixture": BayesianGaussianMixture,
            "OnlineBayesianGaussianMixture": OnlineBayesianGaussianMixture}[name]


def batch_estimator(cfg: "Config", command: str):
    """The estimator class `streammix fit` builds from the config (a ConfigError for an
    online one, naming the command that runs it)."""
    if cfg.estimator not in BATCH_ESTIMATORS:
        raise ConfigError(f"{cfg.path}: model.estimator: `streammix {command}` runs batch "
                          f"EM ({' or '.join(BATCH_ESTIMATORS)}); use `streammix update` "
                          f"for {cfg.estimator}")
    return _estimator_class(cfg.estimator)


def online_estimator(cfg: "Config", command: str):
    """The estimator class `streammix update` builds from the config (a ConfigError for
    a batch one, naming the command that runs it)."""
    if cfg.estimator not in ONLINE_ESTIMATORS:
        raise ConfigError(f"{cfg.path}: model.estimator: `streammix {command}` needs "
                          f"{' or '.join(ONLINE_ESTIMATORS)}; got {cfg.estimator} (use "
                          "`streammix fit` for batch EM)")
    return _estimator_class(cfg.estimator)


def check_model(model: dict, path: str, overridden: set[str]) -> dict:
    """The model section: a known estimator and only its parameters; values are checked
    by building the estimator (its own validation names the parameter)."""
    model = dict(model)
    name = model.get("estimator", "GaussianMixture")
    if name not in ESTIMATORS:
        raise ConfigError(f"{_where(path, 'model.estimator', overridden)}: expected one of "
                          f"{list(ESTIMATORS)}; got {name!r}{did_you_mean(str(name), ESTIMATORS)}")
    cls = _estimator_class(name)
    known = set(cls().get_params()) - _NOT_IN_CONFIG
    for key in model:
        if key in _NOT_IN_CONFIG:
            raise ConfigError(f"{_where(path, f'model.{key}', overridden)}: set on the command "
                              "line, not in the model section (--scheduler/--workers or "
                              "run.cluster; -v/-q)")
        if key != "estimator" and key not in known:
            raise ConfigError(f"{_where(path, f'model.{key}', overridden)}: not a parameter "
                              f"of {name}{did_you_mean(key, known | {'estimator'})}")
        choices = MODEL_CHOICES.get(key)
        if key == "init_params" and name in ONLINE_ESTIMATORS:
            choices = ("k-means++", "kmeans", "random", "random_from_data")
        if choices and model[key] not in choices:
            raise ConfigError(f"{_where(path, f'model.{key}', overridden)}: expected one of "
                              f"{list(choices)}; got {model[key]!r}"
                              f"{value_hint(model[key], choices)}")
    return model


def check_params(cfg: Config) -> None:
    """Build the estimator once to run its parameter checks (before any work)."""
    from ..errors import InvalidParameterError

    known = set(_estimator_class(cfg.estimator)().get_params())
    for k in _RUN_TO_MODEL:
        if cfg.run.get(k) is not None and k not in known:
            raise ConfigError(f"{cfg.path}: run.{k}: {cfg.estimator} has no {k} (it is a "
                              "batch EM setting); remove it")
        if cfg.run.get(k) is not None and k in cfg.model and cfg.model[k] != cfg.run[k]:
            raise ConfigError(f"{cfg.path}: run.{k} and model.{k} disagree "
                              f"({cfg.run[k]!r} vs {cfg.model[k]!r}); set it once")
    try:
        est = _estimator_class(cfg.estimator)(**cfg.estimator_params())
        est._check_parameters()
    except InvalidParameterError as exc:
        raise ConfigError(f"{cfg.path}: model: {exc}") from None
    except TypeError as exc:  # e.g. a list where an array-like of another shape is needed
        raise ConfigError(f"{cfg.path}: model: {exc}") from None
    if is_bayesian(cfg.estimator):
        _check_array_priors(cfg)


def _numbers(value, depth: int) -> bool:
    """Whether ``value`` is a non-empty list of finite numbers (depth 1) or of such
    lists (depth 2); true/false are not numbers."""
    import math

    if depth == 0:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and \
            math.isfinite(value)
    return isinstance(value, list) and bool(value) and \
        all(_numbers(v, depth - 1) for v in value)


def _check_array_priors(cfg: Config) -> None:
    """A Bayesian mixture's mean_prior and covariance_prior as YAML gives them: a list
    of numbers, and a number, a list or a list of lists by covariance type, checked
    for what they are before any data are read (their length against the data's
    features: ``check_priors_for_data``)."""
    import numpy as np

    model = cfg.estimator_params()
    where = f"{cfg.path}: model"
    mean = model.get("mean_prior")
    if mean is not None and not _numbers(mean, 1):
        raise ConfigError(f"{where}.mean_prior: expected a list of numbers (the prior on "
                          f"the components' means, one per feature); got {mean!r}")
    cov = model.get("covariance_prior")
    t = model.get("covariance_type", "full")
    if cov is None:
        return
    if t == "spherical":
        if not _numbers(cov, 0) or not cov > 0:
            raise ConfigError(f"{where}.covariance_prior: expected a number > 0 for "
                              f"spherical covariances (the prior variance); got {cov!r}")
        return
    if t == "diag":
        if not _numbers(cov, 1) or min(cov) <= 0:
            raise ConfigError(f"{where}.covariance_prior: expected a list of numbers > 0 "
                              f"for diag covariances (a prior variance per feature); got "
                              f"{cov!r}")
        d = len(cov)
    else:
        if not _numbers(cov, 2) or any(len(row) != len(cov) for row in cov):
            raise ConfigError(f"{where}.covariance_prior: expected a square matrix (a list "
                              f"of rows, e.g. [[1, 0], [0, 1]]) for {t} covariances; got "
                              f"{cov!r}")
        m = np.asarray(cov, dtype=np.float64)
        if not np.allclose(m, m.T) or np.any(np.linalg.eigvalsh(m) <= 0):
            raise ConfigError(f"{where}.covariance_prior: must be a symmetric "
                              f"positive-definite matrix; got {cov!r}")
        d = len(cov)
    if mean is not None and len(mean) != d:
        raise ConfigError(f"{where}: mean_prior has {len(mean)} values but "
                          f"covariance_prior is for {d} features")


def check_priors_for_data(cfg: Config, n_features: int) -> None:
    """A Bayesian mixture's priors against the data's number of features (a config
    error naming the key, before the fit starts); nothing for the other estimators."""
    if not is_bayesian(cfg.estimator):
        return
    model = cfg.estimator_params()
    where = f"{cfg.path}: model"
    mean = model.get("mean_prior")
    if mean is not None and len(mean) != n_features:
        raise ConfigError(f"{where}.mean_prior: has {len(mean)} values but the data have "
                          f"{n_features} features")
    cov = model.get("covariance_prior")
    if isinstance(cov, list) and len(cov) != n_features:
        raise ConfigError(f"{where}.covariance_prior: is for {len(cov)} features but the "
                          f"data have {n_features}")
    dof = model.get("degrees_of_freedom_prior")
    if dof is not None and not dof > n_features - 1:
        raise ConfigError(f"{where}.degrees_of_freedom_prior: must be greater than "
                          f"n_features - 1 = {n_features - 1} (the data have {n_features} "
                          f"features); got {dof!r}")


def _is_url(p: str) -> bool:
    return "://" in p


def _resolve(value: str, base: str) -> str:
    value = os.path.expanduser(value)
    if _is_url(value) or os.path.isabs(value):
        return value
    return os.path.normpath(os.path.join(base, value))


def _yaml_loader():
    """PyYAML's safe loader, reading numbers as YAML 1.2 does: ``1e-4`` is a float
    (YAML 1.1 wants ``1.0e-4`` and would give the string '1e-4')."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:\d[\d_]*)?(?:\.\d*)?[eE][-+]?\d+$"),
        list("-+0123456789."))
    return Loader


def _load_yaml(text):
    import yaml

    return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass


def parse_overrides(items: list[str]) -> list[tuple[list[str], Any]]:
    """``section.key=value`` strings → (key path, YAML-parsed value)."""
    import yaml

    out = []
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) < 2 or not all(parts):
            raise ConfigError(f"--set {item!r}: the key must be section.key "
                              f"(e.g. model.n_components=5)")
        try:
            value = _load_yaml(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw  # not YAML (e.g. a glob such as *.npy): the text itself
        out.append((parts, value))
    return out


def read_yaml(path: str) -> dict:
    import yaml

    if not os.path.exists(path):
        raise ConfigError(f"config file {path!r} does not exist")
    try:
        with open(path) as f:
            data = _load_yaml(f)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} not valid YAML: "
                          f"{getattr(exc, 'problem', None) or exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (source, model, run, "
                          f"outputs, select); got {type(data).__name__}")
    return data


def load_config(path: str, overrides: list[str] | None = None) -> Config:
    """Read, override and validate a config file (raises ConfigError)."""
    data = read_yaml(path)
    overridden: set[str] = set()
    cli_paths: set[str] = set()
    for parts, value in parse_overrides(overrides or []):
        node = data
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                node[p] = {} if node.get(p) is None else node[p]
            if not isinstance(node[p], dict):
                raise ConfigError(f"--set {'.'.join(parts)}: {p} is not a section")
            node = node[p]
        node[parts[-1]] = value
        overridden.add(".".join(parts))
        if isinstance(value, str):
            cli_paths.add(".".join(parts))
    for section in data:
        if section not in SCHEMA:
            raise ConfigError(f"{_where(path, str(section), overridden)}: unknown section"
                              f"{did_you_mean(str(section), SCHEMA)}")
        if data[section] is not None and not isinstance(data[section], dict):
            raise ConfigError(f"{path}: {section}: expected a mapping of keys; got "
                              f"{data[section]!r}")
    sections = {name: dict(data.get(name) or {}) for name in SCHEMA}
    checked = {name: _check_fields(values, SCHEMA[name], name, path, overridden)
               for name, values in sections.items() if name != "model"}
    checked["model"] = check_model(sections["model"], path, overridden)
    ks = checked["select"].get("n_components")
    if isinstance(ks, dict):
        checked["select"]["n_components"] = list(range(ks["min"], ks["max"] + 1,
                                                       ks.get("step", 1)))
    cluster = checked["run"].get("cluster")
    if cluster is not None:
        cluster = _check_fields(cluster, CLUSTER_KEYS, "run.cluster", path, overridden)
        if cluster.get("tls") is not None:
            cluster["tls"] = _check_tls(cluster["tls"], path, overridden)
        checked["run"]["cluster"] = cluster
    anomaly = checked["outputs"].get("anomaly")
    if anomaly is not None:
        anomaly = _check_fields(anomaly, ANOMALY_KEYS, "outputs.anomaly", path, overridden)
        if len(anomaly) != 1:
            raise ConfigError(f"{path}: outputs.anomaly: give exactly one of threshold or "
                              f"quantile; got {sorted(anomaly)}")
        checked["outputs"]["anomaly"] = anomaly
    # paths: relative to the config's directory (or the working directory for --set)
    base = os.path.dirname(os.path.abspath(path))
    for name, fields in SCHEMA.items():
        for key, f in fields.items():
            value = checked[name].get(key)
            if f.is_path and isinstance(value, str) and not \
                    (key == "align_to" and value == "previous"):
                where = f"{name}.{key}"
                checked[name][key] = _resolve(value, os.getcwd() if where in cli_paths
                                              else base)
    cfg = Config(path=path, **checked)
    check_params(cfg)
    return cfg


def _check_tls(tls: dict, path: str, overridden: set[str]) -> dict:
    """run.cluster.tls: all three files, relative to the config's directory, existing
    (a missing certificate is a config error, not a connection failure later)."""
    tls = _check_fields(tls, TLS_KEYS, "run.cluster.tls", path, overridden)
    missing = [k for k in TLS_KEYS if not tls.get(k)]
    if missing:
        raise ConfigError(f"{path}: run.cluster.tls needs ca_file, cert and key; missing "
                          f"{missing}")
    base = os.path.dirname(os.path.abspath(path))
    for key in TLS_KEYS:
        tls[key] = _resolve(tls[key], base)
        if not os.path.isfile(tls[key]):
            raise ConfigError(f"{path}: run.cluster.tls.{key}: {tls[key]!r} is not a file")
    return tls


def require(cfg: Config, *keys: str, command: str) -> None:
    """Fail (ConfigError) unless every ``section.key`` is set: what a command needs."""
    for key in keys:
        section, name = key.split(".")
        value = getattr(cfg, section).get(name)
        if value is None:
            raise ConfigError(f"{cfg.path}: {key} is required by `streammix {command}` "
                              f"(missing)")


def check_source_exists(cfg: Config) -> None:
    """A configured local data path must exist (MissingDataError, exit code 3)."""
    p = cfg.source.get("path")
    if cfg.source.get("type") == "redis":
        return
    if p is not None and not _is_url(p) and not os.path.exists(p):
        raise MissingDataError(f"{cfg.path}: source.path: {p!r} does not exist")


def check_checkpoint_path(cfg: Config) -> None:
    """run.checkpoint must not be, hold or lie inside source.path: the checkpoint's
    versions would be written into the data (or the data read as a checkpoint). A config
    error, exit code 2, before anything is created."""
    from ..execution.outputs import is_inside

    ck, src = cfg.run.get("checkpoint"), cfg.source.get("path")
    if not ck or not src or cfg.source.get("type") == "redis":
        return
    if is_inside(ck, src) or is_inside(src, ck):
        raise ConfigError(f"{cfg.path}: run.checkpoint {ck!r} overlaps source.path {src!r}: "
                          "the checkpoint would be written into the data it reads; choose "
                          "another run.checkpoint")


#: what the library's "not a streammix checkpoint" error suggests (Python calls), and
#: what the command line says instead
_LIBRARY_CHECKPOINT_HINT = ". Give the path a fit(checkpoint=...), save() or a CLI job's " \
                           "checkpoint wrote"
CHECKPOINT_HINT = ("; give the path of a checkpoint (the run.checkpoint of a `streammix "
                   "fit`, `update` or `select` job)")


def cli_checkpoint_message(message: str) -> str:
    """The library's "'...' is not a streammix checkpoint" message worded for the
    command line (what to give instead, not which Python call writes one)."""
    if "is not a streammix checkpoint: " in message and _LIBRARY_CHECKPOINT_HINT in message:
        return message.replace(_LIBRARY_CHECKPOINT_HINT, CHECKPOINT_HINT)
    return message


def require_checkpoint(path: str, what: str = "") -> None:
    """Refuse a local path that exists but is not a streammix checkpoint (a Zarr data
    array, a .npy or other file, a folder no fit wrote) with the library's own
    "not a streammix checkpoint" error (CheckpointError, exit code 4), before anything
    reads it: not as a damaged checkpoint (whose way out, `repair`, cannot help) and
    not with a traceback. ``what``: the key or option that named the path, for the
    message. Damaged checkpoints pass (their errors and `repair` deal with them);
    missing paths and URLs are left to the library's own errors."""
    from ..errors import CheckpointError
    from ..persistence.markers import is_checkpoint
    from ..persistence.storage import Storage, is_url
    from ..persistence.store import _raise_if_not_a_checkpoint

    if not isinstance(path, str) or is_url(path):
        return
    local = path[len("file://"):] if path.startswith("file://") else path
    if not os.path.exists(local) or is_checkpoint(local):
        return
    prefix = f"{what} " if what else ""
    if not os.path.isdir(local):
        raise CheckpointError(f"{prefix}{path!r} is not a streammix checkpoint: it is a file "
                              f"(data?){CHECKPOINT_HINT}")
    try:
        _raise_if_not_a_checkpoint(Storage(path), path)
    except CheckpointError as exc:
        raise CheckpointError(prefix + cli_checkpoint_message(str(exc))) from None
