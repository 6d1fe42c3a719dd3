from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from fate_airflow.components.simulate import TaskSpec
from fate_airflow.core.types import InputRef

from .conftest import ARBITER, GUEST, HOST
from .helpers import put_table, run

INPUT = (InputRef("data", "data", "data_warehouse", namespace="experiment", name="pred"),)


def _spec(parties=(GUEST,), **params: object) -> TaskSpec:
    return TaskSpec("evaluation_0", "evaluation@1.0.0", parties, common=params, inputs=INPUT)


def _binary(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    label = rng.integers(0, 2, n)
    score = np.clip(label * 0.3 + rng.random(n) * 0.7, 0, 1)
    return pd.DataFrame(
        {
            "id": [str(i) for i in range(n)],
            "label": label,
            "predict_score": score,
            "predict_result": (score > 0.5).astype(int),
        }
    )


def test_binary_against_sklearn(data_dirs: dict[str, str]) -> None:
    frame = _binary()
    put_table(data_dirs["9999"], "pred", frame, label="label")
    m = run(_spec(eval_type="binary"), data_dirs)[GUEST].metrics
    y, s, r = frame["label"], frame["predict_score"], frame["predict_result"]
    fpr, tpr, _ = skm.roc_curve(y, s)
    assert m["auc"] == pytest.approx(skm.roc_auc_score(y, s))
    assert m["ks"] == pytest.approx(np.max(tpr - fpr))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, r))
    assert m["precision"] == pytest.approx(skm.precision_score(y, r))
    assert m["recall"] == pytest.approx(skm.recall_score(y, r))


def test_regression_against_sklearn(data_dirs: dict[str, str]) -> None:
    rng = np.random.default_rng(4)
    label = rng.normal(size=100)
    pred = label + rng.normal(scale=0.3, size=100)
    frame = pd.DataFrame({"id": [str(i) for i in range(100)], "label": label, "predict_result": pred})
    put_table(data_dirs["9999"], "pred", frame, label="label")
    m = run(_spec(default_eval_setting="regression"), data_dirs)[GUEST].metrics
    assert m["mse"] == pytest.approx(skm.mean_squared_error(label, pred))
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(label, pred))
    assert m["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(label, pred)))
    assert m["r2"] == pytest.approx(skm.r2_score(label, pred))


def test_multiclass(data_dirs: dict[str, str]) -> None:
    label = np.array([0, 1, 2, 2, 1, 0, 3, 3])
    pred = np.array([0, 1, 2, 1, 1, 0, 3, 0])
    frame = pd.DataFrame({"id": [str(i) for i in range(8)], "label": label, "predict_result": pred})
    put_table(data_dirs["9999"], "pred", frame, label="label")
    m = run(_spec(eval_type="multi"), data_dirs)[GUEST].metrics
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["precision"] == pytest.approx(skm.precision_score(label, pred, average="macro"))
    assert m["recall"] == pytest.approx(skm.recall_score(label, pred, average="macro"))


def test_parties_without_predictions_pass(data_dirs: dict[str, str]) -> None:
    put_table(data_dirs["9999"], "pred", _binary(), label="label")
    put_table(data_dirs["10000"], "pred", pd.DataFrame({"id": ["1", "2"], "x": [0.1, 0.2]}))
    out = run(_spec((GUEST, HOST, ARBITER)), data_dirs)
    assert out[GUEST].status == "success" and "auc" in out[GUEST].metrics
    assert out[HOST].status == "pass" and not out[HOST].metrics
    assert out[ARBITER].status == "pass"
