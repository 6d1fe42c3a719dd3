"""The one mapping between our errors and gRPC status codes, in both directions.

Server side, :func:`status_of` picks the code for an exception; the servicer also sends the error's
class name in the ``x-fate-error`` trailer. Client side, :func:`error_from_rpc` rebuilds the same
class (only classes of :mod:`fate_airflow.core.errors` and :mod:`fate_airflow.federation.errors`)
so a :class:`~fate_airflow.core.errors.SchedulingError` raised by a remote handler arrives as one.
"""

from __future__ import annotations

import grpc

from fate_airflow.core import errors as core_errors
from fate_airflow.core.errors import ConfigError, FateAirflowError, FederationError, FederationTimeout
from fate_airflow.federation import errors as fed_errors
from fate_airflow.federation.errors import (
    Busy,
    HandlerFailed,
    HandlerUnavailable,
    MessageTooLarge,
    NoRoute,
    PartyUnreachable,
    PayloadError,
    PermissionDenied,
    ProtocolError,
    QuotaExceeded,
    Unauthenticated,
)

#: Trailing-metadata key carrying the class name of the error that caused a non-OK status.
ERROR_TYPE_KEY = "x-fate-error"

# Most specific first: the first isinstance match wins.
_TO_CODE: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (ProtocolError, grpc.StatusCode.INVALID_ARGUMENT),
    (PayloadError, grpc.StatusCode.INVALID_ARGUMENT),
    (MessageTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (QuotaExceeded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (NoRoute, grpc.StatusCode.NOT_FOUND),
    (HandlerUnavailable, grpc.StatusCode.UNIMPLEMENTED),
    (HandlerFailed, grpc.StatusCode.INTERNAL),
    (Busy, grpc.StatusCode.ABORTED),
    (FederationTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (PartyUnreachable, grpc.StatusCode.UNAVAILABLE),
    (FederationError, grpc.StatusCode.UNAVAILABLE),
    (ConfigError, grpc.StatusCode.FAILED_PRECONDITION),
    (FateAirflowError, grpc.StatusCode.FAILED_PRECONDITION),
)

_FROM_CODE: dict[grpc.StatusCode, type[FederationError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: ProtocolError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: MessageTooLarge,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.NOT_FOUND: NoRoute,
    grpc.StatusCode.UNIMPLEMENTED: HandlerUnavailable,
    grpc.StatusCode.ABORTED: Busy,
    grpc.StatusCode.DEADLINE_EXCEEDED: FederationTimeout,
    grpc.StatusCode.UNAVAILABLE: PartyUnreachable,
}

#: Codes after which retrying the same request later may succeed.
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED})


class RemoteStatus(FederationError):
    """A status returned by the next gateway, passed back to our caller unchanged.

    :param code: the next hop's status code.
    :param details: its message.
    :param error_type: its ``x-fate-error`` trailer.
    """

    def __init__(self, code: grpc.StatusCode, details: str, error_type: str | None) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.error_type = error_type


def status_of(exc: BaseException) -> grpc.StatusCode:
    """The gRPC status code for ``exc`` (INTERNAL for anything that is not ours: a bug)."""
    if isinstance(exc, RemoteStatus):
        return exc.code
    for cls, code in _TO_CODE:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.INTERNAL


def _error_class(name: str | None) -> type[FateAirflowError] | None:
    if not name:
        return None
    for module in (fed_errors, core_errors):
        cls = getattr(module, name, None)
        if isinstance(cls, type) and issubclass(cls, FateAirflowError):
            return cls
    return None


def error_type_of(err: grpc.RpcError) -> str | None:
    """The ``x-fate-error`` trailer of a failed call, if any."""
    trailing = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
    for key, value in trailing or ():
        if key == ERROR_TYPE_KEY:
            return str(value)
    return None


def error_from_status(
    code: grpc.StatusCode, details: str, error_type: str | None, context: str
) -> FateAirflowError:
    """Rebuild our exception from a status; ``context`` (e.g. ``party 10000``) prefixes the message."""
    message = f"{context}: {details}" if context else details
    cls = _error_class(error_type)
    if cls is not None:
        if issubclass(cls, core_errors.DslError):
            return cls([message])
        return cls(message)
    fallback = _FROM_CODE.get(code, FederationError)
    if code == grpc.StatusCode.UNAVAILABLE:
        message = f"{context}: unreachable ({details})" if context else details
    return fallback(f"{message} [{code.name}]" if fallback is FederationError else message)


def error_from_rpc(err: grpc.RpcError, context: str) -> FateAirflowError:
    """Translate a failed call (sync or aio) into our exception."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = (err.details() if hasattr(err, "details") else None) or str(err)
    return error_from_status(code, details, error_type_of(err), context)


__all__ = [
    "ERROR_TYPE_KEY",
    "RETRYABLE",
    "RemoteStatus",
    "error_from_rpc",
    "error_from_status",
    "error_type_of",
    "status_of",
]
