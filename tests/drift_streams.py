"""Synthetic streams whose structure changes, with the true labels: the scenarios of the
split/merge tests and of benchmarks/bench_drift.py. Each yields (batch index, X, y)."""

from __future__ import annotations

import numpy as np

BASE = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0], [8.0, 8.0]])
DRIFT = np.array([[1.0, 0.5], [-0.5, 1.0], [1.0, -0.5], [0.0, 0.0]])


def _draw(rng, means, batch, scale=0.7, probs=None):
    y = rng.choice(len(means), size=batch, p=probs)
    return means[y] + rng.normal(scale=scale, size=(batch, means.shape[1])), y


def born(n_batches=200, batch=2000, seed=0):
    """Four slowly drifting clusters; a fifth appears half-way (model: 5 components)."""
    rng = np.random.default_rng(seed)
    for b in range(n_batches):
        means = np.vstack([BASE + DRIFT * b / n_batches, [[20.0, 0.0]]])
        k = 5 if b >= n_batches // 2 else 4
        X, y = _draw(rng, means[:k], batch)
        yield b, X, y


def vanished(n_batches=200, batch=2000, seed=0):
    """Five clusters; the fifth stops half-way (model: 5 components)."""
    rng = np.random.default_rng(seed)
    means = np.vstack([BASE, [[20.0, 0.0]]])
    for b in range(n_batches):
        k = 4 if b >= n_batches // 2 else 5
        X, y = _draw(rng, means[:k], batch)
        yield b, X, y


def merging(n_batches=200, batch=2000, seed=0):
    """Four clusters; from batch 100 to 120 the last two move onto one another and stay
    one cluster (labelled as the third) (model: 4 components)."""
    rng = np.random.default_rng(seed)
    for b in range(n_batches):
        f = min(max((b - 100) / 20, 0.0), 1.0)
        means = BASE.copy()
        means[3] = BASE[3] + f * (BASE[2] - BASE[3])
        X, y = _draw(rng, means, batch)
        if b >= 120:
            y = np.where(y == 3, 2, y)
        yield b, X, y


def splitting(n_batches=200, batch=2000, seed=0):
    """Four clusters; from batch 100 to 120 the first splits into two that move 8 apart
    (labelled 0 and 4 from batch 120) (model: 4 components, at most 5)."""
    rng = np.random.default_rng(seed)
    for b in range(n_batches):
        f = min(max((b - 100) / 20, 0.0), 1.0)
        means = np.vstack([BASE, BASE[:1]])
        means[0] = BASE[0] + f * np.array([-4.0, -4.0])
        means[4] = BASE[0] + f * np.array([4.0, -4.0])
        probs = np.array([0.125, 0.25, 0.25, 0.25, 0.125])
        X, y = _draw(rng, means, batch, probs=probs)
        if b < 120:
            y = np.where(y == 4, 0, y)
        yield b, X, y


def stationary(n_batches=200, batch=2000, seed=0):
    """Three fixed clusters (the bad-initialisation and no-churn scenarios)."""
    rng = np.random.default_rng(seed)
    means = BASE[:3] * 1.5
    for b in range(n_batches):
        X, y = _draw(rng, means, batch)
        yield b, X, y


#: a start with two components on the first cluster and one between the other two
BAD_INIT = {"means_init": np.array([[-0.8, 0.0], [0.8, 0.0], [6.0, 6.0]]),
            "weights_init": np.array([1 / 6, 1 / 6, 2 / 3]),
            "precisions_init": np.stack([np.eye(2)] * 3)}
