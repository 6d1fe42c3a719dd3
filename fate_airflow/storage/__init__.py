"""Layer 2: party storage (tables addressed by namespace/name) and the computing API."""

from __future__ import annotations

__all__: list[str] = []
