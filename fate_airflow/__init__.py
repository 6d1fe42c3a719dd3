"""fate-airflow: FATE-style federated-learning jobs orchestrated by Apache Airflow 3."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
