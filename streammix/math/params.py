"""The parameters of a Gaussian mixture, as one value that travels to the kernels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class GaussianParams:
    """Weights (K,), means (K, d), covariances and precision Cholesky factors in
    scikit-learn's shapes for ``covariance_type`` ('full' (K,d,d), 'tied' (d,d),
    'diag' (K,d), 'spherical' (K,)). ``covariances`` may be None when the model was
    initialised from precisions only (as scikit-learn does).

    ``log_weights``: the E-step's per-component log weight when it is not log(weights):
    a variational (Bayesian) mixture's E[log pi_k] plus its other per-component
    constants, so that the same kernels compute its responsibilities."""

    covariance_type: str
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray | None
    precisions_cholesky: np.ndarray
    log_weights: np.ndarray | None = None

    @property
    def n_components(self) -> int:
        return int(self.means.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.means.shape[1])

    def copy(self) -> "GaussianParams":
        return GaussianParams(
            self.covariance_type,
            self.weights.copy(),
            self.means.copy(),
            None if self.covariances is None else self.covariances.copy(),
            self.precisions_cholesky.copy(),
            None if self.log_weights is None else self.log_weights.copy(),
        )
