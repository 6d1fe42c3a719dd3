"""The party's table store: tables addressed by (namespace, name), as FATE's ``flow table`` does.

The DSL only ever names tables; the path below the data dir is this module's business:
``<data_dir>/tables/<namespace>/<name>/``.
"""

from __future__ import annotations

import os
from pathlib import Path

from fate_airflow.core.errors import StorageError
from fate_airflow.core.paths import validate_identifier
from fate_airflow.storage.table import LocalParquetEngine, Location, StorageEngine, Table, TableMeta

#: Environment variable naming the party's data dir when no ``--data-dir`` is given.
DATA_DIR_ENV = "FATE_AIRFLOW_DATA_DIR"

_TABLES = "tables"


def resolve_data_dir(value: str | os.PathLike[str] | None) -> Path:
    """``value`` or ``$FATE_AIRFLOW_DATA_DIR``, as a path.

    :raises StorageError: neither is set.
    """
    chosen = value if value not in (None, "") else os.environ.get(DATA_DIR_ENV)
    if not chosen:
        raise StorageError(f"no data dir: pass --data-dir or set {DATA_DIR_ENV}")
    return Path(chosen)


def table_uri(namespace: str, name: str) -> str:
    """``fate-table://<namespace>/<name>`` (used in logs and summaries)."""
    return f"fate-table://{namespace}/{name}"


class TableStore:
    """Tables by (namespace, name) on a :class:`StorageEngine` (local parquet by default)."""

    def __init__(self, engine: StorageEngine) -> None:
        self.engine = engine

    @classmethod
    def local(cls, data_dir: str | os.PathLike[str]) -> TableStore:
        """The default store: parquet files under ``data_dir``."""
        return cls(LocalParquetEngine(data_dir))

    @staticmethod
    def location(namespace: str, name: str) -> Location:
        """Validated location of a table. :raises StorageError: a name is not a plain identifier."""
        return (_TABLES, validate_identifier(namespace, "namespace"), validate_identifier(name, "table name"))

    def write(self, namespace: str, name: str, table: Table, *, overwrite: bool = False) -> TableMeta:
        """Store ``table`` as ``namespace.name`` (all-or-nothing)."""
        located = table.with_meta(namespace=namespace, name=name, uri=None)
        try:
            return self.engine.write(self.location(namespace, name), located, overwrite=overwrite)
        except StorageError as exc:
            if "already exists" in str(exc):
                raise StorageError(
                    f"table {namespace}.{name} already exists (delete it first or pass overwrite)"
                ) from None
            raise

    def read(self, namespace: str, name: str) -> Table:
        """Load ``namespace.name``. :raises StorageError: naming the table when it does not exist."""
        location = self.location(namespace, name)
        if not self.engine.exists(location):
            raise StorageError(f"table {namespace}.{name} not found")
        return self.engine.read(location)

    def info(self, namespace: str, name: str) -> TableMeta:
        """Meta of ``namespace.name``. :raises StorageError: when it does not exist."""
        location = self.location(namespace, name)
        if not self.engine.exists(location):
            raise StorageError(f"table {namespace}.{name} not found")
        return self.engine.read_meta(location)

    def exists(self, namespace: str, name: str) -> bool:
        """Whether ``namespace.name`` is stored."""
        return self.engine.exists(self.location(namespace, name))

    def delete(self, namespace: str, name: str) -> bool:
        """Remove ``namespace.name``; returns whether it existed."""
        return self.engine.delete(self.location(namespace, name))

    def list(self, namespace: str | None = None) -> list[TableMeta]:
        """Meta of every table (of one namespace), sorted by namespace then name."""
        namespaces = (
            [validate_identifier(namespace, "namespace")] if namespace else self.engine.children((_TABLES,))
        )
        out: list[TableMeta] = []
        for ns in namespaces:
            for name in self.engine.children((_TABLES, ns)):
                location = (_TABLES, ns, name)
                if self.engine.exists(location):
                    out.append(self.engine.read_meta(location))
        return out


__all__ = ["DATA_DIR_ENV", "TableStore", "resolve_data_dir", "table_uri"]
