"""Control of the BLAS that numba's np.dot calls (scipy's OpenBLAS) from our kernels,
and of numpy's own OpenBLAS beside it, while kernels or fits run.

The kernels call dgemm, dtrmm and dsyrk on small blocks from one thread per core;
OpenBLAS, left to itself, would fan each call out to every core.
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


def _other_openblas_setters(kernels_lib_setter) -> list:
    """(setter, getter) of every other OpenBLAS this process has loaded (numpy's own,
    with its 64-bit-integer symbol names), from the shared objects mapped in
    /proc/self/maps (Linux; elsewhere none).

    Held at one thread with the kernels' BLAS by ``single_threaded_blas``: numpy's
    OpenBLAS, once a product of d ~ 100 (a fit's validation, initialisation or
    M-step) has fanned it out, keeps its threads spinning for a while (about 0.1 s),
    and they took a core from the kernels: at 50,000 x 128, K = 4 ('tied') the first
    iterations of a fit ran at 0.022 s where they run at 0.015 s."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split(None, 5)[5].strip() for line in maps
                     if len(line.split(None, 5)) == 6 and "openblas" in line.lower()}
    except OSError:
        return []
    found = []
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for suffix in ("64_", "", "_64"):
            setter = getattr(lib, f"scipy_openblas_set_num_threads{suffix}", None) or \
                getattr(lib, f"openblas_set_num_threads{suffix}", None)
            getter = getattr(lib, f"scipy_openblas_get_num_threads{suffix}", None) or \
                getattr(lib, f"openblas_get_num_threads{suffix}", None)
            if setter is not None and getter is not None:
                break
        else:
            continue
        if kernels_lib_setter is not None and ctypes.cast(setter, ctypes.c_void_p).value == \
                ctypes.cast(kernels_lib_setter, ctypes.c_void_p).value:
            continue  # the kernels' own library
        setter.restype = None
        setter.argtypes = [ctypes.c_int]
        getter.restype = ctypes.c_int
        found.append((setter, getter))
    return found


_set_threads, _get_threads = _blas_thread_setter()
HAVE_BLAS_THREAD_CONTROL = _set_threads is not None
_ALL_SETTERS = ([(_set_threads, _get_threads)] if HAVE_BLAS_THREAD_CONTROL else []) + \
    _other_openblas_setters(_set_threads)
_lock = threading.Lock()
_active = 0
_saved: list = []


class _SingleThreadedBlas:
    """Hold the kernels' BLAS (and the process's other OpenBLAS, numpy's) at one thread
    while any kernel call or fit is running: the first of overlapping holders saves the
    thread counts and sets 1, the last restores them. A plain context manager object,
    not a generator: an online update enters it once per batch, and the generator
    machinery cost more than the calls it wraps."""

    __slots__ = ()

    def __enter__(self) -> None:
        global _active, _saved
        if not _ALL_SETTERS:
            return
        with _lock:
            if _active == 0:
                _saved = [get() for _, get in _ALL_SETTERS]
                for setter, _ in _ALL_SETTERS:
                    setter(1)
            _active += 1

    def __exit__(self, *exc) -> None:
        global _active
        if not _ALL_SETTERS:
            return
        with _lock:
            _active -= 1
            if _active == 0:
                for (setter, _), n in zip(_ALL_SETTERS, _saved):
                    setter(n)


_SINGLE_THREADED_BLAS = _SingleThreadedBlas()


def single_threaded_blas() -> _SingleThreadedBlas:
    """``with single_threaded_blas():`` holds the kernels' BLAS at one thread."""
    return _SINGLE_THREADED_BLAS
