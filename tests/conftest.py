"""Shared fixtures: seeded blob data sets."""

from __future__ import annotations

import numpy as np
import pytest


def make_blobs(n: int, d: int, k: int, seed: int = 0, spread: float = 5.0, offset: float = 0.0):
    """n rows of a k-component Gaussian mixture in d dimensions (float64, C order)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=spread, size=(k, d))
    labels = rng.integers(0, k, size=n)
    scales = rng.uniform(0.5, 1.5, size=(k, d))
    X = centres[labels] + rng.normal(size=(n, d)) * scales[labels] + offset
    return X, labels


@pytest.fixture
def blobs():
    return make_blobs(2000, 3, 4)[0]


@pytest.fixture
def redis_server(tmp_path):
    """A real redis-server on a free loopback port, stopped after the test (even when it
    fails)."""
    from tests.redis_server import RedisServer

    server = RedisServer(str(tmp_path / "redis")).start()
    try:
        yield server
    finally:
        server.stop()
