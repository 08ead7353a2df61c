"""The fast NaN/inf scan against the exact one, and chunk scans merged into one verdict."""

from __future__ import annotations

import numpy as np
import pytest

from streammix.kernels.checks import count_nonfinite, scan_nonfinite
from streammix.validation import merge_scans


def layouts(A):
    yield A
    yield np.asfortranarray(A)
    yield np.repeat(A, 2, axis=0)[::2]      # strided rows
    yield np.repeat(A, 2, axis=1)[:, ::2]   # strided columns


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_scan_matches_the_exact_scan(dtype):
    rng = np.random.default_rng(0)
    top = 300 if dtype == np.float64 else 30
    for trial in range(200):
        A = rng.standard_normal((37, 5)) * 10.0 ** rng.integers(-top, top, (37, 5))
        A = A.astype(dtype)
        if trial % 2:
            for _ in range(rng.integers(1, 4)):
                A[rng.integers(37), rng.integers(5)] = rng.choice([np.nan, np.inf, -np.inf])
        for B in layouts(A):
            assert scan_nonfinite(B) == count_nonfinite(B)


def test_scan_of_special_values():
    A = np.zeros((3, 2))
    assert scan_nonfinite(A) == (0, -1, -1, 0.0)
    A[1, 1] = -np.finfo(np.float64).max
    assert scan_nonfinite(A) == (0, -1, -1, np.finfo(np.float64).max)
    A[2, 0] = -np.inf
    assert scan_nonfinite(A)[:3] == (1, 2, 0)
    assert scan_nonfinite(np.zeros((0, 3)))[0] == 0


def test_merged_chunk_scans_equal_the_scan_of_the_whole():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((100, 3))
    X[[40, 41, 90], [2, 0, 1]] = [np.nan, np.inf, np.nan]
    whole = count_nonfinite(X)
    for cut in (10, 40, 41, 60, 95):
        head = count_nonfinite(X[:cut])
        c, r, col, big = count_nonfinite(X[cut:])
        tail = (c, r + cut if c else -1, col, big)
        assert merge_scans(head, tail) == whole
