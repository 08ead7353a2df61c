"""A writer lock for a checkpoint: one writer at a time, with stale-lock detection.

The lock is a small JSON file, written whole to a temporary name and hard-linked into
place (atomic, and failing if a lock exists; O_EXCL where links are not supported), so
a lock file is never half-written. It names its holder (host, pid, start time). A lock
whose holder is a dead process on this host, whose heartbeat is older than
``stale_after`` seconds, or that does not parse (damaged), is stale and is broken with
a warning.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
import uuid
import warnings

from ..errors import CheckpointLockedError


# os.link errors that mean "this file system has no hard links", not "cannot write here"
# (EACCES: some CIFS/FUSE mounts refuse links so; where it means "no permission", the
# exclusive create below raises it again)
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK,
                  errno.ENOSYS, errno.EACCES}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class CheckpointLock:
    """Exclusive writer lock on a local checkpoint directory (context manager)."""

    def __init__(self, directory: str, stale_after: float = 3600.0):
        self.path = os.path.join(directory, "LOCK")
        self.stale_after = stale_after
        self.token = uuid.uuid4().hex
        self.held = False
        self._last_beat = 0.0

    def _info(self) -> dict:
        return {"host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
                "since": time.time(), "heartbeat": time.time()}

    def _read(self) -> dict | None:
        try:
            with open(self.path) as f:
                return json.load(f)
        except (OSError, ValueError):  # missing, unreadable, not JSON or not text
            return None

    def _is_stale(self, info: dict | None) -> bool:
        if info is None or not isinstance(info, dict):
            # a lock is always written whole (linked into place complete), so one that
            # does not parse is damaged, not half-written: nobody can hold it
            return os.path.exists(self.path)
        try:
            pid, heartbeat = int(info.get("pid", -1)), float(info.get("heartbeat", 0))
        except (TypeError, ValueError):
            return True
        if info.get("host") == socket.gethostname() and not _pid_alive(pid):
            return True
        return time.time() - heartbeat > self.stale_after

    def temporary_name(self) -> str:
        """This process's temporary lock file: named by pid, so that a writer can tell a
        dead process's leftover (see ``dead_temporary``) from one being linked now."""
        return f"{self.path}.{os.getpid()}.{self.token}.tmp"

    def _create(self) -> bool:
        """Create the lock file complete, in one step; False if it exists already. Any
        other failure (a full disk, no permission) raises with nothing left behind."""
        tmp = self.temporary_name()
        try:
            with open(tmp, "w") as f:
                json.dump(self._info(), f)
            try:
                os.link(tmp, self.path)  # atomic, and fails if the lock exists
                return True
            except FileExistsError:
                return False
            except OSError as exc:
                if exc.errno not in _NO_HARD_LINKS:
                    raise
            return self._create_exclusive()  # no hard links on this file system
        finally:
            try:
                os.remove(tmp)
            except OSError:
                pass

    def _create_exclusive(self) -> bool:
        """The lock by an exclusive create (file systems without hard links); a lock
        that could not be written whole is removed, never left empty."""
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self._info(), f)
        except BaseException:
            try:
                os.remove(self.path)
            except OSError:
                pass
            raise
        return True

    def acquire(self) -> "CheckpointLock":
        for _ in range(3):
            if self._create():
                self.held = True
                self._last_beat = time.time()
                return self
            info = self._read()
            if info is None and not os.path.exists(self.path):
                continue  # released in the meantime
            if self._is_stale(info):
                warnings.warn(f"breaking a stale or damaged checkpoint lock {self.path} "
                              f"(held by {info})", UserWarning, stacklevel=2)
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
                continue
            who = f"pid {info.get('pid')} on {info.get('host')}" if info else "another writer"
            raise CheckpointLockedError(
                f"checkpoint {os.path.dirname(self.path)!r} is being written by {who} "
                f"(lock {self.path}); wait for it to finish, or remove the lock file if "
                "that process is gone"
            )
        raise CheckpointLockedError(f"could not acquire {self.path}")

    def heartbeat(self, every: float = 10.0) -> None:
        """Refresh the lock's timestamp (long fits call this at every save; the file is
        rewritten at most every ``every`` seconds) and check it is still ours."""
        if not self.held:
            return
        info = self._read()
        if not isinstance(info, dict) or info.get("token") != self.token:
            raise CheckpointLockedError(
                f"lost the checkpoint lock {self.path}: another writer took it over, or it "
                "was removed or damaged"
            )
        now = time.time()
        if now - self._last_beat < every:
            return
        info["heartbeat"] = now
        tmp = self.temporary_name()
        with open(tmp, "w") as f:
            json.dump(info, f)
        os.replace(tmp, self.path)
        self._last_beat = now

    def release(self) -> None:
        if not self.held:
            return
        info = self._read()
        if info is None or info.get("token") == self.token:
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
        self.held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def dead_temporary(name: str) -> bool:
    """Whether ``name`` is a lock temporary (LOCK.<pid>.<token>.tmp) of a process that no
    longer runs on this host."""
    parts = name.split(".")
    if len(parts) != 4 or parts[0] != "LOCK" or parts[3] != "tmp" or not parts[1].isdigit():
        return False
    return not _pid_alive(int(parts[1]))
