"""What every covariance type provides, and the helpers they share.

A covariance type turns summed statistics into parameters (the M-step), turns
covariances into precision Cholesky factors (scikit-learn's parameterisation), and runs
its numba kernel on a chunk. Everything numerical about a type lives in its module.
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import numba
import numpy as np

from ...errors import DegenerateComponentWarning, InvalidParameterError
from ...kernels._common import rows_per_block
from ...kernels.blas import single_threaded_blas
from ..params import GaussianParams
from ..stats import SufficientStats

EPS10 = 10.0 * np.finfo(np.float64).eps
LOG_2PI = math.log(2.0 * math.pi)
_EMPTY = np.empty(0)


def soft_counts(stats: SufficientStats) -> np.ndarray:
    """scikit-learn's nk: soft counts plus 10 * eps, so that no division is by zero."""
    return stats.s0 + EPS10


def mixture_weights(nk: np.ndarray) -> np.ndarray:
    """Mixing weights nk / sum(nk), as scikit-learn's M-step normalises them."""
    return nk / nk.sum()


def new_means(stats: SufficientStats, nk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(means, delta) where delta = s1 / nk is the shift of each mean from its centre."""
    delta = stats.s1 / nk[:, None]
    return stats.centres + delta, delta


def as_weight_array(sample_weight: np.ndarray | None) -> tuple[np.ndarray, bool]:
    if sample_weight is None:
        return _EMPTY, False
    return sample_weight, True


def cholesky_lower_or_none(matrix: np.ndarray) -> np.ndarray | None:
    """Lower Cholesky factor, or None when ``matrix`` is not positive definite."""
    try:
        chol = np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(chol)):
        return None
    return chol


def precision_chol_from_cov(cov: np.ndarray, component: str, reg_covar: float | None
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Upper-triangular U with U U^T = cov^-1 (scikit-learn's precisions_cholesky_).

    When ``cov`` is not positive definite and ``reg_covar`` is given (the M-step), the
    diagonal is loaded with growing multiples of max(reg_covar, 1e-10 * scale) until it
    is, with a DegenerateComponentWarning; returns (U, the covariance actually used).
    Without ``reg_covar`` (user input) a clear error is raised instead.
    """
    d = cov.shape[0]
    chol = cholesky_lower_or_none(cov) if np.all(np.isfinite(cov)) else None
    if chol is None:
        if reg_covar is None:
            raise InvalidParameterError(
                f"{component}: covariance is not symmetric positive definite"
            )
        finite = np.isfinite(cov)
        cov = np.where(finite, cov, 0.0)
        cov = 0.5 * (cov + cov.T)
        scale = float(np.abs(np.diag(cov)).max()) if d else 1.0
        load = max(reg_covar, 1e-10 * max(scale, 1.0), 1e-12)
        eye = np.eye(d)
        for _ in range(60):
            fixed = cov + load * eye
            chol = cholesky_lower_or_none(fixed)
            if chol is not None:
                break
            load *= 10.0
        else:  # pragma: no cover - only on absurd input (overflowing values)
            fixed = eye * max(scale, 1.0)
            chol = np.linalg.cholesky(fixed)
        warnings.warn(
            f"{component} has an ill-defined covariance (singleton or collapsed samples); "
            f"kept it positive definite by adding {load:.3g} to its diagonal. Consider fewer "
            "components, a larger reg_covar, or scaling the data.",
            DegenerateComponentWarning,
            stacklevel=4,
        )
        cov = fixed
    import scipy.linalg  # (not at import: Dask workers never need it)

    prec_chol = scipy.linalg.solve_triangular(chol, np.eye(d), lower=True).T
    return prec_chol, cov


def positive_variances(var: np.ndarray, reg_covar: float | None,
                       component_names: list[str] | None = None) -> np.ndarray:
    """Variances made strictly positive (M-step) or checked (user input). Components
    are named "component k" (row k of ``var``) unless ``component_names`` says else; the
    names are only built when a warning needs them (this runs at every online update)."""
    if var.min() > 0 and var.max() < np.inf:  # NaN fails both tests: it is not fine
        return var
    bad = ~(np.isfinite(var) & (var > 0))
    if component_names is None:
        component_names = [f"component {k}" for k in range(var.shape[0])]
    if reg_covar is None:
        first = int(np.flatnonzero(bad.ravel())[0])
        raise InvalidParameterError(f"variance {first} is not positive: {var.ravel()[first]!r}")
    fixed = np.where(bad, max(reg_covar, 1e-10), var)
    names = sorted({component_names[i] for i in np.flatnonzero(bad.reshape(len(component_names), -1).any(axis=1))})
    warnings.warn(
        f"{', '.join(names)}: non-positive variance replaced by {max(reg_covar, 1e-10):.3g}; "
        "consider fewer components, a larger reg_covar, or scaling the data.",
        DegenerateComponentWarning,
        stacklevel=4,
    )
    return fixed


@dataclass(frozen=True)
class StatsSpec:
    """A type's statistics drivers (kernels/*.py): over a run of chunks on the calling
    thread (``*_stats_run``: a task's chunk, a work unit's runs) and over chunks in a
    parallel region (``*_stats_chunks``); the constants both take after (X,
    sample_weight, has_weight) (means first), the shape of one chunk's s2, the tied
    type's second-moment centre, and whether it calls BLAS."""

    run: Callable
    chunks: Callable
    consts: tuple
    s2_shape: tuple[int, ...]
    centre2: np.ndarray | None = None
    uses_blas: bool = False
    block_rows: int = 256  # rows per block of the kernel (its buffers' width)


# A region's chunks: at least this many rows (a few hundred microseconds of kernel, so
# taking a chunk costs nothing), at most this many chunks (the threads balance to 1/32
# of the work, and the rows of statistics summed at the end stay few).
REGION_MIN_CHUNK_ROWS = 512
REGION_MAX_CHUNKS = 32


@functools.lru_cache(maxsize=64)
def region_chunks(n_rows: int, block_rows: int) -> np.ndarray:
    """(start, stop) rows of the chunks a parallel region cuts n_rows into: equal
    chunks of a whole number of kernel blocks (a short block costs a full one), at
    least REGION_MIN_CHUNK_ROWS rows and at most REGION_MAX_CHUNKS of them. They depend
    on n_rows and the kernel's block only, not on the thread count, so neither do the
    bits of the statistics. (Cached: an online stream repeats its batch size, and the
    few numpy calls were a tenth of a small update's Python; callers only read it.)"""
    per_chunk = max(REGION_MIN_CHUNK_ROWS, -(-n_rows // REGION_MAX_CHUNKS))
    rows = block_rows * -(-per_chunk // block_rows)
    starts = np.arange(0, max(n_rows, 1), rows, dtype=np.int64)
    return np.stack([starts, np.minimum(starts + rows, n_rows)], axis=1)


def row_stats(row: np.ndarray, name: str, s2_shape: tuple, centres: np.ndarray,
              centre2: np.ndarray | None) -> SufficientStats:
    """The statistics a driver left flattened in a row of F (``store_chunk_row``'s
    layout: s0, s1, s2, loglik, weight), as views of that row."""
    K, d = centres.shape
    n2 = math.prod(s2_shape)
    return SufficientStats(name, row[:K], row[K:K + K * d].reshape(K, d),
                           row[K + K * d:K + K * d + n2].reshape(s2_shape),
                           float(row[-2]), float(row[-1]), centres, centre2)


class CovarianceType(ABC):
    """Interface of a covariance type (one subclass per module)."""

    name: str
    #: the arithmetic of the statistics passes' E-step: float64, or float32 for the
    #: opt-in float32 E-step (``float32_estep``; see ``get_covariance_type``)
    estep_dtype: type = np.float64
    #: whether the type has a float32 E-step: 'full' only, whose E-step is matrix
    #: products (BLAS's single-precision ones run at about twice the rate) on rows
    #: centred on each component's own mean. tied's products are about one centre: in
    #: float32 its scatter lost digits as (separation / sigma)^2 (covariances 3.5e-6 off
    #: at 50 sigma, 2e-3 at 1000), so it has none; diag's and spherical's hand loops
    #: have no float32 version.
    float32_estep: bool = False

    @abstractmethod
    def covariance_shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        """Shape of covariances_/precisions_ for this type."""

    @abstractmethod
    def n_covariance_parameters(self, n_components: int, n_features: int) -> float:
        """Free parameters in the covariances (for BIC/AIC)."""

    @abstractmethod
    def m_step(self, stats: SufficientStats, reg_covar: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(weights, means, covariances) from summed statistics, as scikit-learn computes
        them from responsibilities (reg_covar added to the variances)."""

    @abstractmethod
    def precision_cholesky(self, covariances: np.ndarray, reg_covar: float | None = None
                           ) -> tuple[np.ndarray, np.ndarray]:
        """(precisions_cholesky, covariances) with degenerate components repaired when
        reg_covar is given (see ``precision_chol_from_cov``)."""

    @abstractmethod
    def precision_cholesky_from_precisions(self, precisions: np.ndarray) -> np.ndarray:
        """scikit-learn's ``_compute_precision_cholesky_from_precisions``."""

    @abstractmethod
    def precisions(self, precisions_cholesky: np.ndarray) -> np.ndarray:
        """precisions_ from the Cholesky factors."""

    @abstractmethod
    def covariances_from_precision_cholesky(self, precisions_cholesky: np.ndarray) -> np.ndarray:
        """covariances_ implied by the Cholesky factors (when only precisions are known)."""

    @abstractmethod
    def log_det_cholesky(self, precisions_cholesky: np.ndarray, n_features: int) -> np.ndarray:
        """log det of each precision Cholesky factor (K,) (a scalar for 'tied')."""

    @abstractmethod
    def validate_precisions(self, precisions: np.ndarray, n_components: int, n_features: int
                            ) -> np.ndarray:
        """Check a user's precisions_init: shape, symmetry, positive definiteness."""

    @abstractmethod
    def stats_spec(self, params: GaussianParams) -> StatsSpec:
        """The type's statistics kernels and the constants they take under ``params``."""

    def chunk_stats(self, X: np.ndarray, sample_weight: np.ndarray | None,
                    params: GaussianParams) -> SufficientStats:
        """Run the kernel: statistics of chunk X under ``params``."""
        return self.stats_kernel(params)(X, sample_weight)

    def stats_kernel(self, params: GaussianParams
                     ) -> Callable[[np.ndarray, np.ndarray | None], SufficientStats]:
        """``chunk_stats`` under fixed ``params`` as fn(X, sample_weight): the constants
        the kernel derives from the parameters are computed once, not per chunk. Worth it
        when a small batch is split over threads: those few small numpy operations hold
        the GIL, so chunk tasks that each redo them partly wait on one another."""
        # the serial driver on one chunk: the kernel compiled as the drivers inline it,
        # so a chunk's statistics have the same bits on every path (a task per chunk, a
        # work unit's runs, a parallel region)
        run = self.stats_run(params)

        def kernel(X, sample_weight):
            return run(X, sample_weight, ((0, X.shape[0]),))[0]

        return kernel

    def stats_chunks(self, params: GaussianParams
                     ) -> Callable[..., tuple[SufficientStats, np.ndarray]]:
        """fn(X, sample_weight, bounds=None) -> (statistics of X's rows in the chunks
        ``bounds`` = [(start, stop), ...], tops): the kernel over the chunks in one
        numba parallel region (``*_stats_chunks``, threads taking chunks as they free
        up), summed in the thread pool's order, so the sum equals ``statistics``'s on
        the pool with the same chunks to rounding (the kernel inlined in the region may
        round its sums differently). Without bounds, X is cut into ``region_chunks``:
        small enough that the threads balance, and the same whatever the thread count.
        tops[c] is chunk c's largest |x| as a float64 bit pattern; NaN/inf make it at
        least ``FLOAT64_INF_BITS``."""
        spec = self.stats_spec(params)
        name, means, centre2 = self.name, params.means, spec.centre2
        K, d = means.shape
        n2 = math.prod(spec.s2_shape)
        width = K + K * d + n2 + 2

        def run(X, sample_weight, bounds=None):
            if bounds is None:
                chunks = region_chunks(X.shape[0], spec.block_rows)
            else:
                chunks = np.asarray(bounds, dtype=np.int64).reshape(-1, 2)
            F = np.empty((len(chunks), width))
            top = np.zeros(len(chunks), dtype=np.int64)
            sw, has_w = as_weight_array(sample_weight)
            with single_threaded_blas():
                spec.chunks(X, sw, has_w, chunks, spec.consts, F, top,
                            numba.get_num_threads())
            return row_stats(F[0], name, spec.s2_shape, means, centre2), top

        return run

    def stats_run(self, params: GaussianParams
                  ) -> Callable[..., tuple[SufficientStats, np.ndarray]]:
        """fn(X, sample_weight, bounds) -> (statistics of X's row chunks ``bounds``, tops)
        on the calling thread (``*_stats_run``: no parallel region, for a work unit on a
        Dask worker thread): the chunks' statistics folded by the in-order fold, so an
        aligned run of 2**j chunks gives that fold's node for them. tops as in
        ``stats_chunks``."""
        spec = self.stats_spec(params)
        name, means, centre2 = self.name, params.means, spec.centre2
        K, d = means.shape
        n2 = math.prod(spec.s2_shape)
        width = K + K * d + n2 + 2
        blas = single_threaded_blas if spec.uses_blas else contextlib.nullcontext

        def run(X, sample_weight, bounds):
            chunks = np.asarray(bounds, dtype=np.int64).reshape(-1, 2)
            F = np.empty((len(chunks), width))
            top = np.zeros(len(chunks), dtype=np.int64)
            sw, has_w = as_weight_array(sample_weight)
            with blas():
                spec.run(X, sw, has_w, chunks, spec.consts, F, top)
            return row_stats(F[0], name, spec.s2_shape, means, centre2), top

        return run

    #: numba function (running s0, s1, s2, batch s0, s1, s2, 1/n, 1 - eta, eta, n,
    #: centres, reg_covar, eps) -> (ok, nk, means, covariances, precision Cholesky,
    #: blended s0, s1 and s2 recentred on the new means), or None: see ``fused_stepwise``
    _stepwise_step: Callable | None = None

    def fused_stepwise(self, running: SufficientStats, batch: SufficientStats, eta: float,
                       reg_covar: float) -> tuple[GaussianParams, SufficientStats] | None:
        """One stepwise-EM step (blend, M-step, precision Cholesky, recentring of the
        blended statistics on the new means) as one numba call, for the types that have
        one; the same operations in the same order as ``blend_normalised``, ``m_step``,
        ``precision_cholesky`` and ``recentred``, so the same bits. None when the type
        has none, the arrays are not contiguous float64, or a covariance needs repair
        (the general path then repairs it, with its warning)."""
        step = self._stepwise_step
        arrays = (running.s0, running.s1, running.s2, batch.s0, batch.s1, batch.s2,
                  running.centres)
        if step is None or not all(a.flags.c_contiguous and a.dtype == np.float64
                                   for a in arrays):
            return None
        running._check_compatible(batch)
        inv_n, keep = 1.0 / batch.n, 1.0 - eta
        ok, nk, means, covs, prec_chol, m0, m1, m2 = step(
            running.s0, running.s1, running.s2, batch.s0, batch.s1, batch.s2, inv_n, keep,
            eta, batch.n, running.centres, reg_covar, EPS10)
        if not ok:
            return None
        return self._stepped(running, batch, eta, nk, means, covs, prec_chol, m0, m1, m2)

    #: per-type call of the numba online step (``_diag_online_step``...), or None
    _online_step_call: Callable | None = None

    def region_block_rows(self, n_features: int) -> int:
        """Rows per block of the statistics kernel (``region_chunks`` cuts whole blocks)."""
        return rows_per_block(n_features)

    def fused_online_step(self, X: np.ndarray, sample_weight: np.ndarray | None,
                          params: GaussianParams, running: SufficientStats, eta: float,
                          reg_covar: float, max_bits: int
                          ) -> tuple[SufficientStats, np.ndarray,
                                     tuple[GaussianParams, SufficientStats] | None] | None:
        """One online update in one numba call: the batch's statistics under ``params``
        in one parallel region (``stats_chunks`` without bounds) and the stepwise step
        on them (``fused_stepwise``), with no Python between the two. On a small update
        the dozen Python-level steps of the separate path cost about as much as a tenth
        of the kernel. The same functions in the same order, so the same bits.

        Returns (batch statistics, tops, (params, running) or None) where tops is
        ``stats_chunks``'s, and None in the last place means no step was taken: a value
        above ``max_bits`` (the bit pattern of the largest accepted |x|; NaN/inf lie
        above it), a batch of weight 0, or a covariance that needs the general path's
        repair. Returns None when this type has no fused step, eta >= 1 or the inputs
        are not contiguous float64 about the current means (the general path then
        runs, or raises its error)."""
        call = self._online_step_call
        if call is None or not eta < 1.0 or params.log_weights is not None:
            return None
        arrays = (running.s0, running.s1, running.s2, running.centres, params.means)
        if not all(a.flags.c_contiguous and a.dtype == np.float64 for a in arrays):
            return None
        if running.covariance_type != self.name or running.centre2 is not None or not (
                running.centres is params.means
                or np.array_equal(running.centres, params.means)):
            return None
        K, d = params.means.shape
        chunks = region_chunks(X.shape[0], self.region_block_rows(d))
        n2 = math.prod(running.s2.shape)
        F = np.empty((len(chunks), K + K * d + n2 + 2))
        top = np.zeros(len(chunks), dtype=np.int64)
        sw, has_w = as_weight_array(sample_weight)
        with single_threaded_blas():
            status, nk, means, covs, prec_chol, m0, m1, m2 = call(
                X, sw, has_w, chunks, numba.get_num_threads(), params, running, eta,
                reg_covar, max_bits, F, top)
        batch = row_stats(F[0], self.name, running.s2.shape, params.means, None)
        if status != 0:
            return batch, top, None
        return batch, top, self._stepped(running, batch, eta, nk, means, covs, prec_chol,
                                         m0, m1, m2)

    def _stepped(self, running, batch, eta, nk, means, covs, prec_chol, m0, m1, m2
                 ) -> tuple[GaussianParams, SufficientStats]:
        """(params, running statistics) from a fused step's arrays."""
        inv_n, keep = 1.0 / batch.n, 1.0 - eta
        params = GaussianParams(self.name, mixture_weights(nk), means, covs, prec_chol)
        loglik = running.loglik * keep + (batch.loglik * inv_n) * eta
        n = running.n * keep + (batch.n * inv_n) * eta
        return params, SufficientStats(self.name, m0, m1, m2, loglik, n, means, None)

    @abstractmethod
    def chunk_outputs(self, X: np.ndarray, params: GaussianParams, want_resp: bool
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Run the kernel: (log p(x) (n,), labels (n,), responsibilities (n,K) or None)."""

    @abstractmethod
    def sample(self, rng: np.random.RandomState, params: GaussianParams, counts: np.ndarray
               ) -> np.ndarray:
        """Draw counts[k] samples from each component, stacked in component order."""

    # shared -------------------------------------------------------------------------
    def kernel_constants(self, params: GaussianParams) -> np.ndarray:
        """log w_k + log det U_k - d/2 log 2 pi: everything of log N but the distance
        (``params.log_weights`` in place of log w_k when set)."""
        d = params.n_features
        log_det = self.log_det_cholesky(params.precisions_cholesky, d)
        if params.log_weights is not None:
            log_w = params.log_weights
        else:
            with np.errstate(divide="ignore"):
                log_w = np.log(params.weights)
        return np.ascontiguousarray(log_w + log_det - 0.5 * d * LOG_2PI, dtype=np.float64)

    def n_parameters(self, n_components: int, n_features: int) -> int:
        """Free parameters of the mixture: covariances, means and K - 1 weights."""
        cov = self.n_covariance_parameters(n_components, n_features)
        return int(cov + n_features * n_components + n_components - 1)

    @staticmethod
    def _output_buffers(n: int, K: int, want_resp: bool):
        logprob = np.empty(n)
        labels = np.empty(n, dtype=np.int64)
        resp = np.empty((n, K)) if want_resp else np.empty((1, K))
        return logprob, labels, resp


def check_square_spd(matrix: np.ndarray, what: str, kind: str | None = None) -> None:
    """Raise a clear error unless ``matrix`` is symmetric positive definite; ``kind``
    ('full' or 'tied') puts scikit-learn's sentence first."""
    lead = f"'{kind} precision' should be symmetric, positive-definite: " if kind else ""
    if not np.allclose(matrix, matrix.T, rtol=1e-5, atol=1e-8):
        raise InvalidParameterError(f"{lead}{what} is not symmetric")
    try:
        eig = np.linalg.eigvalsh(matrix)
    except np.linalg.LinAlgError as exc:  # pragma: no cover
        raise InvalidParameterError(f"{lead}{what} could not be decomposed: {exc}") from exc
    if not np.all(eig > 0):
        raise InvalidParameterError(
            f"{lead}{what} is not positive definite (smallest eigenvalue {eig.min():.3g})"
        )


def check_shape(array: np.ndarray, shape: tuple[int, ...], what: str) -> None:
    if array.shape != shape:
        raise InvalidParameterError(f"{what} has shape {array.shape}; expected {shape}")
