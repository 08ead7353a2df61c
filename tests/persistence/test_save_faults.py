"""Faults inside saves: SIGKILL before any file-system operation of a checkpointed fit,
a disk that fills up in the middle of a save (mocked ENOSPC, and a real tiny tmpfs),
and the leftovers of killed writers.

The SIGKILL tests run the fit in a child process whose ``os`` file operations are
counted; the child kills itself with SIGKILL right before operation K. One dry run
gives the number of operations and the order of the phases of every save (version
files, their fdatasync/fsync, the rename, the pointer, the prune); the moments K are
drawn (seeded) from each phase. After every kill the checkpoint must load, and the same
fit rerun on it must end with the bits of the uninterrupted run.
"""

from __future__ import annotations

import builtins
import errno
import glob
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
import warnings

import numpy as np
import pytest

import streammix.persistence.storage as storage_mod
import streammix.persistence.store as store
from streammix import (
    CheckpointError,
    GaussianMixture,
    InvalidInputError,
    OnlineGaussianMixture,
    UnfinishedModelWarning,
    load,
)
from streammix.persistence import CheckpointWriter, current_version, list_versions, read_pointer
from tests.conftest import make_blobs

pytestmark = pytest.mark.filterwarnings("ignore::streammix.ConvergenceWarning")

KEEP_LAST = 2
FIT = dict(n_components=3, covariance_type="full", tol=0, max_iter=8, random_state=1)
CHILD_TIMEOUT = 120

# --------------------------------------------------------------------------- SIGKILL

#: the os functions a save calls (looked up on the os module at call time, also by
#: shutil.rmtree), wrapped in the child by a counter that SIGKILLs before operation K
CHILD = textwrap.dedent("""
    import json, os, signal, sys, threading, warnings
    warnings.simplefilter("ignore")
    import numpy as np
    from streammix import GaussianMixture
    xfile, ck, out, kill_at, oplog = sys.argv[1:6]
    kill_at = int(kill_at)
    fit_kw = json.loads(sys.argv[6])
    keep_last = int(sys.argv[7])
    X = np.load(xfile)
    NAMES = ("write", "fdatasync", "fsync", "replace", "rename", "unlink", "remove",
             "rmdir", "link")
    guard = threading.Lock()
    count = [0]
    counting = [True]
    log = []

    def fd_path(fd):
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return f"<fd {fd}>"

    def target(args, kw):
        if not args:
            return ""
        first = args[0]
        if isinstance(first, int):
            return fd_path(first)
        first = os.fspath(first)
        if isinstance(first, bytes):
            first = os.fsdecode(first)
        if kw.get("dir_fd") is not None:
            return os.path.join(fd_path(kw["dir_fd"]), first)
        return first

    def wrap(name, real):
        def op(*args, **kw):
            if counting[0]:
                with guard:
                    count[0] += 1
                    n = count[0]
                    if oplog != "-":
                        dest = os.fspath(args[1]) if name in ("replace", "rename", "link") \\
                            else ""
                        log.append([name, target(args, kw), dest])
                if n == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kw)
        return op

    for name in NAMES:
        setattr(os, name, wrap(name, getattr(os, name)))
    m = GaussianMixture(**fit_kw)
    m.fit(X, checkpoint=ck, checkpoint_every=1, keep_last=keep_last)
    counting[0] = False
    if out != "-":
        np.savez(out, means=m.means_, covs=m.covariances_, w=m.weights_,
                 lb=np.array(m.lower_bounds_), n_iter=m.n_iter_)
    if oplog != "-":
        with open(oplog, "w") as f:
            json.dump(log, f)
    print("OPS", count[0], flush=True)
""")

#: the phases of a checkpointed fit a kill is drawn from (each test kills in one)
PHASES = [
    "lock-temp",                # taking the writer lock (LOCK.<token>.tmp, link)
    "root-group-temp",          # the checkpoint's root zarr.json (temp, fsync, replace)
    "first-save-files",         # writing / syncing the first version under staging/
    "first-save-after-rename",  # v000001 renamed into place, no pointer yet
    "mid-version-files",        # an os.write in the middle of a later version's files
    "version-sync",             # the parallel fdatasync / folder fsync of a later save
    "before-rename",            # right before staging/vN-xxxx -> vN
    "after-rename",             # vN in place, the pointer still on vN-1
    "pointer-temp",             # CURRENT.json.<hex>.tmp written, not yet replaced
    "prune",                    # half-way through deleting an old version
    "final-save",               # writing the finished model's version
    "final-prune",              # after the finished model is committed
    "random",                   # anywhere
]

_STAGING_RE = re.compile(r"/staging/(v\d{6,}-[0-9a-f]+)(/|$)")


def classify(ops: list[list[str]], ck: str) -> dict[str, list[int]]:
    """The operation numbers (1-based K) of each phase of the dry run's log."""
    ck = os.path.realpath(ck)
    save_of: dict[str, int] = {}  # staging folder -> save number (1-based)
    phase: dict[str, list[int]] = {p: [] for p in PHASES}
    renames = []  # (K of the rename, save number)
    pointer_replaces = []
    n_saves = 0
    for i, (name, tgt, _dest) in enumerate(ops):
        m = _STAGING_RE.search(tgt)
        if m and m.group(1) not in save_of:
            n_saves += 1
            save_of[m.group(1)] = n_saves
        if name == "replace" and m:
            renames.append((i + 1, save_of[m.group(1)]))
        if name == "replace" and os.path.basename(tgt).startswith("CURRENT.json."):
            pointer_replaces.append(i + 1)
    assert n_saves == FIT["max_iter"], (n_saves, ops[:5])
    first_staging = min(i for i, op in enumerate(ops) if _STAGING_RE.search(op[1])) + 1
    last_commit = pointer_replaces[-1]
    for i, (name, tgt, _dest) in enumerate(ops):
        k = i + 1
        base = os.path.basename(tgt)
        m = _STAGING_RE.search(tgt)
        save = save_of[m.group(1)] if m else None
        if k < first_staging and base.startswith("LOCK."):
            phase["lock-temp"].append(k)
        elif k < first_staging and base.startswith("zarr.json."):
            phase["root-group-temp"].append(k)
        elif m and name != "replace":
            if save == 1:
                phase["first-save-files"].append(k)
            elif save == n_saves:
                phase["final-save"].append(k)
            elif name == "write":
                phase["mid-version-files"].append(k)
            else:
                phase["version-sync"].append(k)
        elif name == "replace" and m and 1 < save < n_saves:
            phase["before-rename"].append(k)
        elif base.startswith("CURRENT.json.") and name in ("fsync", "replace"):
            phase["pointer-temp"].append(k)
        elif name in ("unlink", "rmdir"):
            phase["final-prune" if k > last_commit else "prune"].append(k)
    for k, save in renames:
        assert ops[k][0] == "fsync" and os.path.realpath(ops[k][1]) == ck, ops[k]
        if save == 1:
            phase["first-save-after-rename"].append(k + 1)
        elif save < n_saves:
            phase["after-rename"].append(k + 1)
    # a mid-version write: not the first nor the last file of its version
    phase["mid-version-files"] = [k for k in phase["mid-version-files"]
                                  if ops[k - 2][0] == "write" and ops[k][0] == "write"]
    phase["final-prune"].append(len(ops))  # the lock's release, after everything
    phase["random"] = list(range(1, len(ops) + 1))
    for p in PHASES:
        assert phase[p], f"no operation found for phase {p}"
    return phase


def run_child(xfile, ck, kill_at, out="-", oplog="-"):
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(xfile), str(ck), str(out), str(kill_at),
         str(oplog), json.dumps(FIT), str(KEEP_LAST)],
        capture_output=True, text=True, timeout=CHILD_TIMEOUT)


@pytest.fixture(scope="module")
def kill_plan(tmp_path_factory):
    """The dry run: the reference result, the total T of operations, and one K per phase
    (drawn with a seeded generator, all distinct)."""
    base = tmp_path_factory.mktemp("kill")
    X, _ = make_blobs(3000, 4, 3, seed=5)
    xfile = base / "x.npy"
    np.save(xfile, X)
    ref_out, oplog, ck = base / "ref.npz", base / "ops.json", base / "dry"
    proc = run_child(xfile, ck, 0, out=ref_out, oplog=oplog)
    assert proc.returncode == 0, proc.stderr[-3000:]
    total = int(proc.stdout.split("OPS")[1].split()[0])
    ops = json.loads(oplog.read_text())
    assert len(ops) == total > 100
    phases = classify(ops, str(ck))
    rng = np.random.default_rng(20240611)
    chosen: dict[str, int] = {}
    for p in PHASES:  # in a fixed order: the draw does not depend on the tests selected
        candidates = [k for k in phases[p] if k not in chosen.values()]
        chosen[p] = int(rng.choice(candidates))
    assert len(set(chosen.values())) == len(PHASES)
    ref = dict(np.load(ref_out))
    return {"X": X, "xfile": xfile, "base": base, "total": total, "ops": ops, "K": chosen,
            "ref": ref}


def tmp_files(ck) -> list[str]:
    return sorted(os.path.relpath(p, ck) for p in glob.glob(os.path.join(ck, "**", "*.tmp"),
                                                             recursive=True))


def staged(ck) -> list[str]:
    d = os.path.join(ck, "staging")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def assert_reference(model, ref) -> None:
    np.testing.assert_array_equal(model.means_, ref["means"])
    np.testing.assert_array_equal(model.covariances_, ref["covs"])
    np.testing.assert_array_equal(model.weights_, ref["w"])
    assert list(model.lower_bounds_) == ref["lb"].tolist()
    assert model.n_iter_ == int(ref["n_iter"])


def test_dry_run_counts_the_operations_of_every_save(kill_plan):
    """The plan itself: 8 saves, and the drawn moments fall where they were meant to."""
    ops, K = kill_plan["ops"], kill_plan["K"]
    assert sorted(K.values()) == sorted(set(K.values()))
    assert all(1 <= k <= kill_plan["total"] for k in K.values())
    assert ops[K["before-rename"] - 1][0] == "replace"
    assert "/staging/" in ops[K["before-rename"] - 1][1]
    assert ops[K["after-rename"] - 2][0] == "replace"
    assert ops[K["mid-version-files"] - 1][0] == "write"
    assert os.path.basename(ops[K["pointer-temp"] - 1][1]).startswith("CURRENT.json.")
    assert ops[K["prune"] - 1][0] in ("unlink", "rmdir")


@pytest.mark.parametrize("phase", PHASES)
def test_sigkill_inside_a_save_then_rerun_gives_the_uninterrupted_bits(kill_plan, phase):
    k = kill_plan["K"][phase]
    ck = str(kill_plan["base"] / f"ck-{phase}")
    proc = run_child(kill_plan["xfile"], ck, k)
    assert proc.returncode == -signal.SIGKILL, (k, proc.returncode, proc.stderr[-3000:])
    versions = list_versions(ck)
    pointer = read_pointer(ck) if os.path.isdir(ck) else None  # never damaged by a kill
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnfinishedModelWarning)
        if versions and pointer is not None:
            assert int(pointer["version"]) in versions
            load(ck)  # the pointer's version is complete and verifies
        if versions:
            load(ck, fallback=True)
    # the kill landed in the phase it was drawn from
    newest = versions[-1] if versions else None
    cur = None if pointer is None else int(pointer["version"])
    if phase in ("lock-temp", "root-group-temp", "first-save-files"):
        assert versions == [] and pointer is None
    elif phase == "first-save-after-rename":
        assert versions == [1] and pointer is None  # a lost pointer: fallback finds v1
    elif phase in ("mid-version-files", "version-sync", "before-rename"):
        assert cur == newest and len(staged(ck)) == 1
    elif phase == "after-rename":
        assert cur == newest - 1 and staged(ck) == []
    elif phase == "pointer-temp":
        assert any(t.startswith("CURRENT.json.") for t in tmp_files(ck))
        assert cur == (None if newest == 1 else newest - 1)
    elif phase == "prune":  # the old version was moved out of the listing, then deleted
        assert cur == newest and len(versions) == KEEP_LAST
        assert [n for n in staged(ck) if n.startswith("pruned-")]
    elif phase == "final-save":
        assert cur == newest
        with pytest.warns(UnfinishedModelWarning):
            load(ck)
    elif phase == "final-prune":
        assert cur == newest
        assert_reference(load(ck, finished=True), kill_plan["ref"])
    child_temps = set(tmp_files(ck))

    # the rerun, in this process: the same fit on the same data and checkpoint
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # breaking the dead child's lock
        model = GaussianMixture(**FIT).fit(kill_plan["X"], checkpoint=ck,
                                           checkpoint_every=1, keep_last=KEEP_LAST)
    assert_reference(model, kill_plan["ref"])
    assert_reference(load(ck, finished=True), kill_plan["ref"])
    assert staged(ck) == []
    left = set(tmp_files(ck))
    assert not any(t.startswith("CURRENT.json.") for t in left), left
    # a killed writer's lock (or root group) temporary is kept for a minute (another
    # writer may be between writing and linking it): it must be the child's own...
    assert left <= child_temps and all(t.startswith(("LOCK.", "zarr.json.")) for t in left)
    if left:  # ...and the next writer opening the checkpoint once it is stale removes it
        old = time.time() - 2 * store._STALE_TMP_SECONDS
        for t in left:
            os.utime(os.path.join(ck, t), (old, old))
        CheckpointWriter(ck, keep_last=KEEP_LAST).close()
        assert tmp_files(ck) == []
    assert not os.path.exists(os.path.join(ck, "LOCK"))


# --------------------------------------------------------------------------- disk full

def enospc():
    return OSError(errno.ENOSPC, "No space left on device")


def two_models():
    X, _ = make_blobs(1500, 3, 3, seed=3)
    first = GaussianMixture(3, covariance_type="full", max_iter=5, random_state=0).fit(X)
    second = GaussianMixture(3, covariance_type="full", max_iter=5, random_state=7).fit(X)
    assert not np.array_equal(first.means_, second.means_)
    return first, second


def assert_same_params(a, b) -> None:
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.lower_bounds_ == b.lower_bounds_ and a.n_iter_ == b.n_iter_


class WriteBudget:
    """os.write that succeeds ``budget`` times, then raises ENOSPC (every time)."""

    def __init__(self, budget: int | None):
        self.budget, self.calls, self.real = budget, 0, os.write

    def __call__(self, fd, data):
        self.calls += 1
        if self.budget is not None and self.calls > self.budget:
            raise enospc()
        return self.real(fd, data)


def count_writes(model, tmp_path) -> int:
    """How many os.write calls a second save of ``model`` makes (one per file)."""
    ck = tmp_path / "count"
    model.save(ck)
    counter = WriteBudget(None)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "write", counter)
        model.save(ck)
    return counter.calls


def check_failed_save(exc_info, ck, first) -> None:
    """After a failed second save: a CheckpointError naming the checkpoint and saying
    version 1 is still current; version 1 loads; no temporaries left."""
    err = exc_info.value
    assert type(err) is not OSError and isinstance(err, CheckpointError)
    msg = str(err)
    assert str(ck) in msg and "still holds version 1" in msg, msg
    assert "No space left on device" in msg, msg
    assert current_version(ck) == 1
    assert_same_params(load(ck), first)
    assert staged(ck) == []
    assert tmp_files(ck) == []
    assert not os.path.exists(os.path.join(ck, "LOCK"))


@pytest.mark.parametrize("where", ["first-file", "middle-file", "manifest"])
def test_enospc_while_writing_the_version_files(tmp_path, where):
    first, second = two_models()
    n_writes = count_writes(second, tmp_path)
    assert n_writes >= 10  # one os.write per file: data + metadata of each array
    budget = {"first-file": 0, "middle-file": n_writes // 2, "manifest": n_writes - 1}[where]
    ck = tmp_path / "ck"
    assert first.save(ck) == 1
    fail = WriteBudget(budget)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "write", fail)
        with pytest.raises(CheckpointError) as info:
            second.save(ck)
    assert fail.calls == budget + 1  # the save stopped at the first failing write
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.__cause__.errno == errno.ENOSPC
    check_failed_save(info, ck, first)
    assert list_versions(ck) == [1]
    # space again: the next save is version 2
    assert second.save(ck) == 2
    assert current_version(ck) == 2
    assert_same_params(load(ck), second)
    assert staged(ck) == [] and tmp_files(ck) == []


def test_enospc_at_the_rename_of_the_version(tmp_path):
    """A rename can need space too (the folder's directory grows)."""
    first, second = two_models()
    ck = tmp_path / "ck"
    first.save(ck)
    real = os.replace

    def replace(src, dst, *a, **kw):
        if "staging" in os.fspath(src):
            raise enospc()
        return real(src, dst, *a, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "replace", replace)
        with pytest.raises(CheckpointError) as info:
            second.save(ck)
    check_failed_save(info, ck, first)
    assert list_versions(ck) == [1]
    assert second.save(ck) == 2
    assert_same_params(load(ck), second)


class FullFile:
    """A text file on a full disk: writes are buffered, the flush fails (ENOSPC)."""

    def __init__(self, f):
        self._f = f

    def write(self, text):
        raise enospc()

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def test_enospc_while_writing_the_pointer(tmp_path):
    """The pointer's temporary is written through a buffered file (not os.write): the
    version folder is complete but must not become current."""
    first, second = two_models()
    ck = tmp_path / "ck"
    first.save(ck)
    real_open = builtins.open
    failed = []

    def full_open(path, mode="r", *a, **kw):
        f = real_open(path, mode, *a, **kw)
        if os.path.basename(os.fspath(path)).startswith("CURRENT.json.") and "w" in mode:
            failed.append(os.fspath(path))
            return FullFile(f)
        return f

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(storage_mod, "open", full_open, raising=False)
        with pytest.raises(CheckpointError) as info:
            second.save(ck)
    assert len(failed) == 1
    assert "pointer" in str(info.value) and "version 2 was written" in str(info.value)
    check_failed_save(info, ck, first)
    assert list_versions(ck) == [1, 2]  # complete, but not current
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnfinishedModelWarning)
        assert_same_params(load(ck, fallback=True), first)  # the pointer's version first
    assert second.save(ck) == 3
    assert current_version(ck) == 3
    assert_same_params(load(ck), second)
    assert tmp_files(ck) == [] and staged(ck) == []


def test_enospc_in_a_checkpointed_fit_keeps_the_last_version(tmp_path):
    """A fit whose third save hits a full disk stops with CheckpointError; the checkpoint
    holds version 2, and the same fit rerun (space again) ends with the bits of an
    uninterrupted run."""
    X, _ = make_blobs(1500, 3, 3, seed=4)
    # a scratch run counts the writes made before each save's commit
    counter, marks = WriteBudget(None), []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "write", counter)
        mp.setattr(store, "before_commit", lambda: marks.append(counter.calls))
        ref = GaussianMixture(**FIT).fit(X, checkpoint=tmp_path / "scratch",
                                         keep_last=KEEP_LAST)
    assert len(marks) == FIT["max_iter"]
    ck = tmp_path / "ck"
    fail = WriteBudget((marks[1] + marks[2]) // 2)  # in the middle of the third save
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "write", fail)
        with pytest.raises(CheckpointError, match="still holds version 2") as info:
            GaussianMixture(**FIT).fit(X, checkpoint=ck, keep_last=KEEP_LAST)
    assert str(ck) in str(info.value)
    assert current_version(ck) == 2 and list_versions(ck) == [1, 2]
    assert staged(ck) == [] and tmp_files(ck) == []
    assert not os.path.exists(os.path.join(ck, "LOCK"))
    model = GaussianMixture(**FIT).fit(X, checkpoint=ck, keep_last=KEEP_LAST)
    for name in ("means_", "covariances_", "weights_"):
        np.testing.assert_array_equal(getattr(model, name), getattr(ref, name))
    assert model.lower_bounds_ == ref.lower_bounds_ and model.n_iter_ == ref.n_iter_
    assert current_version(ck) == list_versions(ck)[-1]
    assert staged(ck) == [] and tmp_files(ck) == []


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 200 KiB tmpfs (needs root and mount rights; skipped otherwise)."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mnt)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs: {exc}")
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {proc.stderr.strip() or proc.returncode}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True, timeout=30)


def small_and_big():
    X, _ = make_blobs(600, 3, 2, seed=1)
    small = GaussianMixture(2, covariance_type="full", max_iter=3, random_state=0).fit(X)
    Xb, _ = make_blobs(1200, 40, 20, seed=2)  # covariances + Cholesky: ~0.5 MB
    big = GaussianMixture(20, covariance_type="full", max_iter=1, random_state=0).fit(Xb)
    return small, big


def test_real_full_disk_a_model_too_big_fails_cleanly(tiny_tmpfs):
    small, big = small_and_big()
    ck = tiny_tmpfs / "ck"
    assert small.save(ck) == 1
    with pytest.raises(CheckpointError) as info:
        big.save(ck)
    assert info.value.__cause__.errno == errno.ENOSPC
    check_failed_save(info, ck, small)
    assert list_versions(ck) == [1]
    # the staged files were removed: the space is free again for a model that fits
    assert small.save(ck) == 2
    assert_same_params(load(ck), small)
    assert staged(ck) == [] and tmp_files(ck) == []


def fill(directory) -> None:
    """Fill the file system of ``directory`` to the last byte."""
    fd = os.open(os.path.join(directory, "filler"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    try:
        while True:
            os.write(fd, b"\0")
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_real_full_disk_save_raises_checkpoint_error_and_leaves_nothing(tiny_tmpfs):
    small, _ = small_and_big()
    ck = tiny_tmpfs / "ck"
    assert small.save(ck) == 1
    fill(tiny_tmpfs)
    try:
        with pytest.raises(CheckpointError) as info:
            small.save(ck)
        assert str(ck) in str(info.value) and "version 1" in str(info.value)
        assert current_version(ck) == 1
        assert tmp_files(ck) == [] and staged(ck) == []
    finally:
        os.remove(tiny_tmpfs / "filler")


# --------------------------------------------------------------------------- leftovers

def killed_writer_leftovers(ck) -> tuple[str, str]:
    """What a writer killed in the middle of a save leaves: a pointer temporary and a
    staged version (with a few files)."""
    tmp = os.path.join(ck, f"CURRENT.json.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w") as f:
        f.write('{"version": 9, "form')  # half-written
    staging = os.path.join(ck, "staging", "v000009-abcdef12")
    os.makedirs(os.path.join(staging, "means"))
    with open(os.path.join(staging, "means", "c.0.0"), "wb") as f:
        f.write(b"\0" * 48)
    with open(os.path.join(staging, "zarr.json"), "w") as f:
        f.write("{}")
    return tmp, staging


def test_leftovers_of_a_killed_writer_are_removed_by_the_next_save(tmp_path):
    first, second = two_models()
    ck = tmp_path / "ck"
    first.save(ck)
    tmp, staging = killed_writer_leftovers(ck)
    assert second.save(ck) == 2
    assert not os.path.exists(tmp) and not os.path.exists(staging)
    assert staged(ck) == [] and tmp_files(ck) == []
    assert list_versions(ck) == [1, 2]  # v000009 was never a version
    assert_same_params(load(ck), second)


def test_leftovers_of_a_killed_writer_are_removed_by_the_next_writer(tmp_path):
    first, _ = two_models()
    ck = tmp_path / "ck"
    first.save(ck)
    tmp, staging = killed_writer_leftovers(ck)
    with CheckpointWriter(ck):
        assert not os.path.exists(tmp) and not os.path.exists(staging)
    assert staged(ck) == [] and tmp_files(ck) == []
    assert current_version(ck) == 1
    assert_same_params(load(ck), first)


def test_stale_lock_and_group_temporaries_are_removed_by_the_next_writer(tmp_path):
    first, _ = two_models()
    ck = tmp_path / "ck"
    first.save(ck)
    names = [f"LOCK.{uuid.uuid4().hex}.tmp", f"zarr.json.{uuid.uuid4().hex}.tmp"]
    old = time.time() - 2 * store._STALE_TMP_SECONDS
    for name in names:
        with open(os.path.join(ck, name), "w") as f:
            f.write("{")
        os.utime(os.path.join(ck, name), (old, old))
    CheckpointWriter(ck).close()
    assert tmp_files(ck) == []


def test_root_group_temporary_of_a_killed_writer_is_removed_at_once(tmp_path):
    first, _ = two_models()
    ck = tmp_path / "ck"
    first.save(ck)
    with open(os.path.join(ck, f"zarr.json.{uuid.uuid4().hex}.tmp"), "w") as f:
        f.write("{")
    CheckpointWriter(ck).close()
    assert tmp_files(ck) == []


def nan_data():
    X, _ = make_blobs(500, 3, 2, seed=6)
    X[17, 2] = np.nan
    return X


def test_first_fit_on_invalid_data_creates_no_checkpoint(tmp_path):
    path = tmp_path / "new"
    with pytest.raises(InvalidInputError):
        GaussianMixture(2, random_state=0).fit(nan_data(), checkpoint=path)
    assert not os.path.exists(path)


def test_first_fit_on_invalid_data_leaves_an_empty_folder_as_it_was(tmp_path):
    path = tmp_path / "empty"
    path.mkdir()
    before = os.stat(path)
    with pytest.raises(InvalidInputError):
        GaussianMixture(2, random_state=0).fit(nan_data(), checkpoint=path)
    assert path.is_dir() and os.listdir(path) == []
    assert os.stat(path).st_ino == before.st_ino


def test_first_fit_failing_before_its_first_save_creates_no_checkpoint(tmp_path):
    X, _ = make_blobs(500, 3, 2, seed=6)
    path = tmp_path / "new"

    def stop(info):
        raise RuntimeError("stopped by the callback")

    with pytest.raises(RuntimeError, match="stopped"):
        GaussianMixture(2, random_state=0).fit(X, checkpoint=path, callback=stop)
    assert not os.path.exists(path)


def test_first_fit_failing_before_its_first_save_keeps_a_users_empty_folder(tmp_path):
    X, _ = make_blobs(500, 3, 2, seed=6)
    path = tmp_path / "empty"
    path.mkdir()

    def stop(info):
        raise RuntimeError("stopped by the callback")

    with pytest.raises(RuntimeError, match="stopped"):
        GaussianMixture(2, random_state=0).fit(X, checkpoint=path, callback=stop)
    assert path.is_dir() and os.listdir(path) == []


def test_a_model_without_arrays_saves_and_loads(tmp_path):
    ck = tmp_path / "ck"
    assert OnlineGaussianMixture(3).save(ck) == 1
    with pytest.warns(UnfinishedModelWarning):
        back = load(ck)
    assert isinstance(back, OnlineGaussianMixture) and not hasattr(back, "means_")
    assert staged(ck) == [] and tmp_files(ck) == []


@pytest.mark.parametrize("link_error", [None, errno.EPERM])
def test_enospc_while_taking_the_lock_leaves_no_lock(tmp_path, link_error):
    """A full disk while the writer lock is written (through a temporary and a hard link,
    or, where the file system has no hard links, an exclusive create) is a CheckpointError
    that leaves neither the lock nor its temporary: the next writer finds the folder as
    it was."""
    first, second = two_models()
    ck = tmp_path / "ck"
    first.save(ck)
    real_open, real_fdopen, real_link = builtins.open, os.fdopen, os.link

    def full_open(path, mode="r", *a, **kw):
        f = real_open(path, mode, *a, **kw)
        if os.path.basename(os.fspath(path)).startswith("LOCK") and "w" in mode \
                and link_error is None:
            return FullFile(f)
        return f

    def full_fdopen(fd, mode="r", *a, **kw):
        return FullFile(real_fdopen(fd, mode, *a, **kw))

    def no_links(src, dst, *a, **kw):
        if os.path.basename(os.fspath(dst)) == "LOCK":
            raise OSError(link_error, os.strerror(link_error))
        return real_link(src, dst, *a, **kw)

    with pytest.MonkeyPatch.context() as mp:
        import streammix.persistence.lock as lock_mod
        mp.setattr(lock_mod, "open", full_open, raising=False)
        if link_error is not None:
            mp.setattr(os, "link", no_links)
            mp.setattr(os, "fdopen", full_fdopen)
        with pytest.raises(CheckpointError) as info:
            second.save(ck)
    assert "No space left" in str(info.value) and "version 1" in str(info.value)
    assert not os.path.exists(os.path.join(ck, "LOCK"))
    assert tmp_files(ck) == [] and current_version(ck) == 1
    assert second.save(ck) == 2  # space again: the next writer takes the lock at once


def test_a_checkpoint_is_never_started_in_a_folder_of_other_files(tmp_path):
    first, _ = two_models()
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="'notes.txt'.*choose a new or empty folder"):
        first.save(folder)
    assert os.listdir(folder) == ["notes.txt"]
    X, _ = make_blobs(300, 3, 3, seed=3)
    with pytest.raises(CheckpointError, match="not a streammix checkpoint"):
        GaussianMixture(3, max_iter=2, random_state=0).fit(X, checkpoint=folder)
    assert os.listdir(folder) == ["notes.txt"]
    # a killed first writer's leftovers (a lock, a staging folder) are not a user's files
    other = tmp_path / "leftovers"
    (other / "staging").mkdir(parents=True)
    (other / "LOCK").write_text('{"pid": 999999999, "host": "elsewhere", "heartbeat": 0}')
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # breaking the stale lock
        assert first.save(other) == 1
