"""Clients of a party's own gateway, built from the party config (CLI and health checks)."""

from __future__ import annotations

from fate_airflow.core.errors import FateAirflowError
from fate_airflow.deploy.party import PartyConfig, client_config_dict
from fate_airflow.federation.config import GatewayClientConfig
from fate_airflow.federation.grpc.client import GrpcControlClient


def client_config(cfg: PartyConfig) -> GatewayClientConfig:
    """How this party's tools reach its gateway."""
    return GatewayClientConfig.from_dict({**client_config_dict(cfg), "address": cfg.gateway_address})


def control_client(cfg: PartyConfig) -> GrpcControlClient:
    """A control-plane client speaking as this party."""
    return GrpcControlClient(client_config(cfg))


def gateway_alive(cfg: PartyConfig, timeout: float = 2.0) -> bool:
    """True when the party's gateway answers a ping addressed to the party itself."""
    try:
        client = control_client(cfg)
    except FateAirflowError:
        return False
    try:
        client.ping(cfg.party_id, timeout=timeout)
        return True
    except FateAirflowError:
        return False
    finally:
        client.close()


__all__ = ["client_config", "control_client", "gateway_alive"]
