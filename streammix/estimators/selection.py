"""``select``: fit a grid of Gaussian mixtures (numbers of components x covariance types)
with every EM pass shared by the candidates still running, and pick one by BIC or AIC."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..engines.em import run_em_many, statistics_many
from ..errors import InvalidInputError, InvalidParameterError
from ..execution.dask_source import client_scope
from ..kernels.blas import single_threaded_blas
from ..math.covariances import get_covariance_type
from ..validation import check_random_state
from ._resume import FitProgress
from .gaussian_mixture import GaussianMixture


#: parameters ``select`` refuses: each candidate starts from its own initialisation
REFUSED_PARAMS = ("split_merge", "warm_start", "weights_init", "means_init",
                  "precisions_init")


@dataclass
class Selection:
    """What ``select`` returns: the chosen model (fitted), the criterion, and one row per
    candidate (n_components, covariance_type, bic, aic, mean_loglik, n_parameters,
    lower_bound, n_iter, converged)
    with its fitted model in ``models`` (same order)."""

    best: GaussianMixture
    criterion: str
    table: list[dict] = field(default_factory=list)
    models: list[GaussianMixture] = field(default_factory=list)


def select(X, n_components=range(1, 11), covariance_types=("full",), *,
           criterion: str = "bic", sample_weight=None, client=None, **params) -> Selection:
    """Fit ``GaussianMixture(k, covariance_type=t, **params)`` for every k in
    ``n_components`` and t in ``covariance_types`` and choose the lowest ``criterion``
    ('bic' or 'aic'; ties go to fewer components, then to the order given).

    The candidates (and their ``n_init`` restarts) advance together: each EM pass reads
    and decodes every chunk once for all the candidates still running, and a candidate
    that converges drops out; the scoring pass is shared too. Each candidate ends with
    the bits of its own ``fit`` (the same starts from the same random_state, the same
    kernels, the same fold). The initialisations run per candidate (k-means passes
    for ``init_params='kmeans'``; 'k-means++' and 'random_from_data' read a sample).
    ``X`` is anything ``GaussianMixture.fit`` takes; ``params`` are its parameters
    (random_state, n_init, max_iter, tol, init_params, chunk_size...)."""
    if criterion not in ("bic", "aic"):
        raise InvalidParameterError(f"criterion must be 'bic' or 'aic'; got {criterion!r}")
    ks = [int(k) for k in n_components]
    types = list(covariance_types) if not isinstance(covariance_types, str) \
        else [covariance_types]
    if not ks or not types:
        raise InvalidParameterError("select needs at least one n_components and one "
                                    "covariance type")
    for bad in REFUSED_PARAMS:
        if params.get(bad):
            raise InvalidParameterError(f"select does not take {bad} (each candidate "
                                        "starts from its own initialisation)")
    models = [GaussianMixture(k, covariance_type=t, client=client, **params)
              for t in types for k in ks]
    for m in models:
        m._check_parameters()
    first = models[0]
    with client_scope(client) as resolved, single_threaded_blas():  # as in fit
        source = first._validate_fit_data(X, sample_weight, resolved)
        if source.n_samples < max(ks):
            raise InvalidInputError(
                f"Expected n_samples >= n_components but got n_components = {max(ks)}, "
                f"n_samples = {source.n_samples}")
        starts, covs = [], []
        for m in models:  # each candidate's starts, drawn as its own fit draws them
            cov = get_covariance_type(m.covariance_type, m.estep_dtype)
            rng = check_random_state(m.random_state)
            starts += [m._initial_state(source, cov, rng, None, None, None)
                       for _ in range(m.n_init)]
            covs += [cov] * m.n_init
        results = iter(run_em_many(source, covs, starts, tol=first.tol,
                                   max_iter=first.max_iter, reg_covar=first.reg_covar))
        for m in models:  # in the same order: each takes its n_init results
            progress = FitProgress()
            for init in range(m.n_init):
                progress.init = init
                progress.current = next(results)
                m._consider(progress, progress.current)
            m._finish_restarts(progress, m.n_init, lambda prog: None)
            m._adopt(progress.best, source)
        final = [m._get_params_value() for m in models]
        scores = statistics_many(source, [get_covariance_type(m.covariance_type)
                                          for m in models], final)
    n = source.n_samples
    table = []
    for m, st in zip(models, scores):
        bic, aic = m.information_criteria(st.mean_loglik, n)
        table.append({"n_components": m.n_components, "covariance_type": m.covariance_type,
                      "bic": float(bic), "aic": float(aic),
                      "mean_loglik": float(st.mean_loglik),
                      "n_parameters": float(m._n_parameters()),
                      "lower_bound": float(m.lower_bound_), "n_iter": int(m.n_iter_),
                      "converged": bool(m.converged_)})
    order = sorted(range(len(models)),
                   key=lambda i: (table[i][criterion], table[i]["n_components"], i))
    return Selection(best=models[order[0]], criterion=criterion, table=table, models=models)
