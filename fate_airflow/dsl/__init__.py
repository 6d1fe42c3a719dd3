"""Layer 1: the DSL compiler — FATE job files (1.x DSL v2, 2.x DAG) to a validated execution plan."""

from __future__ import annotations

__all__: list[str] = []
