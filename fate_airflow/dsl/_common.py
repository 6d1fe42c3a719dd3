"""Shared helpers of the DSL compiler: problem collection, field paths and value checks.

Every check appends one line to a :class:`Problems` list instead of raising, so that a user sees all
mistakes of a job file at once; :meth:`Problems.raise_if_any` turns them into one
:class:`~fate_airflow.core.errors.DslError` at the end.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fate_airflow.core.errors import DslError
from fate_airflow.core.types import ROLE_ORDER, validate_party_id

#: A field path inside a document: mapping keys (str) and list positions (int).
FieldPath = tuple[str | int, ...]

#: Label of problems caused by the overrides given when a run is triggered.
TRIGGER_CONF = "trigger conf"

#: Component / task names become Airflow task ids and file names.
COMPONENT_NAME = re.compile(r"[A-Za-z0-9_-]+")
#: Table namespaces and names become storage keys: never a path.
TABLE_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
#: Longest accepted component name or table namespace/name.
MAX_NAME_LENGTH = 128


def format_path(path: FieldPath) -> str:
    """``("role", "guest", 0)`` → ``role.guest[0]``.

    List positions and the number keys FATE allows in component parameters both show as ``[n]``.
    """
    out = ""
    for seg in path:
        if not isinstance(seg, str):
            out += f"[{seg}]"
            continue
        if not seg.isprintable():
            # Keys come from the user: a newline in one must not split a problem over two lines.
            seg = seg.encode("unicode_escape").decode("ascii")
        out += f".{seg}" if out else seg
    return out


def _covered_depth(overrides: Mapping[str, Any], path: FieldPath) -> int | None:
    """How much of ``path`` the overrides wrote.

    That is the length of the prefix whose value they set (a scalar or list replacing the file's
    subtree), the whole path, or None if they did not reach it.
    """
    if not path:
        return None
    node: Any = overrides
    for depth, seg in enumerate(path):
        if not isinstance(node, Mapping):
            # The override replaced this whole subtree with a scalar or a list.
            return depth
        if seg not in node:
            return None
        node = node[seg]
    return len(path)


@dataclass(frozen=True)
class Doc:
    """A parsed job document and the label problems about it carry.

    :param label: the file name shown in problem lines.
    :param data: the document (after overrides were merged in, if any).
    :param overrides: the trigger-time overrides merged into ``data``; problems at paths they wrote
        are labelled ``trigger conf`` instead of the file name.
    :param base: the document as read from the file, before ``overrides``. An override that repeats the
        file's value (Airflow sends the whole params document back) does not change the label.
    """

    label: str
    data: Mapping[str, Any]
    overrides: Mapping[str, Any] | None = None
    base: Mapping[str, Any] | None = None

    def label_for(self, path: FieldPath) -> str:
        """The source to name for a problem at ``path``."""
        depth = None if self.overrides is None else _covered_depth(self.overrides, path)
        if depth is None:
            return self.label
        written = path[:depth]
        if self.base is not None and _value_at(self.base, written) == _value_at(self.data, written):
            return self.label
        return TRIGGER_CONF


_MISSING = object()


def _value_at(data: Any, path: FieldPath) -> Any:
    node = data
    for seg in path:
        in_mapping = isinstance(node, Mapping) and isinstance(seg, str) and seg in node
        in_list = isinstance(node, list) and isinstance(seg, int) and 0 <= seg < len(node)
        if not (in_mapping or in_list):
            return _MISSING
        node = node[seg]
    return node


@dataclass
class Problems:
    """An ordered, duplicate-free list of problem lines (``<file>: <field path>: <message>``)."""

    lines: list[str] = field(default_factory=list)

    def add(self, doc: Doc | str, path: FieldPath, message: str) -> None:
        """Record one problem; ``doc`` may be a plain label for problems outside any document."""
        label = doc.label_for(path) if isinstance(doc, Doc) else doc
        where = format_path(path)
        line = f"{label}: {where}: {message}" if where else f"{label}: {message}"
        if line not in self.lines:
            self.lines.append(line)

    def __bool__(self) -> bool:
        return bool(self.lines)

    def __len__(self) -> int:
        return len(self.lines)

    def raise_if_any(self) -> None:
        """Raise :class:`DslError` carrying every problem, if there is at least one."""
        if self.lines:
            raise DslError(self.lines)


def type_name(value: object) -> str:
    """How a value's type is named in messages (JSON/YAML vocabulary, not Python's)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _get_typed(
    problems: Problems,
    doc: Doc,
    parent: Mapping[str, Any],
    key: str,
    path: FieldPath,
    expected: type | tuple[type, ...],
    label: str,
    required: bool,
) -> Any:
    """``parent[key]`` if it is an ``expected`` instance; else None after recording why.

    A present null counts as missing (a problem only when ``required``).
    """
    value = parent.get(key)
    if value is None:
        if required:
            problems.add(doc, path, "missing (required)")
        return None
    if not isinstance(value, expected):
        problems.add(doc, path, f"expected {label}, got {type_name(value)}")
        return None
    return value


def get_mapping(
    problems: Problems,
    doc: Doc,
    parent: Mapping[str, Any],
    key: str,
    path: FieldPath,
    *,
    required: bool = False,
) -> Mapping[str, Any] | None:
    """``parent[key]`` if it is a mapping, else None (recording a problem when wrong or missing).

    ``path`` is the path of ``parent[key]``.
    """
    value: Mapping[str, Any] | None = _get_typed(
        problems, doc, parent, key, path, Mapping, "a mapping", required
    )
    return value


def get_list(
    problems: Problems,
    doc: Doc,
    parent: Mapping[str, Any],
    key: str,
    path: FieldPath,
    *,
    required: bool = False,
) -> list[Any] | None:
    """Like :func:`get_mapping` for lists."""
    value: list[Any] | None = _get_typed(problems, doc, parent, key, path, list, "a list", required)
    return value


def get_str(
    problems: Problems,
    doc: Doc,
    parent: Mapping[str, Any],
    key: str,
    path: FieldPath,
    *,
    required: bool = False,
) -> str | None:
    """Like :func:`get_mapping` for non-empty strings."""
    value: str | None = _get_typed(problems, doc, parent, key, path, str, "a string", required)
    if value == "":
        problems.add(doc, path, "must not be empty")
        return None
    return value


def check_party_id(problems: Problems, doc: Doc, value: object, path: FieldPath) -> str | None:
    """The party id as a string, or None after recording why it is invalid."""
    try:
        return validate_party_id(value)
    except ValueError as exc:
        problems.add(doc, path, str(exc))
        return None


def check_role(problems: Problems, doc: Doc, value: object, path: FieldPath) -> str | None:
    """``value`` if it is a known role name, else None after recording a problem."""
    if isinstance(value, str) and value in ROLE_ORDER:
        return value
    problems.add(doc, path, f"unknown role {value!r}; expected one of {', '.join(ROLE_ORDER)}")
    return None


def check_component_name(problems: Problems, doc: Doc, name: str, path: FieldPath, what: str) -> bool:
    """Whether ``name`` is a valid component (1.x) or task (2.x) name; records a problem if not."""
    if COMPONENT_NAME.fullmatch(name) and len(name) <= MAX_NAME_LENGTH:
        return True
    problems.add(
        doc,
        path,
        f"invalid {what} name {name!r}: use letters, digits, '_' and '-' only "
        f"(at most {MAX_NAME_LENGTH} characters)",
    )
    return False


def check_table_part(problems: Problems, doc: Doc, value: object, path: FieldPath, what: str) -> bool:
    """Whether ``value`` is a plain table namespace/name (never a path); records a problem if not.

    :param what: ``namespace`` or ``name``, for the message.
    """
    if not isinstance(value, str):
        problems.add(doc, path, f"table {what} must be a string, got {type_name(value)}")
        return False
    if TABLE_PART.fullmatch(value) and ".." not in value and len(value) <= MAX_NAME_LENGTH:
        return True
    problems.add(
        doc,
        path,
        f"invalid table {what} {value!r}: use letters, digits, '_', '.' and '-' only, starting with a "
        f"letter, digit or '_', without '..' (a table {what}, never a path)",
    )
    return False


def close_names(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` entries of ``known`` that look like ``name`` (case-insensitive)."""
    by_lower: dict[str, str] = {}
    for k in known:
        by_lower.setdefault(k.lower(), k)
    hits = difflib.get_close_matches(name.lower(), list(by_lower), n=n, cutoff=0.6)
    return [by_lower[h] for h in hits]


def did_you_mean(name: str, known: Sequence[str]) -> str:
    """`` (did you mean: a, b?)`` or an empty string."""
    hits = close_names(name, known)
    return f" (did you mean: {', '.join(hits)}?)" if hits else ""


def plural(count: int, noun: str) -> str:
    """``2 hosts``, ``1 host``, ``0 arbiters``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


__all__ = [
    "COMPONENT_NAME",
    "TABLE_PART",
    "TRIGGER_CONF",
    "Doc",
    "FieldPath",
    "Problems",
    "check_component_name",
    "check_party_id",
    "check_role",
    "check_table_part",
    "close_names",
    "did_you_mean",
    "format_path",
    "get_list",
    "get_mapping",
    "get_str",
    "plural",
    "type_name",
]
