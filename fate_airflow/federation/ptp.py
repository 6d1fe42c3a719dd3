"""FATE's PTP ("osx") message-queue protocol, the parts that need no gRPC: topics, codes, ordering.

pyfate's ``osx`` federation backend (FATE 2.2) talks to its own party's gateway through
``org.ppc.ptp.PrivateTransferTransport``: ``push`` appends a message to a *topic*, ``pop`` takes
the oldest one, ``release`` drops a session's queues. A topic names both ends of one channel::

    {federation_id}-{src_role}-{src_party}-{dst_role}-{dst_party}-{suffix}

The gateway maps a PTP message onto its own data plane (:mod:`fate_airflow.federation.grpc.ptp`):
the :class:`~fate_airflow.federation.spool.MessageKey` is ``(session = federation id, name = topic,
tag = ordering tag, src, dst)``, where the ordering tag (:class:`OrderingTags`) makes the order of
the pushes recoverable at the destination, so every topic is a strict FIFO queue.

Reply codes (``TransportOutbound.code``) follow the PTP interconnection standard that FATE's OSX
implements: ``"0"`` success; :data:`CODE_TIMEOUT` (``E0000000601``, "request timed out") when a
pop found no message in time *or* its session was released — pyfate turns exactly that code into a
``LookupError`` carrying our message. Refusals and failures are raised as gRPC errors instead
(pyfate ignores the reply of ``push`` and would otherwise drop a refused message silently); their
standard code travels in the ``x-ptp-code`` trailer (:func:`ptp_code_of`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from fate_airflow.core.errors import FederationTimeout
from fate_airflow.core.types import PARTY_ID_PATTERN, ROLE_ORDER, Party
from fate_airflow.federation.errors import (
    Busy,
    MessageTooLarge,
    NoRoute,
    PartyUnreachable,
    PermissionDenied,
    ProtocolError,
    QuotaExceeded,
    Unauthenticated,
)

# gRPC metadata keys pyfate sends (fate/arch/federation/backends/osx/_mq_channel.py).
SESSION_ID_KEY = "x-ptp-session-id"
FROM_NODE_ID_KEY = "x-ptp-from-node-id"
TARGET_NODE_ID_KEY = "x-ptp-target-node-id"
TRACE_ID_KEY = "x-ptp-trace-id"
TECH_PROVIDER_KEY = "x-ptp-tech-provider-code"
#: Trailing metadata of a refused call: the PTP standard's code for the failure.
CODE_KEY = "x-ptp-code"

CODE_SUCCESS = "0"
#: "Request timed out": no message within the pop's timeout, or the session was released.
CODE_TIMEOUT = "E0000000601"
#: "Requested resource does not exist": a peek found no message.
CODE_NOT_FOUND = "E0000000404"
CODE_INVALID_REQUEST = "E0000000400"
CODE_UNAUTHORIZED = "E0000000403"
CODE_TOO_LARGE = "E0000000413"
CODE_UNREACHABLE = "E0000000607"
CODE_SYSTEM_ERROR = "E0000000500"

#: Pop wait when the request gives none (PopInbound.timeout <= 0), seconds.
DEFAULT_POP_WAIT = 600.0
#: Longest single pop wait, seconds (pyfate's default asks for 36,000,000 ms = 10 h).
MAX_POP_WAIT = 24 * 3600.0


@dataclass(frozen=True)
class PtpTopic:
    """A parsed topic: the session it belongs to, both ends, and pyfate's suffix (name[-partition])."""

    topic: str
    session_id: str
    src: Party
    dst: Party
    suffix: str


def _valid_party_id(text: str) -> bool:
    return bool(PARTY_ID_PATTERN.match(text))


def parse_topic(
    topic: str,
    session_id: str,
    *,
    src_party_id: str | None = None,
    dst_party_id: str | None = None,
) -> PtpTopic:
    """Split ``topic`` into its ends, checking it against what the call's metadata says.

    Party ids may contain ``-`` themselves, so the split is searched for rather than cut: the
    first decomposition with known roles, valid party ids, a non-empty suffix and the given party
    ids (when given) wins.

    :raises ProtocolError: the topic is not ``{session}-{role}-{party}-{role}-{party}-{suffix}`` for
        this session and these parties; the message says what was expected.
    """
    prefix = f"{session_id}-"
    if not session_id or not topic.startswith(prefix):
        raise ProtocolError(
            f"topic {topic!r} does not belong to session {session_id!r} (it must start with {prefix!r})"
        )
    rest = topic[len(prefix) :]
    for src_role in ROLE_ORDER:
        if not rest.startswith(f"{src_role}-"):
            continue
        after_src_role = rest[len(src_role) + 1 :]
        for dst_role in ROLE_ORDER:
            marker = f"-{dst_role}-"
            start = after_src_role.find(marker)
            while start > 0:
                src_party = after_src_role[:start]
                tail = after_src_role[start + len(marker) :]
                found = _split_dst(tail, dst_party_id)
                if (
                    found is not None
                    and _valid_party_id(src_party)
                    and (src_party_id is None or src_party == src_party_id)
                ):
                    dst_party, suffix = found
                    return PtpTopic(
                        topic, session_id, Party(src_role, src_party), Party(dst_role, dst_party), suffix
                    )
                start = after_src_role.find(marker, start + 1)
    expected = f"{session_id}-<role>-{src_party_id or '<party>'}-<role>-{dst_party_id or '<party>'}-<name>"
    raise ProtocolError(f"topic {topic!r} is not of the form {expected!r}")


def _split_dst(tail: str, dst_party_id: str | None) -> tuple[str, str] | None:
    """``{dst_party}-{suffix}`` → (party, suffix), honouring a known party id."""
    if dst_party_id is not None:
        if tail.startswith(f"{dst_party_id}-") and len(tail) > len(dst_party_id) + 1:
            return dst_party_id, tail[len(dst_party_id) + 1 :]
        return None
    party, sep, suffix = tail.partition("-")
    if sep and suffix and _valid_party_id(party):
        return party, suffix
    return None


class OrderingTags:
    """Strictly increasing, zero-padded tags: the order of the pushes through one gateway.

    A tag is ``max(previous + 1, time.time_ns())`` printed with 20 digits, so tags compare the same
    as strings and as numbers, and keep increasing across a restart of the gateway (unless the
    wall clock is set back by more than the restart took). pyfate pushes the messages of one topic
    one after another, each waiting for the previous to be accepted by the destination gateway,
    so the smallest spooled tag of a topic is always its oldest message.
    """

    WIDTH = 20

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def next(self) -> str:
        """The next tag."""
        with self._lock:
            self._last = max(self._last + 1, time.time_ns())
            return str(self._last).zfill(self.WIDTH)


def ptp_code_of(exc: BaseException) -> str:
    """The PTP standard's code for a failure (sent in the :data:`CODE_KEY` trailer)."""
    if isinstance(exc, (ProtocolError, ValueError)):
        return CODE_INVALID_REQUEST
    if isinstance(exc, (PermissionDenied, Unauthenticated)):
        return CODE_UNAUTHORIZED
    if isinstance(exc, (MessageTooLarge, QuotaExceeded)):
        # The standard has no code of its own for a full store: "too large" (for the space left)
        # is the nearest, and the details name the quota.
        return CODE_TOO_LARGE
    if isinstance(exc, FederationTimeout):
        return CODE_TIMEOUT
    if isinstance(exc, (PartyUnreachable, NoRoute, Busy)):
        return CODE_UNREACHABLE
    return CODE_SYSTEM_ERROR


def pop_wait_seconds(timeout_ms: int, deadline: float | None) -> float:
    """How long a pop waits: PopInbound.timeout (milliseconds, as FATE's OSX reads it), capped.

    :param timeout_ms: the request's timeout; 0 or less means :data:`DEFAULT_POP_WAIT`.
    :param deadline: seconds left of the call's gRPC deadline, if it has one; the answer leaves a
        little of it for the reply to travel back.
    """
    wait = DEFAULT_POP_WAIT if timeout_ms <= 0 else timeout_ms / 1000.0
    wait = min(wait, MAX_POP_WAIT)
    if deadline is not None:
        wait = min(wait, max(0.0, deadline - 0.2))
    return wait


__all__ = [
    "CODE_INVALID_REQUEST",
    "CODE_KEY",
    "CODE_NOT_FOUND",
    "CODE_SUCCESS",
    "CODE_SYSTEM_ERROR",
    "CODE_TIMEOUT",
    "CODE_TOO_LARGE",
    "CODE_UNAUTHORIZED",
    "CODE_UNREACHABLE",
    "DEFAULT_POP_WAIT",
    "FROM_NODE_ID_KEY",
    "MAX_POP_WAIT",
    "SESSION_ID_KEY",
    "TARGET_NODE_ID_KEY",
    "TECH_PROVIDER_KEY",
    "TRACE_ID_KEY",
    "OrderingTags",
    "PtpTopic",
    "parse_topic",
    "pop_wait_seconds",
    "ptp_code_of",
]
