"""A gateway's outgoing side: one channel per next-hop gateway, and forwarding of raw frames.

Forwarded requests are passed on as the bytes that arrived (no re-serialisation); what the next
hop answers — success or a status with its ``x-fate-error`` trailer — goes back unchanged, so the
original caller sees the destination's own error. Only a failure to reach the next hop itself is
reported as this gateway's :class:`~fate_airflow.federation.errors.PartyUnreachable`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import grpc

from fate_airflow.core.errors import ConfigError
from fate_airflow.federation.config import GatewayConfig
from fate_airflow.federation.errors import NoRoute, PartyUnreachable
from fate_airflow.federation.grpc.auth import HOPS_KEY, ORIGIN_KEY, TrustStore
from fate_airflow.federation.grpc.channel import claimed_identity, peer_channel
from fate_airflow.federation.grpc.status import RemoteStatus, error_type_of

PUSH_PATH = "/fate_airflow.federation.v1.Transfer/Push"
CALL_PATH = "/fate_airflow.federation.v1.Control/Call"
PING_PATH = "/fate_airflow.federation.v1.Control/Ping"


class Peers:
    """Channels to the gateways named in the route table, created on first use."""

    def __init__(self, config: GatewayConfig, trust: TrustStore | None) -> None:
        self._config = config
        self._trust = trust
        self._lock = threading.Lock()
        self._channels: dict[tuple[str, str | None], grpc.Channel] = {}

    def next_hop(self, dst_party_id: str) -> tuple[str, str | None]:
        """(address, party id of the gateway there) for ``dst_party_id``.

        :raises NoRoute: neither a route for it nor a default route.
        """
        route = self._config.route_for(dst_party_id)
        if route is None:
            raise NoRoute(
                f"no route to party {dst_party_id} at the gateway of party {self._config.party_id}: add it to "
                "`routes` (or a default route '*')"
            )
        return route.address, route.via

    def channel(self, dst_party_id: str) -> tuple[grpc.Channel, str, str | None]:
        """The channel towards ``dst_party_id`` with its address and next-hop party."""
        address, via = self.next_hop(dst_party_id)
        with self._lock:
            channel = self._channels.get((address, via))
            if channel is None:
                root = None
                if self._trust is not None:
                    if via is None:
                        raise ConfigError(f"routes: the route to party {dst_party_id} needs `via`")
                    root = self._trust.root_pem_for(via)
                channel = peer_channel(self._config, address, via, root)
                self._channels[(address, via)] = channel
            return channel, address, via

    def metadata(self, origin: str, hops: int) -> Sequence[tuple[str, str]]:
        """Headers of a forwarded request."""
        return (
            (ORIGIN_KEY, origin),
            (HOPS_KEY, str(hops)),
            *claimed_identity(self._config.party_id, "gateway", self._config.insecure),
        )

    def _translate(self, err: grpc.RpcError, dst: str, address: str, via: str | None) -> Exception:
        code = err.code()
        details = err.details() or ""
        if error_type_of(err) is None and code in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        ):
            hop = f"the gateway of party {via}" if via and via != dst else f"party {dst}'s gateway"
            return PartyUnreachable(
                f"{hop} at {address} is unreachable from party {self._config.party_id}: {details}"
            )
        return RemoteStatus(code, details, error_type_of(err))

    def push(self, dst: str, origin: str, hops: int, frames: Iterator[bytes], timeout: float | None) -> bytes:
        """Stream raw push frames to the next hop; returns its raw ``PushReply``."""
        channel, address, via = self.channel(dst)
        call = channel.stream_unary(PUSH_PATH)
        try:
            reply: bytes = call(frames, metadata=self.metadata(origin, hops), timeout=timeout)
        except grpc.RpcError as err:
            raise self._translate(err, dst, address, via) from None
        return reply

    def call(self, dst: str, origin: str, hops: int, request: bytes, timeout: float | None) -> bytes:
        """Forward a raw ``ControlRequest``; returns the raw ``ControlResponse``."""
        channel, address, via = self.channel(dst)
        try:
            reply: bytes = channel.unary_unary(CALL_PATH)(
                request, metadata=self.metadata(origin, hops), timeout=timeout
            )
        except grpc.RpcError as err:
            raise self._translate(err, dst, address, via) from None
        return reply

    def ping(self, dst: str, origin: str, hops: int, request: bytes, timeout: float | None) -> bytes:
        """Forward a raw ``PingRequest``; returns the raw ``PingReply``."""
        channel, address, via = self.channel(dst)
        try:
            reply: bytes = channel.unary_unary(PING_PATH)(
                request, metadata=self.metadata(origin, hops), timeout=timeout
            )
        except grpc.RpcError as err:
            raise self._translate(err, dst, address, via) from None
        return reply

    def close(self) -> None:
        """Close every channel."""
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()


__all__ = ["CALL_PATH", "PING_PATH", "PUSH_PATH", "Peers"]
