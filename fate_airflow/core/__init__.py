"""Layer 0: errors and value types shared by every other layer (stdlib only)."""

from __future__ import annotations

from fate_airflow.core.errors import (
    ComponentError,
    ConfigError,
    DslError,
    FateAirflowError,
    FederationError,
    FederationTimeout,
    NotImplementedComponentError,
    PlanError,
    SchedulingError,
    StorageError,
)
from fate_airflow.core.types import PARTY_ID_PATTERN, InputRef, Party, Role, validate_party_id

__all__ = [
    "PARTY_ID_PATTERN",
    "ComponentError",
    "ConfigError",
    "DslError",
    "FateAirflowError",
    "FederationError",
    "FederationTimeout",
    "InputRef",
    "NotImplementedComponentError",
    "Party",
    "PlanError",
    "Role",
    "SchedulingError",
    "StorageError",
    "validate_party_id",
]
