"""Pins the public surface of fate_airflow.dsl (other packages code against it)."""

from __future__ import annotations

import fate_airflow.dsl as dsl


def test_public_names() -> None:
    assert sorted(dsl.__all__) == [
        "InputRef",
        "JobPlan",
        "JobSource",
        "PartyTask",
        "SourceError",
        "TaskPlan",
        "deep_merge",
        "discover_jobs",
        "fate_component",
        "job_conf_document",
        "load_job",
        "load_source",
    ]
    for name in dsl.__all__:
        assert getattr(dsl, name) is not None
