from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fate_airflow.components.simulate import TaskSpec
from fate_airflow.core.errors import ComponentError
from fate_airflow.core.types import InputRef

from .conftest import GUEST, HOST
from .helpers import edge, output_frame, put_table, run


def _raw() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "y": [1, 0, 1, 0],
            "x0": [1.0, np.nan, 3.0, 5.0],
            "x1": [10.0, 20.0, -999.0, 40.0],
            "x2": [0.5, 0.5, 0.5, 99.0],
        }
    )


def _dt(params: dict[str, object], party=GUEST, inputs=None, stage: str = "train") -> TaskSpec:
    return TaskSpec(
        "data_transform_0",
        "data_transform@1.0.0",
        (party,),
        common=params,
        inputs=inputs or (InputRef("data", "data", "data_warehouse", namespace="experiment", name="raw"),),
        outputs={"data": ("data",), "model": ("model",)},
        component="DataTransform",
        stage=stage,
    )


def test_label_and_missing_fill_mean(data_dirs: dict[str, str]) -> None:
    put_table(data_dirs["9999"], "raw", _raw())
    res = run(
        _dt(
            {
                "with_label": True,
                "label_name": "y",
                "missing_fill": True,
                "missing_fill_method": "mean",
                "missing_impute": [-999],
            }
        ),
        data_dirs,
    )[GUEST]
    frame = output_frame(data_dirs, res)
    assert list(frame.columns) == ["id", "y", "x0", "x1", "x2"]
    assert frame["x0"].tolist() == [1.0, 3.0, 3.0, 5.0]
    assert frame["x1"].tolist() == pytest.approx([10.0, 20.0, 70 / 3, 40.0])
    assert frame["y"].dtype == np.int64
    assert res.summary["missing_values"] == 2
    assert "model" in res.outputs


def test_designated_fill_and_outliers(data_dirs: dict[str, str]) -> None:
    put_table(data_dirs["9999"], "raw", _raw())
    res = run(
        _dt(
            {
                "with_label": True,
                "missing_fill": True,
                "missing_fill_method": "designated",
                "default_value": 0,
                "outlier_replace": True,
                "outlier_impute": [99],
                "outlier_replace_method": "max",
            }
        ),
        data_dirs,
    )[GUEST]
    frame = output_frame(data_dirs, res)
    assert frame["x0"].tolist() == [1.0, 0.0, 3.0, 5.0]
    assert frame["x2"].tolist() == [0.5, 0.5, 0.5, 0.5]  # max of the non-outliers
    assert res.summary["outliers_replaced"] == 1


def test_host_without_label_keeps_every_column(data_dirs: dict[str, str]) -> None:
    put_table(data_dirs["10000"], "raw", _raw().drop(columns=["y"]))
    res = run(_dt({"with_label": False}, party=HOST), data_dirs)[HOST]
    frame = output_frame(data_dirs, res)
    assert list(frame.columns) == ["id", "x0", "x1", "x2"]
    assert np.isnan(frame["x0"][1])  # no missing_fill: left as NaN, with a warning


def test_missing_label_column_is_an_error(data_dirs: dict[str, str]) -> None:
    put_table(data_dirs["9999"], "raw", _raw())
    with pytest.raises(ComponentError, match="label column 'label' not found"):
        run(_dt({"with_label": True, "label_name": "label"}), data_dirs)


def test_non_numeric_feature_named(data_dirs: dict[str, str]) -> None:
    raw = _raw()
    raw["x1"] = ["1", "2", "oops", "4"]
    put_table(data_dirs["9999"], "raw", raw)
    with pytest.raises(ComponentError, match="column 'x1' has non-numeric value 'oops'"):
        run(_dt({"with_label": True}), data_dirs)


def test_sparse_output_is_refused(data_dirs: dict[str, str]) -> None:
    put_table(data_dirs["9999"], "raw", _raw())
    with pytest.raises(ComponentError, match="output_format 'sparse' is not supported"):
        run(_dt({"output_format": "sparse"}), data_dirs)


def test_predict_uses_training_fill_values(data_dirs: dict[str, str]) -> None:
    put_table(data_dirs["9999"], "raw", _raw())
    run(
        _dt({"with_label": True, "missing_fill": True, "missing_fill_method": "mean"}),
        data_dirs,
        model_id="m",
        model_version="v1",
    )
    new = pd.DataFrame({"id": ["z"], "y": [1], "x0": [np.nan], "x1": [1.0], "x2": [2.0]})
    put_table(data_dirs["9999"], "raw", new)
    inputs = (
        InputRef("data", "data", "data_warehouse", namespace="experiment", name="raw"),
        InputRef("model", "model", "model_warehouse", producer_task="data_transform_0", output_key="model"),
    )
    res = run(
        _dt({}, inputs=inputs, stage="predict"),
        data_dirs,
        job_id="predict-job",
        job_parameters={"model_id": "m", "model_version": "v1"},
    )[GUEST]
    frame = output_frame(data_dirs, res)
    assert frame["x0"].tolist() == [3.0]  # mean of 1, 3, 5 learned in training


def test_chained_after_reader(data_dirs: dict[str, str]) -> None:
    put_table(data_dirs["9999"], "raw", _raw())
    reader = TaskSpec(
        "reader_0",
        "reader@1.0.0",
        (GUEST,),
        common={"table": {"name": "raw", "namespace": "experiment"}},
        outputs={"data": ("data",)},
    )
    run(reader, data_dirs)
    res = run(_dt({"with_label": True}, inputs=(edge("reader_0"),)), data_dirs)[GUEST]
    assert len(output_frame(data_dirs, res)) == 4
