"""data_transform@1.0.0 — FATE 1.x ``DataTransform`` (``DataIO``) / 2.x ``dataframe_transformer``.

Turns a raw table into dense numeric instances: the id column is kept, the label column is split off
(``with_label``, ``label_name`` default ``y``, ``label_type`` int/float/str), every other column becomes
a float64 feature. Missing values (empty cells, NaN, and anything listed in ``missing_impute``) are
filled when ``missing_fill`` is true with ``missing_fill_method`` (``min``, ``max``, ``mean``,
``median`` or ``designated`` = ``default_value``); outliers (values listed in ``outlier_impute``)
are replaced likewise when ``outlier_replace`` is true (``outlier_replace_method`` /
``outlier_replace_value``). Fill values are learned on the training data and saved in the model, so a
predict job fills exactly as training did. Only ``output_format: dense`` is supported.

When ``with_label`` is not given, a label recorded at upload (2.x ``meta.label_name``) is used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from fate_airflow.components.context import TEST_KEYS, TRAIN_KEYS, FateComponent, TaskContext
from fate_airflow.core.errors import ComponentError
from fate_airflow.storage.table import Table

_FILL_METHODS = {"min", "max", "mean", "median", "designated"}
_LABEL_TYPES = {
    "int": "int",
    "int64": "int",
    "int32": "int",
    "float": "float",
    "float64": "float",
    "str": "str",
}
_OUTPUT_KEYS = ("dataframe_output", "output_data", "train_output_data")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _mark(frame: pd.DataFrame, values: Sequence[Any]) -> pd.DataFrame:
    """Boolean frame: True where a cell equals one of ``values`` (compared as numbers and as text)."""
    if not values:
        return pd.DataFrame(False, index=frame.index, columns=frame.columns)
    numeric = []
    for v in values:
        try:
            numeric.append(float(v))
        except (TypeError, ValueError):
            continue
    text = {str(v).strip() for v in values}
    marks = {}
    for col in frame.columns:
        series = frame[col]
        hit = series.astype(str).str.strip().isin(text)
        if numeric and pd.api.types.is_numeric_dtype(series):
            hit = hit | series.isin(numeric)
        marks[col] = hit.to_numpy()
    return pd.DataFrame(marks, index=frame.index)


def _fill_values(
    frame: pd.DataFrame, method: str | None, designated: Any, columns: Sequence[str], where: str, what: str
) -> dict[str, float]:
    """One fill value per column, computed on the (already cleaned) training frame."""
    if method is None:
        method = "designated"
    method = method.lower()
    if method not in _FILL_METHODS:
        raise ComponentError(f"{where}: {what}_method {method!r} is not one of {sorted(_FILL_METHODS)}")
    values: dict[str, float] = {}
    for i, col in enumerate(columns):
        series = pd.to_numeric(frame[col], errors="coerce")
        if method == "designated":
            if isinstance(designated, Mapping):
                raw = designated.get(col, 0)
            elif isinstance(designated, (list, tuple)):
                if len(designated) != len(columns):
                    raise ComponentError(
                        f"{where}: {len(designated)} designated values for {len(columns)} features"
                    )
                raw = designated[i]
            else:
                raw = 0 if designated is None else designated
            values[col] = float(raw)
        elif series.notna().any():
            values[col] = float(getattr(series, method)())
        else:
            values[col] = 0.0
    return values


class DataTransform(FateComponent):
    """Dense numeric instances from a raw table."""

    roles: ClassVar[tuple[str, ...]] = ("guest", "host", "local")

    def execute(self, ctx: TaskContext) -> None:
        """Fit (train) or apply (predict, with a model input) the transformation."""
        p = ctx.params
        fmt = p.string("output_format", default="dense")
        if fmt is not None and fmt.lower() != "dense":
            raise ComponentError(f"{ctx.where}: output_format {fmt!r} is not supported (only 'dense')")
        input_format = p.string("input_format", default="dense")
        if input_format is not None and input_format.lower() != "dense":
            raise ComponentError(
                f"{ctx.where}: input_format {input_format!r} is not supported (only 'dense')"
            )
        table = ctx.input_table((*TRAIN_KEYS, *TEST_KEYS))
        if table is None:
            if ctx.has_input((*TRAIN_KEYS, *TEST_KEYS)):
                ctx.mark_pass("the upstream task output no data here")
                ctx.save_empty_data(_OUTPUT_KEYS)
                return
            raise ComponentError(f"{ctx.where}: no input data")
        model = ctx.input_model()
        if model is not None:
            self._apply(ctx, table, dict(model.params))
            return
        self._fit(ctx, table)

    # ------------------------------------------------------------------ train

    def _fit(self, ctx: TaskContext, table: Table) -> None:
        p = ctx.params
        meta = table.meta
        with_label = p.boolean("with_label", default=meta.label_column is not None)
        label_name = p.string("label_name", default=meta.label_column or "y") if with_label else None
        label_type = _LABEL_TYPES.get(str(p.get("label_type", default="int")).lower())
        if label_type is None:
            raise ComponentError(f"{ctx.where}: label_type {p.get('label_type')!r} is not int, float or str")
        columns = [c for c in table.frame.columns if c not in (meta.id_column, label_name)]
        if with_label and label_name not in table.frame.columns:
            raise ComponentError(
                f"{ctx.where}: label column {label_name!r} not found (columns: {list(table.frame.columns)}); "
                "set label_name, or with_label: false at parties without labels"
            )
        missing_impute = _as_list(p.get("missing_impute"))
        missing_fill = p.boolean("missing_fill", default=False)
        outlier_impute = _as_list(p.get("outlier_impute"))
        outlier_replace = p.boolean("outlier_replace", default=False)
        features = table.frame[columns]
        missing = features.isna() | _mark(features, missing_impute)
        fill = (
            _fill_values(
                features.mask(missing),
                p.string("missing_fill_method", default=None),
                p.get("default_value", default=0),
                columns,
                ctx.where,
                "missing_fill",
            )
            if missing_fill
            else {}
        )
        outliers = _mark(features, outlier_impute) & ~missing
        replace = (
            _fill_values(
                features.mask(missing | outliers),
                p.string("outlier_replace_method", default=None),
                p.get("outlier_replace_value", default=0),
                columns,
                ctx.where,
                "outlier_replace",
            )
            if outlier_replace
            else {}
        )
        params: dict[str, Any] = {
            "header": columns,
            "with_label": with_label,
            "label_name": label_name,
            "label_type": label_type,
            "missing_impute": [str(v) for v in missing_impute],
            "missing_fill": missing_fill,
            "missing_fill_values": fill,
            "outlier_impute": [str(v) for v in outlier_impute],
            "outlier_replace": outlier_replace,
            "outlier_replace_values": replace,
        }
        out = self._transform(ctx, table, params)
        ctx.save_data(out, _OUTPUT_KEYS)
        ctx.save_model(params, meta={"module": "DataTransform"})

    # ------------------------------------------------------------------ predict

    def _apply(self, ctx: TaskContext, table: Table, params: Mapping[str, Any]) -> None:
        ctx.info("applying the trained transformation (header of %d features)", len(params["header"]))
        out = self._transform(ctx, table, params)
        ctx.save_data(out, _OUTPUT_KEYS)

    # ------------------------------------------------------------------ shared

    def _transform(self, ctx: TaskContext, table: Table, params: Mapping[str, Any]) -> Table:
        meta = table.meta
        frame = table.frame
        header: list[str] = list(params["header"])
        absent = [c for c in header if c not in frame.columns]
        if absent:
            raise ComponentError(f"{ctx.where}: feature columns {absent} not found in the input data")
        label_name = params.get("label_name") if params.get("with_label") else None
        has_label = label_name is not None and label_name in frame.columns
        if params.get("with_label") and not has_label and ctx.stage != "predict":
            raise ComponentError(f"{ctx.where}: label column {label_name!r} not found")
        features = frame[header]
        missing = features.isna() | _mark(features, params.get("missing_impute") or [])
        outliers = _mark(features, params.get("outlier_impute") or []) & ~missing
        values = features.mask(missing | outliers)
        if params.get("outlier_replace"):
            for col, v in params["outlier_replace_values"].items():
                values.loc[outliers[col], col] = v
        if params.get("missing_fill"):
            for col, v in params["missing_fill_values"].items():
                values.loc[missing[col], col] = v
        numeric: dict[str, np.ndarray] = {}
        for col in header:
            converted = pd.to_numeric(values[col], errors="coerce")
            bad = converted.isna() & values[col].notna()
            if bool(bad.any()):
                example = values[col][bad].iloc[0]
                raise ComponentError(
                    f"{ctx.where}: column {col!r} has non-numeric value {example!r}; list it in "
                    "missing_impute/outlier_impute or drop the column"
                )
            numeric[col] = converted.to_numpy(dtype=np.float64)
        n_missing = int(missing.to_numpy().sum())
        out = pd.DataFrame({meta.id_column: frame[meta.id_column].astype(str).to_numpy()})
        if has_label:
            assert label_name is not None
            out[label_name] = self._labels(ctx, frame[label_name], str(params.get("label_type", "int")))
        for col in header:
            out[col] = numeric[col]
        remaining = int(np.isnan(out[header].to_numpy(dtype=np.float64)).sum()) if header else 0
        if remaining:
            ctx.warning("%d missing feature values left unfilled (missing_fill is false)", remaining)
        ctx.summary.update(
            {
                "rows": len(out),
                "features": len(header),
                "label": label_name if has_label else None,
                "missing_values": n_missing,
                "missing_filled": n_missing - remaining if params.get("missing_fill") else 0,
                "outliers_replaced": int(outliers.to_numpy().sum()) if params.get("outlier_replace") else 0,
            }
        )
        ctx.info(
            "%d rows, %d features, label %r, %d missing values (%d left)",
            len(out),
            len(header),
            label_name if has_label else None,
            n_missing,
            remaining,
        )
        return Table.from_frame(
            out,
            id_column=meta.id_column,
            label_column=label_name if has_label else None,
            feature_columns=header,
            extra={"label_type": params.get("label_type") if has_label else None},
        )

    @staticmethod
    def _labels(ctx: TaskContext, series: pd.Series, label_type: str) -> np.ndarray:
        if label_type == "str":
            return np.asarray(series.astype(str).to_numpy(), dtype=object)
        values = pd.to_numeric(series, errors="coerce")
        if bool(values.isna().any()):
            raise ComponentError(
                f"{ctx.where}: label column {series.name!r} has missing or non-numeric values"
            )
        if label_type == "int":
            if bool((values != np.round(values)).any()):
                raise ComponentError(
                    f"{ctx.where}: label column {series.name!r} is not integral (label_type int)"
                )
            return np.asarray(values.to_numpy(), dtype=np.int64)
        return np.asarray(values.to_numpy(), dtype=np.float64)


__all__ = ["DataTransform"]
