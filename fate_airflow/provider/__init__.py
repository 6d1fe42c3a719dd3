"""Layer 6: the Airflow adapters — the only package that imports ``airflow``.

Public surface: the operator that runs one federated component at this party, the placeholder
operator of broken job files, the federation hook, the start trigger and the DAG factory. The UI
plugin lives in :mod:`fate_airflow.provider.plugin` (loaded by Airflow through its entry point).

The names are resolved lazily: Airflow imports :mod:`fate_airflow.provider.get_provider_info` while
it is still initialising its own configuration, so importing this package must not import Airflow.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FederatedComponentOperator": "fate_airflow.provider.operators.component",
    "FederationHook": "fate_airflow.provider.hooks.federation",
    "InvalidJobFileOperator": "fate_airflow.provider.operators.invalid",
    "TaskStartTrigger": "fate_airflow.provider.triggers.task_start",
    "build_job_dag": "fate_airflow.provider.dag_factory",
    "load_job_dags": "fate_airflow.provider.dag_factory",
    "load_party_dags": "fate_airflow.provider.dag_factory",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
