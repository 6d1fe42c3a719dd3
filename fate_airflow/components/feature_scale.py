"""feature_scale@1.0.0 — FATE 1.x ``FeatureScale`` / 2.x ``feature_scale``: min-max and standard scaling.

Fit on the training data (each party scales its own features; nothing crosses parties), save the
statistics as the model, transform the training data and — in predict, or when test data is given
with a model — new data with the saved statistics.

Parameters: ``method`` (1.x ``standard_scale``/``min_max_scale``, 2.x ``standard``/``min_max``;
default standard); columns by 1.x ``scale_col_indexes`` (-1 = all) / ``scale_names`` or 2.x
``scale_idx`` / ``scale_col`` (default all); 1.x ``with_mean``/``with_std``; 1.x ``mode`` ``normal``
with ``feat_upper``/``feat_lower`` clip bounds or ``cap`` with percentile bounds; 2.x
``feature_range`` (``[lo, hi]`` or per column, default ``[0, 1]``) and ``strict_range`` (clip
transformed values into the range).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from fate_airflow.components._frames import feature_matrix
from fate_airflow.components.context import TEST_KEYS, TRAIN_KEYS, FateComponent, TaskContext
from fate_airflow.core.errors import ComponentError
from fate_airflow.storage.table import Table

_METHODS = {
    "standard_scale": "standard",
    "standard": "standard",
    "min_max_scale": "min_max",
    "min_max": "min_max",
    "minmax": "min_max",
}


def _columns(ctx: TaskContext, header: Sequence[str]) -> list[str]:
    p = ctx.params
    names = p.get("scale_names", "scale_col", default=None)
    indexes = p.get("scale_col_indexes", "scale_idx", default=None)
    if names is None and indexes is None:
        return list(header)
    chosen: list[str] = []
    if indexes is not None:
        if indexes == -1 or indexes == [-1]:
            chosen = list(header)
        else:
            for i in indexes if isinstance(indexes, list) else [indexes]:
                if not isinstance(i, int) or not 0 <= i < len(header):
                    raise ComponentError(
                        f"{ctx.where}: scale column index {i!r} out of range ({len(header)} features)"
                    )
                chosen.append(header[i])
    for name in names or []:
        if name not in header:
            raise ComponentError(f"{ctx.where}: scale column {name!r} is not a feature ({list(header)})")
        if name not in chosen:
            chosen.append(name)
    return [c for c in header if c in chosen]


def _bound(value: Any, col: str, i: int) -> float | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        v = value.get(col)
        return None if v is None else float(v)
    if isinstance(value, (list, tuple)):
        return float(value[i])
    return float(value)


class FeatureScale(FateComponent):
    """Min-max or standard scaling of this party's own features."""

    roles: ClassVar[tuple[str, ...]] = ("guest", "host")

    def execute(self, ctx: TaskContext) -> None:
        """Fit + transform (train) or transform with a stored model (predict)."""
        model = ctx.input_model()
        train = ctx.input_table(TRAIN_KEYS) if ctx.stage != "predict" or model is None else None
        test = ctx.input_table(TEST_KEYS)
        if model is None and train is None:
            if ctx.has_input((*TRAIN_KEYS, *TEST_KEYS)):
                ctx.mark_pass("the upstream task output no data here")
                ctx.save_empty_data(("train_output_data", "output_data"))
                return
            raise ComponentError(f"{ctx.where}: needs train data or a model")
        if model is not None:
            params = dict(model.params)
            target = test if test is not None else ctx.input_table(TRAIN_KEYS)
            if target is None:
                raise ComponentError(f"{ctx.where}: predict needs test data")
            ctx.info("scaling with the stored %s model", params["method"])
            ctx.save_data(self._transform(ctx, target, params), ("test_output_data", "output_data"))
            return
        assert train is not None
        params = self._fit(ctx, train)
        ctx.save_data(self._transform(ctx, train, params), ("train_output_data", "output_data"))
        if test is not None:
            ctx.save_data(self._transform(ctx, test, params), ("test_output_data",), default="test_data")
        ctx.save_model(params, meta={"module": "FeatureScale"})

    def _fit(self, ctx: TaskContext, table: Table) -> dict[str, Any]:
        p = ctx.params
        method = p.choice("method", default="standard_scale", choices=_METHODS)
        header = list(table.meta.feature_columns)
        cols = _columns(ctx, header)
        x = feature_matrix(table, ctx.where, cols)
        mode = str(p.get("mode", default="normal")).lower()
        if mode not in ("normal", "cap"):
            raise ComponentError(f"{ctx.where}: mode {mode!r} is not 'normal' or 'cap'")
        upper_raw, lower_raw = p.get("feat_upper"), p.get("feat_lower")
        stats: dict[str, dict[str, float | None]] = {}
        for i, col in enumerate(cols):
            column = x[:, i] if len(x) else np.zeros(0)
            hi, lo = _bound(upper_raw, col, i), _bound(lower_raw, col, i)
            if mode == "cap" and len(column):
                hi = float(np.quantile(column, hi)) if hi is not None else None
                lo = float(np.quantile(column, lo)) if lo is not None else None
            if hi is not None or lo is not None:
                column = np.clip(column, lo if lo is not None else -np.inf, hi if hi is not None else np.inf)
            stats[col] = {
                "mean": float(column.mean()) if len(column) else 0.0,
                "std": float(column.std()) if len(column) else 1.0,
                "min": float(column.min()) if len(column) else 0.0,
                "max": float(column.max()) if len(column) else 1.0,
                "upper": hi,
                "lower": lo,
            }
        ranges = p.get("feature_range", default=None)
        range_by_col: dict[str, list[float]] = {}
        for col in cols:
            r = ranges.get(col, [0.0, 1.0]) if isinstance(ranges, Mapping) else (ranges or [0.0, 1.0])
            if len(r) != 2 or float(r[0]) >= float(r[1]):
                raise ComponentError(f"{ctx.where}: feature_range for {col!r} must be [low, high], got {r!r}")
            range_by_col[col] = [float(r[0]), float(r[1])]
        params = {
            "method": method,
            "columns": cols,
            "stats": stats,
            "with_mean": p.boolean("with_mean", default=True),
            "with_std": p.boolean("with_std", default=True),
            "feature_range": range_by_col,
            "strict_range": p.boolean("strict_range", default=True),
        }
        ctx.info("fitted %s scaling on %d of %d features (%d rows)", method, len(cols), len(header), len(x))
        ctx.summary.update({"method": method, "scaled_features": len(cols), "rows": len(x)})
        return params

    @staticmethod
    def _transform(ctx: TaskContext, table: Table, params: Mapping[str, Any]) -> Table:
        cols: list[str] = list(params["columns"])
        x = feature_matrix(table, ctx.where, cols)
        frame = table.frame.copy()
        for i, col in enumerate(cols):
            s = params["stats"][col]
            v = x[:, i]
            if s["upper"] is not None or s["lower"] is not None:
                v = np.clip(
                    v,
                    s["lower"] if s["lower"] is not None else -np.inf,
                    s["upper"] if s["upper"] is not None else np.inf,
                )
            if params["method"] == "standard":
                if params["with_mean"]:
                    v = v - s["mean"]
                if params["with_std"]:
                    v = v / (s["std"] if s["std"] > 0 else 1.0)
            else:
                lo, hi = params["feature_range"][col]
                span = s["max"] - s["min"]
                v = (v - s["min"]) / (span if span > 0 else 1.0) * (hi - lo) + lo
                if params["strict_range"]:
                    v = np.clip(v, lo, hi)
            frame[col] = v
        return Table(frame, table.meta)


__all__ = ["FeatureScale"]
