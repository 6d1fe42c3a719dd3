"""Layer 4: FATE-Flow's cross-party coordination (job/task state, start, stop, rerun) without Airflow."""

from __future__ import annotations

__all__: list[str] = []
