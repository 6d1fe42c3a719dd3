"""Test helpers shipped with the package: simulated parties on the in-memory federation."""

from __future__ import annotations

__all__: list[str] = []
