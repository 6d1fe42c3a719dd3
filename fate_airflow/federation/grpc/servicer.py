"""Thin gRPC edge of the gateway: unpack the call, run :class:`.handlers.GatewayCore`, pack the reply.

Requests are received as raw bytes and parsed here, so a malformed message becomes
INVALID_ARGUMENT with a clear message instead of gRPC's generic deserialisation failure. Every
exception is turned into a status in :meth:`_Servicer._fail` — the only place that does so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar

import grpc

from fate_airflow.core.errors import FateAirflowError
from fate_airflow.core.types import validate_party_id
from fate_airflow.federation.errors import PermissionDenied, ProtocolError, Unauthenticated
from fate_airflow.federation.grpc.auth import (
    CLAIMED_KIND_KEY,
    CLAIMED_PARTY_KEY,
    HOPS_KEY,
    ORIGIN_KEY,
    Caller,
    TrustStore,
    internal_caller,
)
from fate_airflow.federation.grpc.handlers import GatewayCore, PushResult
from fate_airflow.federation.grpc.status import ERROR_TYPE_KEY, RemoteStatus, status_of
from fate_airflow.federation.serde import message_key_from_proto
from fate_airflow.proto.federation.v1 import control_pb2, transfer_pb2

log = logging.getLogger(__name__)

TRANSFER_SERVICE = "fate_airflow.federation.v1.Transfer"
CONTROL_SERVICE = "fate_airflow.federation.v1.Control"

_T = TypeVar("_T")


def parse_message(cls: Any, raw: bytes, what: str) -> Any:
    """Decode a request of protobuf type ``cls``. :raises ProtocolError: naming ``what``."""
    try:
        return cls.FromString(raw)
    except Exception as exc:  # protobuf's DecodeError; keep its types out of the API
        raise ProtocolError(f"malformed {what}: {exc}") from None


def time_left(context: grpc.ServicerContext) -> float | None:
    """Seconds until the call's deadline, or None when it has none."""
    remaining = context.time_remaining()
    # gRPC reports "no deadline" as a huge number.
    return None if remaining is None or remaining > 10**8 else max(0.0, remaining)


def run_guarded(body: Callable[[], _T], fail: Callable[[BaseException], NoReturn]) -> _T:
    """Run a handler body; any error but an abort already under way goes to ``fail``."""
    try:
        return body()
    except grpc.RpcError:
        raise  # an abort already in progress
    except Exception as exc:
        fail(exc)


class _Servicer:
    """Both services of one gateway (Transfer and Control) over one :class:`GatewayCore`.

    :param internal: served on the party-internal endpoint: callers are the gateway's own
        parties' clients, named by a header (see :func:`~.auth.internal_caller`).
    """

    def __init__(self, core: GatewayCore, trust: TrustStore | None, internal: bool = False) -> None:
        self._core = core
        self._trust = trust
        self._config = core.config
        self._internal = internal

    # ------------------------------------------------------------------ plumbing

    def _caller(self, context: grpc.ServicerContext) -> Caller:
        peer = context.peer()
        if self._internal:
            metadata = {str(k): str(v) for k, v in context.invocation_metadata() if isinstance(v, str)}
            return internal_caller(metadata, peer, self._config)
        if self._config.insecure:
            metadata = dict(context.invocation_metadata())
            party = metadata.get(CLAIMED_PARTY_KEY)
            if not party:
                raise Unauthenticated(
                    f"{CLAIMED_PARTY_KEY} header missing: the caller did not name its party"
                )
            try:
                validate_party_id(party)
            except ValueError as exc:
                raise Unauthenticated(str(exc)) from None
            return Caller(str(party), str(metadata.get(CLAIMED_KIND_KEY, "client")), peer, verified=False)
        assert self._trust is not None
        pems = context.auth_context().get("x509_pem_cert")
        if not pems:
            raise Unauthenticated("no client certificate presented")
        party, kind = self._trust.identify(pems[0], self._config.party_ids)
        return Caller(party, kind, peer)

    @staticmethod
    def _headers(context: grpc.ServicerContext) -> tuple[str | None, int]:
        origin: str | None = None
        hops = 0
        for key, value in context.invocation_metadata():
            if key == ORIGIN_KEY:
                origin = str(value)
            elif key == HOPS_KEY:
                try:
                    hops = int(value)
                except ValueError:
                    raise ProtocolError(f"{HOPS_KEY} header is not a number") from None
        return origin, hops

    def _fail(self, context: grpc.ServicerContext, method: str, exc: BaseException) -> NoReturn:
        code = status_of(exc)
        if isinstance(exc, RemoteStatus):
            details, error_type = exc.details, exc.error_type
        else:
            details, error_type = str(exc), type(exc).__name__
        if isinstance(exc, (PermissionDenied, Unauthenticated)):
            log.warning("refused %s from %s: %s", method, context.peer(), details)
        elif code == grpc.StatusCode.INTERNAL:
            log.error("%s from %s failed: %s", method, context.peer(), details, exc_info=exc)
        else:
            log.info("%s from %s: %s %s", method, context.peer(), code.name, details)
        if error_type and isinstance(exc, FateAirflowError):
            context.set_trailing_metadata(((ERROR_TYPE_KEY, error_type),))
        context.abort(code, details)
        raise AssertionError("unreachable: context.abort raises")  # pragma: no cover

    def _run(self, context: grpc.ServicerContext, method: str, body: Callable[[], _T]) -> _T:
        return run_guarded(body, lambda exc: self._fail(context, method, exc))

    # ------------------------------------------------------------------ Transfer

    def push(self, request_iterator: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        """Transfer.Push: spool or forward a streamed message."""

        def body() -> bytes:
            caller = self._caller(context)
            origin, hops = self._headers(context)
            result = self._core.push(caller, origin, hops, request_iterator, time_left(context))
            return result.to_bytes() if isinstance(result, PushResult) else result

        return self._run(context, "Push", body)

    def pull(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        """Transfer.Pull: stream a spooled message to its local receiver."""
        try:
            caller = self._caller(context)
            msg = parse_message(transfer_pb2.PullRequest, request, "pull request")
            if not msg.HasField("key"):
                raise ProtocolError("pull request lacks the message key")
            key = message_key_from_proto(msg.key)
            yield from self._core.pull(caller, key, float(msg.wait_seconds), lambda: not context.is_active())
        except grpc.RpcError:
            raise
        except Exception as exc:
            self._fail(context, "Pull", exc)

    def ack(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """Transfer.Ack: the receiver holds the message; drop it from the spool."""

        def body() -> bytes:
            caller = self._caller(context)
            msg = parse_message(transfer_pb2.AckRequest, request, "ack request")
            if not msg.HasField("key"):
                raise ProtocolError("ack request lacks the message key")
            removed = self._core.ack(caller, message_key_from_proto(msg.key), str(msg.message_id))
            return bytes(transfer_pb2.AckReply(removed=removed).SerializeToString())

        return self._run(context, "Ack", body)

    def cleanup(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """Transfer.Cleanup: drop a session's leftovers for the caller's party."""

        def body() -> bytes:
            caller = self._caller(context)
            msg = parse_message(transfer_pb2.CleanupRequest, request, "cleanup request")
            removed = self._core.cleanup(caller, str(msg.session_id))
            return bytes(transfer_pb2.CleanupReply(removed=removed).SerializeToString())

        return self._run(context, "Cleanup", body)

    # ------------------------------------------------------------------ Control

    def call(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """Control.Call: run a command here or forward it to its party."""

        def body() -> bytes:
            caller = self._caller(context)
            origin, hops = self._headers(context)
            return self._core.control(caller, origin, hops, request, time_left(context))

        return self._run(context, "Call", body)

    def ping(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """Control.Ping: answer for a party served here, or forward."""

        def body() -> bytes:
            caller = self._caller(context)
            origin, hops = self._headers(context)
            return self._core.ping(caller, origin, hops, request, time_left(context))

        return self._run(context, "Ping", body)

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        """Generic handlers with raw-bytes (de)serialisation for both services."""
        # Touch the generated modules so the service names stay tied to the .proto files.
        assert transfer_pb2.DESCRIPTOR.services_by_name["Transfer"].full_name == TRANSFER_SERVICE
        assert control_pb2.DESCRIPTOR.services_by_name["Control"].full_name == CONTROL_SERVICE
        transfer = grpc.method_handlers_generic_handler(
            TRANSFER_SERVICE,
            {
                "Push": grpc.stream_unary_rpc_method_handler(self.push),
                "Pull": grpc.unary_stream_rpc_method_handler(self.pull),
                "Ack": grpc.unary_unary_rpc_method_handler(self.ack),
                "Cleanup": grpc.unary_unary_rpc_method_handler(self.cleanup),
            },
        )
        control = grpc.method_handlers_generic_handler(
            CONTROL_SERVICE,
            {
                "Call": grpc.unary_unary_rpc_method_handler(self.call),
                "Ping": grpc.unary_unary_rpc_method_handler(self.ping),
            },
        )
        return [transfer, control]


def gateway_handlers(
    core: GatewayCore, trust: TrustStore | None, *, internal: bool = False
) -> list[grpc.GenericRpcHandler]:
    """The gRPC handlers of a gateway serving ``core``.

    :param internal: for the party-internal endpoint (callers name their own party; no TLS).
    """
    return _Servicer(core, trust, internal).handlers()


__all__ = ["CONTROL_SERVICE", "TRANSFER_SERVICE", "gateway_handlers"]
