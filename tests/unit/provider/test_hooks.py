"""FederationHook: the ``fate`` connection → clients of the party's own gateway."""

from __future__ import annotations

import json

import pytest

from fate_airflow.core.errors import ConfigError
from fate_airflow.provider.hooks.federation import FederationHook
from tests.unit.provider.conftest import LocalParty


def test_hook_builds_the_client_config_from_the_connection(party_env: LocalParty) -> None:
    cfg = FederationHook().client_config()
    assert cfg.address == party_env.cfg.gateway_address
    assert cfg.party_id == "9999"
    assert cfg.client_cert is not None and cfg.client_cert.endswith("client.crt")


def test_hook_clients_reach_the_gateway_with_mtls(party_env: LocalParty) -> None:
    client = FederationHook().control_client()
    try:
        assert client.ping("9999") >= 0
    finally:
        client.close()


def test_hook_does_not_touch_the_connection_at_construction() -> None:
    FederationHook("no_such_connection")  # parse time: nothing looked up


def test_a_bad_connection_extra_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {
        "conn_type": "fate",
        "host": "127.0.0.1",
        "port": 1,
        "extra": {"party_id": "9999", "colour": "red"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_BROKEN", json.dumps(conn))
    with pytest.raises(ConfigError, match="colour"):
        FederationHook("broken").client_config()
