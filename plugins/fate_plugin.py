"""Shim for deployments that load plugins from ``$AIRFLOW_HOME/plugins`` instead of entry points."""

from fate_airflow.provider.plugin import FatePlugin

__all__ = ["FatePlugin"]
