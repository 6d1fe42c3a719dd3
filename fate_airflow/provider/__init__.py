"""Layer 6: the Airflow adapters — the only package that imports ``airflow``."""

from __future__ import annotations

__all__: list[str] = []
