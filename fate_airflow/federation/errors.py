"""Federation-specific refinements of :class:`~fate_airflow.core.errors.FederationError`.

Each class corresponds to exactly one gRPC status code (the mapping lives in
:mod:`fate_airflow.federation.grpc.status`), so a failure keeps its meaning across the wire and
callers can catch the plain :class:`FederationError` when they do not care which one it was.
"""

from __future__ import annotations

from fate_airflow.core.errors import FederationError, FederationTimeout


class PayloadError(FederationError):
    """An object cannot be sent (unsupported type) or received bytes are not a valid payload."""


class ProtocolError(FederationError):
    """A peer or client broke the wire protocol (frames out of order, bad digest, bad key)."""


class MessageTooLarge(FederationError):
    """A message exceeds the configured size limit."""


class QuotaExceeded(FederationError):
    """Accepting a message would take the receiving gateway's spool beyond one of its quotas.

    The message says which party, which quota and how much is in use; nothing of the refused
    message was kept. Space comes back as receivers consume their messages.
    """


class Unauthenticated(FederationError):
    """The caller presented no usable identity."""


class PermissionDenied(FederationError):
    """The caller is authenticated but not allowed to do this (wrong party, not allowlisted)."""


class PartyUnreachable(FederationError):
    """The destination party (or its gateway, or the local gateway) cannot be reached right now."""


class NoRoute(FederationError):
    """No route to the destination party is configured."""


class HandlerUnavailable(FederationError):
    """The destination gateway has no control-command handler (no scheduler attached)."""


class HandlerFailed(FederationError):
    """A command handler raised something that is not a project error (a bug on that side)."""


class Busy(FederationError):
    """Not possible right now; retry shortly.

    The same message is being received on another stream, too many receivers are waiting, or a
    message failed while it was being streamed to its receiver (its sender re-sends it).
    """


__all__ = [
    "Busy",
    "FederationError",
    "FederationTimeout",
    "HandlerFailed",
    "HandlerUnavailable",
    "MessageTooLarge",
    "NoRoute",
    "PartyUnreachable",
    "PayloadError",
    "PermissionDenied",
    "ProtocolError",
    "QuotaExceeded",
    "Unauthenticated",
]
