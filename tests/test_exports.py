"""The public surfaces other code builds on stay put (house style: pinned exports)."""

from __future__ import annotations

import importlib

import pytest

EXPECTED = {
    "fate_airflow.dsl": {
        "InputRef", "JobPlan", "JobSource", "PartyTask", "SourceError", "TaskPlan", "deep_merge",
        "discover_jobs", "fate_component", "job_conf_document", "load_job", "load_source",
    },
    "fate_airflow.provider": {
        "FederatedComponentOperator", "FederationHook", "InvalidJobFileOperator", "TaskStartTrigger",
        "build_job_dag", "load_job_dags", "load_party_dags",
    },
    "fate_airflow.federation.api": {
        "Federation", "FederationSession", "ControlClient", "CommandHandler", "CreateJob", "PrepareTask",
        "ReportTaskStatus", "QueryJob", "StopJob", "RerunJob", "JobView", "TaskStartDecision",
    },
}  # fmt: skip


@pytest.mark.parametrize("module", sorted(EXPECTED))
def test_public_names_are_exported(module: str) -> None:
    mod = importlib.import_module(module)
    missing = sorted(name for name in EXPECTED[module] if name not in mod.__all__ or not hasattr(mod, name))
    assert missing == []
