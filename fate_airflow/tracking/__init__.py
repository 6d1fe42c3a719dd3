"""Layer 2: tracking — metrics, model store and artifact references (never Airflow's DB)."""

from __future__ import annotations

from fate_airflow.tracking.metrics import MetricsStore
from fate_airflow.tracking.model_store import (
    EXPORT_FORMAT,
    MODEL_SCHEME,
    ModelKey,
    ModelStore,
    ModelVersionInfo,
    StoredModel,
    make_model_id,
    party_model_id,
)

__all__ = [
    "EXPORT_FORMAT",
    "MODEL_SCHEME",
    "MetricsStore",
    "ModelKey",
    "ModelStore",
    "ModelVersionInfo",
    "StoredModel",
    "make_model_id",
    "party_model_id",
]
