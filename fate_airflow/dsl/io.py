"""Reading job files safely: size limit, strict JSON, YAML without anchors or aliases.

Job files come from users (and, through a drop folder, from whoever can write there), and the DAG
processor reads them on every parse, so reading is defensive:

* the size is checked before anything is parsed (:data:`MAX_JOB_FILE_BYTES`);
* YAML is loaded with ruamel.yaml's *safe* loader, and any anchor or alias is refused while the event
  stream is read, before anything is expanded — a "billion laughs" document fails at its first anchor;
* JSON objects with duplicate keys are refused (Python would silently keep the last one);
* the result must be plain JSON data (mappings with string keys, lists, strings, numbers, booleans,
  null) nested at most :data:`MAX_NESTING` deep, because plans are JSON and travel between parties.
  One exception, as in FATE: inside component parameters (2.x ``dag.tasks.<t>.parameters`` and
  ``dag.party_tasks.<a>.tasks.<t>.parameters``, 1.x ``component_parameters.common.<c>`` and
  ``component_parameters.role.<r>.<i>.<c>``) mapping keys may also be integers or finite numbers —
  FATE's DAGs write ``frac: {0: 0.5, 1: 0.5}`` and NN ``seq_conf: {0: ...}``, and pyfate expects them
  so. They stay numbers; plans carry them losslessly (:mod:`fate_airflow.dsl.plan`). ``$pairs`` is
  reserved as a key (the plan's marker for such mappings).

Every failure is a :class:`~fate_airflow.core.errors.DslError` naming the file (and line/column for
syntax errors); none produces a traceback for the user.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent, NodeEvent

from fate_airflow.core.errors import DslError
from fate_airflow.dsl._common import FieldPath, format_path, type_name

#: Largest job file accepted, checked before parsing.
MAX_JOB_FILE_BYTES = 1024 * 1024
#: Deepest nesting of mappings/lists accepted in a job file.
MAX_NESTING = 64
#: Suffixes read as YAML; anything else is read as JSON when it starts with ``{``.
YAML_SUFFIXES = (".yaml", ".yml")


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKeyError(key)
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; a plan containing them could not be sent to other parties.
    raise ValueError(name)


def read_text(path: str | os.PathLike[str], *, label: str | None = None) -> str:
    """The text of ``path`` after the size check.

    :param label: how to name the file in problems (default: its file name).
    :raises DslError: missing, unreadable, too large, or not UTF-8.
    """
    p = Path(path)
    name = label or p.name
    try:
        size = p.stat().st_size
        if not p.is_file():
            raise DslError([f"{p}: not a regular file"])
        if size > MAX_JOB_FILE_BYTES:
            raise DslError([_too_large(name, size)])
        with p.open("rb") as fh:
            # Read one byte more than allowed: the file may have grown since stat().
            raw = fh.read(MAX_JOB_FILE_BYTES + 1)
    except FileNotFoundError:
        raise DslError([f"{p}: no such file"]) from None
    except OSError as exc:
        raise DslError([f"{p}: cannot read: {exc.strerror or exc}"]) from None
    if len(raw) > MAX_JOB_FILE_BYTES:
        raise DslError([_too_large(name, len(raw))])
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DslError([f"{name}: not UTF-8 text (byte {exc.start})"]) from None


def _too_large(name: str, size: int) -> str:
    return (
        f"{name}: file is {size} bytes; job files are limited to {MAX_JOB_FILE_BYTES} bytes "
        f"({MAX_JOB_FILE_BYTES // (1024 * 1024)} MiB)"
    )


def is_yaml_name(name: str) -> bool:
    """Whether a file name says YAML (``.yaml``/``.yml``)."""
    return name.lower().endswith(YAML_SUFFIXES)


def parse_text(text: str, label: str, *, yaml: bool) -> Any:
    """Parse JSON or YAML text into plain data.

    :param label: the file name for problems.
    :param yaml: parse as YAML (else JSON).
    :raises DslError: syntax error (with line and column), anchors/aliases, duplicate keys, empty
        document, non-JSON values or excessive nesting.
    """
    data = _parse_yaml(text, label) if yaml else _parse_json(text, label)
    problems = check_plain_data(data)
    if problems:
        raise DslError([f"{label}: {p}" for p in problems])
    return data


def _parse_json(text: str, label: str) -> Any:
    if not text.strip():
        raise DslError([f"{label}: empty file"])
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise DslError([f"{label}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}"]) from None
    except _DuplicateKeyError as exc:
        raise DslError([f"{label}: duplicate key {exc.key!r} in a JSON object"]) from None
    except ValueError as exc:
        raise DslError([f"{label}: {exc} is not valid JSON (use null or a number)"]) from None
    except RecursionError:
        raise DslError([f"{label}: nesting too deep (at most {MAX_NESTING} levels)"]) from None


def _yaml_error(label: str, exc: YAMLError) -> DslError:
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "invalid YAML"
        context = f" ({exc.context})" if exc.problem and exc.context else ""
        if mark is not None:
            return DslError(
                [f"{label}: line {mark.line + 1}, column {mark.column + 1}: invalid YAML: {what}{context}"]
            )
        return DslError([f"{label}: invalid YAML: {what}{context}"])
    return DslError([f"{label}: invalid YAML: {exc}"])


def _refuse_anchors(text: str, label: str) -> None:
    # Anchors need '&' and aliases need '*': skip the extra pass for the common case.
    if "&" not in text and "*" not in text:
        return
    parser = YAML(typ="safe", pure=True)
    try:
        for event in parser.parse(io.StringIO(text)):
            anchor = event.anchor if isinstance(event, NodeEvent) else None
            if isinstance(event, AliasEvent) or anchor is not None:
                mark = event.start_mark
                where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
                kind = "alias" if isinstance(event, AliasEvent) else "anchor"
                raise DslError(
                    [
                        f"{label}: {where}YAML {kind} '{'*' if kind == 'alias' else '&'}{anchor}' refused: "
                        "anchors and aliases are not allowed in job files; write the values out"
                    ]
                )
    except YAMLError as exc:
        raise _yaml_error(label, exc) from None


def _parse_yaml(text: str, label: str) -> Any:
    _refuse_anchors(text, label)
    try:
        data = YAML(typ="safe").load(text)
    except YAMLError as exc:
        raise _yaml_error(label, exc) from None
    except RecursionError:
        raise DslError([f"{label}: nesting too deep (at most {MAX_NESTING} levels)"]) from None
    if data is None:
        raise DslError([f"{label}: empty file"])
    return data


#: Reserved key: plans write mappings with non-string keys as ``{"$pairs": [[key, value], ...]}``.
RESERVED_KEY = "$pairs"


def in_parameters(path: FieldPath) -> bool:
    """Whether a mapping at ``path`` is (inside) a component's parameters, where FATE allows number keys."""
    n = len(path)
    if n >= 4 and path[0] == "dag" and path[1] == "tasks" and path[3] == "parameters":
        return True
    if n >= 6 and path[:2] == ("dag", "party_tasks") and path[3] == "tasks" and path[5] == "parameters":
        return True
    if n >= 3 and path[:2] == ("component_parameters", "common"):
        return True
    return n >= 5 and path[:2] == ("component_parameters", "role")


def _number_key(key: object) -> bool:
    if isinstance(key, bool):
        return False  # YAML `yes:` / `true:` keys are almost certainly a mistake
    return isinstance(key, int) or (isinstance(key, float) and math.isfinite(key))


def check_plain_data(data: Any, *, limit: int = 10) -> list[str]:
    """Problems (``<path>: <message>``) making ``data`` not plain JSON data; at most ``limit``.

    Number keys are accepted inside component parameters (:func:`in_parameters`), nowhere else.
    """
    problems: list[str] = []
    # Iterative walk: the data may be deeply nested and recursion is what we are guarding against.
    stack: list[tuple[Any, FieldPath]] = [(data, ())]
    while stack and len(problems) < limit:
        value, path = stack.pop()
        where = format_path(path) or "top level"
        if len(path) > MAX_NESTING:
            problems.append(f"{where}: nesting too deep (at most {MAX_NESTING} levels)")
            continue
        if isinstance(value, Mapping):
            for key in reversed(list(value)):
                if key == RESERVED_KEY:
                    problems.append(f"{where}: the key {RESERVED_KEY!r} is reserved; rename it")
                    continue
                if not isinstance(key, str) and not (_number_key(key) and in_parameters(path)):
                    problems.append(
                        f"{where}: key {key!r} is {type_name(key)}; keys must be strings (quote it)"
                    )
                    continue
                stack.append((value[key], (*path, key)))
        elif isinstance(value, list):
            stack.extend((item, (*path, i)) for i, item in reversed(list(enumerate(value))))
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{where}: {value} is not a JSON number")
        elif value is not None and not isinstance(value, (str, int, float, bool)):
            problems.append(f"{where}: {type_name(value)} value is not allowed here; quote it as a string")
    return problems


def read_document(path: str | os.PathLike[str], *, label: str | None = None) -> Any:
    """Read and parse one job file (JSON, or YAML for ``.yaml``/``.yml``).

    A file with another suffix is read as JSON when its first non-blank character is ``{`` and as
    YAML otherwise.

    :raises DslError: see :func:`read_text` and :func:`parse_text`.
    """
    p = Path(path)
    name = label or p.name
    text = read_text(p, label=name)
    if is_yaml_name(p.name):
        yaml = True
    elif p.name.lower().endswith(".json"):
        yaml = False
    else:
        yaml = not text.lstrip().startswith("{")
    return parse_text(text, name, yaml=yaml)


__all__ = [
    "MAX_JOB_FILE_BYTES",
    "MAX_NESTING",
    "RESERVED_KEY",
    "check_plain_data",
    "in_parameters",
    "is_yaml_name",
    "parse_text",
    "read_document",
    "read_text",
]
