"""File helpers for the tracking store (tracking and storage are independent siblings)."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from urllib.parse import quote

from fate_airflow.core.errors import StorageError

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")


def check_name(value: object, what: str) -> str:
    """A task name or similar plain identifier. :raises StorageError: naming ``what``."""
    if not isinstance(value, str) or not _NAME.match(value) or ".." in value:
        raise StorageError(f"invalid {what} {value!r}: use letters, digits, '_', '-' and '.'")
    return value


def encode(value: str, keep: str = "") -> str:
    """One safe, reversible path component (percent-encoding; ``keep`` lists extra safe chars)."""
    if not value:
        raise StorageError("cannot use an empty name in a path")
    encoded = quote(value, safe=keep)
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]
    return encoded


def write_atomic(path: Path, data: bytes) -> None:
    """Temp sibling + fsync + rename: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{path.name}-{uuid.uuid4().hex}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
