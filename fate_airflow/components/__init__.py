"""Layer 3: federated ML components and their registry.

Entry point for the scheduler: :func:`fate_airflow.components.runtime.run_party_task`.
"""

from __future__ import annotations

from fate_airflow.components.api import Component, PartyTaskRequest, PartyTaskResult

__all__ = ["Component", "PartyTaskRequest", "PartyTaskResult"]
