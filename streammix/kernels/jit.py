"""How kernels are compiled and cached, so that their bits never depend on the cache.

numba caches a ``cache=True`` function as object code. The code a process runs right
after compiling a function is not always the code it saved: a function with a
``parallel=True`` region (its loop body becomes a separate gufunc, linked in) ran, freshly
compiled, other machine code than the same function loaded from the cache by the next
process, and with fast-math reductions the two differ in the last bits (measured: a diag
statistics pass over 10,000 rows; a CLI update that did not equal partial_fit). Likewise
a function compiled while one of its callees came from the cache links that callee's
object code instead of inlining its IR. So that every process, the first after an
install included, runs the same code:

- ``part``: a piece of a kernel, called only from other kernels. Never cached on its
  own: always compiled from its IR together with the kernel that calls it.
- ``cached`` / ``entry``: what Python calls. A complete unit (it calls parts only),
  cached, and always run as loaded from the cache: a signature not in the cache yet is
  compiled and saved by a throwaway dispatcher, then loaded like any later process
  loads it (falling back to the fresh code only where the cache cannot be written).

Functions without fast-math flags or parallel regions (strict IEEE arithmetic, integer
scans) round the same however they are compiled and stay plain ``njit(cache=True)``.
"""

from __future__ import annotations

import hashlib
import os
import time

from numba import njit
from numba.core import sigutils
from numba.core.compiler_lock import global_compiler_lock


def part(fn=None, **options):
    """``@part`` / ``@part(fastmath=...)``: njit (nogil) without a cache of its own."""
    options.setdefault("nogil", True)
    deco = njit(**options)
    return deco if fn is None else deco(fn)


def cached(fn=None, **options):
    """``@cached(...)``: njit(cache=True) whose code is always the cached code (above)."""
    options.setdefault("nogil", True)

    def wrap(f):
        dispatcher = njit(cache=True, **options)(f)
        if hasattr(dispatcher, "compile"):  # not under NUMBA_DISABLE_JIT=1
            _run_cached_code(dispatcher, f, options)
        return dispatcher

    return wrap if fn is None else wrap(fn)


def python_function(fn):
    """The Python function of a part (numba's dispatcher keeps it as ``py_func``; under
    NUMBA_DISABLE_JIT=1 the part is that function), to call a small part such as a
    block-size rule from Python without compiling it."""
    return getattr(fn, "py_func", fn)


def entry(fn, **options):
    """The cached dispatcher (``cached``) of the part ``fn``'s Python function, with its
    options, for calls from Python."""
    if not hasattr(fn, "py_func"):  # NUMBA_DISABLE_JIT=1: plain Python functions
        return fn
    opts = {k: v for k, v in fn.targetoptions.items() if k != "nopython"}
    opts.update(options)
    return cached(fn.py_func, **opts)


def _run_cached_code(dispatcher, py_func, options) -> None:
    """Make ``dispatcher`` load every signature from the cache; a signature missing
    there is compiled and saved by a child process first (compiling it here would
    leave this process's freshly linked symbols in place of the cached ones)."""
    fresh_compile = dispatcher.compile

    def compile_from_cache(sig):
        with global_compiler_lock:
            args, _ = sigutils.normalize_signature(sig)
            existing = dispatcher.overloads.get(tuple(args))
            if existing is not None:
                return existing.entry_point
            cres = dispatcher._cache.load_overload(sig, dispatcher.targetctx)
            if cres is None and _compile_in_a_child(py_func, options, tuple(args)):
                for pause in (0.0, 0.05, 0.2, 0.5):  # another process may be rewriting
                    time.sleep(pause)                # the cache's index at this moment
                    cres = dispatcher._cache.load_overload(sig, dispatcher.targetctx)
                    if cres is not None:
                        break
            if cres is None:  # no cache, or no child process here: the fresh code
                return fresh_compile(sig)
            if not cres.objectmode:
                dispatcher.targetctx.insert_user_function(cres.entry_point, cres.fndesc,
                                                          [cres.library])
            dispatcher.add_overload(cres)
            return cres.entry_point

    dispatcher.compile = compile_from_cache


#: set in the child that compiles for its parent (it then compiles in place)
_CHILD_ENV = "STREAMMIX_KERNEL_COMPILER"


def _compile_in_a_child(py_func, options, args) -> bool:
    """Compile ``py_func`` for the argument types ``args`` in a child Python, which
    saves it to numba's cache; False when that could not be done."""
    import os
    import pickle
    import subprocess
    import sys

    if os.environ.get(_CHILD_ENV) or not sys.executable:
        return False
    try:
        job = pickle.dumps((py_func.__module__, py_func.__qualname__, options, args))
        # the child imports this very streammix: this process's module path, first
        env = {**os.environ, _CHILD_ENV: "1", "PYTHONPATH": os.pathsep.join(
            p for p in sys.path if p)}
        done = subprocess.run([sys.executable, "-P", "-c", "from streammix.kernels.jit "
                               "import compile_for_parent; compile_for_parent()"],
                              input=job, capture_output=True, env=env, timeout=600)
    except Exception:  # noqa: BLE001 - no child here: compile in this process
        return False
    return done.returncode == 0


def compile_for_parent() -> None:
    """The child's side of ``_compile_in_a_child``: the job from stdin, compiled and
    saved to the cache."""
    import importlib
    import pickle
    import sys

    module, qualname, options, args = pickle.loads(sys.stdin.buffer.read())
    obj = importlib.import_module(module)
    for name in qualname.split("."):
        obj = getattr(obj, name)
    py_func = python_function(obj)
    njit(cache=True, **options)(py_func).compile(args)


def _drop_stale_caches() -> None:
    """numba stamps a cached function with its own file only, but our kernels inline
    parts from other files: after a part changes (a development tree, an editable
    install), a kernel would load the old code, whose bits differ from the kernels
    compiled anew. So the caches are dropped whenever a source with numba code (the
    kernels, math/, the thread pool) differs from the sources they were built with (a
    stamp of those files' sizes and mtimes, checked once per process: ~30 stat calls).
    Only numba's default cache folders (__pycache__ beside the sources) are handled; a
    read-only install keeps its caches."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    numba_code = (os.path.join(root, "kernels"), os.path.join(root, "math"),
                  os.path.join(root, "execution", "threads.py"))
    sources = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            path = os.path.join(folder, name)
            if name.endswith(".py") and path.startswith(numba_code):
                st = os.stat(os.path.join(folder, name))
                sources.append(f"{os.path.relpath(os.path.join(folder, name), root)}:"
                               f"{st.st_size}:{st.st_mtime_ns}")
    stamp = hashlib.sha256("\n".join(sources).encode()).hexdigest()
    stamp_path = os.path.join(root, "__pycache__", "numba-sources.stamp")
    try:
        with open(stamp_path) as f:
            if f.read().strip() == stamp:
                return
    except OSError:
        pass
    try:
        for folder, dirs, files in os.walk(root):
            if os.path.basename(folder) == "__pycache__":
                for name in files:
                    if name.endswith((".nbi", ".nbc")):
                        os.remove(os.path.join(folder, name))
        os.makedirs(os.path.dirname(stamp_path), exist_ok=True)
        tmp = f"{stamp_path}.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(stamp)
        os.replace(tmp, stamp_path)
    except OSError:  # read-only install, or another process just did the same
        pass


_drop_stale_caches()
