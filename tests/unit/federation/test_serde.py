"""serde: every command and reply survives the wire; malformed input is a ProtocolError."""

from __future__ import annotations

from typing import Any

import pytest

from fate_airflow.core.types import Party
from fate_airflow.federation import serde
from fate_airflow.federation.api import (
    Ack,
    CreateJob,
    CreateJobReply,
    FetchTaskLog,
    JobDetail,
    JobEventView,
    JobView,
    PartyTaskView,
    PrepareTask,
    QueryJob,
    ReportTaskStatus,
    RerunJob,
    StopJob,
    TaskLog,
    TaskStartDecision,
    TaskView,
)
from fate_airflow.federation.errors import ProtocolError
from fate_airflow.federation.spool import MessageKey
from fate_airflow.proto.federation.v1 import common_pb2, control_pb2, transfer_pb2

COMMANDS: list[Any] = [
    CreateJob("j", "dag", "9999", {"tasks": [{"name": "a", "params": {"x": 1.5}}]}, {"conf": None}),
    CreateJob("j", "dag", "9999", {}),
    PrepareTask("j", "t", "10000"),
    PrepareTask("j", "t", "10000", wait_seconds=10.0),
    ReportTaskStatus("j", "t", 2, "10000", "success", detail={"out": ["uri"]}),
    ReportTaskStatus("j", "t", 0, "10000", "failed", error="boom"),
    QueryJob("j"),
    QueryJob("j", with_events=True),
    QueryJob("j", wait_seconds=10.0, known_status="running"),
    StopJob("j", "timeout", "too slow"),
    RerunJob("j", ("a", "b")),
    RerunJob("j", ()),
    FetchTaskLog("j", "lr_0", 50),
]
REPLIES: list[Any] = [
    TaskLog("10000", True, ("[INFO] a", "[ERROR] b"), "", True),
    TaskLog("10000", False, (), "no such job"),
    CreateJobReply(False, "no"),
    TaskStartDecision("abort", 0, "stopped"),
    TaskStartDecision("start", 7),
    Ack(),
    Ack(False, "nope"),
    JobView("j", False),
    JobView(
        "j",
        True,
        "dag",
        "running",
        "",
        "9999",
        (TaskView("t", 1, "running", (PartyTaskView("10000", ("host",), "failed", "e", {"k": 1}),)),),
        JobDetail(
            created=1.5,
            parties=(Party("guest", "9999"), Party("host", "10000")),
            plan={"tasks": [{"name": "a"}]},
            conf={"x": 1},
            events=(
                JobEventView(2.0, "prepared", "10000", "t", -1, ""),
                JobEventView(3.0, "ended", message="ok"),
            ),
        ),
    ),
]


@pytest.mark.parametrize("cmd", COMMANDS, ids=[type(c).__name__ for c in COMMANDS])
def test_commands_round_trip(cmd: Any) -> None:
    wire = serde.control_request_to_proto("10000", cmd).SerializeToString()
    assert serde.control_request_from_proto(control_pb2.ControlRequest.FromString(wire)) == ("10000", cmd)


@pytest.mark.parametrize("reply", REPLIES, ids=[type(r).__name__ for r in REPLIES])
def test_replies_round_trip(reply: Any) -> None:
    wire = serde.control_reply_to_proto(reply).SerializeToString()
    assert serde.control_reply_from_proto(control_pb2.ControlResponse.FromString(wire)) == reply


def test_message_key_round_trip() -> None:
    key = MessageKey("s", "n", "t", Party("guest", "9999"), Party("arbiter", "10000"))
    assert serde.message_key_from_proto(serde.message_key_to_proto(key)) == key


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (control_pb2.ControlRequest(dst_party_id="10000"), "no command"),
        (control_pb2.ControlRequest(dst_party_id="bad id", query_job=control_pb2.QueryJob()), "dst_party_id"),
        (
            control_pb2.ControlRequest(
                dst_party_id="1", create_job=control_pb2.CreateJob(initiator_party_id="1", plan_json="{")
            ),
            "plan is not valid JSON",
        ),
        (
            control_pb2.ControlRequest(
                dst_party_id="1", create_job=control_pb2.CreateJob(initiator_party_id="1", plan_json="[]")
            ),
            "must be a JSON object",
        ),
        (
            control_pb2.ControlRequest(dst_party_id="1", stop_job=control_pb2.StopJob(status="exploded")),
            "job status 'exploded'",
        ),
        (
            control_pb2.ControlRequest(
                dst_party_id="1", report_task_status=control_pb2.ReportTaskStatus(party_id="1", status="meh")
            ),
            "task status",
        ),
        (
            control_pb2.ControlRequest(
                dst_party_id="1",
                prepare_task=control_pb2.PrepareTask(party_id="1", wait_seconds=float("nan")),
            ),
            "wait_seconds must be a finite number >= 0",
        ),
        (
            control_pb2.ControlRequest(dst_party_id="1", query_job=control_pb2.QueryJob(wait_seconds=-1)),
            "wait_seconds must be a finite number >= 0, got -1",
        ),
    ],
)
def test_malformed_requests(message: Any, error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        serde.control_request_from_proto(message)


def test_malformed_replies_and_keys() -> None:
    with pytest.raises(ProtocolError, match="no reply"):
        serde.control_reply_from_proto(control_pb2.ControlResponse())
    bad = control_pb2.ControlResponse(task_start_decision=control_pb2.TaskStartDecision(action="later"))
    with pytest.raises(ProtocolError, match="start action"):
        serde.control_reply_from_proto(bad)
    with pytest.raises(ProtocolError, match="lacks src or dst"):
        serde.message_key_from_proto(common_pb2.MessageKey(session_id="s", name="n"))
    with pytest.raises(ProtocolError, match="invalid party"):
        serde.party_from_proto(common_pb2.Party(role="king", party_id="1"))


def test_unserialisable_plan_is_refused_at_send_time() -> None:
    with pytest.raises(ProtocolError, match="not JSON-serialisable"):
        serde.control_request_to_proto("1", CreateJob("j", "d", "1", {"x": object()}))


def test_checked_reply() -> None:
    assert serde.checked_reply(QueryJob("j"), JobView("j", True)) == JobView("j", True)
    with pytest.raises(TypeError, match="expected JobView"):
        serde.checked_reply(QueryJob("j"), Ack())


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16383, 16384, 1 << 20])
def test_hand_framed_chunks_match_protobuf(size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    frame = serde.chunk_frame(data)
    assert frame == transfer_pb2.PushFrame(chunk=data).SerializeToString()
    assert frame == transfer_pb2.PullFrame(chunk=data).SerializeToString()
    assert bytes(serde.parse_push_frame(frame)) == data  # type: ignore[arg-type]
    assert bytes(serde.parse_pull_frame(frame)) == data  # type: ignore[arg-type]


def test_frames_parse_and_reject_garbage() -> None:
    key = MessageKey("s", "n", "t", Party("guest", "1"), Party("host", "2"))
    header = serde.parse_push_frame(serde.push_header_frame(key, 42))
    assert header == serde.PushHeaderInfo(key, 42)
    assert serde.parse_push_frame(serde.push_trailer_frame(3, b"d" * 32)) == serde.TrailerInfo(3, b"d" * 32)
    assert serde.parse_pull_frame(serde.pull_header_frame("id", 5, b"h")) == serde.PullHeaderInfo(
        "id", 5, b"h"
    )
    for garbage in (b"\xff\xff\xff", b"\x12\x05ab"):
        with pytest.raises(ProtocolError, match="malformed"):
            serde.parse_push_frame(garbage)
    with pytest.raises(ProtocolError, match="empty push frame"):
        serde.parse_push_frame(b"")
    with pytest.raises(ProtocolError, match="lacks the message key"):
        serde.parse_push_frame(transfer_pb2.PushFrame(header=transfer_pb2.PushHeader()).SerializeToString())


def test_checksum_kind_and_pull_trailer_frames() -> None:
    key = MessageKey("s", "n", "t", Party("guest", "1"), Party("host", "2"))
    assert serde.parse_push_frame(serde.push_header_frame(key, 7, "sha256")) == serde.PushHeaderInfo(
        key, 7, "sha256"
    )
    # A header without the field is from a sender that predates it: SHA-256.
    legacy = transfer_pb2.PushFrame(
        header=transfer_pb2.PushHeader(key=serde.message_key_to_proto(key), size_hint=7)
    ).SerializeToString()
    assert serde.parse_push_frame(legacy) == serde.PushHeaderInfo(key, 7, "sha256")
    assert serde.parse_pull_frame(serde.pull_header_frame("id", 5, b"", "crc32")) == serde.PullHeaderInfo(
        "id", 5, b"", "crc32"
    )
    assert serde.parse_pull_frame(serde.pull_trailer_frame(5, b"abcd")) == serde.TrailerInfo(5, b"abcd")
    future = transfer_pb2.PushFrame(
        header=transfer_pb2.PushHeader(key=serde.message_key_to_proto(key), checksum=7)  # type: ignore[arg-type]
    ).SerializeToString()
    with pytest.raises(ProtocolError, match="unknown checksum kind 7"):
        serde.parse_push_frame(future)


def test_checksums_match_their_reference() -> None:
    import hashlib
    import zlib

    from fate_airflow.federation.chunks import Checksum

    data = bytes(range(256)) * 1000
    for kind, reference in (
        ("crc32", zlib.crc32(data).to_bytes(4, "big")),
        ("sha256", hashlib.sha256(data).digest()),
    ):
        checksum = Checksum(kind)  # type: ignore[arg-type]
        for start in range(0, len(data), 1000):
            checksum.update(memoryview(data)[start : start + 1000])
        assert checksum.digest() == reference
    with pytest.raises(ValueError, match="unknown checksum"):
        Checksum("md5")  # type: ignore[arg-type]
