"""Set up several parties' gateways on one machine: PKI, config files, client configs.

Used by the tests, the benchmark and local demos. Everything listens on loopback; each party gets
its own CA, a gateway certificate and a client certificate, and every gateway trusts every other
party's CA.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fate_airflow.federation.config import GatewayClientConfig, GatewayConfig
from fate_airflow.federation.pki import init_ca, issue_certificate


@dataclass(frozen=True)
class PartyFiles:
    """Certificates of one party, as written by :func:`provision`."""

    party_id: str
    ca_cert: Path
    ca_dir: Path
    gateway_cert: Path
    gateway_key: Path
    client_cert: Path
    client_key: Path


def provision(
    root: Path | str, party_ids: Sequence[str], hosts: Sequence[str] = ("127.0.0.1", "localhost")
) -> dict[str, PartyFiles]:
    """Create a CA plus gateway and client certificates for each party under ``root/<party>/``."""
    out: dict[str, PartyFiles] = {}
    for party in party_ids:
        base = Path(root) / party
        ca_cert = init_ca(party, base / "ca", overwrite=True)
        gateway = issue_certificate(base / "ca", party, "gateway", base / "gateway", hosts=hosts)
        client = issue_certificate(base / "ca", party, "client", base / "client")
        out[party] = PartyFiles(
            party, ca_cert, base / "ca", gateway.cert, gateway.key, client.cert, client.key
        )
    return out


def free_port(host: str = "127.0.0.1") -> int:
    """A currently free TCP port on ``host`` (tests; another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def gateway_document(
    party_id: str,
    *,
    listen: str,
    data_dir: Path | str,
    routes: Mapping[str, Any],
    files: Mapping[str, PartyFiles] | None = None,
    insecure: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """A gateway config document for ``party_id`` trusting every other party in ``files``."""
    doc: dict[str, Any] = {
        "party_id": party_id,
        "listen": listen,
        "data_dir": str(data_dir),
        "routes": dict(routes),
    }
    if insecure:
        doc["insecure"] = True
    else:
        assert files is not None, "TLS needs the parties' files"
        own = files[party_id]
        doc["tls"] = {
            "ca_cert": str(own.ca_cert),
            "cert": str(own.gateway_cert),
            "key": str(own.gateway_key),
            "peer_ca_certs": [str(f.ca_cert) for p, f in sorted(files.items()) if p != party_id],
        }
    doc.update(extra)
    return doc


def write_config(path: Path | str, document: Mapping[str, Any]) -> Path:
    """Write a config document as JSON; returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=2))
    return target


def gateway_config(document: Mapping[str, Any]) -> GatewayConfig:
    """Build the :class:`GatewayConfig` of a document (absolute paths)."""
    return GatewayConfig.from_dict(document)


def client_config(
    party_id: str, address: str, files: Mapping[str, PartyFiles] | None = None, **extra: Any
) -> GatewayClientConfig:
    """The client config of one of ``party_id``'s workers (insecure when ``files`` is None)."""
    if files is None:
        return GatewayClientConfig(address=address, party_id=party_id, insecure=True, **extra)
    own = files[party_id]
    return GatewayClientConfig(
        address=address,
        party_id=party_id,
        ca_cert=str(own.ca_cert),
        client_cert=str(own.client_cert),
        client_key=str(own.client_key),
        **extra,
    )


__all__ = [
    "PartyFiles",
    "client_config",
    "free_port",
    "gateway_config",
    "gateway_document",
    "provision",
    "write_config",
]
