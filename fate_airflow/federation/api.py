"""The federation ports: the data plane (``remote``/``get``) and the control plane (scheduler commands).

Everything here is plain Python. Two implementations exist for each port: in-memory
(:mod:`fate_airflow.federation.inmemory`) and gRPC (:mod:`fate_airflow.federation.grpc`); one
contract test suite runs against both.

Data plane
    A :class:`Federation` is scoped to one :class:`FederationSession` (job id, task name, task
    version, the local (role, party id) and all parties of the task). Messages are keyed by
    ``(session id, name, tag, source party, destination party)``, so two versions of one task never
    see each other's messages.

Control plane
    The scheduler talks to other parties' schedulers with the typed commands below. A
    :class:`ControlClient` sends them; the receiving side's gateway calls a :class:`CommandHandler`
    that the composition root (the CLI) supplies, so the transport never imports the scheduler.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Protocol, TypeAlias, overload

from fate_airflow.core.errors import FateAirflowError, FederationError
from fate_airflow.core.status import JobStatus, TaskPartyStatus
from fate_airflow.core.types import Party

#: Values a component may send: None, bool, int (any size), float, str, bytes, numpy arrays of
#: numeric/bool dtype, and lists/tuples/dicts (str keys) of these. Nothing else crosses a party.
Payload: TypeAlias = Any

#: Default seconds a ``get`` waits before raising :class:`~fate_airflow.core.errors.FederationTimeout`.
DEFAULT_GET_TIMEOUT = 600.0


@dataclass(frozen=True)
class FederationSession:
    """Rendezvous scope of one execution of one task: all its messages carry :attr:`session_id`.

    :param job_id: the job id (= the Airflow DAG run id, identical at every party).
    :param task_name: the component name (= the Airflow task id).
    :param task_version: agreed by all parties before the task starts; +1 on every rerun.
    :param local: the (role, party id) this side speaks as.
    :param parties: every (role, party id) taking part in the task.
    """

    job_id: str
    task_name: str
    task_version: int
    local: Party
    parties: tuple[Party, ...]

    @property
    def session_id(self) -> str:
        """FATE's federation session id: ``<job_id>_<task_name>_<task_version>``."""
        return f"{self.job_id}_{self.task_name}_{self.task_version}"

    def with_local(self, local: Party) -> FederationSession:
        """The same session seen from another local role (a party id may play several roles)."""
        return FederationSession(self.job_id, self.task_name, self.task_version, local, self.parties)

    def parties_of(self, role: str) -> tuple[Party, ...]:
        """The task's parties with ``role``, in plan order (their position is FATE's role index)."""
        return tuple(p for p in self.parties if p.role == role)


class Federation(ABC):
    """Send objects to, and receive objects from, other parties of one task session."""

    def __init__(self, session: FederationSession) -> None:
        self.session = session

    @abstractmethod
    def remote(self, obj: Payload, name: str, tag: str, parties: Sequence[Party]) -> None:
        """Send ``obj`` under (``name``, ``tag``) to each of ``parties``.

        Returns once every destination's gateway has durably accepted the message. Sending the same
        (name, tag) to the same party twice in one session is an error.
        """

    @abstractmethod
    def get(
        self, name: str, tag: str, parties: Sequence[Party], timeout: float | None = None
    ) -> list[Payload]:
        """Receive the object each of ``parties`` sent under (``name``, ``tag``), in ``parties`` order.

        :raises FederationTimeout: naming the party and the name/tag still missing after ``timeout``.
        """

    def cleanup(self) -> int:
        """Drop whatever is still waiting for this party in this session; returns messages removed.

        Call it when a task version is finished for good (messages nobody will ``get`` would
        otherwise wait for the gateway's age-based garbage collection).
        """
        return 0

    def close(self) -> None:  # noqa: B027 - optional hook, default no-op
        """Release connections; the default has nothing to release."""


# ----------------------------------------------------------------------------- control plane

StartAction = Literal["wait", "start", "abort"]


@dataclass(frozen=True)
class CreateJob:
    """Create a job at the receiving party (initiator → every party), or submit it (local → initiator).

    When ``initiator_party_id`` is the receiver's own party id, the receiver is the initiator and
    fans the job out to every other party of the plan.

    :param plan: the execution plan as JSON-ready dict (see :mod:`fate_airflow.dsl`), so parties do
        not need the job file in advance.
    :param conf: the run conf given at trigger time (already merged into ``plan``), kept for display.
    """

    job_id: str
    dag_id: str
    initiator_party_id: str
    plan: Mapping[str, Any]
    conf: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CreateJobReply:
    """Answer to :class:`CreateJob`; ``reason`` says why a party refused."""

    accepted: bool
    reason: str = ""


@dataclass(frozen=True)
class PrepareTask:
    """A party's task is ready to run: may it start? Idempotent; the party asks until decided.

    :param wait_seconds: long poll: while the answer would be ``wait``, the service may hold the
        call this long and answer as soon as the job changes (0: answer at once).
    """

    job_id: str
    task_name: str
    party_id: str
    wait_seconds: float = 0.0


@dataclass(frozen=True)
class TaskStartDecision:
    """The initiator's answer to :class:`PrepareTask`.

    ``start`` carries the task version every party must use; ``abort`` carries the reason (the job
    failed, was stopped or timed out); ``wait`` means ask again shortly.
    """

    action: StartAction
    task_version: int = 0
    reason: str = ""


@dataclass(frozen=True)
class ReportTaskStatus:
    """A party's status for one task version (party → initiator, and local worker → own party).

    :param detail: JSON-ready extras: metrics, output artifact URIs, start/end times.
    """

    job_id: str
    task_name: str
    task_version: int
    party_id: str
    status: TaskPartyStatus
    error: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QueryJob:
    """Ask a party (normally the initiator) for its view of a job (and its timeline if asked).

    :param wait_seconds: long poll: while the job's status is ``known_status``, the service may hold
        the call this long and answer as soon as the status changes (0 or no ``known_status``: at once).
    """

    job_id: str
    with_events: bool = False
    wait_seconds: float = 0.0
    known_status: str = ""


@dataclass(frozen=True)
class PartyTaskView:
    """One cell of the parties × tasks matrix."""

    party_id: str
    roles: tuple[str, ...]
    status: str
    error: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskView:
    """A task's federated status and version, with each party's own status."""

    task_name: str
    task_version: int
    status: str
    parties: tuple[PartyTaskView, ...] = ()


@dataclass(frozen=True)
class JobEventView:
    """One entry of a job's timeline (``fate-airflow job query JOB --events``).

    :param kind: ``created``, ``submitted``, ``prepared``, ``started``, ``reported``, ``retry``,
        ``stop``, ``rerun`` or ``ended`` (and a few about delays and resumption).
    :param party_id: the party the event is about (who prepared, who reported, who asked to stop).
    """

    at: float
    kind: str
    party_id: str = ""
    task_name: str = ""
    version: int = -1
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the wire's and ``job query --json``'s)."""
        return {
            "at": self.at,
            "kind": self.kind,
            "party_id": self.party_id,
            "task_name": self.task_name,
            "version": self.version,
            "message": self.message,
        }


@dataclass(frozen=True)
class JobDetail:
    """What a :class:`JobView` says beyond the statuses.

    :param created: when the job was created here (wall time); ``started``/``ended`` once they happen.
    :param parties: the job's parties in plan order.
    :param plan: the job's plan (``JobPlan.to_dict``) — only in answers to the party's own processes.
    :param conf: the DAG run conf the job was triggered with — likewise.
    :param events: the job's timeline, when asked for (``QueryJob.with_events``).
    """

    created: float | None = None
    started: float | None = None
    ended: float | None = None
    parties: tuple[Party, ...] = ()
    plan: Mapping[str, Any] | None = None
    conf: Mapping[str, Any] | None = None
    events: tuple[JobEventView, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the wire's ``detail_json``)."""
        data: dict[str, Any] = {
            "created": self.created,
            "started": self.started,
            "ended": self.ended,
            "parties": [p.to_dict() for p in self.parties],
        }
        if self.plan is not None:
            data["plan"] = dict(self.plan)
        if self.conf is not None:
            data["conf"] = dict(self.conf)
        if self.events:
            data["events"] = [e.to_dict() for e in self.events]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobDetail:
        """Parse :meth:`to_dict`'s form.

        :raises ValueError: naming the malformed field.
        """

        def when(key: str) -> float | None:
            value = data.get(key)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{key}: expected a time in seconds, got {value!r}")
            return float(value)

        def mapping(key: str) -> Mapping[str, Any] | None:
            value = data.get(key)
            if value is not None and not isinstance(value, Mapping):
                raise ValueError(f"{key}: expected an object, got {type(value).__name__}")
            return value

        parties_raw = data.get("parties") or []
        events_raw = data.get("events") or []
        if not isinstance(parties_raw, list) or not isinstance(events_raw, list):
            raise ValueError("parties and events must be lists")
        try:
            parties = tuple(Party(str(p["role"]), str(p["party_id"])) for p in parties_raw)
            events = tuple(
                JobEventView(
                    float(e["at"]),
                    str(e["kind"]),
                    str(e.get("party_id", "")),
                    str(e.get("task_name", "")),
                    int(e.get("version", -1)),
                    str(e.get("message", "")),
                )
                for e in events_raw
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed party or event: {exc}") from None
        return cls(
            when("created"), when("started"), when("ended"), parties, mapping("plan"), mapping("conf"), events
        )


@dataclass(frozen=True)
class JobView:
    """A job as one party sees it. ``found`` is False when the party does not know the job."""

    job_id: str
    found: bool
    dag_id: str = ""
    status: str = ""
    reason: str = ""
    initiator_party_id: str = ""
    tasks: tuple[TaskView, ...] = ()
    detail: JobDetail = field(default_factory=JobDetail)


@dataclass(frozen=True)
class StopJob:
    """Stop a job: initiator → every party, or any party → initiator (a request to stop everywhere)."""

    job_id: str
    status: JobStatus
    reason: str = ""


@dataclass(frozen=True)
class RerunJob:
    """Rerun tasks of an ended job with task version + 1 (initiator → every party, or a request to it)."""

    job_id: str
    task_names: tuple[str, ...]


@dataclass(frozen=True)
class FetchTaskLog:
    """Ask a party of a job for its log of one task (its last ``max_lines`` lines, all tries)."""

    job_id: str
    task_name: str
    max_lines: int = 2000


@dataclass(frozen=True)
class TaskLog:
    """A party's log of a task; ``found`` is False (with ``message``) when it has none to give."""

    party_id: str
    found: bool
    lines: tuple[str, ...] = ()
    message: str = ""
    truncated: bool = False


@dataclass(frozen=True)
class Ack:
    """Generic acknowledgement of a control command."""

    ok: bool = True
    message: str = ""


ControlCommand: TypeAlias = (
    CreateJob | PrepareTask | ReportTaskStatus | QueryJob | StopJob | RerunJob | FetchTaskLog
)
ControlReply: TypeAlias = CreateJobReply | TaskStartDecision | Ack | JobView | TaskLog


#: The reply type of each command (what its :class:`CommandHandler` method returns).
REPLY_TYPES: Mapping[type, type] = MappingProxyType(
    {
        CreateJob: CreateJobReply,
        PrepareTask: TaskStartDecision,
        ReportTaskStatus: Ack,
        QueryJob: JobView,
        StopJob: Ack,
        RerunJob: Ack,
        FetchTaskLog: TaskLog,
    }
)


class CommandHandler(Protocol):
    """What a party does with control commands addressed to it.

    ``src_party_id`` is the authenticated sender (the gateway checked its certificate), never a
    value taken from the message body.
    """

    def create_job(self, src_party_id: str, cmd: CreateJob) -> CreateJobReply:
        """Create (or, at the initiator, submit) a job."""

    def prepare_task(self, src_party_id: str, cmd: PrepareTask) -> TaskStartDecision:
        """Record a party as ready for a task and say whether it may start."""

    def report_task_status(self, src_party_id: str, cmd: ReportTaskStatus) -> Ack:
        """Record a party's status for a task version."""

    def query_job(self, src_party_id: str, cmd: QueryJob) -> JobView:
        """Describe a job."""

    def stop_job(self, src_party_id: str, cmd: StopJob) -> Ack:
        """Stop a job (or ask the initiator to stop it everywhere)."""

    def rerun_job(self, src_party_id: str, cmd: RerunJob) -> Ack:
        """Rerun tasks of a job (or ask the initiator to)."""

    def fetch_task_log(self, src_party_id: str, cmd: FetchTaskLog) -> TaskLog:
        """This party's log of a task, for a party of the same job."""


def dispatch(handler: CommandHandler, src_party_id: str, cmd: ControlCommand) -> ControlReply:
    """Route a command to the matching :class:`CommandHandler` method (shared by all transports)."""
    if isinstance(cmd, CreateJob):
        return handler.create_job(src_party_id, cmd)
    if isinstance(cmd, PrepareTask):
        return handler.prepare_task(src_party_id, cmd)
    if isinstance(cmd, ReportTaskStatus):
        return handler.report_task_status(src_party_id, cmd)
    if isinstance(cmd, QueryJob):
        return handler.query_job(src_party_id, cmd)
    if isinstance(cmd, StopJob):
        return handler.stop_job(src_party_id, cmd)
    if isinstance(cmd, RerunJob):
        return handler.rerun_job(src_party_id, cmd)
    if isinstance(cmd, FetchTaskLog):
        return handler.fetch_task_log(src_party_id, cmd)
    raise TypeError(f"unknown control command {type(cmd).__name__}")


class ControlClient(ABC):
    """Send control commands to a party (possibly the local one) through the federation."""

    #: The party id this client speaks for (the authenticated source of every command).
    local_party_id: str

    @abstractmethod
    def call(self, dst_party_id: str, cmd: ControlCommand, timeout: float = 30.0) -> ControlReply:
        """Deliver ``cmd`` to ``dst_party_id``'s handler and return its reply.

        :raises FederationError: the party is unknown, unreachable or refused the caller; the
            message names the party.
        """

    @overload
    def ask(self, dst_party_id: str, cmd: CreateJob, timeout: float = 30.0) -> CreateJobReply: ...
    @overload
    def ask(self, dst_party_id: str, cmd: PrepareTask, timeout: float = 30.0) -> TaskStartDecision: ...
    @overload
    def ask(self, dst_party_id: str, cmd: QueryJob, timeout: float = 30.0) -> JobView: ...
    @overload
    def ask(self, dst_party_id: str, cmd: FetchTaskLog, timeout: float = 30.0) -> TaskLog: ...
    @overload
    def ask(
        self, dst_party_id: str, cmd: ReportTaskStatus | StopJob | RerunJob, timeout: float = 30.0
    ) -> Ack: ...
    def ask(self, dst_party_id: str, cmd: ControlCommand, timeout: float = 30.0) -> ControlReply:
        """:meth:`call`, typed: the reply is the one the command's handler returns, or an error.

        :raises FederationError: as :meth:`call`, and when the party answers with another type of
            reply (a peer speaking another version of the protocol), naming the party and both types.
        """
        reply = self.call(dst_party_id, cmd, timeout)
        expected = REPLY_TYPES[type(cmd)]
        if not isinstance(reply, expected):
            raise FederationError(
                f"party {dst_party_id} answered {type(cmd).__name__} with {type(reply).__name__}, "
                f"not {expected.__name__}"
            )
        return reply

    @abstractmethod
    def ping(self, dst_party_id: str, timeout: float = 5.0) -> float:
        """Round-trip to ``dst_party_id``'s gateway; returns seconds, raises FederationError."""

    def close(self) -> None:  # noqa: B027 - optional hook, default no-op
        """Release connections; the default has nothing to release."""


def initiator_view(client: ControlClient, job_id: str, *, with_events: bool = False) -> JobView:
    """The job as its initiator sees it, asked through ``client``'s party.

    This party's own view when it is the initiator or the initiator cannot be reached; a view with
    ``found=False`` when this party does not know the job. ``with_events`` adds the timeline
    (``detail["events"]``), which only the initiator holds in full.
    """
    local = client.ask(client.local_party_id, QueryJob(job_id, with_events))
    if not local.found:
        return JobView(job_id, found=False)
    if not local.initiator_party_id or local.initiator_party_id == client.local_party_id:
        return local
    try:
        remote = client.ask(local.initiator_party_id, QueryJob(job_id, with_events))
    except FateAirflowError:
        return local
    return remote if remote.found else local


__all__ = [
    "DEFAULT_GET_TIMEOUT",
    "Ack",
    "CommandHandler",
    "ControlClient",
    "ControlCommand",
    "ControlReply",
    "CreateJob",
    "CreateJobReply",
    "Federation",
    "FederationSession",
    "FetchTaskLog",
    "JobDetail",
    "JobEventView",
    "JobStatus",
    "JobView",
    "PartyTaskView",
    "Payload",
    "PrepareTask",
    "QueryJob",
    "ReportTaskStatus",
    "RerunJob",
    "StartAction",
    "StopJob",
    "TaskLog",
    "TaskPartyStatus",
    "TaskStartDecision",
    "TaskView",
    "dispatch",
    "initiator_view",
]
