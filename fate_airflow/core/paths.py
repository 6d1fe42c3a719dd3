"""Names that end up in file paths: validated (tables, tasks, keys) or encoded (job ids).

Shared by the storage and tracking stores (independent siblings), hence in ``core``.

Table namespaces and names are plain identifiers chosen by users, so they are *validated*: a name that
looks like a path is an error, never silently rewritten. Job ids are chosen by Airflow
(``manual__2026-11-27T10:00:00.123+00:00``) and must be accepted as they are, so they are *encoded*
injectively into one safe path component instead.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from fate_airflow.core.errors import StorageError

#: Letters, digits, ``_``, ``-`` and ``.``; must start with a letter, digit or ``_``.
IDENTIFIER_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")


def validate_identifier(value: object, what: str) -> str:
    r"""Return ``value`` if it is a plain identifier, else raise :class:`StorageError`.

    :param value: the candidate (namespace, table name, task name, output key, ...).
    :param what: what the value is, for the message (e.g. ``"namespace"``).
    :raises StorageError: naming ``what`` and the bad value; ``/``, ``\`` and ``..`` are always rejected.
    """
    if not isinstance(value, str) or not value:
        raise StorageError(f"{what} must be a non-empty string, got {value!r}")
    if "/" in value or "\\" in value or ".." in value:
        raise StorageError(f"{what} {value!r} looks like a path; use a plain identifier")
    if not IDENTIFIER_PATTERN.match(value):
        raise StorageError(
            f"invalid {what} {value!r}: use letters, digits, '_', '-' and '.', starting with a letter, "
            "digit or '_' (at most 128 characters)"
        )
    return value


def encode_component(value: str, keep: str = "") -> str:
    """Encode any non-empty string as one safe, reversible path component (percent-encoding).

    ``keep`` lists extra characters left as they are (e.g. ``#`` in FATE's party model ids).

    ``manual__2026-11-27T10:00:00.123+00:00`` becomes ``manual__2026-11-27T10%3A00%3A00.123%2B00%3A00``.
    A leading dot is encoded too, so the result is never ``.``/``..`` or a hidden file.
    """
    if not value:
        raise StorageError("cannot encode an empty name as a path component")
    encoded = quote(value, safe=keep)
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]
    return encoded


def decode_component(value: str) -> str:
    """Inverse of :func:`encode_component`."""
    return unquote(value)


__all__ = ["IDENTIFIER_PATTERN", "decode_component", "encode_component", "validate_identifier"]
