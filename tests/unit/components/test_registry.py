from __future__ import annotations

import pytest

from fate_airflow.components.registry import IMPLEMENTED, PLANNED, catalogue, get_component, status
from fate_airflow.components.simulate import TaskSpec, simulate
from fate_airflow.core.errors import ComponentError, NotImplementedComponentError

from .conftest import GUEST, HOST, JOB_ID

EXPECTED_IMPLEMENTED = {
    "reader@1.0.0",
    "data_transform@1.0.0",
    "intersection@1.0.0",
    "feature_scale@1.0.0",
    "hetero_lr@1.0.0",
    "evaluation@1.0.0",
    "toy_example@1.0.0",
}


def test_catalogue_ids() -> None:
    assert set(IMPLEMENTED) == EXPECTED_IMPLEMENTED
    assert "hetero_secureboost@1.0.0" in PLANNED
    assert not set(IMPLEMENTED) & PLANNED
    assert len(PLANNED) >= 17
    assert catalogue()["upload@1.0.0"] == "planned"
    assert status("nope@1.0.0") == "unknown"


def test_planned_component_raises_clear_error() -> None:
    with pytest.raises(
        NotImplementedComponentError,
        match=r"component HeteroSecureBoost \(hetero_secureboost@1\.0\.0\) is not implemented yet",
    ):
        get_component("hetero_secureboost@1.0.0", "HeteroSecureBoost")


def test_unknown_component() -> None:
    with pytest.raises(ComponentError, match="unknown component implementation"):
        get_component("frobnicate@9.9.9")


def test_running_a_planned_component_never_succeeds(data_dirs: dict[str, str]) -> None:
    spec = TaskSpec("sbt_0", "hetero_secureboost@1.0.0", (GUEST, HOST), component="HeteroSecureBoost")
    out = simulate(spec, job_id=JOB_ID, data_dirs=data_dirs)
    for party in (GUEST, HOST):
        assert isinstance(out[party].error, NotImplementedComponentError)
        assert "is not implemented yet" in str(out[party].error)
