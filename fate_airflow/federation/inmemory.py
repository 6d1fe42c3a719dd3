"""In-memory federation: every party of a simulated job in one process (tests, local simulation).

It obeys the same contract as the gRPC implementation (shared contract tests): messages are scoped
by session, ``get`` times out naming the party and name/tag, and a (name, tag) may be sent to a
party only once per session. :attr:`InMemoryHub.log` records what crossed, so privacy tests can
inspect the messages themselves.

Every object crosses through the same payload codec as over gRPC
(:mod:`fate_airflow.federation.payload`), so both implementations accept and refuse the same
values and the receiver always gets a fresh copy, never the sender's object.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from fate_airflow.core.errors import FederationError, FederationTimeout
from fate_airflow.core.types import Party
from fate_airflow.federation.api import (
    DEFAULT_GET_TIMEOUT,
    CommandHandler,
    ControlClient,
    ControlCommand,
    ControlReply,
    Federation,
    FederationSession,
    Payload,
    dispatch,
)
from fate_airflow.federation.payload import decode_stream, iter_encode, measure


@dataclass(frozen=True)
class Transfer:
    """One message as it crossed the (simulated) wire."""

    session_id: str
    name: str
    tag: str
    src: Party
    dst: Party
    obj: Payload


_Key = tuple[str, str, str, Party, Party]


class InMemoryHub:
    """The shared mailbox of all simulated parties."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._boxes: dict[_Key, Payload] = {}
        self._sent: set[_Key] = set()
        #: Every transfer, in send order.
        self.log: list[Transfer] = []

    def put(self, key: _Key, obj: Payload) -> None:
        """Deliver ``obj`` under ``key``; a key may be used once."""
        with self._cond:
            if key in self._sent:
                session_id, name, tag, src, dst = key
                raise FederationError(
                    f"duplicate message {name!r} tag {tag!r} from {src} to {dst} in session {session_id}"
                )
            self._sent.add(key)
            self._boxes[key] = obj
            self.log.append(Transfer(key[0], key[1], key[2], key[3], key[4], obj))
            self._cond.notify_all()

    def take(self, key: _Key, deadline: float) -> Payload:
        """Remove and return the message under ``key``, waiting until ``deadline`` (monotonic)."""
        with self._cond:
            while key not in self._boxes:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    _, name, tag, src, dst = key
                    raise FederationTimeout(
                        f"{dst} timed out waiting for {name!r} tag {tag!r} from {src}",
                        party=str(src),
                        name=name,
                        tag=tag,
                    )
                self._cond.wait(remaining)
            return self._boxes.pop(key)

    def cleanup(self, session_id: str, dst: Party | None = None) -> int:
        """Drop undelivered messages of ``session_id`` (for one destination, or all); returns the count."""
        with self._cond:
            doomed = [k for k in self._boxes if k[0] == session_id and (dst is None or k[4] == dst)]
            for key in doomed:
                del self._boxes[key]
            return len(doomed)

    def federation(self, session: FederationSession) -> InMemoryFederation:
        """A :class:`Federation` for ``session`` connected to this hub."""
        return InMemoryFederation(self, session)


class InMemoryFederation(Federation):
    """:class:`Federation` over an :class:`InMemoryHub`. Objects are encoded and decoded, never shared."""

    def __init__(self, hub: InMemoryHub, session: FederationSession) -> None:
        super().__init__(session)
        self._hub = hub

    def remote(self, obj: Payload, name: str, tag: str, parties: Sequence[Party]) -> None:
        """Send a decoded copy of ``obj`` to each party.

        :raises PayloadError: ``obj`` holds a type that cannot cross a party (nothing is sent).
        """
        size = measure(obj)
        for dst in parties:
            key = (self.session.session_id, name, tag, self.session.local, dst)
            self._hub.put(key, decode_stream(iter_encode(obj), size))

    def get(
        self, name: str, tag: str, parties: Sequence[Party], timeout: float | None = None
    ) -> list[Payload]:
        """Receive one object from each party, in order."""
        deadline = time.monotonic() + (DEFAULT_GET_TIMEOUT if timeout is None else timeout)
        return [
            self._hub.take((self.session.session_id, name, tag, src, self.session.local), deadline)
            for src in parties
        ]

    def cleanup(self) -> int:
        """Drop messages of this session still waiting for this party."""
        return self._hub.cleanup(self.session.session_id, self.session.local)


class InMemoryControlNetwork:
    """Handlers of simulated parties, addressed by party id."""

    def __init__(self) -> None:
        self.handlers: dict[str, CommandHandler] = {}
        #: Party ids that are "down": calls to them fail like an unreachable gateway.
        self.down: set[str] = set()

    def register(self, party_id: str, handler: CommandHandler) -> None:
        """Serve ``party_id`` with ``handler``."""
        self.handlers[party_id] = handler

    def client(self, local_party_id: str) -> InMemoryControlClient:
        """A client that speaks as ``local_party_id``."""
        return InMemoryControlClient(self, local_party_id)


class InMemoryControlClient(ControlClient):
    """:class:`ControlClient` that calls the destination's handler directly."""

    def __init__(self, network: InMemoryControlNetwork, local_party_id: str) -> None:
        self._network = network
        self.local_party_id = local_party_id

    def _handler(self, dst_party_id: str) -> CommandHandler:
        if dst_party_id in self._network.down:
            raise FederationError(f"party {dst_party_id} is unreachable")
        try:
            return self._network.handlers[dst_party_id]
        except KeyError:
            raise FederationError(f"party {dst_party_id} is not in the route table") from None

    def call(self, dst_party_id: str, cmd: ControlCommand, timeout: float = 30.0) -> ControlReply:
        """Call the destination's handler as ``local_party_id``."""
        return dispatch(self._handler(dst_party_id), self.local_party_id, cmd)

    def ping(self, dst_party_id: str, timeout: float = 5.0) -> float:
        """Zero-latency ping; fails for unknown or down parties."""
        self._handler(dst_party_id)
        return 0.0


__all__ = [
    "InMemoryControlClient",
    "InMemoryControlNetwork",
    "InMemoryFederation",
    "InMemoryHub",
    "Transfer",
]
