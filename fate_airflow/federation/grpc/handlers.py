"""What a gateway does with each request, independent of how gRPC delivered it.

The servicer (:mod:`.servicer`) only unpacks the call (caller identity, headers, raw frames) and
maps exceptions to status codes; every decision lives here: who may do what, whether a message is
spooled here or forwarded, and how a push stream becomes a durable spool entry.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from fate_airflow.core.errors import FateAirflowError, FederationTimeout
from fate_airflow.federation.api import CommandHandler, ControlCommand, ControlReply, dispatch
from fate_airflow.federation.config import GatewayConfig
from fate_airflow.federation.errors import (
    Busy,
    HandlerFailed,
    HandlerUnavailable,
    MessageTooLarge,
    PermissionDenied,
    ProtocolError,
)
from fate_airflow.federation.grpc.auth import MAX_HOPS, Caller, authorize_client, origin_of
from fate_airflow.federation.grpc.peers import Peers
from fate_airflow.federation.serde import (
    PushHeaderInfo,
    TrailerInfo,
    checked_reply,
    control_reply_to_proto,
    control_request_from_proto,
    control_request_to_proto,
    parse_push_frame,
    pull_header_frame,
    pull_trailer_frame,
)
from fate_airflow.federation.spool import MessageKey, Spool
from fate_airflow.proto.federation.v1 import control_pb2, transfer_pb2

log = logging.getLogger(__name__)

#: Longest a single Pull waits at the gateway; clients re-issue longer waits.
MAX_PULL_WAIT = 3600.0


@dataclass(frozen=True)
class PushResult:
    """Outcome of a push: the message id, and whether it was a re-send that was dropped."""

    message_id: str
    duplicate: bool

    def to_bytes(self) -> bytes:
        """Serialised ``PushReply``."""
        return bytes(
            transfer_pb2.PushReply(message_id=self.message_id, duplicate=self.duplicate).SerializeToString()
        )


class GatewayCore:
    """The gateway's behaviour: routing, spooling, access rules and command dispatch.

    :param config: the gateway config.
    :param spool: where messages for this gateway's parties are kept.
    :param peers: channels to other gateways.
    :param handler: the party's control-command handler (None: control commands are refused).
    """

    def __init__(
        self, config: GatewayConfig, spool: Spool, peers: Peers, handler: CommandHandler | None
    ) -> None:
        self.config = config
        self.spool = spool
        self.peers = peers
        self.handler = handler
        # Each waiting `get` holds a server thread; capping them keeps threads free for the pushes
        # they are waiting for (otherwise enough waiting receivers would starve their own senders).
        self._waiters = threading.BoundedSemaphore(max(1, config.limits.max_workers // 2))

    def _served(self, party_id: str) -> bool:
        return party_id in self.config.party_ids

    @staticmethod
    def _next_hops(hops: int) -> int:
        if hops >= MAX_HOPS:
            raise ProtocolError(f"request passed {hops} gateways already; is there a routing loop?")
        return hops + 1

    # ------------------------------------------------------------------ data plane

    def push(
        self,
        caller: Caller,
        claimed_origin: str | None,
        hops: int,
        frames: Iterator[bytes],
        timeout: float | None,
    ) -> PushResult | bytes:
        """Accept a push stream: spool it if addressed to a party served here, else forward it.

        :returns: the local result, or the next hop's raw ``PushReply``.
        """
        origin = origin_of(caller, claimed_origin, self.config)  # before reading anything
        first = next(frames, None)
        if first is None:
            raise ProtocolError("empty push stream")
        header = parse_push_frame(first)
        if not isinstance(header, PushHeaderInfo):
            raise ProtocolError("a push stream must start with its header frame")
        key = header.key
        if key.src.party_id != origin:
            raise PermissionDenied(f"{caller}: party {origin} cannot send as party {key.src.party_id}")
        limit = self.config.limits.max_message_bytes
        if header.size_hint > limit:
            raise MessageTooLarge(
                f"message {key.describe()} has {header.size_hint} bytes; the gateway of party "
                f"{self.config.party_id} accepts at most {limit}"
            )
        if self._served(key.dst.party_id):
            return self._receive(header, frames)
        counted = _Counted(first, frames, limit, key)
        try:
            return self.peers.push(key.dst.party_id, origin, self._next_hops(hops), iter(counted), timeout)
        except FateAirflowError:
            if counted.error is not None:
                raise counted.error from None
            raise

    def _receive(self, header: PushHeaderInfo, frames: Iterator[bytes]) -> PushResult:
        key = header.key
        writer = self.spool.begin(
            key, self.config.limits.max_message_bytes, header.size_hint, header.checksum
        )
        if writer is None:
            log.info("dropping re-sent message %s (already accepted)", key.describe())
            return PushResult(key.message_id, duplicate=True)
        trailer: TrailerInfo | None = None
        try:
            for raw in frames:
                item = parse_push_frame(raw)
                if isinstance(item, memoryview):
                    if trailer is not None:
                        raise ProtocolError("push frame after the trailer")
                    writer.write(item, raw)  # raw: the same bytes as a pull frame, kept for live readers
                elif isinstance(item, TrailerInfo):
                    if trailer is not None:
                        raise ProtocolError("second push trailer")
                    trailer = item
                else:
                    raise ProtocolError("second push header in one stream")
            if trailer is None:
                raise ProtocolError(
                    f"push of {key.describe()} ended after {writer.size} bytes without its trailer; discarded"
                )
            entry = writer.commit(trailer.size, trailer.digest)
        except BaseException:
            writer.abort()
            raise
        log.debug("spooled %s (%d bytes)", key.describe(), entry.size)
        return PushResult(entry.message_id, duplicate=False)

    def pull(
        self, caller: Caller, key: MessageKey, wait: float, cancelled: Callable[[], bool]
    ) -> Iterator[bytes]:
        """Stream a message to its local receiver, waiting up to ``wait`` seconds for it to arrive.

        A message still being spooled is streamed as it arrives; its trailer (size and digest)
        follows only once it is complete and durable, and the receiver confirms nothing before.

        :raises FederationTimeout: the message did not arrive in time.
        :raises Busy: the message's transfer failed while it was being streamed (retry).
        """
        authorize_client(caller, self.config)
        if key.dst.party_id != caller.party_id:
            raise PermissionDenied(f"{caller}: cannot receive messages addressed to party {key.dst.party_id}")
        reader = self.spool.open_reader(key)
        if reader is None:
            if not self._waiters.acquire(blocking=False):
                raise Busy(
                    f"too many receivers are waiting at the gateway of party {self.config.party_id}; retry"
                )
            try:
                reader = self.spool.wait_reader(key, min(max(wait, 0.0), MAX_PULL_WAIT), cancelled)
            finally:
                self._waiters.release()
        if reader is None:
            again = " (it was already received once: a second get of the same name/tag)"
            raise FederationTimeout(
                f"waited {wait:.1f}s at the gateway for {key.describe()}"
                + (again if self.spool.delivered(key) else ""),
                party=str(key.src),
                name=key.name,
                tag=key.tag,
            )
        try:
            yield pull_header_frame(reader.message_id, reader.size, reader.digest, reader.checksum)
            yield from reader.frames(cancelled)
            if cancelled():
                return
            size, digest = reader.final()
            yield pull_trailer_frame(size, digest)
        finally:
            reader.close()

    def ack(self, caller: Caller, key: MessageKey, message_id: str) -> bool:
        """The receiver holds the message: drop it from the spool (leaving a tombstone)."""
        authorize_client(caller, self.config)
        if key.dst.party_id != caller.party_id:
            raise PermissionDenied(
                f"{caller}: cannot acknowledge messages addressed to party {key.dst.party_id}"
            )
        if message_id and message_id != key.message_id:
            raise ProtocolError("ack: message id does not match the key")
        return self.spool.ack(key)

    def cleanup(self, caller: Caller, session_id: str) -> int:
        """Drop what is spooled for ``session_id`` and the caller's party."""
        authorize_client(caller, self.config)
        if not session_id:
            raise ProtocolError("cleanup: session_id is empty")
        return self.spool.cleanup_session(session_id, caller.party_id)

    # ------------------------------------------------------------------ control plane

    def control(
        self, caller: Caller, claimed_origin: str | None, hops: int, raw: bytes, timeout: float | None
    ) -> bytes:
        """Answer a control command addressed to a party served here, or forward it."""
        origin = origin_of(caller, claimed_origin, self.config)
        try:
            request = control_pb2.ControlRequest.FromString(raw)
        except Exception as exc:  # DecodeError; keep protobuf's exception types out of the API
            raise ProtocolError(f"malformed control request: {exc}") from None
        dst, cmd = control_request_from_proto(request)
        if self._served(dst):
            reply = self.dispatch(origin, dst, cmd)
            return bytes(control_reply_to_proto(reply).SerializeToString())
        return self.peers.call(dst, origin, self._next_hops(hops), raw, timeout)

    def dispatch(self, origin: str, dst: str, cmd: ControlCommand) -> ControlReply:
        """Run ``cmd`` through this party's handler with the authenticated ``origin``."""
        if self.handler is None:
            raise HandlerUnavailable(
                f"party {dst}'s gateway has no command handler (no scheduler attached); cannot run "
                f"{type(cmd).__name__}"
            )
        try:
            return checked_reply(cmd, dispatch(self.handler, origin, cmd))
        except FateAirflowError:
            raise
        except Exception as exc:
            log.exception(
                "command handler of party %s failed on %s from party %s", dst, type(cmd).__name__, origin
            )
            raise HandlerFailed(
                f"party {dst} failed to handle {type(cmd).__name__}: {type(exc).__name__}: {exc}"
            ) from exc

    def call_as(self, origin: str, dst: str, cmd: ControlCommand, timeout: float) -> bytes | ControlReply:
        """A command from this gateway's own party (the local control client)."""
        if self._served(dst):
            return self.dispatch(origin, dst, cmd)
        raw = bytes(control_request_to_proto(dst, cmd).SerializeToString())
        return self.peers.call(dst, origin, 1, raw, timeout)

    def ping(
        self, caller: Caller, claimed_origin: str | None, hops: int, raw: bytes, timeout: float | None
    ) -> bytes:
        """Answer a ping for a party served here, or forward it towards the destination."""
        origin = origin_of(caller, claimed_origin, self.config)
        try:
            request = control_pb2.PingRequest.FromString(raw)
        except Exception as exc:
            raise ProtocolError(f"malformed ping request: {exc}") from None
        dst = str(request.dst_party_id) or self.config.party_id
        if self._served(dst):
            from fate_airflow import __version__

            return bytes(control_pb2.PingReply(party_id=dst, version=__version__).SerializeToString())
        return self.peers.ping(dst, origin, self._next_hops(hops), raw, timeout)


class _Counted:
    """Pass frames through while enforcing this gateway's size limit on a forwarded message.

    gRPC consumes the iterator on its own thread and would hide an exception raised there, so an
    overrun ends the stream early (the next hop then discards the incomplete message) and is
    recorded in :attr:`error` for the forwarding code to raise.
    """

    def __init__(self, first: bytes, frames: Iterator[bytes], limit: int, key: MessageKey) -> None:
        self._first = first
        self._frames = frames
        self._limit = limit
        self._key = key
        self.error: MessageTooLarge | None = None

    def __iter__(self) -> Iterator[bytes]:
        yield self._first
        total = 0
        for raw in self._frames:
            total += len(raw)
            if total > self._limit + (1 << 20):
                self.error = MessageTooLarge(
                    f"message {self._key.describe()} exceeds the limit of {self._limit} bytes"
                )
                return
            yield raw


__all__ = ["MAX_PULL_WAIT", "GatewayCore", "PushResult"]
