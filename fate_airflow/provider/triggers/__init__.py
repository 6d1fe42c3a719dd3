"""Airflow triggers of the FATE provider."""

from __future__ import annotations

from fate_airflow.provider.triggers.task_start import TaskStartTrigger

__all__ = ["TaskStartTrigger"]
