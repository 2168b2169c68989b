"""Small file-system helpers for writing outputs atomically: nothing a user saved is lost to a crash or a kill."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_json", "atomic_write_bytes", "fsync_dir", "fsync_tree", "replace_dir"]


def fsync_dir(path: Path) -> None:
    """Flush a directory entry to disk (POSIX; a no-op elsewhere)."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file under ``root``, then every directory, deepest first."""
    dirs = []
    for dirpath, _, files in os.walk(root):
        dirs.append(Path(dirpath))
        for name in files:
            fd = os.open(Path(dirpath) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for d in reversed(dirs):
        fsync_dir(d)


def replace_dir(src: Path, dst: Path) -> None:
    """Put directory ``src`` (or nothing, when it does not exist) at ``dst``, removing the old ``dst`` afterwards."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{uuid.uuid4().hex[:12]}")
        os.rename(dst, old)
    if src.exists():
        os.rename(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(path.parent)


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON atomically (non-JSON values are written with ``str``)."""
    atomic_write_bytes(Path(path), (json.dumps(data, indent=2, default=str) + "\n").encode("utf-8"))
