"""Recognising a checkpoint on disk, so that no output is ever written over one."""

from __future__ import annotations

import json
import os
import re

_VERSION_DIR = re.compile(r"^v\d{6,}$")
# what a checkpoint's writers leave in its folder before it holds a version: the lock,
# temporaries of the lock, the root group and the pointer, and the staging folder
_WRITER_FILE = re.compile(r"^(LOCK|zarr\.json|CURRENT\.json|staging)(\..*\.tmp)?$")


# what operating systems put into any folder (nobody's data)
_SYSTEM_FILES = {".DS_Store", "Thumbs.db", "desktop.ini", "lost+found"}


def foreign_entries(names) -> list[str]:
    """The names in a folder that no checkpoint writer makes (a user's files): a
    checkpoint is never started in a folder that holds any."""
    return [n for n in names if not (_VERSION_DIR.match(n) or _WRITER_FILE.match(n)
                                     or n in _SYSTEM_FILES)]


def is_checkpoint(path) -> bool:
    """Whether the local directory ``path`` is a streammix checkpoint (its root group says
    so, or it holds a pointer or version folders), damaged or not."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        return False
    try:
        names = os.listdir(path)
    except OSError:
        return False
    if lists_a_checkpoint(names):
        return True
    try:
        with open(os.path.join(path, "zarr.json"), "rb") as f:
            return is_checkpoint_root_group(f.read())
    except OSError:
        return False


def lists_a_checkpoint(names) -> bool:
    """Whether a folder's listing holds a checkpoint's pointer or version folders."""
    return "CURRENT.json" in names or any(_VERSION_DIR.match(n) for n in names)


def is_checkpoint_root_group(zarr_json: bytes | None) -> bool:
    """Whether a root ``zarr.json`` is a checkpoint's (its attributes say so)."""
    try:
        attrs = json.loads(zarr_json or b"{}").get("attributes", {})
        return isinstance(attrs.get("streammix"), dict) and \
            attrs["streammix"].get("kind") == "checkpoint"
    except (ValueError, AttributeError):
        return False


def enclosing_checkpoint(path) -> str | None:
    """The checkpoint that ``path`` is, or lies inside, or None (local paths only)."""
    p = os.path.abspath(os.fspath(path))
    while True:
        if is_checkpoint(p):
            return p
        parent = os.path.dirname(p)
        if parent == p:
            return None
        p = parent
