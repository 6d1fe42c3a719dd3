"""The gateway's PTP endpoint: FATE 2.2's own components (pyfate's ``osx`` backend) federate through it.

pyfate opens a plaintext channel to its party's "OSX" and calls
``org.ppc.ptp.PrivateTransferTransport`` (see :mod:`fate_airflow.federation.ptp` for topics and
codes). This module serves that service on the gateway's party-internal ``ptp_listen`` address and
maps it onto the gateway's own data plane, so a PTP message travels exactly like a native worker's
``remote``: durable spool at the destination, mutually authenticated gateway-to-gateway hops,
size limits, re-sends recognised by message id.

* ``push``: the caller names its party (``x-ptp-from-node-id``, which must be served here) and the
  destination (``x-ptp-target-node-id``); the topic must start with the session id and name the
  same two parties. The opaque payload (a serialised ``osx.Message``; never decoded here) is pushed
  through :class:`~fate_airflow.federation.grpc.handlers.GatewayCore` under the key ``(session,
  name = topic, tag = ordering tag, src, dst)`` — spooled if the destination party is served here,
  else forwarded to its gateway. The call returns once the destination gateway stored it; while
  that gateway is unreachable it is retried for up to :data:`SEND_TIMEOUT` seconds.
* ``pop``: takes the oldest spooled message of a topic addressed to the caller's party (smallest
  ordering tag), waiting up to ``PopInbound.timeout`` milliseconds (capped by the call's deadline);
  the reply carries the payload with code ``"0"``, and the message is then acknowledged (removed,
  leaving a tombstone). No message in time, or a released session: code ``E0000000601`` with a
  message saying which — pyfate raises ``LookupError`` with it. Pops of one topic are served one
  at a time, so a topic is a strict FIFO queue.
* ``peek``: the oldest message without taking it, without waiting (``E0000000404`` if none).
* ``release``: drops what is spooled for the session and the caller's party, and makes later pops
  of that session answer ``E0000000601`` at once. pyfate sends it *without* a party (only the
  session id); since several roles of one party (host and arbiter of 10000) share a federation id
  and may still be reading, such a release removes nothing: leftovers expire with the spool
  retention.

Refusals and failures (bad metadata, another party's topic, size limit, unreachable peer, too many
waiting pops) end the call with a gRPC error whose details say what and which party, and the PTP
code in the ``x-ptp-code`` trailer: pyfate ignores the code of a push reply, so an error reply
would lose the message silently. Too many waiting pops is UNAVAILABLE, which pyfate's channel
retries by itself.

The endpoint is plaintext and unauthenticated, like FATE's OSX: it must only listen where the
party's own components are (loopback or a unix socket; the config refuses anything else).
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import grpc

from fate_airflow.core.errors import ConfigError, FederationError
from fate_airflow.federation.chunks import Checksum
from fate_airflow.federation.config import GatewayConfig
from fate_airflow.federation.errors import (
    Busy,
    MessageTooLarge,
    PayloadError,
    PermissionDenied,
    ProtocolError,
    Unauthenticated,
)
from fate_airflow.federation.grpc.auth import Caller
from fate_airflow.federation.grpc.channel import server_options
from fate_airflow.federation.grpc.handlers import GatewayCore, PushResult
from fate_airflow.federation.grpc.servicer import parse_message, run_guarded, time_left
from fate_airflow.federation.grpc.status import (
    ERROR_TYPE_KEY,
    RETRYABLE,
    RemoteStatus,
    error_from_status,
    status_of,
)
from fate_airflow.federation.ptp import (
    CODE_KEY,
    CODE_NOT_FOUND,
    CODE_SUCCESS,
    CODE_TIMEOUT,
    FROM_NODE_ID_KEY,
    SESSION_ID_KEY,
    TARGET_NODE_ID_KEY,
    TRACE_ID_KEY,
    OrderingTags,
    PtpTopic,
    parse_topic,
    pop_wait_seconds,
    ptp_code_of,
)
from fate_airflow.federation.serde import push_frames
from fate_airflow.federation.spool import MessageKey, SpoolEntry
from fate_airflow.proto.ptp import osx_pb2

log = logging.getLogger(__name__)

PTP_SERVICE = "org.ppc.ptp.PrivateTransferTransport"
#: How long a push keeps retrying while the destination's gateway is unreachable, seconds.
SEND_TIMEOUT = 300.0
#: gRPC's own ceiling for one message (the whole payload travels in one PushInbound/TransportOutbound).
_GRPC_MAX_MESSAGE = (1 << 31) - 1
#: Released sessions and recent pushes remembered (bounded; oldest forgotten first).
_REMEMBER = 10_000
_BACKOFF_START = 0.2
_BACKOFF_MAX = 5.0

_T = TypeVar("_T")


def _reply(code: str, message: str = "", payload: bytes = b"") -> bytes:
    return bytes(osx_pb2.TransportOutbound(code=code, message=message, payload=payload).SerializeToString())


class _TopicLocks:
    """One lock per (party, session, topic), existing only while somebody holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str, str], tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, key: tuple[str, str, str], timeout: float) -> Iterator[bool]:
        """Hold the topic's lock (waiting up to ``timeout``); yields whether it was acquired."""
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        acquired = lock.acquire(timeout=max(0.0, timeout))
        try:
            yield acquired
        finally:
            if acquired:
                lock.release()
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


class PtpService:
    """``org.ppc.ptp.PrivateTransferTransport`` over one gateway's :class:`GatewayCore`.

    :param core: the gateway whose spool and peers the messages go through.
    """

    def __init__(self, core: GatewayCore) -> None:
        self._core = core
        self._config = core.config
        self._spool = core.spool
        self._tags = OrderingTags()
        self._topics = _TopicLocks()
        # Waiting pops hold a server thread each; capping them keeps threads free for the pushes
        # they wait for (the same rule as GatewayCore's waiting pulls).
        self._waiters = threading.BoundedSemaphore(max(1, self._config.limits.max_workers // 2))
        self._lock = threading.Lock()
        self._released: OrderedDict[tuple[str, str], None] = OrderedDict()
        # A push retried by the client after its reply was lost must keep its tag, so the
        # destination recognises the copy (same message id) instead of delivering it twice.
        self._recent: OrderedDict[tuple[str, str, str, int, int], str] = OrderedDict()

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _metadata(context: grpc.ServicerContext) -> dict[str, str]:
        return {str(k): str(v) for k, v in context.invocation_metadata() if isinstance(v, str)}

    @staticmethod
    def _required(meta: dict[str, str], key: str, what: str) -> str:
        value = meta.get(key, "")
        if not value:
            raise ProtocolError(f"{what}: the {key} header is missing")
        return value

    def _own_party(self, meta: dict[str, str], what: str) -> str:
        """The caller's party (``x-ptp-from-node-id``), which this gateway must serve."""
        party = self._required(meta, FROM_NODE_ID_KEY, what)
        if party not in self._config.party_ids:
            raise PermissionDenied(
                f"{what}: party {party} ({FROM_NODE_ID_KEY}) is not served by this gateway, which serves "
                f"party {', '.join(self._config.party_ids)}; a component can only use its own party's gateway"
            )
        return party

    def _is_released(self, party: str, session: str) -> bool:
        with self._lock:
            return (party, session) in self._released

    def _remember(self, table: OrderedDict[Any, Any], key: Any, value: Any) -> None:
        with self._lock:
            table[key] = value
            table.move_to_end(key)
            while len(table) > _REMEMBER:
                table.popitem(last=False)

    def _fail(self, context: grpc.ServicerContext, method: str, exc: BaseException) -> NoReturn:
        # Busy (too many waiting pops, a message being received twice) is UNAVAILABLE here, the one
        # code pyfate's channel retries by itself.
        code = grpc.StatusCode.UNAVAILABLE if isinstance(exc, Busy) else status_of(exc)
        details = exc.details if isinstance(exc, RemoteStatus) else str(exc)
        if isinstance(exc, (PermissionDenied, Unauthenticated)):
            log.warning("PTP %s from %s refused: %s", method, context.peer(), details)
        elif code == grpc.StatusCode.INTERNAL:
            log.error("PTP %s from %s failed: %s", method, context.peer(), details, exc_info=exc)
        else:
            log.info("PTP %s from %s: %s %s", method, context.peer(), code.name, details)
        error_type = exc.error_type if isinstance(exc, RemoteStatus) else type(exc).__name__
        # A refusal by another gateway keeps its meaning: rebuild its error to pick the PTP code.
        cause = (
            error_from_status(exc.code, exc.details, exc.error_type, "")
            if isinstance(exc, RemoteStatus)
            else exc
        )
        context.set_trailing_metadata(((CODE_KEY, ptp_code_of(cause)), (ERROR_TYPE_KEY, error_type or "")))
        context.abort(code, details)
        raise AssertionError("unreachable: context.abort raises")  # pragma: no cover

    def _run(self, context: grpc.ServicerContext, method: str, body: Callable[[], _T]) -> _T:
        return run_guarded(body, lambda exc: self._fail(context, method, exc))

    def _topic(self, raw_topic: str, session: str, what: str, *, src: str | None, dst: str) -> PtpTopic:
        """Parse a topic of this session between ``src`` (None: any sender) and ``dst``.

        A topic of the session between other parties is refused naming them: a component may only
        push as its own party and read its own party's messages.
        """
        try:
            return parse_topic(raw_topic, session, src_party_id=src, dst_party_id=dst)
        except ProtocolError as exc:
            try:
                other = parse_topic(raw_topic, session)
            except ProtocolError:
                raise exc from None
            if src is not None and other.src.party_id != src:
                raise PermissionDenied(
                    f"{what}: topic {raw_topic!r} names party {other.src.party_id} as its sender, but the "
                    f"caller is party {src} ({FROM_NODE_ID_KEY}); a component may only push as its own party"
                ) from None
            if other.dst.party_id != dst and src is None:
                raise PermissionDenied(
                    f"{what}: topic {raw_topic!r} is addressed to party {other.dst.party_id}, but the caller "
                    f"is party {dst} ({FROM_NODE_ID_KEY}); a component can only read its own party's "
                    "messages"
                ) from None
            if other.dst.party_id != dst:
                raise ProtocolError(
                    f"{what}: topic {raw_topic!r} is addressed to party {other.dst.party_id}, but "
                    f"{TARGET_NODE_ID_KEY} says party {dst}"
                ) from None
            raise

    def _read(self, entry: SpoolEntry) -> bytes:
        """The payload of a spooled message, checked against the digest it was accepted with."""
        checksum = Checksum(entry.checksum)
        parts: list[bytes] = []
        for chunk in entry.iter_chunks(self._config.limits.chunk_bytes):
            checksum.update(chunk)
            parts.append(chunk)
        data = b"".join(parts)
        if len(data) != entry.size or checksum.digest() != entry.digest:
            raise PayloadError(
                f"spooled message {entry.key.describe()} failed its {entry.checksum} check (damaged spool file?)"
            )
        return data

    # ------------------------------------------------------------------ push

    def push(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """PrivateTransferTransport.push: send a message to the topic's destination party."""

        def body() -> bytes:
            meta = self._metadata(context)
            session = self._required(meta, SESSION_ID_KEY, "push")
            src = self._own_party(meta, "push")
            dst = self._required(meta, TARGET_NODE_ID_KEY, "push")
            msg = parse_message(osx_pb2.PushInbound, request, "PushInbound")
            topic = self._topic(str(msg.topic), session, "push", src=src, dst=dst)
            data = bytes(msg.payload)
            limit = self._config.limits.max_message_bytes
            if len(data) > limit:
                raise MessageTooLarge(
                    f"push: the message on topic {topic.topic!r} has {len(data)} bytes; the gateway of party "
                    f"{self._config.party_id} accepts at most {limit} (limits.max_message_bytes)"
                )
            tag = self._tag_for(session, topic.topic, meta.get(TRACE_ID_KEY, ""), data)
            key = MessageKey(session, topic.topic, tag, topic.src, topic.dst)
            caller = Caller(src, "client", f"PTP client {context.peer()}", verified=False)
            result = self._send(caller, key, data, time_left(context))
            duplicate = isinstance(result, PushResult) and result.duplicate
            log.debug(
                "PTP push %s (%d bytes)%s", key.describe(), len(data), " (re-send)" if duplicate else ""
            )
            return _reply(CODE_SUCCESS, "duplicate: already delivered" if duplicate else "")

        return self._run(context, "push", body)

    def _tag_for(self, session: str, topic: str, trace_id: str, data: bytes) -> str:
        if not trace_id:
            return self._tags.next()
        recent = (session, topic, trace_id, len(data), zlib.crc32(data))
        with self._lock:
            tag = self._recent.get(recent)
        if tag is None:
            tag = self._tags.next()
            self._remember(self._recent, recent, tag)
        return tag

    def _send(
        self, caller: Caller, key: MessageKey, data: bytes, deadline: float | None
    ) -> PushResult | bytes:
        """Push through the gateway core, retrying while the way to the destination is down."""
        start = time.monotonic()
        give_up = start + (SEND_TIMEOUT if deadline is None else deadline)
        # A slow link must not turn into a timeout: allow each attempt >= 1 MiB/s.
        allowance = 60.0 + len(data) / float(1 << 20)
        chunk = self._config.limits.chunk_bytes
        view = memoryview(data)
        delay = _BACKOFF_START
        while True:
            attempt = allowance if deadline is None else max(0.1, give_up - time.monotonic())
            frames = push_frames(key, len(data), (view[i : i + chunk] for i in range(0, len(data), chunk)))
            try:
                return self._core.push(caller, None, 0, frames, attempt)
            except FederationError as exc:
                if status_of(exc) not in RETRYABLE or time.monotonic() + delay >= give_up:
                    raise
                log.info("PTP push of %s: %s; retrying in %.1fs", key.describe(), exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX)

    # ------------------------------------------------------------------ pop / peek

    def pop(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """PrivateTransferTransport.pop: take the oldest message of a topic, waiting for one."""

        def body() -> bytes:
            meta = self._metadata(context)
            session = self._required(meta, SESSION_ID_KEY, "pop")
            party = self._own_party(meta, "pop")
            msg = parse_message(osx_pb2.PopInbound, request, "PopInbound")
            topic = self._topic(str(msg.topic), session, "pop", src=None, dst=party)
            wait = pop_wait_seconds(int(msg.timeout), time_left(context))
            return self._pop(context, party, topic, wait)

        return self._run(context, "pop", body)

    def _pop(self, context: grpc.ServicerContext, party: str, topic: PtpTopic, wait: float) -> bytes:
        session = topic.session_id
        if self._is_released(party, session):
            return _reply(CODE_TIMEOUT, f"pop: session {session} was released at party {party}'s gateway")
        deadline = time.monotonic() + wait

        def cancelled() -> bool:
            return not context.is_active() or self._is_released(party, session)

        with self._topics.hold((party, session, topic.topic), wait) as held:
            entry = None
            if held:
                queued = self._spool.queued(party, session, topic.topic, limit=1)
                entry = queued[0] if queued else None
                if entry is None:
                    if not self._waiters.acquire(blocking=False):
                        raise Busy(
                            f"pop: too many components are waiting at the gateway of party "
                            f"{self._config.party_id}; retry"
                        )
                    try:
                        entry = self._spool.wait_queued(
                            party, session, topic.topic, deadline - time.monotonic(), cancelled
                        )
                    finally:
                        self._waiters.release()
            if entry is None:
                if self._is_released(party, session):
                    return _reply(CODE_TIMEOUT, f"pop: session {session} was released while waiting")
                return _reply(
                    CODE_TIMEOUT,
                    f"pop: no message on topic {topic.topic!r} from {topic.src} for {topic.dst} within "
                    f"{wait:.1f}s (timed out at party {party}'s gateway)",
                )
            data = self._read(entry)
            if not context.is_active():
                return b""  # the caller left: keep the message for its next pop
            self._spool.ack(entry.key)
        log.debug("PTP pop %s (%d bytes)", entry.key.describe(), len(data))
        return _reply(CODE_SUCCESS, payload=data)

    def peek(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """PrivateTransferTransport.peek: the oldest message of a topic, without taking it or waiting."""

        def body() -> bytes:
            meta = self._metadata(context)
            session = self._required(meta, SESSION_ID_KEY, "peek")
            party = self._own_party(meta, "peek")
            msg = parse_message(osx_pb2.PeekInbound, request, "PeekInbound")
            topic = self._topic(str(msg.topic), session, "peek", src=None, dst=party)
            if self._is_released(party, session):
                return _reply(
                    CODE_TIMEOUT, f"peek: session {session} was released at party {party}'s gateway"
                )
            queued = self._spool.queued(party, session, topic.topic, limit=1)
            if not queued:
                return _reply(CODE_NOT_FOUND, f"peek: no message on topic {topic.topic!r} yet")
            return _reply(CODE_SUCCESS, payload=self._read(queued[0]))

        return self._run(context, "peek", body)

    # ------------------------------------------------------------------ release

    def release(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """PrivateTransferTransport.release: drop a session's messages for the caller's party."""

        def body() -> bytes:
            meta = self._metadata(context)
            session = self._required(meta, SESSION_ID_KEY, "release")
            parse_message(osx_pb2.ReleaseInbound, request, "ReleaseInbound")
            if not meta.get(FROM_NODE_ID_KEY):
                # pyfate's cleanup names no party, and other roles of the party may share the session
                # and still be reading: dropping their messages would break them.
                log.debug("PTP release of session %s without a party: nothing dropped", session)
                return _reply(
                    CODE_SUCCESS,
                    f"release: no {FROM_NODE_ID_KEY}, nothing dropped; session {session}'s leftovers expire "
                    "with the spool retention",
                )
            party = self._own_party(meta, "release")
            self._remember(self._released, (party, session), None)
            removed = self._spool.cleanup_session(session, party)
            log.info("PTP release of session %s for party %s: %d message(s) dropped", session, party, removed)
            return _reply(
                CODE_SUCCESS, f"released session {session} for party {party}: {removed} message(s) dropped"
            )

        return self._run(context, "release", body)

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        """Generic handlers (raw bytes in and out, parsed here) for the PTP transport service."""
        # Tie the served name to the .proto file it must match.
        assert osx_pb2.DESCRIPTOR.services_by_name["PrivateTransferTransport"].full_name == PTP_SERVICE
        return [
            grpc.method_handlers_generic_handler(
                PTP_SERVICE,
                {
                    "peek": grpc.unary_unary_rpc_method_handler(self.peek),
                    "pop": grpc.unary_unary_rpc_method_handler(self.pop),
                    "push": grpc.unary_unary_rpc_method_handler(self.push),
                    "release": grpc.unary_unary_rpc_method_handler(self.release),
                },
            )
        ]


def create_ptp_server(config: GatewayConfig, core: GatewayCore) -> tuple[grpc.Server, int]:
    """Create and bind (not start) the PTP server on ``config.ptp_listen``; returns it and its port.

    The port is 0 for a unix socket. Whole messages travel in one gRPC message, so the frame limit
    is the gateway's message limit (as far as gRPC allows) plus room for the envelope.

    :raises ConfigError: ``ptp_listen`` missing or cannot be bound.
    """
    if config.ptp_listen is None:
        raise ConfigError("ptp_listen: not configured")
    frame = min(config.limits.max_message_bytes + (1 << 20), _GRPC_MAX_MESSAGE)
    options = [
        (name, value)
        for name, value in server_options(config.limits)
        if name not in ("grpc.max_receive_message_length", "grpc.max_send_message_length")
    ]
    options += [("grpc.max_receive_message_length", frame), ("grpc.max_send_message_length", frame)]
    server = grpc.server(
        ThreadPoolExecutor(max_workers=config.limits.max_workers, thread_name_prefix="ptp"),
        options=options,
        maximum_concurrent_rpcs=config.limits.max_workers * 4,
    )
    server.add_generic_rpc_handlers(PtpService(core).handlers())
    if config.ptp_listen.startswith("unix:"):
        # A socket in a folder of its own that only this user may enter (unless the folder exists
        # already, e.g. a volume shared with the party's worker containers).
        Path(config.ptp_listen[len("unix:") :]).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        port = server.add_insecure_port(config.ptp_listen)
    except RuntimeError as exc:  # grpc's "Failed to bind to address ..."
        raise ConfigError(f"ptp_listen: cannot bind {config.ptp_listen}: {exc}") from None
    if port == 0:
        raise ConfigError(f"ptp_listen: cannot bind {config.ptp_listen} (address in use or not local?)")
    # grpc answers 1 for a bound unix socket: there is no port.
    return server, 0 if config.ptp_listen.startswith("unix:") else port


__all__ = ["PTP_SERVICE", "SEND_TIMEOUT", "PtpService", "create_ptp_server"]
