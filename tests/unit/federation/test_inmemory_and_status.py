"""In-memory specifics (the privacy log) and the status ↔ error mapping."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from fate_airflow.core.errors import DslError, FederationError, FederationTimeout, SchedulingError
from fate_airflow.core.types import Party
from fate_airflow.federation.api import FederationSession
from fate_airflow.federation.errors import (
    MessageTooLarge,
    PartyUnreachable,
    PayloadError,
    PermissionDenied,
    ProtocolError,
)
from fate_airflow.federation.grpc.status import error_from_status, status_of
from fate_airflow.federation.inmemory import InMemoryHub

GUEST, HOST = Party("guest", "9999"), Party("host", "10000")


def test_log_records_decoded_copies() -> None:
    hub = InMemoryHub()
    session = FederationSession("j", "t", 0, GUEST, (GUEST, HOST))
    sent = {"w": np.ones(3)}
    hub.federation(session).remote(sent, "w", "0", [HOST])
    [transfer] = hub.log
    assert (transfer.src, transfer.dst, transfer.name) == (GUEST, HOST, "w")
    assert transfer.obj is not sent and transfer.obj["w"] is not sent["w"]
    np.testing.assert_array_equal(transfer.obj["w"], sent["w"])
    [received] = hub.federation(session.with_local(HOST)).get("w", "0", [GUEST], timeout=1)
    sent["w"][0] = 99  # the sender mutating its object afterwards changes nothing received
    assert received["w"][0] == 1.0
    with pytest.raises(PayloadError):
        hub.federation(session).remote({1, 2}, "bad", "0", [HOST])
    assert len(hub.log) == 1


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ProtocolError("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (MessageTooLarge("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (PermissionDenied("x"), grpc.StatusCode.PERMISSION_DENIED),
        (FederationTimeout("x"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (PartyUnreachable("x"), grpc.StatusCode.UNAVAILABLE),
        (SchedulingError("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (RuntimeError("bug"), grpc.StatusCode.INTERNAL),
    ],
)
def test_status_of(error: BaseException, code: grpc.StatusCode) -> None:
    assert status_of(error) == code


def test_error_from_status_rebuilds_our_classes_only() -> None:
    err = error_from_status(grpc.StatusCode.FAILED_PRECONDITION, "no", "SchedulingError", "party 1")
    assert type(err) is SchedulingError and str(err) == "party 1: no"
    dsl = error_from_status(grpc.StatusCode.FAILED_PRECONDITION, "bad dsl", "DslError", "")
    assert isinstance(dsl, DslError) and dsl.problems == ["bad dsl"]
    # A peer naming an arbitrary class gets nothing but the code-based fallback.
    odd = error_from_status(grpc.StatusCode.PERMISSION_DENIED, "no", "SystemExit", "party 1")
    assert type(odd) is PermissionDenied
    plain = error_from_status(grpc.StatusCode.DATA_LOSS, "lost", None, "party 1")
    assert type(plain) is FederationError and "DATA_LOSS" in str(plain)
