"""Tables: a pandas frame plus its meta (id column, label column, feature columns, row count, schema).

A :class:`StorageEngine` stores tables at a :data:`Location` (a tuple of safe path components); the
:class:`~fate_airflow.storage.tables.TableStore` (namespace/name) and the
:class:`~fate_airflow.storage.artifacts.ArtifactStore` (component outputs) both sit on one engine.
:class:`LocalParquetEngine` (columnar files under the party's data dir) is the default; another engine
(object store, HDFS, a database) implements the same five methods.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fate_airflow.core.errors import StorageError
from fate_airflow.core.files import atomic_directory, remove_directory

#: Where a table lives inside an engine: safe path components, e.g. ``("tables", "experiment", "t")``.
Location: TypeAlias = tuple[str, ...]

_DATA_FILE = "data.parquet"
_META_FILE = "meta.json"


@dataclass(frozen=True)
class TableMeta:
    """What is known about a stored table without reading its rows.

    :param id_column: the match-id column (kept as strings).
    :param label_column: the label column, if the table has one.
    :param feature_columns: feature columns, in order.
    :param row_count: number of rows.
    :param schema: column → dtype name, for every column.
    :param namespace: table namespace, for tables in the table store.
    :param name: table name, for tables in the table store.
    :param uri: artifact URI, for component outputs.
    :param created: ISO-8601 UTC time of the write.
    :param extra: JSON-ready facts (source file, task version, label type, ...).
    """

    id_column: str
    label_column: str | None
    feature_columns: tuple[str, ...]
    row_count: int
    schema: Mapping[str, str] = field(default_factory=dict)
    namespace: str | None = None
    name: str | None = None
    uri: str | None = None
    created: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (stored next to the data, printed by ``fate-airflow data info``)."""
        return {
            "namespace": self.namespace,
            "name": self.name,
            "uri": self.uri,
            "id_column": self.id_column,
            "label_column": self.label_column,
            "feature_columns": list(self.feature_columns),
            "row_count": self.row_count,
            "schema": dict(self.schema),
            "created": self.created,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableMeta:
        """Inverse of :meth:`to_dict`."""
        return cls(
            id_column=data["id_column"],
            label_column=data.get("label_column"),
            feature_columns=tuple(data.get("feature_columns") or ()),
            row_count=int(data["row_count"]),
            schema=dict(data.get("schema") or {}),
            namespace=data.get("namespace"),
            name=data.get("name"),
            uri=data.get("uri"),
            created=data.get("created", ""),
            extra=dict(data.get("extra") or {}),
        )


@dataclass(frozen=True)
class Table:
    """Rows (a pandas frame, one row per id) plus their :class:`TableMeta`."""

    frame: pd.DataFrame
    meta: TableMeta

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        id_column: str,
        label_column: str | None = None,
        feature_columns: Sequence[str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Table:
        """Build a table, checking the named columns exist; features default to every other column.

        :raises StorageError: naming a missing column.
        """
        columns = [str(c) for c in frame.columns]
        if id_column not in columns:
            raise StorageError(f"id column {id_column!r} not found; columns are {columns}")
        if label_column is not None and label_column not in columns:
            raise StorageError(f"label column {label_column!r} not found; columns are {columns}")
        if feature_columns is None:
            feature_columns = [c for c in columns if c not in (id_column, label_column)]
        missing = [c for c in feature_columns if c not in columns]
        if missing:
            raise StorageError(f"feature columns {missing} not found; columns are {columns}")
        frame = frame.reset_index(drop=True)
        frame[id_column] = frame[id_column].astype(str)
        meta = TableMeta(
            id_column=id_column,
            label_column=label_column,
            feature_columns=tuple(feature_columns),
            row_count=len(frame),
            schema={str(c): str(t) for c, t in frame.dtypes.items()},
            extra=dict(extra or {}),
        )
        return cls(frame, meta)

    @property
    def ids(self) -> list[str]:
        """The id column as a list of strings."""
        return [str(v) for v in self.frame[self.meta.id_column]]

    def with_meta(self, **changes: Any) -> Table:
        """The same rows with some meta fields replaced."""
        return Table(self.frame, replace(self.meta, **changes))


class StorageEngine(ABC):
    """Stores whole tables at locations. Writes are all-or-nothing: a failed write leaves nothing."""

    @abstractmethod
    def write(self, location: Location, table: Table, *, overwrite: bool = False) -> TableMeta:
        """Store ``table`` at ``location`` and return the meta as stored.

        :raises StorageError: the location is taken and ``overwrite`` is false, or the write failed.
        """

    @abstractmethod
    def read(self, location: Location) -> Table:
        """Load the table at ``location``. :raises StorageError: nothing stored there."""

    @abstractmethod
    def read_meta(self, location: Location) -> TableMeta:
        """Load only the meta. :raises StorageError: nothing stored there."""

    @abstractmethod
    def exists(self, location: Location) -> bool:
        """Whether a complete table is stored at ``location``."""

    @abstractmethod
    def delete(self, location: Location) -> bool:
        """Remove the table (and anything below ``location``); returns whether something was removed."""

    @abstractmethod
    def children(self, location: Location) -> list[str]:
        """Names directly below ``location`` (sorted; in-progress writes are never listed)."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class LocalParquetEngine(StorageEngine):
    """Tables as ``<root>/<location...>/{data.parquet, meta.json}`` (pyarrow, one file per table)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, location: Location) -> Path:
        """The directory of ``location`` (components are validated/encoded by the stores)."""
        for part in location:
            if not part or part in (".", "..") or "/" in part or "\\" in part:
                raise StorageError(f"unsafe storage location component {part!r}")
        return self.root.joinpath(*location)

    def write(self, location: Location, table: Table, *, overwrite: bool = False) -> TableMeta:
        """Write parquet + meta into a temporary directory, then rename it into place."""
        meta = replace(
            table.meta,
            row_count=len(table.frame),
            schema={str(c): str(t) for c, t in table.frame.dtypes.items()},
            created=_now(),
        )

        def fill(tmp: Path) -> None:
            arrow = pa.Table.from_pandas(table.frame, preserve_index=False)
            pq.write_table(arrow, tmp / _DATA_FILE)
            with open(tmp / _META_FILE, "w", encoding="utf-8") as fh:
                json.dump(meta.to_dict(), fh, indent=2)
                fh.flush()
                os.fsync(fh.fileno())

        target = self.path(location)
        if target.exists() and not overwrite:
            raise StorageError(f"table already exists at {'/'.join(location)}")
        try:
            atomic_directory(target, fill, overwrite=overwrite)
        except StorageError:
            raise
        except (OSError, pa.ArrowException, ValueError, TypeError) as exc:
            raise StorageError(f"could not write table {'/'.join(location)}: {exc}") from exc
        return meta

    def read_meta(self, location: Location) -> TableMeta:
        """Parse ``meta.json``."""
        meta_path = self.path(location) / _META_FILE
        try:
            with open(meta_path, encoding="utf-8") as fh:
                return TableMeta.from_dict(json.load(fh))
        except FileNotFoundError:
            raise StorageError(f"no table at {'/'.join(location)}") from None
        except (OSError, ValueError, KeyError) as exc:
            raise StorageError(f"corrupt table meta {meta_path}: {exc}") from exc

    def read(self, location: Location) -> Table:
        """Load the parquet file into a pandas frame."""
        meta = self.read_meta(location)
        try:
            frame = pq.read_table(self.path(location) / _DATA_FILE).to_pandas()
        except (OSError, pa.ArrowException) as exc:
            raise StorageError(f"could not read table {'/'.join(location)}: {exc}") from exc
        frame[meta.id_column] = frame[meta.id_column].astype(str)
        return Table(frame, meta)

    def exists(self, location: Location) -> bool:
        """A table exists once its directory was renamed into place (meta.json present)."""
        return (self.path(location) / _META_FILE).is_file()

    def delete(self, location: Location) -> bool:
        """Rename aside, then remove: a concurrent reader sees the table or nothing."""
        return remove_directory(self.path(location))

    def children(self, location: Location) -> list[str]:
        """Visible sub-directories of ``location``."""
        base = self.path(location)
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))

    def walk_tables(self, location: Location) -> Iterator[Location]:
        """Every table location at or below ``location``."""
        if self.exists(location):
            yield location
            return
        for child in self.children(location):
            yield from self.walk_tables((*location, child))


__all__ = [
    "LocalParquetEngine",
    "Location",
    "StorageEngine",
    "Table",
    "TableMeta",
]
