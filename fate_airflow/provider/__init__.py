"""Layer 6: the Airflow adapters — the only package that imports ``airflow``.

Public surface: the operator that runs one federated component at this party, the placeholder
operator of broken job files, the federation hook, the start trigger and the DAG factory. The UI
plugin lives in :mod:`fate_airflow.provider.plugin` (loaded by Airflow through its entry point).
"""

from __future__ import annotations

from fate_airflow.provider.dag_factory import build_job_dag, load_job_dags, load_party_dags
from fate_airflow.provider.hooks.federation import FederationHook
from fate_airflow.provider.operators.component import FederatedComponentOperator
from fate_airflow.provider.operators.invalid import InvalidJobFileOperator
from fate_airflow.provider.triggers.task_start import TaskStartTrigger

__all__ = [
    "FederatedComponentOperator",
    "FederationHook",
    "InvalidJobFileOperator",
    "TaskStartTrigger",
    "build_job_dag",
    "load_job_dags",
    "load_party_dags",
]
