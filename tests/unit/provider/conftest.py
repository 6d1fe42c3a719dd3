"""A party for provider tests: a real gateway (mTLS) with the real party service, in this process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fate_airflow.deploy.party import PartyConfig, client_config_dict, init_party
from fate_airflow.federation.config import load_gateway_config
from fate_airflow.federation.grpc import GatewayServer
from fate_airflow.federation.grpc.localnet import free_port
from fate_airflow.scheduler.engine import InMemoryEngine
from fate_airflow.scheduler.service import PartyService
from fate_airflow.scheduler.store import JobStore


@dataclass
class LocalParty:
    cfg: PartyConfig
    service: PartyService
    engine: InMemoryEngine
    server: GatewayServer
    conn_env: str


@pytest.fixture(scope="module")
def party(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalParty]:
    base = tmp_path_factory.mktemp("party")
    cfg = PartyConfig.from_dict({"party_id": "9999", "ports": {"gateway": free_port()}}, base)
    init_party(cfg, migrate=False)
    engine = InMemoryEngine()
    service = PartyService("9999", JobStore(), engine)
    server = GatewayServer(load_gateway_config(cfg.gateway_config_path), handler=service)
    server.start()
    service.attach_control(server.local_control_client())
    conn = json.dumps(
        {"conn_type": "fate", "host": cfg.host, "port": cfg.ports.gateway, "extra": client_config_dict(cfg)}
    )
    try:
        yield LocalParty(cfg, service, engine, server, conn)
    finally:
        server.stop(1.0)
        service.stop()


@pytest.fixture
def party_env(party: LocalParty, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> LocalParty:
    monkeypatch.setenv("AIRFLOW_CONN_FATE_DEFAULT", party.conn_env)
    monkeypatch.setenv("AIRFLOW__FATE__PARTY_ID", party.cfg.party_id)
    monkeypatch.setenv("AIRFLOW__FATE__DATA_DIR", str(party.cfg.data_dir))
    return party
