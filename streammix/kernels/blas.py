"""Triangular and symmetric BLAS level-3 calls (dtrmm, dsyrk) from numba, through the
addresses scipy exports in scipy.linalg.cython_blas.

numba's np.dot reaches only dgemm; the full-covariance kernel needs a triangular
product (whitening by the precision Cholesky factor) and a symmetric rank-k update
(sum r z z^T), each half of a dgemm's flops.
Arrays are C-ordered here and BLAS is column-major: a C-ordered (rows x d) block is the
column-major d x rows matrix, which the wrappers below account for.
"""

from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
import numpy as np
from numba import njit, types
from numba.extending import get_cython_function_address

# Registered as named symbols (as numba does for its own BLAS calls) rather than ctypes
# pointers, so that the kernels calling them can still be cached on disk. Arguments are
# pointer-sized integers (Fortran passes everything by reference).
for _name in ("dtrmm", "dsyrk"):
    llvm.add_symbol(f"streammix_{_name}",
                    get_cython_function_address("scipy.linalg.cython_blas", _name))
_dtrmm = types.ExternalFunction("streammix_dtrmm", types.void(*([types.uintp] * 11)))
_dsyrk = types.ExternalFunction("streammix_dsyrk", types.void(*([types.uintp] * 10)))


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def _thread_local_setter_address() -> int | None:
    """Address of the BLAS library's per-thread thread-count setter, if it has one.

    OpenBLAS (>= 0.3.27) threads even tiny dtrmm/dsyrk calls: measured 9.7 s instead of
    0.03 s for one chunk when two kernel threads each fan out to all cores. Our kernels
    already run one per core, so each kernel call pins its own thread's BLAS to one
    thread (openblas_set_num_threads_local) and restores it after; nothing else in the
    process is affected.
    """
    try:
        libdl = ctypes.CDLL(None)
        info = _DlInfo()
        addr = get_cython_function_address("scipy.linalg.cython_blas", "dtrmm")
        if not libdl.dladdr(ctypes.c_void_p(addr), ctypes.byref(info)) or not info.dli_fname:
            return None
        lib = ctypes.CDLL(info.dli_fname.decode())
        fn = getattr(lib, "openblas_set_num_threads_local", None)
        return None if fn is None else ctypes.cast(fn, ctypes.c_void_p).value
    except (OSError, AttributeError):
        return None


_NOOP_T = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)
_noop = _NOOP_T(lambda n: 1)  # BLAS without a per-thread setter (MKL, reference BLAS)
_setter = _thread_local_setter_address()
HAVE_THREAD_LOCAL_BLAS = _setter is not None
llvm.add_symbol("streammix_blas_threads_local",
                _setter if _setter is not None else ctypes.cast(_noop, ctypes.c_void_p).value)
set_blas_threads_local = types.ExternalFunction("streammix_blas_threads_local",
                                                types.int32(types.int32))

_L, _U, _N = ord("L"), ord("U"), ord("N")


@njit(nogil=True, cache=True)
def whiten_rows(Z, b, U, flags, ints, scal):
    """Z[:b] <- Z[:b] @ U in place, U upper-triangular (d x d, C order).

    Column-major view: Z^T <- U^T Z^T with U^T lower-triangular: dtrmm('L', 'L', 'N',
    'N', m=d, n=b). ``flags`` (uint8, 4), ``ints`` (int32, 4), ``scal`` (float64, 2) are
    scratch buffers that carry the by-reference scalars.
    """
    d = Z.shape[1]
    flags[0] = _L
    flags[1] = _L
    flags[2] = _N
    flags[3] = _N
    ints[0] = d
    ints[1] = b
    ints[2] = d
    scal[0] = 1.0
    fp = flags.ctypes.data
    ip = ints.ctypes.data
    _dtrmm(fp, fp + 1, fp + 2, fp + 3, ip, ip + 4, scal.ctypes.data, U.ctypes.data, ip + 8,
           Z.ctypes.data, ip + 8)


@njit(nogil=True, cache=True)
def syrk_rows(W, b, S, k, flags, ints, scal):
    """S[k] += W[:b]^T W[:b] (upper triangle in C order only; d x d slice of S).

    Column-major view: S[k] (symmetric) += W^T-as-stored times its transpose:
    dsyrk('L', 'N', n=d, k=b) fills the column-major lower = C-order upper triangle.
    """
    d = W.shape[1]
    flags[0] = _L
    flags[1] = _N
    ints[0] = d
    ints[1] = b
    ints[2] = d
    scal[0] = 1.0
    scal[1] = 1.0
    fp = flags.ctypes.data
    ip = ints.ctypes.data
    sp = scal.ctypes.data
    _dsyrk(fp, fp + 1, ip, ip + 4, sp, W.ctypes.data, ip + 8, sp + 8,
           S.ctypes.data + k * d * d * 8, ip + 8)


def scratch():
    """Fresh scratch buffers for the by-reference BLAS scalars (one set per thread)."""
    return np.empty(4, np.uint8), np.empty(4, np.int32), np.empty(2, np.float64)
