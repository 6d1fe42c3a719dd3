"""The party's PTP endpoint (FATE's "osx" transport): its port, gateway config and Airflow setting."""

from __future__ import annotations

import json
from pathlib import Path

from fate_airflow.deploy.localfed import create_local_federation
from fate_airflow.deploy.party import PartyConfig, Ports, airflow_env, gateway_config_dict, load_party_config
from fate_airflow.federation.config import GatewayConfig


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
