"""The party's internal endpoint (FATE's "osx" transport, the workers' plaintext way in): port, socket, configs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from fate_airflow.core.errors import ConfigError
from fate_airflow.deploy.gateway_client import client_config
from fate_airflow.deploy.localfed import create_local_federation
from fate_airflow.deploy.party import (
    PartyConfig,
    Ports,
    airflow_env,
    client_config_dict,
    gateway_config_dict,
    load_party_config,
)
from fate_airflow.federation.config import GatewayClientConfig, GatewayConfig
from tests.conftest import REPO_ROOT


def test_loopback_party_publishes_the_ptp_endpoint(tmp_path: Path) -> None:
    cfg = PartyConfig.from_dict({"party_id": "9999", "ports": {"ptp": 29391}, "insecure": True}, tmp_path)
    assert cfg.ptp_address == "127.0.0.1:29391"
    assert airflow_env(cfg)["AIRFLOW__FATE__PTP_ADDRESS"] == "127.0.0.1:29391"
    doc = gateway_config_dict(cfg)
    assert doc["ptp_listen"] == "127.0.0.1:29391"
    assert GatewayConfig.from_dict(doc).ptp_listen == "127.0.0.1:29391"
    assert _round_trip(cfg, tmp_path).ports.ptp == 29391


def _round_trip(cfg: PartyConfig, tmp_path: Path) -> PartyConfig:
    path = tmp_path / "round-trip.json"
    path.write_text(json.dumps(cfg.to_dict()))
    return load_party_config(path)


def test_party_on_a_network_host_has_no_plaintext_endpoint(tmp_path: Path) -> None:
    cfg = PartyConfig.from_dict({"party_id": "9999", "host": "guest-gateway", "insecure": True}, tmp_path)
    assert cfg.ptp_address is None
    assert "AIRFLOW__FATE__PTP_ADDRESS" not in airflow_env(cfg)
    assert "ptp_listen" not in gateway_config_dict(cfg)


def test_local_federation_gives_each_party_its_own_ptp_port(tmp_path: Path) -> None:
    fed = create_local_federation(tmp_path, ["9999", "10000"], insecure=True)
    ports = {pid: cfg.ports for pid, cfg in fed.parties.items()}
    assert ports["9999"].ptp != ports["10000"].ptp
    assert Ports.ptp not in (ports["9999"].ptp, ports["10000"].ptp)
    # A config written before the PTP port existed gets one of its own, the other ports kept.
    old = json.loads(fed.config_paths["9999"].read_text())
    del old["ports"]["ptp"]
    fed.config_paths["9999"].write_text(json.dumps(old))
    again = create_local_federation(tmp_path, ["9999", "10000"], insecure=True)
    assert again.parties["9999"].ports.gateway == ports["9999"].gateway
    assert again.parties["9999"].ports.ptp not in (Ports.ptp, ports["10000"].ptp)
    assert again.parties["10000"].ports == ports["10000"]


def test_workers_use_the_internal_endpoint_by_default(tmp_path: Path) -> None:
    cfg = PartyConfig.from_dict({"party_id": "9999", "ports": {"ptp": 29391}}, tmp_path)
    env = airflow_env(cfg)
    extra = json.loads(env["AIRFLOW_CONN_FATE_DEFAULT"])["extra"]
    assert extra["internal_address"] == "127.0.0.1:29391" == client_config_dict(cfg)["internal_address"]
    client = client_config(cfg)
    assert client.target == "127.0.0.1:29391" and client.plaintext
    assert client.client_cert is not None  # kept: without internal_address the same settings use mTLS
    # Workers on other hosts: the mTLS endpoint; FATE components still get the PTP address.
    mtls = PartyConfig.from_dict({"party_id": "9999", "worker_endpoint": "mtls"}, tmp_path)
    assert "internal_address" not in client_config_dict(mtls)
    assert not client_config(mtls).plaintext
    assert airflow_env(mtls)["AIRFLOW__FATE__PTP_ADDRESS"] == mtls.ptp_address
    assert _round_trip(mtls, tmp_path).worker_endpoint == "mtls"


def test_a_party_on_a_network_host_may_share_a_unix_socket(tmp_path: Path) -> None:
    cfg = PartyConfig.from_dict(
        {"party_id": "9999", "host": "guest-gateway", "internal_endpoint": "unix:run/gw.sock"}, tmp_path
    )
    socket = f"unix:{tmp_path / 'run' / 'gw.sock'}"
    assert cfg.ptp_address == socket == gateway_config_dict(cfg)["ptp_listen"]
    assert airflow_env(cfg)["AIRFLOW__FATE__PTP_ADDRESS"] == socket
    assert client_config_dict(cfg)["internal_address"] == socket
    assert _round_trip(cfg, tmp_path).internal_endpoint == socket
    with pytest.raises(ConfigError, match=r"internal_endpoint: 10\.0\.0\.5 is not a loopback address"):
        PartyConfig.from_dict({"party_id": "9999", "internal_endpoint": "10.0.0.5:9390"}, tmp_path)
    with pytest.raises(ConfigError, match="worker_endpoint: expected internal or mtls"):
        PartyConfig.from_dict({"party_id": "9999", "worker_endpoint": "tls"}, tmp_path)


def test_compose_wires_each_partys_internal_socket_to_its_own_containers_only(tmp_path: Path) -> None:
    compose = YAML(typ="safe").load((REPO_ROOT / "docker-compose.yaml").read_text())
    services: dict[str, Any] = compose["services"]

    def mounts(service: str) -> dict[str, str]:
        return dict(v.split(":", 1) for v in services[service].get("volumes") or ())

    for name, party_id in (("guest", "9999"), ("host", "10000")):
        cfg = load_party_config(REPO_ROOT / "deploy" / "compose" / f"{name}.yaml")
        # The compose home (/fate/<party>) exists only in the containers; secrets go elsewhere here.
        cfg = replace(cfg, home=tmp_path / name)
        address = cfg.ptp_address
        assert address is not None and address.startswith("unix:/"), "compose parties need a socket"
        folder = str(Path(address[len("unix:") :]).parent)
        volume = f"{name}-gateway-socket"
        assert volume in compose["volumes"]
        users = {service for service in services if volume in mounts(service)}
        airflow = {f"{name}-{c}" for c in ("api", "scheduler", "dag-processor", "triggerer", "worker")}
        assert users == airflow | {f"{name}-gateway"}, "only this party's gateway and Airflow containers"
        for service in users:
            assert mounts(service)[volume] == folder
            assert mounts(service)["fate"] == "/fate"
        # Every long-running process of the party that reads its connection can reach the socket.
        sourcing = {s for s, spec in services.items() if f"/fate/{party_id}/party.env && exec" in str(spec)}
        assert sourcing == airflow
        # The gateway listens there; the connection, and FATE's tasks, use it.
        assert gateway_config_dict(cfg)["ptp_listen"] == address
        env = airflow_env(cfg)
        assert env["AIRFLOW__FATE__PTP_ADDRESS"] == address
        conn = json.loads(env["AIRFLOW_CONN_FATE_DEFAULT"])
        client = GatewayClientConfig.from_dict({**conn["extra"], "address": f"{conn['host']}:{conn['port']}"})
        assert client.target == address and client.plaintext
        assert conn["host"] == f"{name}-gateway"  # the mTLS endpoint stays for workers elsewhere
        # FATE's osx config takes host and integer port, which pyfate joins as "host:port": the
        # socket's name makes that round trip land on the socket itself.
        host, _, port = address.rpartition(":")
        assert f"{host}:{int(port)}" == address
