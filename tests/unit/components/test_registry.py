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
    "hetero_secureboost@1.0.0",
    "homo_lr@1.0.0",
    "evaluation@1.0.0",
    "toy_example@1.0.0",
}


def test_the_dsl_marks_exactly_the_implemented_entries_native() -> None:
    # The DSL cannot import the components (layers), so the catalogue repeats the list: keep them equal.
    from fate_airflow.dsl.catalogue import ENTRIES, NATIVE_IMPLEMENTATIONS

    assert set(IMPLEMENTED) == NATIVE_IMPLEMENTATIONS
    assert {e.implementation for e in ENTRIES if not e.native} & set(IMPLEMENTED) == set()


def test_catalogue_ids() -> None:
    assert set(IMPLEMENTED) == EXPECTED_IMPLEMENTED
    assert "hetero_feature_binning@1.0.0" in PLANNED
    assert not set(IMPLEMENTED) & PLANNED
    assert len(PLANNED) >= 17
    assert catalogue()["upload@1.0.0"] == "planned"
    assert status("nope@1.0.0") == "unknown"


def test_planned_component_raises_clear_error() -> None:
    with pytest.raises(
        NotImplementedComponentError,
        match=r"component HeteroFeatureBinning \(hetero_feature_binning@1\.0\.0\) is not implemented yet",
    ):
        get_component("hetero_feature_binning@1.0.0", "HeteroFeatureBinning")


def test_unknown_component() -> None:
    with pytest.raises(ComponentError, match="unknown component implementation"):
        get_component("frobnicate@9.9.9")


def test_running_a_planned_component_never_succeeds(data_dirs: dict[str, str]) -> None:
    spec = TaskSpec(
        "binning_0", "hetero_feature_binning@1.0.0", (GUEST, HOST), component="HeteroFeatureBinning"
    )
    out = simulate(spec, job_id=JOB_ID, data_dirs=data_dirs)
    for party in (GUEST, HOST):
        assert isinstance(out[party].error, NotImplementedComponentError)
        assert "is not implemented yet" in str(out[party].error)


def test_every_implemented_id_resolves_to_a_component_class() -> None:
    from fate_airflow.components.api import Component
    from fate_airflow.components.registry import component_class

    for implementation in IMPLEMENTED:
        assert issubclass(component_class(implementation), Component)


def test_the_dsl_catalogue_and_the_registry_agree() -> None:
    """Every id a job can plan to is either runnable or fails as "not implemented" — none is unknown."""
    from fate_airflow.dsl.catalogue import BY_IMPLEMENTATION

    assert {i for i in BY_IMPLEMENTATION if status(i) == "unknown"} == set()
