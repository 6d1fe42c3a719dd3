"""Airflow operators of the FATE provider."""

from __future__ import annotations

from fate_airflow.provider.operators.component import FederatedComponentOperator
from fate_airflow.provider.operators.invalid import InvalidJobFileOperator

__all__ = ["FederatedComponentOperator", "InvalidJobFileOperator"]
