"""The only place protobuf messages and :mod:`fate_airflow.federation.api` dataclasses meet.

Symmetric ``x_to_proto`` / ``x_from_proto`` pairs. ``*_from_proto`` functions treat their input as
untrusted (it may come from a peer): a missing oneof, bad party id, unknown status or invalid JSON
raises :class:`~fate_airflow.federation.errors.ProtocolError`, which the servicer turns into
INVALID_ARGUMENT.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast, get_args

from google.protobuf.message import DecodeError

from fate_airflow.core.types import Party
from fate_airflow.federation.api import (
    Ack,
    ControlCommand,
    ControlReply,
    CreateJob,
    CreateJobReply,
    FetchTaskLog,
    JobDetail,
    JobStatus,
    JobView,
    PartyTaskView,
    PrepareTask,
    QueryJob,
    ReportTaskStatus,
    RerunJob,
    StartAction,
    StopJob,
    TaskLog,
    TaskPartyStatus,
    TaskStartDecision,
    TaskView,
)
from fate_airflow.federation.chunks import DEFAULT_CHECKSUM, Checksum, ChecksumKind, chunk_data, chunk_frame
from fate_airflow.federation.errors import ProtocolError
from fate_airflow.federation.spool import MessageKey
from fate_airflow.proto.federation.v1 import common_pb2, control_pb2, transfer_pb2

_T = TypeVar("_T")


def _json_dump(value: Mapping[str, Any], what: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"{what} is not JSON-serialisable: {exc}") from None


def _json_load(text: str, what: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} must be a JSON object")
    return value


def _literal(value: str, allowed: Any, what: str) -> Any:
    options = get_args(allowed)
    if value not in options:
        raise ProtocolError(f"{what} {value!r} is not one of {', '.join(options)}")
    return value


def _party_id(value: str, what: str) -> str:
    from fate_airflow.core.types import validate_party_id

    try:
        return validate_party_id(value)
    except ValueError as exc:
        raise ProtocolError(f"{what}: {exc}") from None


# ----------------------------------------------------------------------------- data plane


def party_to_proto(party: Party) -> common_pb2.Party:
    """:class:`Party` → wire."""
    return common_pb2.Party(role=party.role, party_id=party.party_id)


def party_from_proto(msg: common_pb2.Party) -> Party:
    """Wire → :class:`Party`."""
    try:
        return Party(str(msg.role), str(msg.party_id))
    except ValueError as exc:
        raise ProtocolError(f"invalid party: {exc}") from None


def message_key_to_proto(key: MessageKey) -> common_pb2.MessageKey:
    """:class:`MessageKey` → wire."""
    return common_pb2.MessageKey(
        session_id=key.session_id,
        name=key.name,
        tag=key.tag,
        src=party_to_proto(key.src),
        dst=party_to_proto(key.dst),
    )


def message_key_from_proto(msg: common_pb2.MessageKey) -> MessageKey:
    """Wire → :class:`MessageKey` (all fields required)."""
    if not msg.HasField("src") or not msg.HasField("dst"):
        raise ProtocolError("message key lacks src or dst party")
    if not msg.session_id or not msg.name:
        raise ProtocolError("message key lacks session_id or name")
    return MessageKey(
        str(msg.session_id), str(msg.name), str(msg.tag), party_from_proto(msg.src), party_from_proto(msg.dst)
    )


# ----------------------------------------------------------------------------- stream frames
#
# Chunk frames are built and parsed by hand (see :mod:`fate_airflow.federation.chunks`): building
# one is one copy, parsing one is a zero-copy view of gRPC's buffer; any other encoding of the same
# message falls back to the protobuf parser.

_CHECKSUM_TO_PROTO: dict[ChecksumKind, transfer_pb2.Checksum.ValueType] = {
    "sha256": transfer_pb2.CHECKSUM_SHA256,
    "crc32": transfer_pb2.CHECKSUM_CRC32,
}
_CHECKSUM_FROM_PROTO = {v: k for k, v in _CHECKSUM_TO_PROTO.items()}


def _checksum_from_proto(value: int) -> ChecksumKind:
    try:
        return _CHECKSUM_FROM_PROTO[cast(transfer_pb2.Checksum.ValueType, value)]
    except KeyError:
        raise ProtocolError(f"unknown checksum kind {value} (a newer protocol version?)") from None


@dataclass(frozen=True)
class PushHeaderInfo:
    """First frame of a push."""

    key: MessageKey
    size_hint: int
    checksum: ChecksumKind = DEFAULT_CHECKSUM


@dataclass(frozen=True)
class TrailerInfo:
    """Last frame of a push (what the sender sent) or of a pull reply (the spooled message)."""

    size: int
    digest: bytes


@dataclass(frozen=True)
class PullHeaderInfo:
    """First frame of a pull reply: the message's id, size, and digest if already known."""

    message_id: str
    size: int
    digest: bytes
    checksum: ChecksumKind = DEFAULT_CHECKSUM


def push_header_frame(key: MessageKey, size_hint: int, checksum: ChecksumKind = DEFAULT_CHECKSUM) -> bytes:
    """Serialised first frame of a push."""
    header = transfer_pb2.PushHeader(
        key=message_key_to_proto(key), size_hint=size_hint, checksum=_CHECKSUM_TO_PROTO[checksum]
    )
    return bytes(transfer_pb2.PushFrame(header=header).SerializeToString())


def push_trailer_frame(size: int, digest: bytes) -> bytes:
    """Serialised last frame of a push."""
    return bytes(
        transfer_pb2.PushFrame(trailer=transfer_pb2.PushTrailer(size=size, digest=digest)).SerializeToString()
    )


def push_frames(
    key: MessageKey,
    size_hint: int,
    chunks: Iterable[bytes | memoryview],
    checksum: ChecksumKind = DEFAULT_CHECKSUM,
) -> Iterator[bytes]:
    """A whole push stream: the header, one chunk frame per piece of ``chunks``, the trailer.

    The trailer carries the size and digest of what was actually sent.
    """
    digest = Checksum(checksum)
    sent = 0
    yield push_header_frame(key, size_hint, checksum)
    for chunk in chunks:
        digest.update(chunk)
        sent += len(chunk)
        yield chunk_frame(chunk)
    yield push_trailer_frame(sent, digest.digest())


def parse_push_frame(raw: bytes) -> PushHeaderInfo | TrailerInfo | memoryview:
    """Parse one push frame: header, trailer, or a chunk (as a view).

    :raises ProtocolError: not a valid ``PushFrame``.
    """
    chunk = chunk_data(raw)
    if chunk is not None:
        return chunk
    try:
        frame = transfer_pb2.PushFrame.FromString(raw)
    except DecodeError as exc:
        raise ProtocolError(f"malformed push frame: {exc}") from None
    which = frame.WhichOneof("frame")
    if which == "chunk":
        return memoryview(frame.chunk)
    if which == "header":
        if not frame.header.HasField("key"):
            raise ProtocolError("push header lacks the message key")
        return PushHeaderInfo(
            message_key_from_proto(frame.header.key),
            int(frame.header.size_hint),
            _checksum_from_proto(frame.header.checksum),
        )
    if which == "trailer":
        return TrailerInfo(int(frame.trailer.size), bytes(frame.trailer.digest))
    raise ProtocolError("empty push frame")


def pull_request_to_proto(key: MessageKey, wait_seconds: float) -> transfer_pb2.PullRequest:
    """A pull for ``key``, waiting up to ``wait_seconds`` at the gateway."""
    return transfer_pb2.PullRequest(key=message_key_to_proto(key), wait_seconds=max(0.0, wait_seconds))


def pull_header_frame(
    message_id: str, size: int, digest: bytes, checksum: ChecksumKind = DEFAULT_CHECKSUM
) -> bytes:
    """Serialised first frame of a pull reply (``digest`` empty while the message still arrives)."""
    header = transfer_pb2.PullHeader(
        message_id=message_id, size=size, digest=digest, checksum=_CHECKSUM_TO_PROTO[checksum]
    )
    return bytes(transfer_pb2.PullFrame(header=header).SerializeToString())


def pull_trailer_frame(size: int, digest: bytes) -> bytes:
    """Serialised last frame of a pull reply."""
    return bytes(
        transfer_pb2.PullFrame(trailer=transfer_pb2.PullTrailer(size=size, digest=digest)).SerializeToString()
    )


def parse_pull_frame(raw: bytes) -> PullHeaderInfo | TrailerInfo | memoryview:
    """Parse one pull frame: the header, a chunk (as a view) or the trailer.

    :raises ProtocolError: not a valid ``PullFrame``.
    """
    chunk = chunk_data(raw)
    if chunk is not None:
        return chunk
    try:
        frame = transfer_pb2.PullFrame.FromString(raw)
    except DecodeError as exc:
        raise ProtocolError(f"malformed pull frame: {exc}") from None
    which = frame.WhichOneof("frame")
    if which == "chunk":
        return memoryview(frame.chunk)
    if which == "header":
        h = frame.header
        return PullHeaderInfo(
            str(h.message_id), int(h.size), bytes(h.digest), _checksum_from_proto(h.checksum)
        )
    if which == "trailer":
        return TrailerInfo(int(frame.trailer.size), bytes(frame.trailer.digest))
    raise ProtocolError("empty pull frame")


# ----------------------------------------------------------------------------- control commands


def create_job_to_proto(cmd: CreateJob) -> control_pb2.CreateJob:
    """:class:`CreateJob` → wire (plan and conf as JSON)."""
    return control_pb2.CreateJob(
        job_id=cmd.job_id,
        dag_id=cmd.dag_id,
        initiator_party_id=cmd.initiator_party_id,
        plan_json=_json_dump(cmd.plan, "plan"),
        conf_json=_json_dump(cmd.conf, "conf"),
    )


def create_job_from_proto(msg: control_pb2.CreateJob) -> CreateJob:
    """Wire → :class:`CreateJob`."""
    return CreateJob(
        job_id=str(msg.job_id),
        dag_id=str(msg.dag_id),
        initiator_party_id=_party_id(str(msg.initiator_party_id), "initiator_party_id"),
        plan=_json_load(str(msg.plan_json), "plan"),
        conf=_json_load(str(msg.conf_json), "conf"),
    )


def _wait_seconds(value: float) -> float:
    """A long poll's hold from the wire: a finite, non-negative number of seconds."""
    if not math.isfinite(value) or value < 0:
        raise ProtocolError(f"wait_seconds must be a finite number >= 0, got {value!r}")
    return float(value)


def prepare_task_to_proto(cmd: PrepareTask) -> control_pb2.PrepareTask:
    """:class:`PrepareTask` → wire."""
    return control_pb2.PrepareTask(
        job_id=cmd.job_id, task_name=cmd.task_name, party_id=cmd.party_id, wait_seconds=cmd.wait_seconds
    )


def prepare_task_from_proto(msg: control_pb2.PrepareTask) -> PrepareTask:
    """Wire → :class:`PrepareTask`."""
    return PrepareTask(
        str(msg.job_id),
        str(msg.task_name),
        _party_id(str(msg.party_id), "party_id"),
        _wait_seconds(msg.wait_seconds),
    )


def report_task_status_to_proto(cmd: ReportTaskStatus) -> control_pb2.ReportTaskStatus:
    """:class:`ReportTaskStatus` → wire."""
    return control_pb2.ReportTaskStatus(
        job_id=cmd.job_id,
        task_name=cmd.task_name,
        task_version=cmd.task_version,
        party_id=cmd.party_id,
        status=cmd.status,
        error=cmd.error,
        detail_json=_json_dump(cmd.detail, "detail"),
    )


def report_task_status_from_proto(msg: control_pb2.ReportTaskStatus) -> ReportTaskStatus:
    """Wire → :class:`ReportTaskStatus`."""
    return ReportTaskStatus(
        job_id=str(msg.job_id),
        task_name=str(msg.task_name),
        task_version=int(msg.task_version),
        party_id=_party_id(str(msg.party_id), "party_id"),
        status=cast(TaskPartyStatus, _literal(str(msg.status), TaskPartyStatus, "task status")),
        error=str(msg.error),
        detail=_json_load(str(msg.detail_json), "detail"),
    )


def query_job_to_proto(cmd: QueryJob) -> control_pb2.QueryJob:
    """:class:`QueryJob` → wire."""
    return control_pb2.QueryJob(
        job_id=cmd.job_id,
        with_events=cmd.with_events,
        wait_seconds=cmd.wait_seconds,
        known_status=cmd.known_status,
    )


def query_job_from_proto(msg: control_pb2.QueryJob) -> QueryJob:
    """Wire → :class:`QueryJob`."""
    return QueryJob(
        str(msg.job_id), bool(msg.with_events), _wait_seconds(msg.wait_seconds), str(msg.known_status)
    )


def stop_job_to_proto(cmd: StopJob) -> control_pb2.StopJob:
    """:class:`StopJob` → wire."""
    return control_pb2.StopJob(job_id=cmd.job_id, status=cmd.status, reason=cmd.reason)


def stop_job_from_proto(msg: control_pb2.StopJob) -> StopJob:
    """Wire → :class:`StopJob`."""
    return StopJob(
        str(msg.job_id), cast(JobStatus, _literal(str(msg.status), JobStatus, "job status")), str(msg.reason)
    )


def rerun_job_to_proto(cmd: RerunJob) -> control_pb2.RerunJob:
    """:class:`RerunJob` → wire."""
    return control_pb2.RerunJob(job_id=cmd.job_id, task_names=list(cmd.task_names))


def rerun_job_from_proto(msg: control_pb2.RerunJob) -> RerunJob:
    """Wire → :class:`RerunJob`."""
    return RerunJob(str(msg.job_id), tuple(str(t) for t in msg.task_names))


def fetch_task_log_to_proto(cmd: FetchTaskLog) -> control_pb2.FetchTaskLog:
    """:class:`FetchTaskLog` → wire."""
    return control_pb2.FetchTaskLog(job_id=cmd.job_id, task_name=cmd.task_name, max_lines=cmd.max_lines)


def fetch_task_log_from_proto(msg: control_pb2.FetchTaskLog) -> FetchTaskLog:
    """Wire → :class:`FetchTaskLog` (a non-positive line count means the default)."""
    lines = int(msg.max_lines)
    return FetchTaskLog(str(msg.job_id), str(msg.task_name), lines if lines > 0 else 2000)


_COMMANDS: tuple[tuple[str, type[Any], Callable[[Any], Any], Callable[[Any], Any]], ...] = (
    ("create_job", CreateJob, create_job_to_proto, create_job_from_proto),
    ("prepare_task", PrepareTask, prepare_task_to_proto, prepare_task_from_proto),
    ("report_task_status", ReportTaskStatus, report_task_status_to_proto, report_task_status_from_proto),
    ("query_job", QueryJob, query_job_to_proto, query_job_from_proto),
    ("stop_job", StopJob, stop_job_to_proto, stop_job_from_proto),
    ("rerun_job", RerunJob, rerun_job_to_proto, rerun_job_from_proto),
    ("fetch_task_log", FetchTaskLog, fetch_task_log_to_proto, fetch_task_log_from_proto),
)


def control_request_to_proto(dst_party_id: str, cmd: ControlCommand) -> control_pb2.ControlRequest:
    """(destination, command) → wire ``ControlRequest``."""
    for field, cls, to_proto, _ in _COMMANDS:
        if isinstance(cmd, cls):
            request = control_pb2.ControlRequest(dst_party_id=dst_party_id)
            getattr(request, field).CopyFrom(to_proto(cmd))
            return request
    raise TypeError(f"unknown control command {type(cmd).__name__}")


def control_request_from_proto(msg: control_pb2.ControlRequest) -> tuple[str, ControlCommand]:
    """Wire ``ControlRequest`` → (destination party id, command)."""
    dst = _party_id(str(msg.dst_party_id), "dst_party_id")
    which = msg.WhichOneof("command")
    for field, _, _, from_proto in _COMMANDS:
        if which == field:
            return dst, cast(ControlCommand, from_proto(getattr(msg, field)))
    raise ProtocolError("control request carries no command")


# ----------------------------------------------------------------------------- control replies


def create_job_reply_to_proto(reply: CreateJobReply) -> control_pb2.CreateJobReply:
    """:class:`CreateJobReply` → wire."""
    return control_pb2.CreateJobReply(accepted=reply.accepted, reason=reply.reason)


def create_job_reply_from_proto(msg: control_pb2.CreateJobReply) -> CreateJobReply:
    """Wire → :class:`CreateJobReply`."""
    return CreateJobReply(bool(msg.accepted), str(msg.reason))


def task_start_decision_to_proto(reply: TaskStartDecision) -> control_pb2.TaskStartDecision:
    """:class:`TaskStartDecision` → wire."""
    return control_pb2.TaskStartDecision(
        action=reply.action, task_version=reply.task_version, reason=reply.reason
    )


def task_start_decision_from_proto(msg: control_pb2.TaskStartDecision) -> TaskStartDecision:
    """Wire → :class:`TaskStartDecision`."""
    return TaskStartDecision(
        cast(StartAction, _literal(str(msg.action), StartAction, "start action")),
        int(msg.task_version),
        str(msg.reason),
    )


def ack_to_proto(reply: Ack) -> control_pb2.Ack:
    """:class:`Ack` → wire."""
    return control_pb2.Ack(ok=reply.ok, message=reply.message)


def ack_from_proto(msg: control_pb2.Ack) -> Ack:
    """Wire → :class:`Ack`."""
    return Ack(bool(msg.ok), str(msg.message))


def task_log_to_proto(reply: TaskLog) -> control_pb2.TaskLog:
    """:class:`TaskLog` → wire."""
    return control_pb2.TaskLog(
        party_id=reply.party_id,
        found=reply.found,
        lines=list(reply.lines),
        message=reply.message,
        truncated=reply.truncated,
    )


def task_log_from_proto(msg: control_pb2.TaskLog) -> TaskLog:
    """Wire → :class:`TaskLog`."""
    return TaskLog(
        _party_id(str(msg.party_id), "party_id"),
        bool(msg.found),
        tuple(str(line) for line in msg.lines),
        str(msg.message),
        bool(msg.truncated),
    )


def party_task_view_to_proto(view: PartyTaskView) -> control_pb2.PartyTaskView:
    """:class:`PartyTaskView` → wire."""
    return control_pb2.PartyTaskView(
        party_id=view.party_id,
        roles=list(view.roles),
        status=view.status,
        error=view.error,
        detail_json=_json_dump(view.detail, "party task detail"),
    )


def party_task_view_from_proto(msg: control_pb2.PartyTaskView) -> PartyTaskView:
    """Wire → :class:`PartyTaskView`."""
    return PartyTaskView(
        party_id=str(msg.party_id),
        roles=tuple(str(r) for r in msg.roles),
        status=str(msg.status),
        error=str(msg.error),
        detail=_json_load(str(msg.detail_json), "party task detail"),
    )


def task_view_to_proto(view: TaskView) -> control_pb2.TaskView:
    """:class:`TaskView` → wire."""
    return control_pb2.TaskView(
        task_name=view.task_name,
        task_version=view.task_version,
        status=view.status,
        parties=[party_task_view_to_proto(p) for p in view.parties],
    )


def task_view_from_proto(msg: control_pb2.TaskView) -> TaskView:
    """Wire → :class:`TaskView`."""
    return TaskView(
        task_name=str(msg.task_name),
        task_version=int(msg.task_version),
        status=str(msg.status),
        parties=tuple(party_task_view_from_proto(p) for p in msg.parties),
    )


def job_view_to_proto(view: JobView) -> control_pb2.JobView:
    """:class:`JobView` → wire."""
    return control_pb2.JobView(
        job_id=view.job_id,
        found=view.found,
        dag_id=view.dag_id,
        status=view.status,
        reason=view.reason,
        initiator_party_id=view.initiator_party_id,
        tasks=[task_view_to_proto(t) for t in view.tasks],
        detail_json=_json_dump(view.detail.to_dict(), "job detail"),
    )


def job_view_from_proto(msg: control_pb2.JobView) -> JobView:
    """Wire → :class:`JobView`."""
    return JobView(
        job_id=str(msg.job_id),
        found=bool(msg.found),
        dag_id=str(msg.dag_id),
        status=str(msg.status),
        reason=str(msg.reason),
        initiator_party_id=str(msg.initiator_party_id),
        tasks=tuple(task_view_from_proto(t) for t in msg.tasks),
        detail=_job_detail(str(msg.detail_json)),
    )


def _job_detail(text: str) -> JobDetail:
    try:
        return JobDetail.from_dict(_json_load(text, "job detail"))
    except ValueError as exc:
        raise ProtocolError(f"job detail: {exc}") from None


_REPLIES: tuple[tuple[str, type[Any], Callable[[Any], Any], Callable[[Any], Any]], ...] = (
    ("create_job_reply", CreateJobReply, create_job_reply_to_proto, create_job_reply_from_proto),
    ("task_start_decision", TaskStartDecision, task_start_decision_to_proto, task_start_decision_from_proto),
    ("ack", Ack, ack_to_proto, ack_from_proto),
    ("job_view", JobView, job_view_to_proto, job_view_from_proto),
    ("task_log", TaskLog, task_log_to_proto, task_log_from_proto),
)


def control_reply_to_proto(reply: ControlReply) -> control_pb2.ControlResponse:
    """Reply dataclass → wire ``ControlResponse``."""
    for field, cls, to_proto, _ in _REPLIES:
        if isinstance(reply, cls):
            response = control_pb2.ControlResponse()
            getattr(response, field).CopyFrom(to_proto(reply))
            return response
    raise TypeError(f"unknown control reply {type(reply).__name__}")


def control_reply_from_proto(msg: control_pb2.ControlResponse) -> ControlReply:
    """Wire ``ControlResponse`` → reply dataclass."""
    which = msg.WhichOneof("reply")
    for field, _, _, from_proto in _REPLIES:
        if which == field:
            return cast(ControlReply, from_proto(getattr(msg, field)))
    raise ProtocolError("control response carries no reply")


#: The reply type each command expects (a handler answering otherwise is a bug on its side).
EXPECTED_REPLY: dict[type[Any], type[Any]] = {
    CreateJob: CreateJobReply,
    PrepareTask: TaskStartDecision,
    ReportTaskStatus: Ack,
    QueryJob: JobView,
    StopJob: Ack,
    RerunJob: Ack,
    FetchTaskLog: TaskLog,
}


def checked_reply(cmd: ControlCommand, reply: object) -> ControlReply:
    """Ensure a handler returned the reply type its command calls for."""
    expected = EXPECTED_REPLY[type(cmd)]
    if not isinstance(reply, expected):
        raise TypeError(
            f"handler answered {type(cmd).__name__} with {type(reply).__name__}, expected {expected.__name__}"
        )
    return cast(ControlReply, reply)


__all__ = [
    "EXPECTED_REPLY",
    "PullHeaderInfo",
    "PushHeaderInfo",
    "TrailerInfo",
    "ack_from_proto",
    "ack_to_proto",
    "checked_reply",
    "chunk_frame",
    "control_reply_from_proto",
    "control_reply_to_proto",
    "control_request_from_proto",
    "control_request_to_proto",
    "create_job_from_proto",
    "create_job_reply_from_proto",
    "create_job_reply_to_proto",
    "create_job_to_proto",
    "job_view_from_proto",
    "job_view_to_proto",
    "message_key_from_proto",
    "message_key_to_proto",
    "parse_pull_frame",
    "parse_push_frame",
    "party_from_proto",
    "party_task_view_from_proto",
    "party_task_view_to_proto",
    "party_to_proto",
    "prepare_task_from_proto",
    "prepare_task_to_proto",
    "pull_header_frame",
    "pull_request_to_proto",
    "pull_trailer_frame",
    "push_frames",
    "push_header_frame",
    "push_trailer_frame",
    "query_job_from_proto",
    "query_job_to_proto",
    "report_task_status_from_proto",
    "report_task_status_to_proto",
    "rerun_job_from_proto",
    "rerun_job_to_proto",
    "stop_job_from_proto",
    "stop_job_to_proto",
    "task_start_decision_from_proto",
    "task_start_decision_to_proto",
    "task_view_from_proto",
    "task_view_to_proto",
]
