"""Numba scans used by input validation (no n x d temporary, unlike np.isfinite)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def count_nonfinite(X):
    """(number of NaN/inf entries, row of the first, column of the first) in 2-D X."""
    n, d = X.shape
    count = 0
    first_row = -1
    first_col = -1
    for i in range(n):
        for j in range(d):
            v = X[i, j]
            if not np.isfinite(v):
                if count == 0:
                    first_row = i
                    first_col = j
                count += 1
    return count, first_row, first_col
