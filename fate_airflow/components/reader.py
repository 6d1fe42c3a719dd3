"""reader@1.0.0 — FATE 1.x ``Reader`` / 2.x ``reader``: a stored table becomes the task's data output.

Parameters: 1.x ``table: {name, namespace}``; 2.x ``name`` and ``namespace``. The table is copied into
the job's artifacts so later reruns see the data as it was when the job read it.

An arbiter with no table parameter passes (FATE's arbiter holds no data); a guest or host without
one is an error naming the party and the missing parameter.
"""

from __future__ import annotations

from typing import ClassVar

from fate_airflow.components.context import FateComponent, TaskContext
from fate_airflow.core.errors import ComponentError
from fate_airflow.storage.tables import table_uri


class Reader(FateComponent):
    """Read ``namespace.name`` from the party's table store."""

    roles: ClassVar[tuple[str, ...]] = ("guest", "host", "arbiter", "local")

    def execute(self, ctx: TaskContext) -> None:
        """Copy the named table into a data artifact."""
        name = ctx.params.get("table.name", "name")
        namespace = ctx.params.get("table.namespace", "namespace")
        if not name or not namespace:
            if ctx.role == "arbiter":
                ctx.mark_pass("no table parameter at the arbiter")
                return
            missing = "table.name" if not name else "table.namespace"
            raise ComponentError(
                f"reader {ctx.request.task_name} at {ctx.local}: missing parameter {missing!r} "
                "(1.x: table: {name, namespace}; 2.x: name and namespace)"
            )
        table = ctx.tables.read(str(namespace), str(name))
        meta = table.meta
        ctx.info(
            "read %s: %d rows, id %r, label %r, %d features",
            table_uri(meta.namespace or str(namespace), meta.name or str(name)),
            meta.row_count,
            meta.id_column,
            meta.label_column,
            len(meta.feature_columns),
        )
        out = table.with_meta(extra={**meta.extra, "source_table": f"{namespace}.{name}"})
        ctx.save_data(out, preferred=("output_data",), default="data")
        ctx.summary.update(
            {"table": f"{namespace}.{name}", "rows": meta.row_count, "features": len(meta.feature_columns)}
        )


__all__ = ["Reader"]
