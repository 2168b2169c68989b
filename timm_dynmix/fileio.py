"""Small file-system helpers: atomic writes (nothing a user saved is lost to a crash or a kill), JSON reading with
clear errors, and the image file extensions every folder reader accepts."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_json", "atomic_write_bytes", "atomic_path", "fsync_dir", "fsync_tree", "replace_dir",
           "read_json", "current_umask", "apply_umask", "IMAGE_EXTENSIONS"]

# image files that folder datasets and folder benchmarks read (lower case; compare with ``path.suffix.lower()``)
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})


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


def current_umask() -> int:
    """The process's file mode creation mask (read from /proc on Linux, else set and restored)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(root: str | os.PathLike[str]) -> None:
    """Give ``root`` and everything under it the modes new files get from the user's umask.

    Files become ``0o666 & ~umask``, folders ``0o777 & ~umask``: ``tempfile.mkdtemp`` makes 0700 folders and
    safetensors writes 0600 files, which would otherwise make saved models unreadable to the user's group.
    """
    mask = current_umask()
    root = Path(root)
    if root.is_file():
        os.chmod(root, 0o666 & ~mask)
        return
    for dirpath, _, files in os.walk(root):
        os.chmod(dirpath, 0o777 & ~mask)
        for name in files:
            os.chmod(Path(dirpath) / name, 0o666 & ~mask)


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


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; on success it is fsynced and renamed over ``path``.

    Whatever the ``with`` block writes (a file, a memory-mapped array...) appears at ``path`` complete or not at all:
    on an exception the temporary file is removed and ``path`` keeps its old content.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON atomically (non-JSON values are written with ``str``)."""
    atomic_write_bytes(Path(path), (json.dumps(data, indent=2, default=str) + "\n").encode("utf-8"))


def read_json(path: str | os.PathLike[str], what: str = "JSON file", error: type[Exception] = ValueError) -> Any:
    """The content of a JSON file.

    Args:
        path: The file.
        what: What the file is, for the messages (``"baseline JSON"``).
        error: The exception type for invalid JSON (``ValueError`` or a subclass such as ``BenchmarkError``).

    Raises:
        FileNotFoundError: if ``path`` is not a file.
        ValueError: (``error``) if it does not hold valid JSON; the message names the file and the position.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path} is not valid JSON: {e}") from None
