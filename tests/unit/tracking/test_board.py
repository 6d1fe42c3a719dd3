"""The job page's charts and tables: curves agree with scikit-learn, every point is drawn, FATE records render."""

from __future__ import annotations

import re

import numpy as np
import pytest
from sklearn import metrics as skm

from fate_airflow.tracking.board import (
    CONFUSION_THRESHOLDS,
    Series,
    binary_curves,
    line_chart,
    mapping_table,
    model_panels,
    render_panels,
    task_panels,
    tree_tables,
)


def _polylines(svg: str) -> dict[str, int]:
    return {m[0]: int(m[1]) for m in re.findall(r"data-series='([^']*)' data-points='(\d+)'", svg)}


@pytest.fixture(scope="module")
def prediction() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    label = rng.integers(0, 2, 2000)
    score = 1 / (1 + np.exp(-(2.0 * label - 1.0 + rng.normal(0, 1.2, 2000))))
    return label, score


def test_curves_agree_with_scikit_learn(prediction: tuple[np.ndarray, np.ndarray]) -> None:
    label, score = prediction
    curves = binary_curves(label, score)
    roc = np.array(curves["roc"])
    # ROC from ~100 quantile thresholds: its area is sklearn's AUC to within the grid's resolution.
    assert np.trapezoid(roc[:, 1], roc[:, 0]) == pytest.approx(skm.roc_auc_score(label, score), abs=0.003)
    assert np.all(np.diff(roc[:, 0]) >= 0) and np.all(np.diff(roc[:, 1]) >= 0)  # monotone
    fpr, tpr, _ = skm.roc_curve(label, score)
    assert curves["ks"]["ks"] == pytest.approx(float(np.max(tpr - fpr)), abs=0.01)
    gain = np.array(curves["gain"])
    assert gain[0].tolist() == [0.0, 0.0] and gain[-1].tolist() == [1.0, 1.0]
    lift = np.array(curves["lift"])
    assert lift[-1, 1] == pytest.approx(1.0)  # the whole population: the base rate
    assert lift[0, 1] > 1.5  # the top scores are mostly positives
    for row in curves["confusion"]:
        pred = score >= row["threshold"]
        assert row["tp"] == int(np.sum(pred & (label == 1)))
        assert row["fp"] == int(np.sum(pred & (label == 0)))
        assert row["tp"] + row["fp"] + row["tn"] + row["fn"] == len(label)
    assert [r["threshold"] for r in curves["confusion"]] == list(CONFUSION_THRESHOLDS)


def test_one_class_gives_no_curves() -> None:
    assert binary_curves(np.ones(10), np.linspace(0, 1, 10)) == {}


def test_every_point_of_every_series_is_drawn() -> None:
    loss = [0.69, 0.5, 0.41, 0.37, 0.36]
    svg = line_chart("loss", [Series("loss", list(enumerate(loss)))], x_label="iteration", y_label="loss")
    assert _polylines(svg) == {"loss": 5}
    assert svg.count("<circle") == 5
    two = line_chart(
        "cv", [Series("fold 0", [(0, 1), (1, 0.5)]), Series("fold 1", [(0, 0.9), (1, 0.4), (2, 0.3)])],
        x_label="iteration", y_label="loss",
    )  # fmt: skip
    assert _polylines(two) == {"fold 0": 2, "fold 1": 3}
    assert "no data" in line_chart("empty", [Series("x", [])], x_label="a", y_label="b")


def test_a_native_lr_and_its_evaluation_become_charts_and_tables(
    prediction: tuple[np.ndarray, np.ndarray],
) -> None:
    label, score = prediction
    lr = {"metrics": {"loss_history": [0.69, 0.4, 0.3], "iterations": 3}, "summary": {"converged": False}}
    html = render_panels(task_panels(lr))
    assert _polylines(html) == {"loss": 3}
    assert "iterations" in html and "converged" in html
    ev = {
        "metrics": {"auc": 0.91, "ks": 0.7},
        "summary": {"eval_type": "binary", "curves": {"lr_0.train_output_data": binary_curves(label, score)}},
    }
    html = render_panels(task_panels(ev))
    titles = re.findall(r"data-chart='([^']*)'", html)
    assert {
        "lr_0.train_output_data ROC",
        "lr_0.train_output_data Lift",
        "lr_0.train_output_data Gain",
    } <= set(titles)
    assert any(t.startswith("lr_0.train_output_data K-S") for t in titles)
    assert "Confusion matrix by threshold" in html and "0.91" in html
    assert "&quot;roc&quot;" not in html  # curves are charts, not dumped as JSON


def test_fate_metric_records_render_as_charts_and_tables() -> None:
    records = [
        {"name": "loss", "type": "loss", "groups": [{"name": "default", "index": None}], "step_axis": "epochs",
         "data": [{"metric": 0.7 - 0.1 * i, "step": i, "timestamp": 0} for i in range(4)]},
        {"name": "loss", "type": "loss", "groups": [{"name": "train", "index": None}, {"name": "class_1"}],
         "step_axis": "epochs", "data": [{"metric": 0.9 - 0.1 * i, "step": i} for i in range(4)]},
        {"name": "evaluation", "type": "evaluation", "groups": [], "step_axis": None,
         "data": {"sbt_0": {"train": [{"metric": "auc", "val": 0.995858}, {"metric": "ks", "val": 0.954891}]}}},
        {"name": "iv", "type": None, "groups": [], "step_axis": None, "data": {"x0": {"iv": 2.58}, "x2": {"iv": 2.91}}},
    ]  # fmt: skip
    html = render_panels(task_panels({"metrics": {"fate_metrics": records}}))
    assert _polylines(html) == {"loss": 4, "train/class_1": 4}
    assert "0.995858" in html and "sbt_0 · train" in html
    assert "2.58" in html and "x2" in html


def test_a_mapping_of_mappings_is_a_matrix_and_values_are_escaped() -> None:
    stats = mapping_table({"x0": {"min": -1.7269, "max": 4.0942}, "x1": {"min": 0.5, "max": 1}})
    assert stats.count("<tr>") == 3 and "<th>min</th>" in stats
    assert "&lt;script&gt;" in mapping_table({"<script>": "x"})


def test_model_views_show_weights_by_feature_with_the_intercept() -> None:
    (weights, rest) = model_panels(
        "model", {"header": ["x0", "x1"], "weights": [0.5, -1.25], "intercept": 0.1, "iterations": 3}
    )
    assert weights.title == "model: weights"
    assert re.findall(r"<td>(x0|x1|\(intercept\))</td><td>([-0-9.]+)</td>", weights.body) == [
        ("x0", "0.5"), ("x1", "-1.25"), ("(intercept)", "0.1"),
    ]  # fmt: skip
    assert "iterations" in rest.body
    fate = {
        "fate_models": {
            "output_model": {
                "data": {
                    "estimator": {"param": {"coef_": [[0.3], [0.7]], "intercept_": [0.2]}},
                    "header": ["a", "b"],
                }
            }
        }
    }
    coef, raw = model_panels("output_model", fate)
    assert re.findall(r"<td>(a|b|\(intercept\))</td>", coef.body) == ["a", "b", "(intercept)"]
    assert "<details>" in raw.body


def test_trees_show_host_splits_only_by_their_owner() -> None:
    tree = {"nodes": [
        {"nid": 0, "is_leaf": False, "sitename": "guest:9999", "fid": 3, "bid": 0.25, "l": 1, "r": 2},
        {"nid": 1, "is_leaf": False, "sitename": "host:10000", "fid": -1, "bid": -1, "l": 3, "r": 4},
        {"nid": 2, "is_leaf": True, "weight": 0.4},
    ]}  # fmt: skip
    (trees, raw) = model_panels(
        "output_model", {"fate_models": {"output_model": {"data": {"trees": [tree]}}}}
    )
    # No coefficient table of one NaN for a model without coefficients.
    assert trees.title == "model output_model · output_model: 1 trees" and "coefficients" not in raw.title
    html = tree_tables([tree], {"3": "x3"})
    rows = re.findall(r"<tr>(.*?)</tr>", html)[1:]
    assert "<td>x3</td><td>0.25</td>" in rows[0]
    assert (
        "host:10000" in rows[1]
        and "(owner only)" in rows[1]
        and "-1" not in rows[1].split("(owner only)")[1][:12]
    )
