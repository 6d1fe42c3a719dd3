"""Crash-safe file writes shared by every store (tables, artifacts, models, metrics, received plans).

Readers must never see half a file or half a directory: content goes to a hidden sibling, is
fsynced, and is renamed into place.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fate_airflow.core.errors import StorageError


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (best effort where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some filesystems do not allow opening directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_directory(final: Path, fill: Callable[[Path], None], *, overwrite: bool) -> None:
    """Create directory ``final`` by filling a hidden sibling and renaming it into place.

    Readers never see a half-filled directory; when ``fill`` raises, the temporary is removed and
    ``final`` is untouched. An existing ``final`` is replaced only when ``overwrite`` is true (it is
    first renamed aside, so a crash between the two renames leaves the old or the new version).

    :raises StorageError: ``final`` exists and ``overwrite`` is false.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        fill(tmp)
        fsync_dir(tmp)
        if final.exists():
            if not overwrite:
                raise StorageError(f"{final} already exists")
            trash = final.parent / f".trash-{final.name}-{uuid.uuid4().hex}"
            final.rename(trash)
            tmp.rename(final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            tmp.rename(final)
        fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_directory(path: Path) -> bool:
    """Remove a directory so that readers see all of it or none: rename it aside, then delete.

    Returns False when there was nothing to remove.
    """
    if not path.exists():
        return False
    trash = path.parent / f".trash-{path.name}-{uuid.uuid4().hex}"
    path.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)
    return True


def atomic_write_bytes(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write a file via a temporary sibling + fsync + rename (readers see old or new, never half).

    With ``mode`` (e.g. ``0o600`` for secrets) the temporary is created with exactly that mode,
    whatever the umask, so the content is never readable by others, not even for an instant;
    without it the process umask applies as for ``open``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{path.name}-{uuid.uuid4().hex}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
        with os.fdopen(fd, "wb") as fh:
            if mode is not None:
                os.fchmod(fh.fileno(), mode)  # the umask may have narrowed it; never widened
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_secret(path: Path, text: str) -> None:
    """Write a file only its owner may read (mode 0600 from creation, atomically replaced)."""
    atomic_write_bytes(path, text.encode("utf-8"), mode=0o600)


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing) for the block.

    Processes that read-modify-write one file, or build one folder, wait for each other here.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


__all__ = ["atomic_directory", "atomic_write_bytes", "file_lock", "fsync_dir"]


def read_or_create_secret(path: Path, nbytes: int = 32) -> bytes:
    """The random secret kept in ``path`` (hex), created on first use (mode 0600, atomically).

    Concurrent first users agree on one secret: creation happens under a lock beside the file.
    """
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    with file_lock(path.parent / f".{path.name}.lock"):
        if not path.exists():
            write_secret(path, secrets.token_hex(nbytes) + "\n")
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
