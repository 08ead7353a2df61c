"""File operations a checkpoint needs, on a local directory or an fsspec URL.

Local paths get the strong guarantees: atomic rename of a finished version, an atomic
pointer update (write a temporary file, then os.replace) and an O_EXCL writer lock.
On fsspec URLs (object stores) a version is written in place under its final name and
only the pointer document, written last in one PUT, makes it visible; the lock there is
best effort (object stores have no exclusive create).
"""

from __future__ import annotations

import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache


def is_url(path: str) -> bool:
    return "://" in str(path) and not str(path).startswith("file://")


class Storage:
    """A checkpoint root directory (``root``), local or fsspec."""

    def __init__(self, root):
        self.root = os.fspath(root) if not isinstance(root, str) else root
        if self.root.startswith("file://"):
            self.root = self.root[len("file://"):]
        self.local = not is_url(self.root)
        if not self.local:
            import fsspec

            self.fs, self._fs_root = fsspec.core.url_to_fs(self.root)

    def path(self, *parts: str) -> str:
        if self.local:
            return os.path.join(self.root, *parts)
        return "/".join([self.root.rstrip("/"), *parts])

    def _fs_path(self, *parts: str) -> str:
        return "/".join([self._fs_root.rstrip("/"), *parts])

    def exists(self, *parts: str) -> bool:
        if self.local:
            return os.path.exists(self.path(*parts))
        return self.fs.exists(self._fs_path(*parts))

    def makedirs(self, *parts: str) -> None:
        if self.local:
            os.makedirs(self.path(*parts), exist_ok=True)
        else:
            self.fs.makedirs(self._fs_path(*parts), exist_ok=True)

    def read_bytes(self, *parts: str) -> bytes | None:
        """The content of a file, or None when it does not exist (or is a folder)."""
        try:
            if self.local:
                with open(self.path(*parts), "rb") as f:
                    return f.read()
            return self.fs.cat_file(self._fs_path(*parts))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def write_files_durably(self, files: list[tuple[str, bytes]], *parts: str) -> None:
        """Write ``files`` (relative path, bytes) under the folder ``parts`` and make them
        durable before returning: on a local disk every file's data and every new folder
        entry reach the disk (fdatasync / fsync, issued in parallel so the file system
        commits them together); on an object store each file is one PUT."""
        if not self.local:
            base = self._fs_path(*parts)
            self.fs.pipe({f"{base}/{rel}": data for rel, data in files})
            return
        base = self.path(*parts)
        os.makedirs(base, exist_ok=True)
        folders = {base, os.path.dirname(base)}
        fds = []
        try:
            for rel, data in files:
                full = os.path.join(base, *rel.split("/"))
                folder = os.path.dirname(full)
                if folder not in folders:
                    os.makedirs(folder, exist_ok=True)
                    folders.add(folder)
                fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                fds.append(fd)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            _sync_all(fds, sorted(folders))
        finally:
            for fd in fds:
                os.close(fd)

    def remove(self, *parts: str) -> None:
        """Delete one file if it exists."""
        try:
            if self.local:
                os.remove(self.path(*parts))
            else:
                self.fs.rm_file(self._fs_path(*parts))
        except FileNotFoundError:
            pass

    def read_text(self, *parts: str) -> str:
        if self.local:
            with open(self.path(*parts)) as f:
                return f.read()
        with self.fs.open(self._fs_path(*parts), "r") as f:
            return f.read()

    def write_text_atomic(self, text: str, *parts: str) -> None:
        """Replace a small document in one step (readers see the old or the new one)."""
        if self.local:
            final = self.path(*parts)
            tmp = f"{final}.{uuid.uuid4().hex}.tmp"
            try:
                with open(tmp, "w") as f:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, final)
            except BaseException:
                try:
                    os.remove(tmp)
                except OSError:
                    pass
                raise
            _fsync_dir(os.path.dirname(final))
        else:
            with self.fs.open(self._fs_path(*parts), "w") as f:
                f.write(text)

    def listdir(self, *parts: str) -> list[str]:
        if self.local:
            try:
                return sorted(os.listdir(self.path(*parts)))
            except FileNotFoundError:
                return []
        try:
            return sorted(p.rstrip("/").rsplit("/", 1)[-1]
                          for p in self.fs.ls(self._fs_path(*parts), detail=False))
        except FileNotFoundError:
            return []

    def remove_tree(self, *parts: str) -> None:
        if self.local:
            shutil.rmtree(self.path(*parts), ignore_errors=True)
        else:
            try:
                self.fs.rm(self._fs_path(*parts), recursive=True)
            except FileNotFoundError:
                pass

    def discard_tree(self, trash: tuple[str, ...], *parts: str) -> None:
        """Remove a folder so that listings never see it half-deleted: on a local disk it
        is renamed to ``trash`` first (one step), then deleted."""
        if not self.local:
            self.remove_tree(*parts)
            return
        try:
            os.makedirs(os.path.dirname(self.path(*trash)), exist_ok=True)
            os.replace(self.path(*parts), self.path(*trash))
        except FileNotFoundError:
            return
        shutil.rmtree(self.path(*trash), ignore_errors=True)

    def rename(self, src: tuple[str, ...], dst: tuple[str, ...]) -> None:
        if self.local:
            os.replace(self.path(*src), self.path(*dst))
            _fsync_dir(self.root)
        else:
            self.fs.mv(self._fs_path(*src), self._fs_path(*dst), recursive=True)


@lru_cache(maxsize=1)
def _sync_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=8, thread_name_prefix="streammix-fsync")


_SYNC_STREAMS = 4


def _sync_group(fds: list[int], dir_fds: list[int]) -> None:
    for fd in fds:
        os.fdatasync(fd)
    for fd in dir_fds:
        _fsync_dir_fd(fd)


def _sync_all(fds: list[int], folders: list[str]) -> None:
    """fdatasync every open file, then fsync every folder; in a few parallel streams when
    there are many (the file system's journal then commits them together), with one task
    per stream rather than per file (a task costs more than a small file's sync)."""
    dir_fds = []
    try:
        for folder in folders:
            try:
                dir_fds.append(os.open(folder, os.O_RDONLY))
            except OSError:
                pass
        if len(fds) + len(dir_fds) <= 4:
            _sync_group(fds, dir_fds)
            return
        n = _SYNC_STREAMS
        pool = _sync_pool()
        files = [pool.submit(_sync_group, fds[i::n], []) for i in range(n) if fds[i::n]]
        for done in files:  # every file's data before any folder entry
            done.result()
        dirs = [pool.submit(_sync_group, [], dir_fds[i::n]) for i in range(n) if dir_fds[i::n]]
        for done in dirs:
            done.result()
    finally:
        for fd in dir_fds:
            os.close(fd)


def _fsync_dir_fd(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a folder
        pass


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
