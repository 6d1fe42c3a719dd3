"""The typed control call: a reply of the wrong type is an error naming the party, not a value."""

from __future__ import annotations

from typing import Any

import pytest

from fate_airflow.core.errors import FederationError
from fate_airflow.federation.api import REPLY_TYPES, Ack, ControlCommand, JobView, QueryJob, StopJob, dispatch
from fate_airflow.federation.inmemory import InMemoryControlNetwork


class Confused:
    """A peer speaking another version of the protocol: it acknowledges a query."""

    def __getattr__(self, name: str) -> Any:
        return lambda src, cmd: Ack(True, "?") if name == "query_job" else JobView(cmd.job_id, True)


def test_ask_returns_the_handlers_reply_and_refuses_another_type() -> None:
    net = InMemoryControlNetwork()
    net.register("10000", Confused())  # type: ignore[arg-type]
    client = net.client("9999")
    with pytest.raises(FederationError, match=r"party 10000 answered QueryJob with Ack, not JobView"):
        client.ask("10000", QueryJob("j"))
    with pytest.raises(FederationError, match=r"party 10000 answered StopJob with JobView, not Ack"):
        client.ask("10000", StopJob("j", "canceled"))


def test_every_command_has_a_reply_type_that_dispatch_returns() -> None:
    commands = set(ControlCommand.__args__)  # type: ignore[attr-defined]
    assert set(REPLY_TYPES) == commands
    with pytest.raises(TypeError):
        dispatch(Confused(), "9999", object())  # type: ignore[arg-type]
