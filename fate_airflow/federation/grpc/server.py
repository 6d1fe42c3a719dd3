"""One party's federation gateway: lifecycle, health service, spool GC, and the local control client.

The server never imports the scheduler: the composition root passes a
:class:`~fate_airflow.federation.api.CommandHandler` in (or None, and control commands addressed to
this party are answered UNIMPLEMENTED).
"""

from __future__ import annotations

import logging
import threading

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from fate_airflow.core.errors import ConfigError
from fate_airflow.federation.api import CommandHandler, ControlClient, ControlCommand, ControlReply
from fate_airflow.federation.config import GatewayConfig, format_address, parse_address
from fate_airflow.federation.errors import PermissionDenied
from fate_airflow.federation.grpc.auth import TrustStore
from fate_airflow.federation.grpc.channel import create_server
from fate_airflow.federation.grpc.handlers import GatewayCore
from fate_airflow.federation.grpc.peers import Peers
from fate_airflow.federation.grpc.ptp import create_ptp_server
from fate_airflow.federation.grpc.servicer import CONTROL_SERVICE, TRANSFER_SERVICE, gateway_handlers
from fate_airflow.federation.grpc.status import RemoteStatus, error_from_status
from fate_airflow.federation.pki import identity_of, load_certificate
from fate_airflow.federation.serde import control_reply_from_proto
from fate_airflow.federation.spool import Spool
from fate_airflow.proto.federation.v1 import control_pb2

log = logging.getLogger(__name__)


def _check_tls(config: GatewayConfig, trust: TrustStore) -> None:
    """Refuse to start with certificates that peers would reject anyway."""
    assert config.tls is not None
    cert = load_certificate(config.tls.cert)
    ident = identity_of(cert)
    if ident is None or ident.kind != "gateway":
        raise ConfigError(
            f"tls.cert: {config.tls.cert} is not a gateway certificate (fate-party://<id>/gateway)"
        )
    if ident.party_id != config.party_id:
        raise ConfigError(
            f"tls.cert: {config.tls.cert} is for party {ident.party_id}, but this gateway serves {config.party_id}"
        )
    own = [identity_of(c) for c in trust.own]
    if not any(i is not None and i.party_id == config.party_id for i in own):
        raise ConfigError(f"tls.ca_cert: {config.tls.ca_cert} is not party {config.party_id}'s CA")


class GatewayServer:
    """A running (once :meth:`start` ed) federation gateway.

    :param config: the gateway configuration.
    :param handler: this party's control-command handler; None answers commands UNIMPLEMENTED.
    :raises ConfigError: certificates missing or not matching the configured party.
    """

    def __init__(self, config: GatewayConfig, handler: CommandHandler | None = None) -> None:
        self.config = config
        self.trust = None if config.insecure else TrustStore.from_config(config)
        if self.trust is not None:
            _check_tls(config, self.trust)
        self.spool = Spool(
            config.spool_dir,
            fsync=config.spool.fsync == "always",
            quota_bytes=config.spool.quota_bytes,
            per_peer_quota_bytes=config.spool.per_peer_quota_bytes,
            owner=f"the gateway of party {config.party_id}",
        )
        self.peers = Peers(config, self.trust)
        self.core = GatewayCore(config, self.spool, self.peers, handler)
        self._health = health.HealthServicer()
        self._server: grpc.Server | None = None
        self._port = 0
        self._ptp_server: grpc.Server | None = None
        self._ptp_port = 0
        self._stopped = threading.Event()
        self._gc_thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with ``listen: host:0``); 0 before :meth:`start`."""
        return self._port

    @property
    def address(self) -> str:
        """``host:port`` actually listened on."""
        host, _ = parse_address(self.config.listen, "listen")
        return format_address(host, self._port)

    @property
    def ptp_port(self) -> int:
        """The bound port of the party-internal endpoint (0 before :meth:`start`, without one, or on a unix socket)."""
        return self._ptp_port

    @property
    def ptp_address(self) -> str | None:
        """Where the party's own processes reach the party-internal endpoint, or None.

        That endpoint serves FATE's PTP service and the native services (``host:port`` or
        ``unix:...``).
        """
        listen = self.config.ptp_listen
        if listen is None or listen.startswith("unix:"):
            return listen
        host, _ = parse_address(listen, "ptp_listen")
        return format_address(host, self._ptp_port)

    def start(self) -> int:
        """Bind and start serving; returns the port."""
        if self._server is not None:
            raise RuntimeError("gateway already started")
        server, port = create_server(self.config, None if self.trust is None else self.trust.bundle)
        server.add_generic_rpc_handlers(gateway_handlers(self.core, self.trust))
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        ptp: grpc.Server | None = None
        if self.config.ptp_listen is not None:
            try:
                ptp, self._ptp_port = create_ptp_server(self.config, self.core)
            except BaseException:
                server.stop(None)  # release the main port too: the gateway does not start
                raise
            # The party's own workers use the same endpoint for the native services: one TLS hop
            # less at each end of a transfer, the same rules (see auth.internal_caller).
            ptp.add_generic_rpc_handlers(gateway_handlers(self.core, None, internal=True))
            health_pb2_grpc.add_HealthServicer_to_server(self._health, ptp)
        server.start()
        if ptp is not None:
            ptp.start()
            self._ptp_server = ptp
        for service in ("", TRANSFER_SERVICE, CONTROL_SERVICE):
            self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self._server, self._port = server, port
        self._gc_thread = threading.Thread(target=self._gc_loop, name="gateway-gc", daemon=True)
        self._gc_thread.start()
        log.info(
            "gateway of party %s listening on %s (%s), spool %s",
            ", ".join(self.config.party_ids),
            self.address,
            "INSECURE: no authentication" if self.config.insecure else "mTLS",
            self.config.spool_dir,
        )
        if self._ptp_server is not None:
            log.info(
                "party-internal endpoint (FATE's PTP and the native services for this party's workers) "
                "on %s (plaintext)",
                self.ptp_address,
            )
        return port

    def _gc_loop(self) -> None:
        retention = self.config.retention
        while not self._stopped.wait(retention.gc_interval_seconds):
            try:
                removed = self.spool.gc(retention.max_age_seconds)
                if removed:
                    log.info("spool gc: removed %d expired message(s)", removed)
            except OSError as exc:
                log.warning("spool gc failed: %s", exc)

    def stop(self, grace: float | None = 5.0) -> None:
        """Stop accepting calls, let running ones finish for ``grace`` seconds, close peer channels."""
        self._stopped.set()
        self._health.enter_graceful_shutdown()
        if self._ptp_server is not None:
            self._ptp_server.stop(grace).wait()
        if self._server is not None:
            self._server.stop(grace).wait()
        self.peers.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops (or ``timeout``); True if it stopped."""
        if self._server is None:
            return True
        return bool(self._server.wait_for_termination(timeout))

    def cleanup_session(self, session_id: str) -> int:
        """Delete every spooled message and tombstone of ``session_id``; returns messages removed."""
        return self.spool.cleanup_session(session_id)

    def local_control_client(self, party_id: str | None = None) -> ControlClient:
        """An in-process :class:`ControlClient` speaking as this gateway's party (the scheduler's).

        :param party_id: which of the served party ids to speak as (default: the primary one).
        """
        party = party_id or self.config.party_id
        if party not in self.config.party_ids:
            raise PermissionDenied(f"this gateway does not serve party {party}")
        return LocalControlClient(self.core, party)


class LocalControlClient(ControlClient):
    """Sends commands as the gateway's own party: locally, or straight to the peer gateways."""

    def __init__(self, core: GatewayCore, party_id: str) -> None:
        self._core = core
        self.local_party_id = party_id

    def call(self, dst_party_id: str, cmd: ControlCommand, timeout: float = 30.0) -> ControlReply:
        """Deliver ``cmd`` to ``dst_party_id``'s handler (this gateway's own, or a peer's)."""
        try:
            reply = self._core.call_as(self.local_party_id, dst_party_id, cmd, timeout)
        except RemoteStatus as exc:
            raise error_from_status(exc.code, exc.details, exc.error_type, f"party {dst_party_id}") from None
        if isinstance(reply, bytes):
            return control_reply_from_proto(control_pb2.ControlResponse.FromString(reply))
        return reply

    def ping(self, dst_party_id: str, timeout: float = 5.0) -> float:
        """Round trip to ``dst_party_id``'s gateway in seconds (0 for this gateway's own parties)."""
        import time

        if dst_party_id in self._core.config.party_ids:
            return 0.0
        start = time.perf_counter()
        raw = bytes(control_pb2.PingRequest(dst_party_id=dst_party_id).SerializeToString())
        try:
            self._core.peers.ping(dst_party_id, self.local_party_id, 1, raw, timeout)
        except RemoteStatus as exc:
            raise error_from_status(exc.code, exc.details, exc.error_type, f"party {dst_party_id}") from None
        return time.perf_counter() - start


__all__ = ["GatewayServer", "LocalControlClient"]
