"""Clients of a party's own gateway: the data plane (:class:`GrpcFederation`) and the control plane.

Workers and schedulers only ever talk to their own gateway — with a client certificate of their
party over mTLS, or in plaintext over the gateway's party-internal endpoint (loopback or a unix
socket, see :attr:`GatewayClientConfig.internal_address`); the gateway forwards to peers.

Delivery guarantees of :class:`GrpcFederation`:

* ``remote`` streams the encoded object in chunks, with a CRC-32 of the payload; it returns when
  the *destination* gateway has verified and spooled the message (atomic rename, flushed to disk
  unless that gateway runs with ``spool.fsync: never``). While a gateway on the way is unreachable
  (restarting, network down) it retries with exponential backoff for up to
  :attr:`GatewayClientConfig.send_timeout` seconds, re-encoding the object each time — the sender
  keeps no outbox. Retries are safe: a message's id is derived from its key, and a gateway drops a
  re-sent copy of a message it already accepted.
* ``get`` pulls from the local gateway — already while the message is still arriving there, if
  the ``get`` was waiting for it — verifies size and checksum against the trailer the gateway sends
  once the message is durable, and only then acknowledges, so the spool entry is deleted after the
  object is safely in the receiver's hands. If the gateway restarts, or the transfer it was
  streaming fails, the pull is retried until the ``get`` deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Sequence

import grpc

from fate_airflow.core.errors import FederationError, FederationTimeout
from fate_airflow.core.types import Party
from fate_airflow.federation import payload
from fate_airflow.federation.api import (
    DEFAULT_GET_TIMEOUT,
    ControlClient,
    ControlCommand,
    ControlReply,
    Federation,
    FederationSession,
    Payload,
)
from fate_airflow.federation.chunks import Checksum
from fate_airflow.federation.config import GatewayClientConfig
from fate_airflow.federation.errors import PayloadError, ProtocolError
from fate_airflow.federation.grpc.channel import aio_client_channel, claimed_identity, client_channel
from fate_airflow.federation.grpc.status import RETRYABLE, error_from_rpc
from fate_airflow.federation.serde import (
    PullHeaderInfo,
    TrailerInfo,
    control_reply_from_proto,
    control_request_to_proto,
    message_key_to_proto,
    parse_pull_frame,
    pull_request_to_proto,
    push_frames,
)
from fate_airflow.federation.spool import MessageKey
from fate_airflow.proto.federation.v1 import control_pb2, transfer_pb2

log = logging.getLogger(__name__)

PUSH = "/fate_airflow.federation.v1.Transfer/Push"
PULL = "/fate_airflow.federation.v1.Transfer/Pull"
ACK = "/fate_airflow.federation.v1.Transfer/Ack"
CLEANUP = "/fate_airflow.federation.v1.Transfer/Cleanup"
CALL = "/fate_airflow.federation.v1.Control/Call"
PING = "/fate_airflow.federation.v1.Control/Ping"

_BACKOFF_START = 0.2
_BACKOFF_MAX = 5.0


def _backoff(delay: float) -> float:
    return min(delay * 2, _BACKOFF_MAX)


class GrpcFederation(Federation):
    """:class:`Federation` through the party's local gateway.

    :param session: the task session this endpoint belongs to.
    :param client_config: how to reach (and authenticate to) the local gateway.
    """

    def __init__(self, session: FederationSession, client_config: GatewayClientConfig) -> None:
        super().__init__(session)
        if session.local.party_id != client_config.party_id:
            raise FederationError(
                f"session speaks as {session.local} but the gateway client is for party {client_config.party_id}"
            )
        self._config = client_config
        self._channel = client_channel(client_config)
        self._metadata = tuple(claimed_identity(client_config.party_id, "client", client_config.plaintext))
        self._push = self._channel.stream_unary(PUSH, response_deserializer=transfer_pb2.PushReply.FromString)
        self._pull = self._channel.unary_stream(PULL, request_serializer=_serialize)
        self._ack = self._channel.unary_unary(
            ACK, request_serializer=_serialize, response_deserializer=transfer_pb2.AckReply.FromString
        )
        self._cleanup = self._channel.unary_unary(
            CLEANUP, request_serializer=_serialize, response_deserializer=transfer_pb2.CleanupReply.FromString
        )
        self._sent: set[MessageKey] = set()

    def _key(self, name: str, tag: str, src: Party, dst: Party) -> MessageKey:
        return MessageKey(self.session.session_id, name, tag, src, dst)

    # ------------------------------------------------------------------ remote

    def remote(self, obj: Payload, name: str, tag: str, parties: Sequence[Party]) -> None:
        """Send ``obj`` to each party; returns once every destination gateway stored it durably.

        :raises PayloadError: ``obj`` holds an unsupported type (nothing was sent).
        :raises FederationError: a (name, tag) sent twice, or a destination unreachable for longer
            than the send timeout, or refused; the message names the party.
        """
        size = payload.measure(obj)
        keys = [self._key(name, tag, self.session.local, dst) for dst in parties]
        for index, key in enumerate(keys):
            if key in self._sent or key in keys[:index]:
                raise FederationError(
                    f"duplicate message {name!r} tag {tag!r} from {key.src} to {key.dst} in session "
                    f"{key.session_id}"
                )
        for key in keys:
            self._send(key, obj, size)
            self._sent.add(key)

    def _frames(self, key: MessageKey, obj: Payload, size: int) -> Iterator[bytes]:
        return push_frames(key, size, payload.iter_encode(obj, self._config.chunk_bytes))

    def _send(self, key: MessageKey, obj: Payload, size: int) -> None:
        deadline = time.monotonic() + self._config.send_timeout
        delay = _BACKOFF_START
        # A slow link must not turn into a timeout: allow the transfer itself ≥ 1 MiB/s.
        transfer_allowance = 60.0 + size / float(1 << 20)
        while True:
            try:
                reply = self._push(
                    self._frames(key, obj, size),
                    metadata=self._metadata,
                    timeout=self._config.send_timeout + transfer_allowance,
                )
            except grpc.RpcError as err:
                code = err.code()
                if code in RETRYABLE and time.monotonic() + delay < deadline:
                    log.info("send of %s: %s, retrying in %.1fs", key.describe(), err.details(), delay)
                    time.sleep(delay)
                    delay = _backoff(delay)
                    continue
                raise error_from_rpc(err, f"sending {key.name!r} tag {key.tag!r} to {key.dst}") from None
            if reply.duplicate:
                log.info("message %s had been delivered already (re-send dropped)", key.describe())
            return

    # ------------------------------------------------------------------ get

    def get(
        self, name: str, tag: str, parties: Sequence[Party], timeout: float | None = None
    ) -> list[Payload]:
        """Receive one object from each party, in ``parties`` order.

        :raises FederationTimeout: naming the party and name/tag still missing after ``timeout``.
        :raises PayloadError: the received bytes are not a valid payload.
        """
        wait = DEFAULT_GET_TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + wait
        return [
            self._receive(self._key(name, tag, src, self.session.local), deadline, wait) for src in parties
        ]

    def _timeout(self, key: MessageKey, waited: float, detail: str = "") -> FederationTimeout:
        return FederationTimeout(
            f"{key.dst} timed out after {waited:.1f}s waiting for {key.name!r} tag {key.tag!r} from {key.src}"
            f" in session {key.session_id}" + (f" ({detail})" if detail else ""),
            party=str(key.src),
            name=key.name,
            tag=key.tag,
        )

    def _receive(self, key: MessageKey, deadline: float, waited: float) -> Payload:
        delay = _BACKOFF_START
        while True:
            remaining = deadline - time.monotonic()
            call = self._pull(pull_request_to_proto(key, remaining), metadata=self._metadata)
            try:
                obj, message_id = _read_message(call)
            except grpc.RpcError as err:
                code = err.code()
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise self._timeout(key, waited) from None
                if code in RETRYABLE and deadline - time.monotonic() > delay:
                    log.info("get of %s: %s, retrying in %.1fs", key.describe(), err.details(), delay)
                    time.sleep(delay)
                    delay = _backoff(delay)
                    continue
                if code in RETRYABLE:
                    raise self._timeout(key, waited, f"local gateway unreachable: {err.details()}") from None
                raise error_from_rpc(err, f"receiving {key.name!r} tag {key.tag!r} from {key.src}") from None
            finally:
                call.cancel()
            self._confirm(key, message_id, deadline)
            return obj

    def _confirm(self, key: MessageKey, message_id: str, deadline: float) -> None:
        request = transfer_pb2.AckRequest(key=message_key_to_proto(key), message_id=message_id)
        delay = _BACKOFF_START
        while True:
            try:
                self._ack(request, metadata=self._metadata, timeout=30.0)
                return
            except grpc.RpcError as err:
                if err.code() in RETRYABLE and deadline - time.monotonic() > delay:
                    time.sleep(delay)
                    delay = _backoff(delay)
                    continue
                # We hold the object; the gateway keeps its copy until retention cleans it up.
                log.warning("could not acknowledge %s: %s", key.describe(), err.details())
                return

    def cleanup(self) -> int:
        """Delete whatever is still spooled for this session and this party at the local gateway."""
        try:
            reply = self._cleanup(
                transfer_pb2.CleanupRequest(session_id=self.session.session_id),
                metadata=self._metadata,
                timeout=30.0,
            )
        except grpc.RpcError as err:
            raise error_from_rpc(err, f"cleaning up session {self.session.session_id}") from None
        return int(reply.removed)

    def close(self) -> None:
        """Close the channel to the local gateway."""
        self._channel.close()


def _serialize(message: object) -> bytes:
    return bytes(message.SerializeToString())  # type: ignore[attr-defined]


def _read_message(call: Iterator[bytes]) -> tuple[Payload, str]:
    """Decode a pull stream (header, chunks, trailer), checking size and digest; returns (object, id).

    The chunks may arrive while the gateway is still spooling the message: the object only counts
    as received once the trailer (sent after the message is durable) has arrived and matches.
    """
    frames = iter(call)
    first = next(frames, None)
    if first is None:
        raise ProtocolError("the gateway ended the pull stream without a header")
    header = parse_pull_frame(first)
    if not isinstance(header, PullHeaderInfo):
        raise ProtocolError("the pull stream did not start with its header")
    checksum = Checksum(header.checksum)
    trailer: TrailerInfo | None = None

    def chunks() -> Iterator[memoryview]:
        nonlocal trailer
        for raw in frames:
            item = parse_pull_frame(raw)
            if isinstance(item, memoryview):
                checksum.update(item)
                yield item
            elif isinstance(item, TrailerInfo):
                trailer = item
                return
            else:
                raise ProtocolError("second header in a pull stream")

    obj = payload.decode_stream(chunks(), header.size)
    # decode_stream read up to the end of the chunks: the trailer, or the end of an older gateway's
    # stream (whose header carried the digest of a complete message).
    if trailer is not None:
        size, expected = trailer.size, trailer.digest
        if next(frames, None) is not None:
            raise ProtocolError("frames after the pull trailer")
    elif header.digest:
        size, expected = header.size, header.digest
    else:
        raise ProtocolError(f"the pull stream of message {header.message_id} ended before its trailer")
    if size != header.size or checksum.digest() != expected:
        raise PayloadError(
            f"message {header.message_id} failed its {checksum.kind} check (corrupted in the spool?)"
        )
    return obj, header.message_id


# ----------------------------------------------------------------------------- control plane


class GrpcControlClient(ControlClient):
    """Sync :class:`ControlClient` through the party's local gateway.

    :param client_config: how to reach (and authenticate to) the local gateway.
    """

    def __init__(self, client_config: GatewayClientConfig) -> None:
        self.local_party_id = client_config.party_id
        self._channel = client_channel(client_config)
        self._metadata = tuple(claimed_identity(client_config.party_id, "client", client_config.plaintext))
        self._call = self._channel.unary_unary(
            CALL, request_serializer=_serialize, response_deserializer=control_pb2.ControlResponse.FromString
        )
        self._ping = self._channel.unary_unary(
            PING, request_serializer=_serialize, response_deserializer=control_pb2.PingReply.FromString
        )

    def call(self, dst_party_id: str, cmd: ControlCommand, timeout: float = 30.0) -> ControlReply:
        """Deliver ``cmd`` to ``dst_party_id``'s handler; errors name the party."""
        try:
            response = self._call(
                control_request_to_proto(dst_party_id, cmd), metadata=self._metadata, timeout=timeout
            )
        except grpc.RpcError as err:
            raise error_from_rpc(err, f"party {dst_party_id}") from None
        return control_reply_from_proto(response)

    def ping(self, dst_party_id: str, timeout: float = 5.0) -> float:
        """Round trip to ``dst_party_id``'s gateway, in seconds."""
        start = time.perf_counter()
        try:
            self._ping(
                control_pb2.PingRequest(dst_party_id=dst_party_id), metadata=self._metadata, timeout=timeout
            )
        except grpc.RpcError as err:
            raise error_from_rpc(err, f"party {dst_party_id}") from None
        return time.perf_counter() - start

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()


class AsyncGrpcControlClient:
    """The control client for asyncio code (Airflow triggers): same methods, all ``async``.

    The grpc.aio channel is created on first use, inside the running event loop.

    :param client_config: how to reach (and authenticate to) the local gateway.
    """

    def __init__(self, client_config: GatewayClientConfig) -> None:
        self.local_party_id = client_config.party_id
        self._config = client_config
        self._metadata = tuple(claimed_identity(client_config.party_id, "client", client_config.plaintext))
        self._channel: grpc.aio.Channel | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _get_channel(self) -> grpc.aio.Channel:
        loop = asyncio.get_running_loop()
        if self._channel is None or self._loop is not loop:
            self._channel = aio_client_channel(self._config)
            self._loop = loop
        return self._channel

    # `timeout` is the gRPC deadline, mirroring the sync client's signature (not an asyncio timeout).
    async def call(
        self,
        dst_party_id: str,
        cmd: ControlCommand,
        timeout: float = 30.0,  # noqa: ASYNC109
    ) -> ControlReply:
        """Deliver ``cmd`` to ``dst_party_id``'s handler; errors name the party."""
        method = self._get_channel().unary_unary(
            CALL, request_serializer=_serialize, response_deserializer=control_pb2.ControlResponse.FromString
        )
        try:
            response = await method(
                control_request_to_proto(dst_party_id, cmd), metadata=self._metadata, timeout=timeout
            )
        except grpc.aio.AioRpcError as err:
            raise error_from_rpc(err, f"party {dst_party_id}") from None
        return control_reply_from_proto(response)

    async def ping(self, dst_party_id: str, timeout: float = 5.0) -> float:  # noqa: ASYNC109
        """Round trip to ``dst_party_id``'s gateway, in seconds."""
        method = self._get_channel().unary_unary(
            PING, request_serializer=_serialize, response_deserializer=control_pb2.PingReply.FromString
        )
        start = time.perf_counter()
        try:
            await method(
                control_pb2.PingRequest(dst_party_id=dst_party_id), metadata=self._metadata, timeout=timeout
            )
        except grpc.aio.AioRpcError as err:
            raise error_from_rpc(err, f"party {dst_party_id}") from None
        return time.perf_counter() - start

    async def close(self) -> None:
        """Close the channel (if one was opened)."""
        if self._channel is not None:
            await self._channel.close()
            self._channel = None


__all__ = ["AsyncGrpcControlClient", "GatewayClientConfig", "GrpcControlClient", "GrpcFederation"]
