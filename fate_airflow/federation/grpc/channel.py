"""Every gRPC server and channel of the federation is built here: TLS, size limits, keepalive.

Contradictory settings (TLS material plus ``insecure``) are refused by the config classes before
anything reaches this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc

from fate_airflow.core.errors import ConfigError
from fate_airflow.federation.config import GatewayClientConfig, GatewayConfig, Limits
from fate_airflow.federation.pki import party_dns_name

#: Frames a client accepts from its own gateway: the largest chunk a gateway may be configured
#: with plus the frame's fields. Clients trust their gateway; the gateway bounds what it accepts.
CLIENT_MAX_RECEIVE = (64 << 20) + (64 << 10)

# Keepalive: some networks and cloud load balancers silently drop TCP connections idle for ~4
# minutes, and a `get` may wait far longer than that for its message. Pinging every 60 s keeps
# the connection alive and notices a dead peer within ~80 s instead of hanging.
_KEEPALIVE: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # gRPC's default reconnect backoff grows to 120 s: after a 30 s partition a peer would stay
    # unreachable for up to a minute more, long enough to fail jobs on the party timeout.
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 5_000),
]


def _read(path: Path | str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from None


def server_options(limits: Limits) -> list[tuple[str, Any]]:
    """Options of a gateway server: frame limits from the config, keepalive tolerant of clients."""
    return [
        ("grpc.max_receive_message_length", limits.max_frame_bytes),
        ("grpc.max_send_message_length", CLIENT_MAX_RECEIVE),
        # Accept the clients' 60 s keepalive pings without calls in flight.
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 30_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        # One gateway per port: a second one must fail to bind instead of silently sharing it.
        ("grpc.so_reuseport", 0),
    ]


def channel_options(max_send: int, max_receive: int, target_name: str | None = None) -> list[tuple[str, Any]]:
    """Options of an outgoing channel; ``target_name`` overrides the TLS name checked."""
    options: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", max_send),
        ("grpc.max_receive_message_length", max_receive),
        # Never share a connection with another channel: each has its own credentials.
        ("grpc.use_local_subchannel_pool", 1),
        *_KEEPALIVE,
    ]
    if target_name is not None:
        options.append(("grpc.ssl_target_name_override", target_name))
        options.append(("grpc.default_authority", target_name))
    return options


def create_server(config: GatewayConfig, root_bundle: bytes | None) -> tuple[grpc.Server, int]:
    """Create and bind (not start) a gateway server; returns it with the bound port.

    With TLS every caller must present a certificate chaining to ``root_bundle`` (the gateway's own
    CA plus the peer CAs); which party it may act for is checked per call by the servicer.
    """
    server = grpc.server(
        ThreadPoolExecutor(max_workers=config.limits.max_workers, thread_name_prefix="gateway"),
        options=server_options(config.limits),
        maximum_concurrent_rpcs=config.limits.max_workers * 4,
    )
    if config.insecure:
        port = server.add_insecure_port(config.listen)
    else:
        assert config.tls is not None and root_bundle is not None
        creds = grpc.ssl_server_credentials(
            [(_read(config.tls.key, "tls.key"), _read(config.tls.cert, "tls.cert"))],
            root_certificates=root_bundle,
            require_client_auth=True,
        )
        port = server.add_secure_port(config.listen, creds)
    if port == 0:
        raise ConfigError(f"listen: cannot bind {config.listen} (address in use or not local?)")
    return server, port


def _client_credentials(
    ca_pem: bytes, cert_path: Path | str, key_path: Path | str
) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca_pem,
        private_key=_read(key_path, "private key"),
        certificate_chain=_read(cert_path, "certificate"),
    )


def peer_channel(
    config: GatewayConfig, address: str, via_party: str | None, root_pem: bytes | None
) -> grpc.Channel:
    """A gateway's channel to the gateway of ``via_party`` at ``address``.

    The TLS roots are only that party's CA and the checked name is that party's DNS name, so the
    handshake fails unless the server really is ``via_party``'s gateway.
    """
    options = channel_options(
        max_send=config.limits.max_frame_bytes + CLIENT_MAX_RECEIVE, max_receive=CLIENT_MAX_RECEIVE
    )
    if config.insecure:
        return grpc.insecure_channel(address, options=options)
    assert config.tls is not None and root_pem is not None and via_party is not None
    name = party_dns_name(via_party)
    return grpc.secure_channel(
        address,
        _client_credentials(root_pem, config.tls.cert, config.tls.key),
        options=channel_options(
            max_send=config.limits.max_frame_bytes + CLIENT_MAX_RECEIVE,
            max_receive=CLIENT_MAX_RECEIVE,
            target_name=name,
        ),
    )


def _client_parts(
    config: GatewayClientConfig,
) -> tuple[grpc.ChannelCredentials | None, list[tuple[str, Any]]]:
    max_send = config.chunk_bytes + (64 << 10)
    if config.plaintext:
        return None, channel_options(max_send, CLIENT_MAX_RECEIVE)
    assert config.ca_cert and config.client_cert and config.client_key
    creds = _client_credentials(_read(config.ca_cert, "ca_cert"), config.client_cert, config.client_key)
    return creds, channel_options(
        max_send, CLIENT_MAX_RECEIVE, target_name=party_dns_name(config.server_party_id)
    )


def client_channel(config: GatewayClientConfig) -> grpc.Channel:
    """A worker's or scheduler's channel to its own party's gateway (sync).

    Plaintext to the gateway's party-internal endpoint when the config names one, else mTLS.
    """
    creds, options = _client_parts(config)
    if creds is None:
        return grpc.insecure_channel(config.target, options=options)
    return grpc.secure_channel(config.target, creds, options=options)


def aio_client_channel(config: GatewayClientConfig) -> grpc.aio.Channel:
    """The same channel for asyncio code (Airflow triggers); create it inside the running loop."""
    creds, options = _client_parts(config)
    if creds is None:
        return grpc.aio.insecure_channel(config.target, options=options)
    return grpc.aio.secure_channel(config.target, creds, options=options)


def claimed_identity(party_id: str, kind: str, insecure: bool) -> Sequence[tuple[str, str]]:
    """Metadata naming the caller, sent without TLS only (with TLS the certificate says who calls).

    Read by insecure gateways and by every gateway's party-internal endpoint.
    """
    from fate_airflow.federation.grpc.auth import CLAIMED_KIND_KEY, CLAIMED_PARTY_KEY

    return ((CLAIMED_PARTY_KEY, party_id), (CLAIMED_KIND_KEY, kind)) if insecure else ()


__all__ = [
    "CLIENT_MAX_RECEIVE",
    "aio_client_channel",
    "channel_options",
    "claimed_identity",
    "client_channel",
    "create_server",
    "peer_channel",
    "server_options",
]
