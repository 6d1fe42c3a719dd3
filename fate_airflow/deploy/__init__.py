"""Party runtime: per-party configuration, Airflow home preparation and process management."""

from __future__ import annotations

__all__: list[str] = []
