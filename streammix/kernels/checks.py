"""Numba scans used by input validation (no n x d temporary, unlike np.isfinite)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def count_nonfinite(X):
    """(number of NaN/inf entries, row of the first, column of the first, largest
    finite |x|) in 2-D X, scanned in row order."""
    n, d = X.shape
    count = 0
    first_row = -1
    first_col = -1
    big = 0.0
    for i in range(n):
        for j in range(d):
            v = X[i, j]
            if not np.isfinite(v):
                if count == 0:
                    first_row = i
                    first_col = j
                count += 1
            elif abs(v) > big:
                big = abs(v)
    return count, first_row, first_col, big
