"""Airflow hooks of the FATE provider."""

from __future__ import annotations

from fate_airflow.provider.hooks.federation import FederationHook

__all__ = ["FederationHook"]
