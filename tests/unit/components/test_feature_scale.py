from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from fate_airflow.components.simulate import TaskSpec
from fate_airflow.core.types import InputRef

from .conftest import GUEST, HOST
from .helpers import output_frame, put_table, run


def _frame(seed: int, n: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"id": [f"u{i}" for i in range(n)], "a": rng.normal(3, 2, n), "b": rng.uniform(-5, 9, n)}
    )


def _spec(
    params: dict[str, object], stage: str = "train", inputs: tuple[InputRef, ...] | None = None
) -> TaskSpec:
    return TaskSpec(
        "scale_0",
        "feature_scale@1.0.0",
        (GUEST, HOST),
        common=params,
        inputs=inputs
        or (InputRef("data", "train_data", "data_warehouse", namespace="experiment", name="t"),),
        outputs={"data": ("train_output_data", "test_output_data"), "model": ("output_model",)},
        stage=stage,
    )


@pytest.mark.parametrize(
    ("method", "reference"),
    [("standard_scale", StandardScaler), ("min_max", MinMaxScaler), ("standard", StandardScaler)],
)
def test_fit_matches_sklearn(data_dirs: dict[str, str], method: str, reference: type) -> None:
    put_table(data_dirs["9999"], "t", _frame(1))
    put_table(data_dirs["10000"], "t", _frame(2))
    out = run(_spec({"method": method}), data_dirs, model_id="m", model_version="v")
    for party, seed in ((GUEST, 1), (HOST, 2)):
        frame = output_frame(data_dirs, out[party], "train_output_data")
        expected = reference().fit_transform(_frame(seed)[["a", "b"]])
        np.testing.assert_allclose(frame[["a", "b"]].to_numpy(), expected, atol=1e-12)


def test_selected_columns_and_predict(data_dirs: dict[str, str]) -> None:
    put_table(data_dirs["9999"], "t", _frame(1))
    put_table(data_dirs["10000"], "t", _frame(2))
    run(_spec({"method": "min_max_scale", "scale_names": ["b"]}), data_dirs, model_id="m", model_version="v")
    new = pd.DataFrame({"id": ["n1", "n2"], "a": [100.0, 200.0], "b": [1e6, -1e6]})
    put_table(data_dirs["9999"], "new", new)
    put_table(data_dirs["10000"], "new", new)
    inputs = (
        InputRef("data", "test_data", "data_warehouse", namespace="experiment", name="new"),
        InputRef(
            "model", "input_model", "model_warehouse", producer_task="scale_0", output_key="output_model"
        ),
    )
    out = run(
        _spec({}, stage="predict", inputs=inputs),
        data_dirs,
        job_id="p",
        job_parameters={"model_warehouse": {"model_id": "m", "model_version": "v"}},
    )
    frame = output_frame(data_dirs, out[GUEST], "test_output_data")
    assert frame["a"].tolist() == [100.0, 200.0]  # not scaled
    assert frame["b"].tolist() == [1.0, 0.0]  # strict_range clips into [0, 1]
