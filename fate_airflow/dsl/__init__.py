"""Layer 1: the DSL compiler — FATE job files (1.x DSL v2, 2.x DAG) to a validated execution plan.

Pure Python: imports nothing but :mod:`fate_airflow.core` (never Airflow or gRPC).

* :func:`load_job` / :func:`load_source` read, validate and plan one job; every problem found is
  reported at once in a :class:`~fate_airflow.core.errors.DslError`.
* :func:`discover_jobs` finds the jobs in a drop folder (naming rules in
  :mod:`fate_airflow.dsl.discovery`).
* :func:`job_conf_document` is the document trigger-time overrides are merged into.
* each task's provider (``native`` or an installed one such as ``fate:2.2.0``) is chosen at plan time
  from the ``providers`` given to the loaders (:mod:`fate_airflow.dsl.selection`);
  :func:`fate_component` names FATE 2.2's component for a task that runs on the FATE provider.
"""

from __future__ import annotations

from fate_airflow.core.types import InputRef
from fate_airflow.dsl.discovery import JobSource, SourceError, discover_jobs
from fate_airflow.dsl.loader import job_conf_document, load_job, load_source
from fate_airflow.dsl.merge import deep_merge
from fate_airflow.dsl.plan import JobPlan, PartyTask, TaskPlan
from fate_airflow.dsl.selection import fate_component

__all__ = [
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
