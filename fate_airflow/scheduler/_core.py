"""The party service's shared state and the steps every role takes (see :mod:`.service`).

:class:`ServiceCore` holds the store, the engine port, the control client, one lock per job and the
background pool; it records timeline events and ends jobs (``_end_job``), which the initiator, the
participant and the supervisor all do.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fate_airflow.core.errors import FederationError
from fate_airflow.dsl.plan import JobPlan, TaskPlan
from fate_airflow.federation.api import (
    Ack,
    ControlClient,
    JobEventView,
    JobStatus,
    ReportTaskStatus,
    RerunJob,
    StopJob,
)
from fate_airflow.scheduler import state as st
from fate_airflow.scheduler.engine import WorkflowEngine
from fate_airflow.scheduler.store import JobRecord, JobStore, PartyTaskRecord

log = logging.getLogger(__name__)

JOB_END = frozenset({st.SUCCESS, st.FAILED, st.CANCELED, st.TIMEOUT})
#: Seconds after failing an ended job's run during which the supervisor checks it stays failed.
_RECHECK_SECONDS = 60.0


@dataclass(frozen=True)
class PartyPolicy:
    """What a party accepts and how patient it is.

    :param allowed_initiators: party ids allowed to create jobs here; None = any authenticated peer.
    :param readable_tables: ``namespace.name`` glob patterns a job may read here.
    :param party_timeout: seconds another party of a running job may stay unreachable before the job
        fails naming it.
    :param create_timeout: seconds the initiator waits for each party to create a job.
    :param supervise_interval: seconds between supervisor passes.
    :param ping_interval: seconds between liveness pings of the parties of running jobs.
    :param max_running_slots: task slots the jobs this party initiates may use at once (see
        :meth:`~fate_airflow.scheduler.coordinator.Coordinator._admission_wait`): the smallest
        executor parallelism among the parties. None: no queue.
    :param providers: refs of the component providers installed here (``native``, ``fate:2.2.0``); a
        job whose tasks here need another one is refused at creation, not failed halfway. None: not
        checked.
    :param max_held_calls: long polls (``PrepareTask``/``QueryJob`` with ``wait_seconds``) held at
        once; each holds a gateway thread, so beyond this the call is answered at once and the
        caller asks again later.
    """

    allowed_initiators: tuple[str, ...] | None = None
    readable_tables: tuple[str, ...] = ("*",)
    party_timeout: float = 30.0
    create_timeout: float = 120.0
    supervise_interval: float = 1.0
    ping_interval: float = 2.0
    providers: tuple[str, ...] | None = None
    max_running_slots: int | None = None
    max_held_calls: int = 16


#: The longest a long poll is held, whatever the caller asks.
MAX_HOLD_SECONDS = 20.0


class ChangeBoard:
    """Per-job change counters that long polls wait on (bumped with every timeline event).

    A waiter notes :meth:`seq`, decides, and if the answer is "not yet" waits for the counter to move:
    a change between its decision and its wait is never missed.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._seq: dict[str, int] = {}
        self._everyone = 0

    def _value(self, job_id: str) -> int:
        return self._seq.get(job_id, 0) + self._everyone

    def seq(self, job_id: str) -> int:
        """The job's change counter now."""
        with self._cond:
            return self._value(job_id)

    def bump(self, job_id: str | None = None) -> None:
        """Record a change of ``job_id`` (None: of every job, e.g. a freed slot of the job queue)."""
        with self._cond:
            if job_id is None:
                self._everyone += 1
            else:
                self._seq[job_id] = self._seq.get(job_id, 0) + 1
            self._cond.notify_all()

    def wait(self, job_id: str, seen: int, timeout: float) -> bool:
        """Wait until the job's counter differs from ``seen``; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._value(job_id) != seen, timeout)


def tables_read(task: TaskPlan, party_id: str) -> set[tuple[str, str]]:
    """(namespace, name) of every table ``task`` reads at ``party_id``."""
    tables: set[tuple[str, str]] = set()
    for share in task.runs_at(party_id):
        params = share.parameters
        table = params.get("table")
        if isinstance(table, Mapping) and table.get("name"):
            tables.add((str(table.get("namespace", "")), str(table["name"])))
        elif task.implementation.startswith("reader@") and params.get("name"):
            tables.add((str(params.get("namespace", "")), str(params["name"])))
    for ref in task.inputs:
        consumed_here = ref.parties is None or any(p.party_id == party_id for p in ref.parties)
        if ref.source == "data_warehouse" and ref.name and consumed_here:
            tables.add((ref.namespace or "", ref.name))
    return tables


def timeout_of(mapping: Mapping[str, Any]) -> float | None:
    value = mapping.get("timeout")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


class ServiceCore(ABC):
    """State and shared steps of a party service (the roles build on it; see :class:`PartyService`).

    :param party_id: this party's id.
    :param store: the party's job store.
    :param engine: the party's workflow engine (its Airflow).
    :param policy: what the party accepts, and its timeouts.
    :param clock: wall clock (tests pass a fake).
    :param policy_source: re-read before every job creation, so a party's allowlists change without a
        restart (for example from its config file).
    """

    def __init__(
        self,
        party_id: str,
        store: JobStore,
        engine: WorkflowEngine,
        policy: PartyPolicy | None = None,
        clock: Callable[[], float] = time.time,
        policy_source: Callable[[], PartyPolicy] | None = None,
    ) -> None:
        self.party_id = party_id
        self.store = store
        self.engine = engine
        self.policy = policy or PartyPolicy()
        self._policy_source = policy_source
        self._clock = clock
        self._control: ControlClient | None = None
        #: One lock per job: a slow Airflow call or peer for one job never stalls another job's
        #: prepares, reports or supervision (there is no service-wide lock).
        self._job_locks: dict[str, threading.RLock] = {}
        self._job_locks_guard = threading.Lock()
        #: Serialises the decision to start a queued job (see Coordinator._admission_wait).
        self._admission = threading.Lock()
        #: Jobs whose submission to the other parties is in progress in this process.
        self._submitting: set[str] = set()
        #: One local DAG run created at a time (see _start_local_run): on SQLite, Airflow's api-server
        #: locks itself out when several run creations write at once.
        self._engine_slots = threading.BoundedSemaphore(1)
        #: Jobs accepted from an initiator whose local DAG run is being started in this process.
        self._accepting: set[str] = set()
        #: Whether the first supervisor pass resumed the jobs a previous process left unfinished.
        self._resumed = False
        #: Destination parties with a resend of kept reports in flight (one batch per party at a time).
        self._resending: set[str] = set()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix=f"fate-party-{party_id}")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Last time each peer answered a ping (party id → wall time).
        self._last_seen: dict[str, float] = {}
        self._last_ping = 0.0
        #: Jobs whose local run could not be failed yet (retried by the supervisor; blocks rerun detection).
        self._unfailed_runs: set[str] = set()
        #: Ended jobs whose local run was failed → until when to check that it stays failed.
        self._recheck_runs: dict[str, float] = {}
        #: Supervisor passes that saw a job's local run failed while the job was running.
        self._failed_seen: dict[str, int] = {}
        self._pending: list[Future[Any]] = []
        #: What long polls wait on, and how many may be held at once.
        self.changes = ChangeBoard()
        self._holds = threading.BoundedSemaphore(max(1, self.policy.max_held_calls))

    @contextmanager
    def _hold(self, wanted: float) -> Iterator[float]:
        """How long this call may be held (0 when ``wanted`` is 0 or every hold slot is taken)."""
        wanted = min(max(wanted, 0.0), MAX_HOLD_SECONDS)
        if wanted <= 0 or not self._holds.acquire(blocking=False):
            yield 0.0
            return
        try:
            yield wanted
        finally:
            self._holds.release()

    def _job_lock(self, job_id: str) -> threading.RLock:
        """The lock serialising the coordination of ``job_id`` (created on first use)."""
        with self._job_locks_guard:
            lock = self._job_locks.get(job_id)
            if lock is None:
                lock = self._job_locks[job_id] = threading.RLock()
            return lock

    def attach_control(self, client: ControlClient) -> None:
        """Give the service its way to reach other parties (available once the gateway listens)."""
        self._control = client

    @property
    def control(self) -> ControlClient:
        """The control client; raises if not attached yet."""
        if self._control is None:
            raise FederationError(f"party {self.party_id}: control client not attached")
        return self._control

    def drain(self, timeout: float = 30.0) -> None:
        """Wait for background notifications (stop/rerun broadcasts) to be delivered or given up."""
        with self._job_locks_guard:
            pending, self._pending = self._pending, []
        wait(pending, timeout=timeout)

    def _track(self, future: Future[Any]) -> None:
        with self._job_locks_guard:
            self._pending = [f for f in self._pending if not f.done()]
            self._pending.append(future)

    def _background(self, party: str, cmd: StopJob | RerunJob) -> None:
        self._track(self._pool.submit(self._call_quietly, party, cmd))

    def stop(self) -> None:
        """Stop the supervisor thread and background work; held long polls are answered now."""
        self._stop.set()
        self.changes.bump(None)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._pool.shutdown(wait=False, cancel_futures=True)
        # Deliveries in flight see the stop flag at their next retry; give them a moment to finish.
        wait(self._pending, timeout=2.0)

    def _event(
        self, job_id: str, kind: str, *, party: str = "", task: str = "", version: int = -1, message: str = ""
    ) -> None:
        """Append to the job's timeline; a store hiccup never fails the coordination it describes."""
        try:
            self.store.add_event(job_id, JobEventView(self._clock(), kind, party, task, version, message))
        except Exception:
            log.exception("job %s: could not record a %s event", job_id, kind)
        # Every change of a job's coordination is an event: wake the long polls on it. A job's end
        # may also free a slot of the job queue, which every queued job waits for.
        self.changes.bump(None if kind == "ended" else job_id)

    def _record(self, cmd: ReportTaskStatus) -> None:
        row = self.store.get_party_task(cmd.job_id, cmd.task_name, cmd.party_id) or PartyTaskRecord(
            cmd.job_id, cmd.task_name, cmd.party_id
        )
        row.version = cmd.task_version
        row.status = cmd.status
        row.error = cmd.error
        row.detail = dict(cmd.detail)
        row.updated = self._clock()
        self.store.upsert_party_task(row)
        if not self.store.get_job(cmd.job_id) or cmd.party_id != self.party_id:
            return
        job = self.store.get_job(cmd.job_id)
        assert job is not None
        if not job.is_initiator:
            # A non-initiator mirrors its own task's status for `job query` at this party.
            self.store.update_task(cmd.job_id, cmd.task_name, version=cmd.task_version, status=cmd.status)

    def _end_job(self, job: JobRecord, status: JobStatus, reason: str) -> None:
        """End a job once (the first end wins); fail the local run and, at the initiator, tell everyone."""
        with self._job_lock(job.job_id):
            current = self.store.get_job(job.job_id)
            if current is None or current.status in JOB_END:
                return
            if status != st.SUCCESS:
                # Fail the local run *before* recording the end: once the job reads as ended, a
                # task that asks to start can only be one the user cleared (a rerun).
                self._fail_local_run(current)
            if status != st.SUCCESS:
                for task in self.store.list_tasks(job.job_id):
                    if task.status in (st.RUNNING, st.WAITING):
                        self.store.update_task(
                            job.job_id, task.task_name, status=st.CANCELED, ended=self._clock()
                        )
            self.store.update_job(job.job_id, status=status, reason=reason, ended=self._clock())
            self._event(job.job_id, "ended", party=self.party_id, message=f"{status}: {reason}")
        log.info("job %s ended %s: %s", job.job_id, status, reason)
        if current.is_initiator:
            plan = JobPlan.from_dict(current.plan)
            for party in plan.party_ids:
                if party != self.party_id:
                    self._background(party, StopJob(job.job_id, status, reason))

    def _fail_local_run(self, job: JobRecord) -> None:
        try:
            self.engine.fail_run(job.dag_id, job.job_id)
            self._unfailed_runs.discard(job.job_id)
            self._recheck_runs[job.job_id] = self._clock() + _RECHECK_SECONDS
        except Exception:  # retried by the supervisor; the job still ends
            log.exception("job %s: could not fail the local DAG run (will retry)", job.job_id)
            self._unfailed_runs.add(job.job_id)

    def _reset_tasks(self, job: JobRecord, tasks: tuple[str, ...]) -> None:
        self.store.update_job(job.job_id, status=st.RUNNING, reason="", ended=None)
        self._event(job.job_id, "rerun", party=self.party_id, message=", ".join(tasks))
        for name in tasks:
            rec = self.store.get_task(job.job_id, name)
            # As in FATE-Flow, every task of a rerun gets a new version, including tasks whose first
            # version never started (version 0 is spent): the rerun starts at version 1 or above.
            version = max(rec.version, 0) if rec is not None else 0
            self.store.update_task(job.job_id, name, status=st.WAITING, ended=None, version=version)
        self.store.reset_party_tasks(job.job_id, tasks)
        self._failed_seen.pop(job.job_id, None)

    def _reported_failed(self, job_id: str, task_name: str) -> bool:
        row = self.store.get_party_task(job_id, task_name, self.party_id)
        return row is not None and row.status in (st.FAILED, st.TIMEOUT)

    def _call_quietly(self, party: str, cmd: StopJob | RerunJob) -> None:
        """Fire-and-forget notification with a few retries (stop/rerun must reach slow parties too)."""
        delay = 0.5
        for attempt in range(5):
            try:
                reply = self.control.ask(party, cmd, timeout=15.0)
                if not reply.ok:
                    log.warning("party %s declined %s: %s", party, type(cmd).__name__, reply.message)
                return
            except Exception as exc:
                if attempt == 4 or self._stop.is_set():
                    log.warning("could not deliver %s to party %s: %s", type(cmd).__name__, party, exc)
                    return
                time.sleep(delay)
                delay *= 2

    @abstractmethod
    def stop_job(self, src_party_id: str, cmd: StopJob) -> Ack:
        """Stop a job (the command handler's; the supervisor stops jobs through it too)."""
