"""gRPC implementation of the federation ports: gateway server, clients, TLS and serde."""

from __future__ import annotations

__all__: list[str] = []
