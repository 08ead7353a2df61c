"""Control of the BLAS that numba's np.dot calls (scipy's OpenBLAS) from our kernels.

The full-covariance kernel calls dgemm on small blocks from one thread per core;
OpenBLAS, left to itself, would fan each call out to every core. (A dtrmm/dsyrk variant,
half the flops, measured 2x slower than dgemm at these sizes and was dropped.)
"""

from __future__ import annotations

import ctypes
import threading

from numba.extending import get_cython_function_address


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def _blas_thread_setter():
    """The BLAS library's thread-count setter (ctypes), if it is OpenBLAS.

    OpenBLAS threads even tiny level-3 calls: measured 9.7 s instead of 0.03 s for one
    chunk when two kernel threads each fan out to all cores. Our kernels already run one
    per core, so while any kernel runs, BLAS is held at one thread (see
    ``single_threaded_blas``). The process-wide setter is used, reference-counted and
    restored when the last kernel ends: the calling thread's "local" setter does not
    reach the threads of a numba parallel region (``*_stats_chunks``), whose dgemms then
    fanned out and ran a 10,000-row 'full' update 25-40% slower (measured on a 2-core
    EPYC; about 1.5 us per pair of calls). The local setter is the fallback.
    """
    try:
        libdl = ctypes.CDLL(None)
        info = _DlInfo()
        addr = get_cython_function_address("scipy.linalg.cython_blas", "dgemm")
        if not libdl.dladdr(ctypes.c_void_p(addr), ctypes.byref(info)) or not info.dli_fname:
            return None, None
        lib = ctypes.CDLL(info.dli_fname.decode())
        setter = getter = None
        for name in ("scipy_openblas_set_num_threads", "openblas_set_num_threads",
                     "openblas_set_num_threads_local"):
            setter = getattr(lib, name, None)
            if setter is not None:
                break
        for name in ("scipy_openblas_get_num_threads", "openblas_get_num_threads"):
            getter = getattr(lib, name, None)
            if getter is not None:
                break
        if setter is None or getter is None:
            return None, None
        setter.restype = None  # the return value (void, or the old count) is not used
        setter.argtypes = [ctypes.c_int]
        getter.restype = ctypes.c_int
        return setter, getter
    except (OSError, AttributeError):
        return None, None


_set_threads, _get_threads = _blas_thread_setter()
HAVE_BLAS_THREAD_CONTROL = _set_threads is not None
_lock = threading.Lock()
_active = 0
_saved = None


class _SingleThreadedBlas:
    """Hold the kernels' BLAS at one thread while any kernel call is running: the
    first of overlapping holders saves the thread count and sets 1, the last restores
    it. A plain context manager object, not a generator: an online update enters it
    once per batch, and the generator machinery cost more than the calls it wraps."""

    __slots__ = ()

    def __enter__(self) -> None:
        global _active, _saved
        if _set_threads is None:
            return
        with _lock:
            if _active == 0:
                _saved = _get_threads()
                _set_threads(1)
            _active += 1

    def __exit__(self, *exc) -> None:
        global _active
        if _set_threads is None:
            return
        with _lock:
            _active -= 1
            if _active == 0 and _saved is not None:
                _set_threads(_saved)


_SINGLE_THREADED_BLAS = _SingleThreadedBlas()


def single_threaded_blas() -> _SingleThreadedBlas:
    """``with single_threaded_blas():`` holds the kernels' BLAS at one thread."""
    return _SINGLE_THREADED_BLAS
