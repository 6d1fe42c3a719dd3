"""Gateway and client configuration: loading, defaults and errors naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fate_airflow.core.errors import ConfigError
from fate_airflow.federation.config import (
    DEFAULT_PER_PEER_QUOTA_BYTES,
    DEFAULT_SPOOL_QUOTA_BYTES,
    GatewayClientConfig,
    GatewayConfig,
    Route,
    load_gateway_config,
    parse_address,
)
from fate_airflow.federation.grpc.localnet import provision


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    files = provision(tmp_path_factory.mktemp("pki"), ["9999", "10000"])["9999"]
    return {"ca_cert": str(files.ca_cert), "cert": str(files.gateway_cert), "key": str(files.gateway_key)}


def _doc(tls_files: dict[str, Any], **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "party_id": 9999,
        "listen": "127.0.0.1:0",
        "data_dir": "data",
        "tls": tls_files,
        "routes": {"10000": "10.0.0.2:9370", "*": {"address": "hub:9370", "via": "hub"}},
    }
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not None}


def _minimal(tls_files: dict[str, Any]) -> dict[str, Any]:
    return {"party_id": "9999", "listen": "127.0.0.1:0", "data_dir": "state", "tls": tls_files,
            "routes": {"10001": {"address": "10.0.0.9:9370", "via": "hub"}}}  # fmt: skip


def load_gateway_config_doc(folder: Path, doc: dict[str, Any]) -> Any:
    path = folder / "named.json"
    path.write_text(json.dumps(doc))
    return load_gateway_config(path)


def test_yaml_file_with_defaults(tmp_path: Path, tls: dict[str, Any]) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text(
        f"""
party_id: "9999"
listen: 127.0.0.1:9370
data_dir: state
tls:
  ca_cert: {tls["ca_cert"]}
  cert: {tls["cert"]}
  key: {tls["key"]}
routes:
  "10000": 10.0.0.2:9370
  "10001": {{address: "10.0.0.9:9370", via: hub}}
limits: {{chunk_bytes: 2097152}}
"""
    )
    config = load_gateway_config(path)
    assert config.party_ids == ("9999",)
    assert config.data_dir == tmp_path / "state" and config.spool_dir == tmp_path / "state" / "spool"
    assert config.routes["10000"] == Route("10.0.0.2:9370", "10000")
    assert config.route_for("10001") == Route("10.0.0.9:9370", "hub")
    assert config.route_for("12345") is None
    # Sending through the hub does not make it trusted to speak for others: that takes trusted_relays.
    assert config.effective_relays == frozenset()
    assert config.effective_allow == {"10000", "10001"}
    named = load_gateway_config_doc(tmp_path, {**_minimal(tls), "trusted_relays": ["hub"]})
    assert named.effective_relays == {"hub"} and "hub" in named.effective_allow
    assert config.limits.chunk_bytes == 2 << 20 and config.limits.max_frame_bytes > 2 << 20
    assert config.spool.fsync == "always"  # the safe default


def test_json_file_and_default_route(tmp_path: Path, tls: dict[str, Any]) -> None:
    path = tmp_path / "gw.json"
    path.write_text(json.dumps(_doc(tls, allow=["10000"], trusted_relays=[], spool={"fsync": "never"})))
    config = load_gateway_config(path)
    assert config.spool.fsync == "never"
    assert config.route_for("55555") == Route("hub:9370", "hub")
    assert config.effective_relays == frozenset()
    assert config.effective_allow == {"10000"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"party_id": None}, "party_id: missing"),
        ({"party_id": "bad id"}, "party_id: invalid party id"),
        ({"listen": "nohostport"}, "listen: expected 'host:port'"),
        ({"listen": "127.0.0.1:99999"}, "listen: port 99999 out of range"),
        ({"data_dir": None}, "data_dir: missing"),
        ({"tls": None}, "tls: missing"),
        ({"insecure": True}, "insecure: true cannot be combined with tls"),
        ({"insecure": "yes"}, "insecure: expected true or false"),
        ({"routes": {"10000": 5}}, "routes.10000: expected 'host:port'"),
        ({"routes": {"10000": "a:b"}}, "routes.10000: port 'b'"),
        ({"routes": {"*": "hub:1"}}, r"routes\.\*: the default route needs `via"),
        ({"routes": {"9999": "x:1"}}, "routes.9999: party 9999 is served by this gateway"),
        ({"routes": {"1": {"addr": "x:1"}}}, r"routes\.1: unknown field\(s\) addr"),
        ({"limits": {"chunk_bytes": 10}}, "limits.chunk_bytes: must be >= 1024"),
        ({"limits": {"max_message_bytes": "big"}}, "limits.max_message_bytes: expected an integer"),
        ({"retention": {"max_age_seconds": -1}}, "retention.max_age_seconds: must be >= 0"),
        ({"allow": "10000"}, "allow: expected a list"),
        ({"colour": "blue"}, r"config: unknown field\(s\) colour"),
        ({"log_level": "LOUD"}, "log_level"),
        ({"spool": {"fsync": "sometimes"}}, "spool.fsync: expected always or never"),
        ({"spool": {"sync": "never"}}, r"spool: unknown field\(s\) sync"),
    ],
)
def test_errors_name_the_field(
    tmp_path: Path, tls: dict[str, Any], changes: dict[str, Any], message: str
) -> None:
    path = tmp_path / "gw.json"
    path.write_text(json.dumps(_doc(tls, **changes)))
    with pytest.raises(ConfigError, match=message) as info:
        load_gateway_config(path)
    assert str(info.value).startswith(str(path))


def test_missing_certificate_file_is_named(tmp_path: Path, tls: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"tls\.key: file .*nope\.key does not exist"):
        GatewayConfig.from_dict(_doc({**tls, "key": "nope.key"}), tmp_path)


def test_unreadable_documents(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_gateway_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="invalid JSON"):
        load_gateway_config(bad)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("a: [unclosed")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_gateway_config(bad_yaml)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_gateway_config(scalar)


def test_insecure_gateway_needs_no_tls(tmp_path: Path) -> None:
    config = GatewayConfig.from_dict(
        {"party_ids": ["9999", "9998"], "data_dir": "d", "insecure": True, "routes": {"*": "hub:1"}}, tmp_path
    )
    assert config.party_id == "9999" and config.listen == "0.0.0.0:9370"
    assert config.route_for("1") == Route("hub:1", None)


def test_parse_address() -> None:
    assert parse_address("[::1]:80", "x") == ("::1", 80)
    with pytest.raises(ConfigError, match="missing host"):
        parse_address(":80", "x")


def test_client_config_round_trip_and_errors(tmp_path: Path) -> None:
    config = GatewayClientConfig("127.0.0.1:9370", "9999", "ca.crt", "client.crt", "client.key")
    assert GatewayClientConfig.from_dict(config.to_dict()) == config
    assert json.loads(json.dumps(config.to_dict())) == config.to_dict()
    assert config.server_party_id == "9999"
    insecure = GatewayClientConfig.from_dict({"address": "h:1", "party_id": 10000, "insecure": True})
    assert insecure.party_id == "10000"
    with pytest.raises(ConfigError, match="insecure: true cannot be combined"):
        GatewayClientConfig("h:1", "1", ca_cert="x", insecure=True)
    with pytest.raises(ConfigError, match="all required"):
        GatewayClientConfig("h:1", "1", ca_cert="x")
    with pytest.raises(ConfigError, match=r"unknown field\(s\) colour"):
        GatewayClientConfig.from_dict({"address": "h:1", "party_id": "1", "insecure": True, "colour": 1})
    with pytest.raises(ConfigError, match="address missing"):
        GatewayClientConfig.from_dict({"party_id": "1"})
    path = tmp_path / "client.yaml"
    path.write_text("address: h:1\nparty_id: '9'\nca_cert: ca.crt\nclient_cert: c.crt\nclient_key: c.key\n")
    loaded = GatewayClientConfig.load(path)
    assert loaded.ca_cert == str(tmp_path / "ca.crt")


def test_spool_quotas_default_parse_and_errors(tmp_path: Path, tls: dict[str, Any]) -> None:
    default = GatewayConfig.from_dict(_doc(tls), tmp_path)
    assert default.spool.quota_bytes == DEFAULT_SPOOL_QUOTA_BYTES
    assert default.spool.per_peer_quota_bytes == DEFAULT_PER_PEER_QUOTA_BYTES
    # The largest message the gateway accepts must fit one party's share, which fits the whole.
    assert default.limits.max_message_bytes <= DEFAULT_PER_PEER_QUOTA_BYTES <= DEFAULT_SPOOL_QUOTA_BYTES
    config = GatewayConfig.from_dict(
        _doc(
            tls,
            spool={"fsync": "never", "quota_bytes": 4 << 20, "per_peer_quota_bytes": 2 << 20},
            limits={"max_message_bytes": 1 << 20},
        ),
        tmp_path,
    )
    assert (config.spool.fsync, config.spool.quota_bytes, config.spool.per_peer_quota_bytes) == (
        "never",
        4 << 20,
        2 << 20,
    )
    for spool, limits, match in (
        ({"quota_bytes": "lots"}, None, "spool.quota_bytes: expected an integer"),
        ({"per_peer_quota_bytes": 0}, None, "spool.per_peer_quota_bytes: must be >= 1"),
        ({"quota_bytes": 10, "per_peer_quota_bytes": 20}, None, "spool.per_peer_quota_bytes: 20 is larger"),
        ({"per_peer_quota_bytes": 1 << 20}, None, "limits.max_message_bytes: .* spool.per_peer_quota_bytes"),
        ({"quota": 1}, None, r"spool: unknown field\(s\) quota"),
    ):
        with pytest.raises(ConfigError, match=match):
            GatewayConfig.from_dict(_doc(tls, spool=spool, limits=limits), tmp_path)


def test_client_config_for_the_internal_endpoint(tmp_path: Path) -> None:
    internal = GatewayClientConfig("127.0.0.1:9370", "9999", internal_address="unix:/run/fate/gw.sock")
    assert internal.plaintext and internal.target == "unix:/run/fate/gw.sock"
    assert GatewayClientConfig.from_dict(internal.to_dict()) == internal
    # The certificates may stay (the same settings serve a worker on another host without it).
    both = GatewayClientConfig(
        "gw:9370", "9999", "ca.crt", "client.crt", "client.key", internal_address="127.0.0.1:9390"
    )
    assert both.plaintext and both.target == "127.0.0.1:9390"
    mtls = GatewayClientConfig("gw:9370", "9999", "ca.crt", "client.crt", "client.key")
    assert not mtls.plaintext and mtls.target == "gw:9370"
    with pytest.raises(ConfigError, match=r"internal_address: 10\.0\.0\.2 is not a loopback address"):
        GatewayClientConfig("gw:9370", "9999", internal_address="10.0.0.2:9390")
    with pytest.raises(ConfigError, match="internal_address: missing socket path"):
        GatewayClientConfig("gw:9370", "9999", internal_address="unix:")
    with pytest.raises(ConfigError, match="all required together"):
        GatewayClientConfig("gw:9370", "9999", ca_cert="ca.crt", internal_address="unix:/x.sock")
    path = tmp_path / "client.yaml"
    path.write_text("address: h:1\nparty_id: '9'\ninternal_address: 'unix:run/gw.sock'\n")
    assert GatewayClientConfig.load(path).internal_address == f"unix:{tmp_path / 'run' / 'gw.sock'}"
