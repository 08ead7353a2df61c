"""A writer lock for a checkpoint: one writer at a time, with stale-lock detection.

The lock is a small JSON file created with O_EXCL (atomic on local and network file
systems that honour it). It names its holder (host, pid, start time). A lock whose
holder is a dead process on this host, or whose heartbeat is older than
``stale_after`` seconds, is stale and is broken with a warning.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
import warnings

from ..errors import CheckpointLockedError


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

    def _info(self) -> dict:
        return {"host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
                "since": time.time(), "heartbeat": time.time()}

    def _read(self) -> dict | None:
        try:
            with open(self.path) as f:
                return json.load(f)
        except (FileNotFoundError, json.JSONDecodeError, OSError):
            return None

    def _is_stale(self, info: dict | None) -> bool:
        if info is None:  # unreadable or half-written lock: judge by file age
            try:
                return time.time() - os.path.getmtime(self.path) > 5.0
            except FileNotFoundError:
                return True
        if info.get("host") == socket.gethostname() and not _pid_alive(int(info.get("pid", -1))):
            return True
        return time.time() - float(info.get("heartbeat", 0)) > self.stale_after

    def acquire(self) -> "CheckpointLock":
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                info = self._read()
                if self._is_stale(info):
                    warnings.warn(f"breaking a stale checkpoint lock {self.path} held by "
                                  f"{info}", RuntimeWarning if False else UserWarning,
                                  stacklevel=2)
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
                ) from None
            with os.fdopen(fd, "w") as f:
                json.dump(self._info(), f)
            self.held = True
            return self
        raise CheckpointLockedError(f"could not acquire {self.path}")

    def heartbeat(self) -> None:
        """Refresh the lock's timestamp (long fits call this at every save)."""
        if not self.held:
            return
        info = self._read() or self._info()
        if info.get("token") != self.token:
            raise CheckpointLockedError(
                f"lost the checkpoint lock {self.path}: another writer took it over"
            )
        info["heartbeat"] = time.time()
        tmp = f"{self.path}.{self.token}.tmp"
        with open(tmp, "w") as f:
            json.dump(info, f)
        os.replace(tmp, self.path)

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
