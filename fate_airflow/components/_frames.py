"""Small helpers shared by the tabular components (no federation, no I/O)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd

from fate_airflow.core.errors import ComponentError
from fate_airflow.storage.table import Table


def feature_matrix(table: Table, where: str, columns: Sequence[str] | None = None) -> np.ndarray:
    """The feature columns as a float64 matrix (rows in table order).

    :raises ComponentError: a column is missing, not numeric, or holds missing values.
    """
    cols = list(columns if columns is not None else table.meta.feature_columns)
    frame = table.frame
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ComponentError(f"{where}: feature columns {missing} are not in the input data")
    if not cols:
        return np.zeros((len(frame), 0), dtype=np.float64)
    try:
        matrix: np.ndarray = np.asarray(frame[cols].to_numpy(dtype=np.float64), dtype=np.float64)
    except (TypeError, ValueError):
        bad = [c for c in cols if not pd.api.types.is_numeric_dtype(frame[c])]
        raise ComponentError(
            f"{where}: feature columns {bad} are not numeric (run data_transform first)"
        ) from None
    if np.isnan(matrix).any():
        bad = [c for c, has in zip(cols, np.isnan(matrix).any(axis=0), strict=True) if has]
        raise ComponentError(
            f"{where}: missing values in feature columns {bad}; set missing_fill in data_transform"
        )
    return matrix


def label_vector(table: Table, where: str) -> np.ndarray:
    """The label column as float64. :raises ComponentError: no label column."""
    label = table.meta.label_column
    if not label or label not in table.frame.columns:
        raise ComponentError(f"{where}: the input data has no label column")
    try:
        values: np.ndarray = np.asarray(table.frame[label].to_numpy(dtype=np.float64), dtype=np.float64)
    except (TypeError, ValueError):
        raise ComponentError(f"{where}: label column {label!r} is not numeric") from None
    if np.isnan(values).any():
        raise ComponentError(f"{where}: label column {label!r} has missing values")
    return values


def sorted_by_id(table: Table) -> Table:
    """Rows sorted by id (string order): how parties of a vertical task align their rows."""
    frame = table.frame.sort_values(table.meta.id_column, kind="stable").reset_index(drop=True)
    return Table(frame, table.meta)


__all__ = ["feature_matrix", "label_vector", "sorted_by_id"]


def prediction_frame(table: Table) -> pd.DataFrame:
    """The id (and, where the input has one, ``label``) columns a prediction table starts from."""
    meta = table.meta
    frame = pd.DataFrame({meta.id_column: table.frame[meta.id_column].astype(str).to_numpy()})
    label = meta.label_column
    if label and label in table.frame.columns:
        frame["label"] = table.frame[label].to_numpy()
    return frame


def prediction_table(table: Table, frame: pd.DataFrame, eval_type: str) -> Table:
    """A prediction frame as FATE's output table (columns named for the evaluation component)."""
    return Table.from_frame(
        frame,
        id_column=table.meta.id_column,
        label_column="label" if "label" in frame.columns else None,
        feature_columns=[],
        extra={"predict_score": "predict_score", "predict_result": "predict_result", "eval_type": eval_type},
    )


def binary_predictions(table: Table, prob: np.ndarray, threshold: float, kind: str) -> Table:
    """FATE's binary prediction table: ``id, label, predict_result, predict_score, predict_detail, type``."""
    frame = prediction_frame(table)
    frame["predict_result"] = (prob > threshold).astype(np.int64)
    frame["predict_score"] = prob
    frame["predict_detail"] = [json.dumps({"0": float(1 - p), "1": float(p)}) for p in prob]
    frame["type"] = kind
    return prediction_table(table, frame, "binary")
