"""Connectivity doctor behind ``fate-airflow federation check``.

For each peer it runs the steps a connection takes, in order, and stops at the first failure so
the report says exactly what is wrong: name resolution, TCP connect (refused / timeout), the TLS
handshake with the peer's certificate verified against the trusted CAs, the party id bound in that
certificate, and finally a gRPC ``Ping`` through the real stack (which is where a peer that does
not allow us answers PERMISSION_DENIED).
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from cryptography import x509

from fate_airflow.core.errors import ConfigError, FateAirflowError
from fate_airflow.federation.config import GatewayClientConfig, GatewayConfig, parse_address
from fate_airflow.federation.grpc.auth import TrustStore
from fate_airflow.federation.grpc.channel import claimed_identity, client_channel
from fate_airflow.federation.grpc.peers import Peers
from fate_airflow.federation.grpc.status import RemoteStatus
from fate_airflow.federation.pki import identity_of, issued_by
from fate_airflow.proto.federation.v1 import control_pb2


@dataclass(frozen=True)
class CheckResult:
    """Outcome for one peer: ``ok`` with the latency, or the step that failed and why."""

    target: str
    address: str
    ok: bool
    detail: str
    latency: float | None = None

    def line(self) -> str:
        """One report line."""
        status = "OK  " if self.ok else "FAIL"
        latency = f", ping {self.latency * 1000:.1f} ms" if self.latency is not None else ""
        return f"{status} {self.target} at {self.address}: {self.detail}{latency}"


class _Failed(Exception):
    pass


def _resolve_and_connect(address: str, timeout: float) -> tuple[str, int]:
    host, port = parse_address(address, "address")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise _Failed(f"DNS: cannot resolve {host!r} ({exc.strerror})") from None
    last = "no address"
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.settimeout(timeout)
            try:
                sock.connect(sockaddr)
                return host, port
            except ConnectionRefusedError:
                last = f"connection refused at {address} (is the gateway running and listening there?)"
            except TimeoutError:
                last = f"timed out connecting to {address} after {timeout:.0f}s (firewall? wrong host?)"
            except OSError as exc:
                last = f"cannot connect to {address}: {exc.strerror or exc}"
    raise _Failed(last)


def _connect_internal(address: str, timeout: float) -> str:
    """Check that the gateway's party-internal endpoint (unix socket or loopback port) accepts connections."""
    if not address.startswith("unix:"):
        _resolve_and_connect(address, timeout)
        return "reachable (party-internal endpoint, plaintext)"
    path = address[len("unix:") :]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except FileNotFoundError:
            raise _Failed(
                f"no socket at {path} (is the gateway running with ptp_listen: {address}, and is its "
                "folder shared with this process?)"
            ) from None
        except OSError as exc:
            raise _Failed(f"cannot connect to {address}: {exc.strerror or exc}") from None
    return "reachable (party-internal unix socket, plaintext)"


def _tls_identity(
    host: str,
    port: int,
    timeout: float,
    cadata: str,
    cert: str,
    key: str,
    expected_party: str,
    expected_ca: Sequence[x509.Certificate],
) -> str:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # Names are checked below by party id, which tells a wrong party from a wrong host.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=cadata)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["h2"])
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except ssl.SSLCertVerificationError as exc:
        raise _Failed(
            f"TLS: the peer's certificate is not trusted ({exc.verify_message}); is its party CA in "
            "tls.peer_ca_certs?"
        ) from None
    except ssl.SSLError as exc:
        raise _Failed(f"TLS handshake failed: {exc.reason or exc} (does the peer trust our CA?)") from None
    except OSError as exc:
        raise _Failed(f"TLS connection failed: {exc}") from None
    if not der:
        raise _Failed("TLS: the peer presented no certificate")
    peer_cert = x509.load_der_x509_certificate(der)
    ident = identity_of(peer_cert)
    if ident is None:
        raise _Failed("wrong certificate: it carries no fate-party identity (not a fate-airflow gateway?)")
    if ident.kind != "gateway":
        raise _Failed(f"wrong certificate: a {ident.kind} certificate, expected a gateway certificate")
    if ident.party_id != expected_party:
        raise _Failed(
            f"wrong party id: expected the gateway of party {expected_party}, its certificate says party "
            f"{ident.party_id}"
        )
    if not any(issued_by(peer_cert, ca) for ca in expected_ca):
        raise _Failed(f"certificate for party {expected_party} was not issued by party {expected_party}'s CA")
    return f"TLS ok (party {ident.party_id} gateway)"


def _ping_failure(exc: Exception) -> str:
    if isinstance(exc, RemoteStatus):
        code = exc.code
        if code == grpc.StatusCode.PERMISSION_DENIED:
            return f"the peer refused us: {exc.details} (are we in its allowlist/route table?)"
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return f"the peer could not authenticate us: {exc.details}"
        return f"ping failed: {code.name}: {exc.details}"
    return f"ping failed: {exc}"


def check_gateway(config: GatewayConfig, timeout: float = 5.0) -> list[CheckResult]:
    """Check every route of a gateway config (the gateway itself need not run)."""
    trust = None if config.insecure else TrustStore.from_config(config)
    results: list[CheckResult] = []
    if not config.routes:
        return [CheckResult("routes", "-", False, "the route table is empty: this gateway can reach nobody")]
    peers = Peers(config, trust)
    try:
        for target, route in sorted(config.routes.items()):
            label = "default route (*)" if target == "*" else f"party {target}"
            if route.via is not None and route.via != target:
                label += f" via {route.via}"
            try:
                host, port = _resolve_and_connect(route.address, timeout)
                steps = ["reachable"]
                if trust is not None and config.tls is not None:
                    assert route.via is not None
                    try:
                        cas = x509.load_pem_x509_certificates(trust.root_pem_for(route.via))
                    except ConfigError as exc:
                        raise _Failed(str(exc)) from None
                    # Verify against every trusted CA first, so a trusted peer answering under the
                    # wrong party id is reported as exactly that rather than as "untrusted".
                    bundle = trust.bundle.decode("ascii")
                    cert, key = str(config.tls.cert), str(config.tls.key)
                    steps.append(_tls_identity(host, port, timeout, bundle, cert, key, route.via, cas))
                dst = route.via if target == "*" and route.via else target
                if dst == "*":
                    raise _Failed("default route without `via`: cannot ping a hub of unknown party")
                raw = bytes(control_pb2.PingRequest(dst_party_id=dst).SerializeToString())
                start = time.perf_counter()
                try:
                    peers.ping(dst, config.party_id, 1, raw, timeout)
                except (FateAirflowError, RemoteStatus) as exc:
                    raise _Failed(_ping_failure(exc)) from None
                latency = time.perf_counter() - start
                results.append(CheckResult(label, route.address, True, ", ".join(steps), latency))
            except _Failed as exc:
                results.append(CheckResult(label, route.address, False, str(exc)))
    finally:
        peers.close()
    return results


def check_client(
    config: GatewayClientConfig, peers: Sequence[str] = (), timeout: float = 5.0
) -> list[CheckResult]:
    """Check a worker's path to its gateway, then (optionally) ping ``peers`` through it."""
    results: list[CheckResult] = []
    label = f"local gateway of party {config.server_party_id}"
    try:
        if config.internal_address is not None:
            detail = _connect_internal(config.internal_address, timeout)
        elif config.insecure:
            _resolve_and_connect(config.address, timeout)
            detail = "reachable"
        else:
            host, port = _resolve_and_connect(config.address, timeout)
            assert config.ca_cert and config.client_cert and config.client_key
            with open(config.ca_cert, encoding="ascii") as fh:
                cadata = fh.read()
            cas = x509.load_pem_x509_certificates(cadata.encode())
            detail = _tls_identity(
                host,
                port,
                timeout,
                cadata,
                config.client_cert,
                config.client_key,
                config.server_party_id,
                cas,
            )
    except _Failed as exc:
        return [CheckResult(label, config.target, False, str(exc))]
    channel = client_channel(config)
    ping = channel.unary_unary(
        "/fate_airflow.federation.v1.Control/Ping",
        request_serializer=lambda m: bytes(m.SerializeToString()),
        response_deserializer=control_pb2.PingReply.FromString,
    )
    metadata = tuple(claimed_identity(config.party_id, "client", config.plaintext))
    try:
        for target in [config.party_id, *peers]:
            name = label if target == config.party_id else f"party {target} (through the local gateway)"
            start = time.perf_counter()
            try:
                ping(control_pb2.PingRequest(dst_party_id=target), metadata=metadata, timeout=timeout)
            except grpc.RpcError as err:
                failure = RemoteStatus(err.code(), err.details() or "", None)
                results.append(CheckResult(name, config.target, False, _ping_failure(failure)))
                continue
            latency = time.perf_counter() - start
            results.append(
                CheckResult(name, config.target, True, detail if target == config.party_id else "ok", latency)
            )
    finally:
        channel.close()
    return results


__all__ = ["CheckResult", "check_client", "check_gateway"]
