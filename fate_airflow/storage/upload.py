"""Load a CSV file into the party's table store (``fate-airflow data upload``).

Accepts the command-line form and FATE's own upload configs:

* 1.x ``flow data upload -c``: ``{file, head, partition, namespace, table_name, id_delimiter}``
  (the first column is the id, as in FATE 1.x);
* 2.x: ``{file, head, partitions, meta: {delimiter, label_name, match_id_name, ...}, namespace, name}``.

Relative ``file`` paths in a config resolve against a base dir (FATE configs say
``examples/data/x.csv``, relative to the FATE checkout).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fate_airflow.core.errors import DslError, StorageError
from fate_airflow.core.paths import validate_identifier
from fate_airflow.dsl.io import is_yaml_name, parse_text, read_text
from fate_airflow.storage.table import Table, TableMeta
from fate_airflow.storage.tables import TableStore

log = logging.getLogger(__name__)

#: Cell values read as missing in numeric columns.
MISSING_TOKENS = frozenset({"", "NA", "NaN", "nan", "null", "NULL", "None", "none"})


@dataclass(frozen=True)
class UploadSpec:
    """What to upload and where.

    :param file: the CSV file.
    :param namespace: target namespace.
    :param name: target table name.
    :param id_column: id column; None = the first column.
    :param label_column: label column, if known at upload time (2.x ``meta.label_name``).
    :param delimiter: field delimiter.
    :param head: whether the first line is a header.
    :param partitions: FATE's partition count (kept as meta; the computing API re-partitions).
    :param source: where the spec came from (``cli``, ``fate-1.x``, ``fate-2.x``), for meta.
    :param extra: other config fields kept in the table meta.
    """

    file: Path
    namespace: str
    name: str
    id_column: str | None = None
    label_column: str | None = None
    delimiter: str = ","
    head: bool = True
    partitions: int | None = None
    source: str = "cli"
    extra: Mapping[str, Any] = field(default_factory=dict)


def _require(conf: Mapping[str, Any], key: str, origin: str) -> Any:
    if key not in conf or conf[key] in (None, ""):
        raise StorageError(f"{origin}: missing field {key!r}")
    return conf[key]


def spec_from_config(
    conf: Mapping[str, Any], *, origin: str = "upload config", base_dir: str | Path | None = None
) -> UploadSpec:
    """Turn a FATE 1.x or 2.x upload config into an :class:`UploadSpec`.

    :param conf: the parsed JSON object.
    :param origin: the config's file name, used in every error message.
    :param base_dir: directory that relative ``file`` paths are resolved against (default: cwd).
    :raises StorageError: naming ``origin`` and the bad field.
    """
    if not isinstance(conf, Mapping):
        raise StorageError(f"{origin}: expected a JSON object")
    file_value = _require(conf, "file", origin)
    if not isinstance(file_value, str):
        raise StorageError(f"{origin}: field 'file' must be a string")
    path = Path(file_value)
    if not path.is_absolute() and base_dir is not None:
        candidate = Path(base_dir) / path
        # FATE's configs name files relative to a FATE checkout (``examples/data/x.csv``); copies of
        # the examples often drop the leading ``examples/`` directory.
        if not candidate.exists() and path.parts[:1] == ("examples",):
            flattened = Path(base_dir).joinpath(*path.parts[1:])
            if flattened.exists():
                candidate = flattened
        path = candidate
    namespace = _require(conf, "namespace", origin)
    meta = conf.get("meta") or {}
    if not isinstance(meta, Mapping):
        raise StorageError(f"{origin}: field 'meta' must be an object")
    if "name" in conf:
        name, source = conf["name"], "fate-2.x"
    elif "table_name" in conf:
        name, source = conf["table_name"], "fate-2.x" if meta else "fate-1.x"
    else:
        raise StorageError(f"{origin}: missing field 'name' (2.x) or 'table_name' (1.x)")
    head = conf.get("head", True)
    if isinstance(head, str):
        head = head.strip().lower() not in ("0", "false", "no")
    delimiter = meta.get("delimiter") or conf.get("id_delimiter") or ","
    partitions = conf.get("partitions", conf.get("partition"))
    for key, value in (("namespace", namespace), ("name", name)):
        try:
            validate_identifier(value, key)
        except StorageError as exc:
            raise StorageError(f"{origin}: field {key!r}: {exc}") from None
    known = {
        "file",
        "head",
        "partition",
        "partitions",
        "namespace",
        "name",
        "table_name",
        "meta",
        "id_delimiter",
    }
    extra = {k: v for k, v in conf.items() if k not in known}
    if meta:
        extra["meta"] = dict(meta)
    return UploadSpec(
        file=path,
        namespace=str(namespace),
        name=str(name),
        id_column=meta.get("match_id_name") or None,
        label_column=meta.get("label_name") or None,
        delimiter=str(delimiter),
        head=bool(head),
        partitions=int(partitions) if partitions not in (None, "") else None,
        source=source,
        extra=extra,
    )


def load_upload_config(path: str | Path, *, base_dir: str | Path | None = None) -> UploadSpec:
    """Read a FATE upload config file: JSON, or YAML for ``.yaml``/``.yml`` (a testsuite ``data:`` entry).

    :raises StorageError: naming the file (and the line, for a syntax error).
    """
    path = Path(path)
    if not path.exists():
        raise StorageError(f"{path}: upload config not found")
    as_yaml = is_yaml_name(path.name)
    try:
        conf = parse_text(read_text(path), str(path), yaml=as_yaml)
    except DslError as exc:
        kind = "YAML" if as_yaml else "JSON"
        raise StorageError(f"not a valid {kind} upload config: {'; '.join(exc.problems)}") from None
    if not isinstance(conf, Mapping):
        raise StorageError(f"{path}: an upload config is an object, not {type(conf).__name__}")
    return spec_from_config(conf, origin=str(path), base_dir=base_dir)


def _numeric_or_text(column: pd.Series) -> pd.Series:
    """Numbers as float64/int64 (missing tokens → NaN); columns with other text stay strings."""
    stripped = column.str.strip()
    missing = stripped.isin(MISSING_TOKENS)
    converted = pd.to_numeric(stripped.where(~missing, None), errors="coerce")
    if bool((converted.isna() & ~missing).any()):
        return column
    if (
        not missing.any()
        and bool((converted == np.floor(converted)).all())
        and not stripped.str.contains(r"[.eE]", regex=True).any()
    ):
        return converted.astype("int64")
    return converted.astype("float64")


def read_csv_table(spec: UploadSpec) -> Table:
    """Parse ``spec.file`` into a :class:`Table` (ids as strings, numeric columns as numbers).

    :raises StorageError: naming the file and the problem (missing file or column, duplicate ids,
        malformed rows).
    """
    path = spec.file
    if not path.is_file():
        raise StorageError(f"{path}: file not found")
    try:
        frame = pd.read_csv(
            path,
            sep=spec.delimiter,
            header=0 if spec.head else None,
            dtype=str,
            keep_default_na=False,
            skipinitialspace=True,
            quoting=csv.QUOTE_MINIMAL,
        )
    except pd.errors.EmptyDataError:
        raise StorageError(f"{path}: file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise StorageError(f"{path}: cannot parse CSV: {exc}") from exc
    if not spec.head:
        frame.columns = ["id", *[f"x{i}" for i in range(frame.shape[1] - 1)]]
    frame.columns = [str(c).strip() for c in frame.columns]
    columns = list(frame.columns)
    if len(set(columns)) != len(columns):
        dup = sorted({c for c in columns if columns.count(c) > 1})
        raise StorageError(f"{path}: duplicate column names {dup}")
    if not columns:
        raise StorageError(f"{path}: no columns")
    id_column = spec.id_column or columns[0]
    if id_column not in columns:
        raise StorageError(f"{path}: id column {id_column!r} not found; columns are {columns}")
    if spec.label_column is not None and spec.label_column not in columns:
        raise StorageError(f"{path}: label column {spec.label_column!r} not found; columns are {columns}")
    ids = frame[id_column].str.strip()
    if bool((ids == "").any()):
        row = int(np.flatnonzero((ids == "").to_numpy())[0]) + (2 if spec.head else 1)
        raise StorageError(f"{path}: empty id in column {id_column!r} at line {row}")
    duplicated = ids.duplicated()
    if bool(duplicated.any()):
        raise StorageError(f"{path}: duplicate id {ids[duplicated].iloc[0]!r} in column {id_column!r}")
    frame[id_column] = ids
    for column in columns:
        if column != id_column:
            frame[column] = _numeric_or_text(frame[column])
    features = [c for c in columns if c not in (id_column, spec.label_column)]
    extra: dict[str, Any] = {"source": spec.source, "file": str(path)}
    if spec.partitions is not None:
        extra["partitions"] = spec.partitions
    extra.update(spec.extra)
    return Table.from_frame(
        frame, id_column=id_column, label_column=spec.label_column, feature_columns=features, extra=extra
    )


def upload(store: TableStore, spec: UploadSpec, *, overwrite: bool = False) -> TableMeta:
    """Parse and store ``spec.file`` as ``spec.namespace.spec.name``; nothing is stored on error."""
    validate_identifier(spec.namespace, "namespace")
    validate_identifier(spec.name, "table name")
    if not overwrite and store.exists(spec.namespace, spec.name):
        raise StorageError(
            f"table {spec.namespace}.{spec.name} already exists (delete it first or pass --overwrite)"
        )
    table = read_csv_table(spec)
    meta = store.write(spec.namespace, spec.name, table, overwrite=overwrite)
    log.info(
        "uploaded %s as %s.%s: %d rows, id %r, label %r, %d features",
        spec.file,
        spec.namespace,
        spec.name,
        meta.row_count,
        meta.id_column,
        meta.label_column,
        len(meta.feature_columns),
    )
    return meta


__all__ = [
    "MISSING_TOKENS",
    "UploadSpec",
    "load_upload_config",
    "read_csv_table",
    "spec_from_config",
    "upload",
]
