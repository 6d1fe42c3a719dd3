"""gRPC implementation of the federation ports: gateway server, clients, TLS and serde.

Public entry points: :class:`GatewayServer` (one per party), :class:`GrpcFederation` (data plane of
one task session), :class:`GrpcControlClient` / :class:`AsyncGrpcControlClient` (control plane),
and the configuration classes :class:`GatewayConfig` / :class:`GatewayClientConfig`.
"""

from __future__ import annotations

from fate_airflow.federation.config import GatewayClientConfig, GatewayConfig, load_gateway_config
from fate_airflow.federation.grpc.client import AsyncGrpcControlClient, GrpcControlClient, GrpcFederation
from fate_airflow.federation.grpc.server import GatewayServer, LocalControlClient

__all__ = [
    "AsyncGrpcControlClient",
    "GatewayClientConfig",
    "GatewayConfig",
    "GatewayServer",
    "GrpcControlClient",
    "GrpcFederation",
    "LocalControlClient",
    "load_gateway_config",
]
