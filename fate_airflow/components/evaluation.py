"""evaluation@1.0.0 — FATE 1.x ``Evaluation`` / 2.x ``evaluation``: metrics of predictions (scikit-learn).

* binary (default): ``auc``, ``ks`` (max TPR − FPR), ``accuracy``, ``precision``, ``recall`` (the
  last three from ``predict_result``, else ``predict_score > 0.5``); ``pos_label`` default 1;
* regression: ``mse``, ``mae``, ``rmse``, ``r2``;
* multi: ``accuracy``, ``precision`` and ``recall`` (macro averages).

Parameters: 1.x ``eval_type`` / 2.x ``default_eval_setting`` (when neither is given, an input's own
``eval_type`` — hetero LR's one-vs-rest output says ``multi`` — else binary); 2.x ``label_column_name`` and
``predict_column_name``. With one input the metrics are flat (``{"auc": ...}``); with several they are
keyed by ``<producer task>.<output>``. A party without predictions (a host, the arbiter) passes.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from sklearn import metrics as skm

from fate_airflow.components.context import FateComponent, ResolvedData, TaskContext
from fate_airflow.core.errors import ComponentError
from fate_airflow.storage.table import Table
from fate_airflow.tracking.board import binary_curves

_EVAL_TYPES = {
    "binary": "binary",
    "regression": "regression",
    "multi": "multi",
    "multiclass": "multi",
    "multi_class": "multi",
}


def binary_metrics(
    label: np.ndarray, score: np.ndarray, result: np.ndarray | None, pos_label: Any = 1
) -> dict[str, Any]:
    """AUC, KS, accuracy, precision and recall of a binary prediction."""
    y = (label == pos_label).astype(int)
    pred = (score > 0.5).astype(int) if result is None else (result == pos_label).astype(int)
    out: dict[str, Any] = {}
    if len(np.unique(y)) < 2:
        out["auc"] = None
        out["ks"] = None
    else:
        out["auc"] = float(skm.roc_auc_score(y, score))
        fpr, tpr, _ = skm.roc_curve(y, score)
        out["ks"] = float(np.max(tpr - fpr))
    out["accuracy"] = float(skm.accuracy_score(y, pred))
    out["precision"] = float(skm.precision_score(y, pred, zero_division=0))
    out["recall"] = float(skm.recall_score(y, pred, zero_division=0))
    return out


def regression_metrics(label: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """MSE, MAE, RMSE and R²."""
    mse = float(skm.mean_squared_error(label, pred))
    return {
        "mse": mse,
        "mae": float(skm.mean_absolute_error(label, pred)),
        "rmse": math.sqrt(mse),
        "r2": float(skm.r2_score(label, pred)) if len(label) > 1 else None,
    }


def multi_metrics(label: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """Accuracy and macro precision/recall."""
    return {
        "accuracy": float(skm.accuracy_score(label, pred)),
        "precision": float(skm.precision_score(label, pred, average="macro", zero_division=0)),
        "recall": float(skm.recall_score(label, pred, average="macro", zero_division=0)),
    }


class Evaluation(FateComponent):
    """Score predictions against labels."""

    roles: ClassVar[tuple[str, ...]] = ("guest", "host", "arbiter", "local")

    def execute(self, ctx: TaskContext) -> None:
        """Compute metrics for every input that carries labels and predictions."""
        p = ctx.params
        # Without an explicit setting, an input that says what it is (hetero LR writes
        # ``eval_type: multi`` for a one-vs-rest prediction) is evaluated as such rather than as binary.
        explicit = p.has("eval_type", "default_eval_setting")
        eval_type = p.choice("eval_type", "default_eval_setting", default="binary", choices=_EVAL_TYPES)
        pos_label = p.get("pos_label", default=1)
        label_name = p.string("label_column_name", default=None)
        predict_name = p.string("predict_column_name", default=None)
        p.get("metrics", "unfold_multi_result", "need_run", "run_clustering_arbiter_metric")
        resolved: list[ResolvedData] = ctx.data_inputs() if ctx.role != "arbiter" else []
        usable = [r for r in resolved if r.table is not None and self._has_predictions(r.table, label_name)]
        if not usable:
            ctx.mark_pass("no labelled predictions at this party")
            return
        results: dict[str, dict[str, Any]] = {}
        curves: dict[str, dict[str, Any]] = {}
        kinds: set[str] = set()
        for item in usable:
            assert item.table is not None
            name = f"{item.ref.producer_task or item.ref.name}.{item.ref.output_key or item.ref.key}"
            kind = eval_type
            declared = str(item.table.meta.extra.get("eval_type", "")).lower()
            if not explicit and declared in _EVAL_TYPES:
                kind = _EVAL_TYPES[declared]
            kinds.add(kind)
            results[name], curves[name] = self._evaluate(
                ctx, item.table, kind, pos_label, label_name, predict_name
            )
            ctx.info("%s (%s): %s", name, kind, results[name])
        if len(kinds) == 1:
            eval_type = kinds.pop()
        if len(results) == 1:
            ctx.metrics.update(next(iter(results.values())))
        else:
            ctx.metrics.update(results)
        ctx.summary.update({"eval_type": eval_type, "inputs": list(results)})
        if any(curves.values()):
            # The board's ROC/K-S/lift/gain/PR charts, at ~100 thresholds (never the rows themselves).
            ctx.summary["curves"] = curves

    @staticmethod
    def _has_predictions(table: Table, label_name: str | None) -> bool:
        columns = set(table.frame.columns)
        label = label_name or table.meta.label_column or "label"
        return (
            label in columns and bool({"predict_score", "predict_result"} & columns) and len(table.frame) > 0
        )

    @staticmethod
    def _evaluate(
        ctx: TaskContext,
        table: Table,
        eval_type: str,
        pos_label: Any,
        label_name: str | None,
        predict_name: str | None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The metrics of one input, and for a binary evaluation its curves (else empty)."""
        frame = table.frame
        label = frame[label_name or table.meta.label_column or "label"].to_numpy()
        if eval_type == "binary":
            score_col = predict_name or "predict_score"
            if score_col not in frame.columns:
                raise ComponentError(f"{ctx.where}: binary evaluation needs column {score_col!r}")
            score = frame[score_col].to_numpy(dtype=np.float64)
            result = frame["predict_result"].to_numpy() if "predict_result" in frame.columns else None
            curves = binary_curves((label == pos_label).astype(int), score)
            return binary_metrics(label, score, result, pos_label), curves
        pred_col = predict_name or "predict_result"
        if pred_col not in frame.columns:
            raise ComponentError(f"{ctx.where}: {eval_type} evaluation needs column {pred_col!r}")
        if eval_type == "regression":
            return regression_metrics(
                label.astype(np.float64), frame[pred_col].to_numpy(dtype=np.float64)
            ), {}
        return multi_metrics(label, frame[pred_col].to_numpy()), {}


__all__ = ["Evaluation", "binary_metrics", "multi_metrics", "regression_metrics"]
