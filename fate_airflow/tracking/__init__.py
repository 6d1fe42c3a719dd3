"""Layer 2: tracking — metrics, model store and artifact references (never Airflow's DB)."""

from __future__ import annotations

__all__: list[str] = []
