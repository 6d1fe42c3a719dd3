"""Layer 3: federated ML components and their registry."""

from __future__ import annotations

__all__: list[str] = []
