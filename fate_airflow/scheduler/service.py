"""The party service: FATE-Flow's scheduler for one party, served behind the federation gateway.

Every party runs one :class:`PartyService`. It implements the gateway's
:class:`~fate_airflow.federation.api.CommandHandler`, keeps the party's :class:`JobStore` and drives
the party's own workflow engine (its Airflow) through the :class:`WorkflowEngine` port.

Roles
    The **initiator**'s service is the single brain of a job (FATE invariant): it creates the job at
    every party, lets a task start only when its upstream succeeded at all parties and every party
    is ready (prepare everywhere, then start with one agreed task version), aggregates party
    statuses with FATE's rules, and broadcasts the end of the job. A **non-initiator** service
    accepts jobs from allowed initiators, starts its local DAG run with the same run id, forwards
    its workers' prepare/report calls to the initiator and obeys stop/rerun commands.

Workers (Airflow tasks) only ever talk to their own party's service; the service forwards.

A supervisor thread watches what no message announces: a DAG run marked failed in a party's UI,
task and job timeouts, and parties that stop answering.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from fate_airflow.core.errors import FateAirflowError, FederationError
from fate_airflow.dsl.plan import JobPlan, TaskPlan
from fate_airflow.federation.api import (
    Ack,
    ControlClient,
    CreateJob,
    CreateJobReply,
    FetchTaskLog,
    JobStatus,
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
from fate_airflow.scheduler import state as st
from fate_airflow.scheduler.engine import FINISHED_TI_STATES, WorkflowEngine
from fate_airflow.scheduler.store import JobEvent, JobRecord, JobStore, PartyTaskRecord, PendingReport

log = logging.getLogger(__name__)

_JOB_END = frozenset({st.SUCCESS, st.FAILED, st.CANCELED, st.TIMEOUT})
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
    :param providers: refs of the component providers installed here (``native``, ``fate:2.2.0``); a
        job whose tasks here need another one is refused at creation, not failed halfway. None: not
        checked.
    """

    allowed_initiators: tuple[str, ...] | None = None
    readable_tables: tuple[str, ...] = ("*",)
    party_timeout: float = 30.0
    create_timeout: float = 120.0
    supervise_interval: float = 1.0
    ping_interval: float = 2.0
    providers: tuple[str, ...] | None = None


def _tables_read(task: TaskPlan, party_id: str) -> set[tuple[str, str]]:
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


def _timeout_of(mapping: Mapping[str, Any]) -> float | None:
    value = mapping.get("timeout")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


class PartyService:
    """FATE-Flow's per-party scheduler (see the module docstring).

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
        #: Jobs whose submission to the other parties is in progress in this process.
        self._submitting: set[str] = set()
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

    # ------------------------------------------------------------------ wiring
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

    def start(self) -> None:
        """Start the supervisor thread."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._supervise_loop, name="fate-supervisor", daemon=True)
            self._thread.start()

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
        """Stop the supervisor thread and background work."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._pool.shutdown(wait=False, cancel_futures=True)
        # Deliveries in flight see the stop flag at their next retry; give them a moment to finish.
        wait(self._pending, timeout=2.0)

    # ------------------------------------------------------------------ create
    def _event(
        self, job_id: str, kind: str, *, party: str = "", task: str = "", version: int = -1, message: str = ""
    ) -> None:
        """Append to the job's timeline; a store hiccup never fails the coordination it describes."""
        try:
            self.store.add_event(JobEvent(job_id, self._clock(), kind, party, task, version, message))
        except Exception:
            log.exception("job %s: could not record a %s event", job_id, kind)

    def create_job(self, src_party_id: str, cmd: CreateJob) -> CreateJobReply:
        """Submit a job (at its initiator) or accept one from an initiator."""
        if cmd.initiator_party_id == self.party_id:
            if src_party_id != self.party_id:
                return CreateJobReply(
                    False, f"party {src_party_id} may not submit jobs for initiator {self.party_id}"
                )
            return self._submit(cmd)
        return self._accept(src_party_id, cmd)

    def _submit(self, cmd: CreateJob) -> CreateJobReply:
        try:
            plan = JobPlan.from_dict(cmd.plan)
        except (KeyError, TypeError, ValueError) as exc:
            return CreateJobReply(False, f"invalid plan for job {cmd.job_id}: {exc}")
        if plan.initiator.party_id != self.party_id:
            return CreateJobReply(
                False,
                f"party {self.party_id} is not the initiator of this job (the job file names "
                f"{plan.initiator.role} {plan.initiator.party_id}); trigger it at the initiator",
            )
        with self._job_lock(cmd.job_id):
            existing = self.store.get_job(cmd.job_id)
            if existing is not None:
                if existing.status in _JOB_END - {st.SUCCESS} and existing.started is None:
                    return CreateJobReply(False, existing.reason)
                return CreateJobReply(True, "job already submitted")
            self.store.add_job(
                JobRecord(
                    job_id=cmd.job_id,
                    dag_id=cmd.dag_id,
                    initiator_party_id=self.party_id,
                    is_initiator=True,
                    plan=plan.to_dict(),
                    conf=dict(cmd.conf),
                    status=st.WAITING,
                    created=self._clock(),
                )
            )
            self._event(cmd.job_id, "created", party=self.party_id, message=f"DAG {cmd.dag_id} (initiator)")
            self._submitting.add(cmd.job_id)
        try:
            return self._create_at_peers(cmd.job_id, cmd.dag_id, plan, cmd.conf)
        finally:
            self._submitting.discard(cmd.job_id)

    def _create_at_peers(
        self, job_id: str, dag_id: str, plan: JobPlan, conf: Mapping[str, Any]
    ) -> CreateJobReply:
        """Create a waiting job at every other party; running when all accept, else failed everywhere.

        Creation is idempotent at the peers ("job already exists"), so a job left waiting by a crash
        of this service is submitted again by the same call.
        """
        cmd = CreateJob(job_id, dag_id, self.party_id, plan.to_dict(), dict(conf))
        peers = [p for p in plan.party_ids if p != self.party_id]
        futures = {p: self._pool.submit(self.control.ask, p, cmd, self.policy.create_timeout) for p in peers}
        accepted: list[str] = []
        #: Parties that may hold the job although they did not say so (the call timed out or broke).
        unsure: list[str] = []
        failures: list[str] = []
        for party, fut in futures.items():
            try:
                reply = fut.result()
            except FateAirflowError as exc:
                failures.append(f"party {party} could not be reached: {exc}")
                unsure.append(party)
                continue
            if reply.accepted:
                accepted.append(party)
            else:
                failures.append(f"party {party} refused: {reply.reason}")
        if failures:
            reason = "job submission failed: " + "; ".join(failures)
            log.warning("job %s: %s", cmd.job_id, reason)
            self.store.update_job(cmd.job_id, status=st.FAILED, reason=reason, ended=self._clock())
            self._event(cmd.job_id, "ended", party=self.party_id, message=f"failed: {reason}")
            # Clean up wherever the job may exist: a create that timed out may still have landed.
            for party in accepted + unsure:
                self._background(party, StopJob(cmd.job_id, "failed", reason))
            return CreateJobReply(False, reason)
        now = self._clock()
        self.store.update_job(cmd.job_id, status=st.RUNNING, started=now)
        self._event(
            cmd.job_id,
            "submitted",
            party=self.party_id,
            message=f"accepted by {', '.join(peers) or 'no peer'}",
        )
        for party in peers:
            self._last_seen[party] = now
        log.info("job %s created at parties %s", cmd.job_id, ", ".join(plan.party_ids))
        return CreateJobReply(True)

    def _accept(self, src: str, cmd: CreateJob) -> CreateJobReply:
        me = self.party_id
        if cmd.initiator_party_id != src:
            return CreateJobReply(
                False, f"party {src} sent a job naming another initiator ({cmd.initiator_party_id})"
            )
        if self._policy_source is not None:
            try:
                self.policy = self._policy_source()
            except FateAirflowError as exc:
                return CreateJobReply(False, f"party {me} cannot read its policy: {exc}")
        allowed = self.policy.allowed_initiators
        if allowed is not None and src not in allowed:
            listed = ", ".join(allowed) or "none"
            return CreateJobReply(
                False, f"party {me} does not accept jobs from initiator {src} (allowed initiators: {listed})"
            )
        try:
            plan = JobPlan.from_dict(cmd.plan)
        except (KeyError, TypeError, ValueError) as exc:
            return CreateJobReply(False, f"invalid plan: {exc}")
        if plan.initiator.party_id != src:
            return CreateJobReply(
                False, f"the plan's initiator {plan.initiator.party_id} is not the sender {src}"
            )
        if me not in plan.party_ids:
            return CreateJobReply(False, f"party {me} is not a party of job {cmd.job_id}")
        for task in plan.tasks:
            for namespace, name in sorted(_tables_read(task, me)):
                full = f"{namespace}.{name}"
                if not any(fnmatch.fnmatchcase(full, pat) for pat in self.policy.readable_tables):
                    return CreateJobReply(
                        False,
                        f"job may not read table {full} at party {me} (task {task.name}; readable: "
                        f"{', '.join(self.policy.readable_tables) or 'none'})",
                    )
        installed = self.policy.providers
        for task in plan.tasks:
            if installed is not None and task.runs_at(me) and task.provider not in installed:
                name, _, version = task.provider.partition(":")
                return CreateJobReply(
                    False,
                    f"party {me} does not have provider {task.provider} (task {task.name}); install it "
                    f"there with `fate-airflow provider install {name}=={version}`",
                )
        with self._job_lock(cmd.job_id):
            if self.store.get_job(cmd.job_id) is not None:
                return CreateJobReply(True, "job already exists")
            now = self._clock()
            self.store.add_job(
                JobRecord(
                    job_id=cmd.job_id,
                    dag_id=cmd.dag_id,
                    initiator_party_id=src,
                    is_initiator=False,
                    plan=plan.to_dict(),
                    conf=dict(cmd.conf),
                    status=st.RUNNING,
                    created=now,
                    started=now,
                )
            )
            self._event(cmd.job_id, "created", party=me, message=f"DAG {cmd.dag_id} from initiator {src}")
            self._accepting.add(cmd.job_id)
        try:
            self.engine.materialize_job(cmd.dag_id, plan.to_dict())
            self.engine.create_run(cmd.dag_id, cmd.job_id, dict(cmd.conf))
        except Exception as exc:  # the engine is another system: any failure refuses the job cleanly
            self.store.delete_job(cmd.job_id)
            log.exception("job %s: could not start the local DAG run", cmd.job_id)
            return CreateJobReply(False, f"party {me} could not start DAG {cmd.dag_id}: {exc}")
        finally:
            self._accepting.discard(cmd.job_id)
        self._last_seen[src] = self._clock()
        log.info("job %s accepted from initiator %s; DAG run started", cmd.job_id, src)
        return CreateJobReply(True)

    # ------------------------------------------------------------------ prepare / start
    def prepare_task(self, src_party_id: str, cmd: PrepareTask) -> TaskStartDecision:
        """Record readiness and decide whether the task may start (see the module docstring)."""
        job = self.store.get_job(cmd.job_id)
        if job is None:
            return TaskStartDecision("abort", reason=f"party {self.party_id} does not know job {cmd.job_id}")
        if not job.is_initiator:
            if src_party_id != self.party_id:
                return TaskStartDecision("abort", reason=f"party {self.party_id} is not the initiator")
            if job.status in _JOB_END and job.status != st.SUCCESS:
                return TaskStartDecision("abort", reason=job.reason or f"job {job.status}")
            try:
                reply = self.control.ask(job.initiator_party_id, cmd, 15.0)
            except FateAirflowError as exc:
                # The supervisor fails the job if the initiator stays away; until then, keep waiting.
                return TaskStartDecision(
                    "wait", reason=f"initiator {job.initiator_party_id} unreachable: {exc}"
                )
            return reply
        if src_party_id != cmd.party_id:
            return TaskStartDecision(
                "abort", reason=f"party {src_party_id} cannot prepare for party {cmd.party_id}"
            )
        with self._job_lock(cmd.job_id):
            decision, clear = self._prepare_at_initiator(cmd)
        if clear:
            # Outside the lock: these are Airflow and peer calls.
            self._clear_for_restart(cmd.job_id, cmd.task_name, clear)
        return decision

    def _prepare_at_initiator(self, cmd: PrepareTask) -> tuple[TaskStartDecision, tuple[str, ...]]:
        """The initiator's answer to ``cmd`` and the parties whose share to clear (under the job's lock)."""
        job = self.store.get_job(cmd.job_id)
        assert job is not None
        if job.status in _JOB_END:
            if cmd.party_id == self.party_id and self._local_rerun_requested(job):
                job = self.store.get_job(cmd.job_id)
                assert job is not None
            else:
                return TaskStartDecision("abort", reason=job.reason or f"job {cmd.job_id} {job.status}"), ()
        if job.status == st.WAITING:
            return TaskStartDecision("wait", reason="the job is being created at every party"), ()
        plan = JobPlan.from_dict(job.plan)
        try:
            task = plan.task(cmd.task_name)
        except KeyError:
            return TaskStartDecision("abort", reason=f"job {cmd.job_id} has no task {cmd.task_name}"), ()
        runners = task.party_ids
        if cmd.party_id not in runners:
            return TaskStartDecision(
                "abort", reason=f"task {task.name} does not run at party {cmd.party_id}"
            ), ()
        rec = self.store.get_task(job.job_id, task.name)
        assert rec is not None
        row = self.store.get_party_task(job.job_id, task.name, cmd.party_id) or PartyTaskRecord(
            job.job_id, task.name, cmd.party_id
        )
        if rec.status == st.RUNNING:
            if row.version == rec.version and row.status in st.END_STATUSES:
                return TaskStartDecision(
                    "abort",
                    reason=f"task {task.name} version {rec.version} already ended at party {cmd.party_id}",
                ), ()
            if row.version == rec.version and row.status == st.RUNNING:
                # This party started the current version and asks again: its try died without a
                # report and Airflow retried it. The other parties' shares of that version may have
                # consumed messages the retry would wait for in vain, so the task restarts as a new
                # version everywhere.
                return self._restart_task(job, task, cmd.party_id, rec.version)
            return TaskStartDecision("start", task_version=rec.version), ()
        if rec.status in st.END_STATUSES:
            return TaskStartDecision(
                "abort", reason=f"task {task.name} already {rec.status}; rerun it first"
            ), ()
        if not row.prepared:
            row.prepared = True
            row.status = st.READY
            row.updated = self._clock()
            self.store.upsert_party_task(row)
            self._event(job.job_id, "prepared", party=cmd.party_id, task=task.name)
        waiting_up = [
            up
            for up in task.upstream
            if (r := self.store.get_task(job.job_id, up)) is None or r.status != st.SUCCESS
        ]
        if waiting_up:
            return TaskStartDecision(
                "wait", reason=f"waiting for upstream {', '.join(waiting_up)} at all parties"
            ), ()
        not_ready = [
            p
            for p in runners
            if not (pr := self.store.get_party_task(job.job_id, task.name, p)) or not pr.prepared
        ]
        if not_ready:
            return TaskStartDecision(
                "wait", reason=f"waiting for parties {', '.join(not_ready)} to be ready"
            ), ()
        version = rec.version + 1
        now = self._clock()
        self.store.update_task(
            job.job_id, task.name, version=version, status=st.RUNNING, started=now, ended=None
        )
        for p in runners:
            prow = self.store.get_party_task(job.job_id, task.name, p)
            assert prow is not None
            prow.version = version
            prow.updated = now
            self.store.upsert_party_task(prow)
        self._event(job.job_id, "started", task=task.name, version=version, message=", ".join(runners))
        log.info(
            "job %s: task %s starts as version %d at %s",
            job.job_id,
            task.name,
            version,
            ", ".join(runners),
        )
        return TaskStartDecision("start", task_version=version), ()

    def _restart_task(
        self, job: JobRecord, task: TaskPlan, party_id: str, version: int
    ) -> tuple[TaskStartDecision, tuple[str, ...]]:
        """Spend ``version`` of ``task`` and let it start again as a new version at every party.

        ``party_id``'s retry counts as prepared; every other party running the task must clear its
        share (killing a share still running the spent version) and prepare again.
        """
        now = self._clock()
        self.store.update_task(job.job_id, task.name, status=st.WAITING, ended=None)
        self.store.reset_party_tasks(job.job_id, (task.name,))
        row = self.store.get_party_task(job.job_id, task.name, party_id) or PartyTaskRecord(
            job.job_id, task.name, party_id
        )
        row.version, row.prepared, row.status, row.updated = version, True, st.READY, now
        self.store.upsert_party_task(row)
        reason = (
            f"party {party_id} retried task {task.name} after its try of version {version} ended "
            f"without a report; the task restarts as version {version + 1} at every party"
        )
        self._event(job.job_id, "retry", party=party_id, task=task.name, version=version, message=reason)
        log.warning("job %s: %s", job.job_id, reason)
        return TaskStartDecision("wait", reason=reason), tuple(p for p in task.party_ids if p != party_id)

    def _clear_for_restart(self, job_id: str, task_name: str, parties: tuple[str, ...]) -> None:
        """Clear the spent version's shares: this party's own in its Airflow, the others' by command."""
        job = self.store.get_job(job_id)
        if job is None:
            return
        for party in parties:
            if party != self.party_id:
                self._background(party, RerunJob(job_id, (task_name,)))
                continue
            try:
                self.engine.clear_tasks(job.dag_id, job_id, (task_name,))
            except Exception:  # the share then fails by itself (a get times out); the job still ends
                log.exception("job %s: could not clear task %s for its restart", job_id, task_name)

    # ------------------------------------------------------------------ report
    def report_task_status(self, src_party_id: str, cmd: ReportTaskStatus) -> Ack:
        """Record a party's task status; at the initiator, aggregate and end the job when due."""
        job = self.store.get_job(cmd.job_id)
        if job is None:
            return Ack(False, f"party {self.party_id} does not know job {cmd.job_id}")
        if not job.is_initiator:
            if src_party_id != self.party_id:
                return Ack(False, f"party {self.party_id} is not the initiator of job {cmd.job_id}")
            self._record(cmd)
            try:
                reply = self.control.ask(job.initiator_party_id, cmd, 15.0)
            except FateAirflowError as exc:
                # Kept durably and resent by the supervisor until the initiator acknowledges it: a
                # report lost here would leave the initiator waiting for this party forever.
                self.store.keep_report(
                    PendingReport(
                        cmd.job_id, cmd.task_name, cmd.party_id, job.initiator_party_id, cmd.task_version,
                        cmd.status, cmd.error, dict(cmd.detail), 1, str(exc), self._clock(),
                    )
                )  # fmt: skip
                return Ack(
                    True,
                    f"initiator {job.initiator_party_id} unreachable ({exc}); the report is kept and "
                    "resent until it is acknowledged",
                )
            return reply
        if src_party_id != cmd.party_id:
            return Ack(False, f"party {src_party_id} cannot report for party {cmd.party_id}")
        with self._job_lock(cmd.job_id):
            rec = self.store.get_task(cmd.job_id, cmd.task_name)
            if rec is None:
                return Ack(False, f"job {cmd.job_id} has no task {cmd.task_name}")
            if cmd.task_version != rec.version:
                return Ack(
                    True, f"ignored: version {cmd.task_version} is not the current version {rec.version}"
                )
            if rec.status == st.WAITING:
                # A rerun reset the task but has not started its next version yet: this is the late
                # report of a try the user cleared while it was still running.
                return Ack(True, f"ignored: task {cmd.task_name} version {rec.version} was reset for a rerun")
            self._record(cmd)
            self._event(
                cmd.job_id, "reported", party=cmd.party_id, task=cmd.task_name, version=cmd.task_version,
                message=cmd.status + (f": {cmd.error}" if cmd.error else ""),
            )  # fmt: skip
            plan = JobPlan.from_dict(job.plan)
            task = plan.task(cmd.task_name)
            runners = task.party_ids
            rows = {
                r.party_id: r for r in self.store.list_party_tasks(cmd.job_id) if r.task_name == cmd.task_name
            }
            statuses = [
                rows[p].status if p in rows and rows[p].version == rec.version else st.WAITING
                for p in runners
            ]
            fed = st.federated_task_status(statuses)
            if fed != rec.status:
                ended = self._clock() if fed in st.END_STATUSES else None
                self.store.update_task(cmd.job_id, cmd.task_name, status=fed, ended=ended)
            if fed in st.INTERRUPT_STATUSES:
                culprit = next(
                    (
                        rows[p]
                        for p in runners
                        if p in rows and rows[p].status == fed and rows[p].version == rec.version
                    ),
                    None,
                )
                where = (
                    f"party {culprit.party_id} ({'/'.join(plan.roles_of(culprit.party_id))})"
                    if culprit
                    else "a party"
                )
                error = f": {culprit.error}" if culprit and culprit.error else ""
                self._end_job(job, st.job_status(fed), f"task {cmd.task_name} {fed} at {where}{error}")
            elif fed == st.SUCCESS:
                tasks = self.store.list_tasks(cmd.job_id)
                if st.federated_job_status(t.status for t in tasks) == st.SUCCESS:
                    self._end_job(job, st.SUCCESS, "all tasks succeeded at every party")
        return Ack(True)

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

    # ------------------------------------------------------------------ end / stop / rerun
    def _end_job(self, job: JobRecord, status: JobStatus, reason: str) -> None:
        """End a job once (the first end wins); fail the local run and, at the initiator, tell everyone."""
        with self._job_lock(job.job_id):
            current = self.store.get_job(job.job_id)
            if current is None or current.status in _JOB_END:
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

    def stop_job(self, src_party_id: str, cmd: StopJob) -> Ack:
        """Stop a job everywhere (initiator) or obey / forward a stop (other parties)."""
        job = self.store.get_job(cmd.job_id)
        if job is None:
            return Ack(False, f"party {self.party_id} does not know job {cmd.job_id}")
        if job.is_initiator:
            plan = JobPlan.from_dict(job.plan)
            if src_party_id != self.party_id and src_party_id not in plan.party_ids:
                return Ack(False, f"party {src_party_id} is not a party of job {cmd.job_id}")
            if job.status in _JOB_END:
                return Ack(True, f"job already {job.status}")
            reason = cmd.reason or f"stopped at party {src_party_id}"
            self._event(job.job_id, "stop", party=src_party_id, message=reason)
            self._end_job(job, cmd.status, reason)
            return Ack(True)
        if src_party_id == job.initiator_party_id:
            self._end_job(job, cmd.status, cmd.reason)
            return Ack(True)
        if src_party_id == self.party_id:
            try:
                reply = self.control.ask(job.initiator_party_id, cmd, 15.0)
            except FateAirflowError as exc:
                reason = f"{cmd.reason} (initiator {job.initiator_party_id} unreachable: {exc})"
                self._end_job(job, cmd.status, reason)
                self._background(job.initiator_party_id, StopJob(job.job_id, cmd.status, reason))
                return Ack(True, "initiator unreachable; stopped locally")
            if reply.ok:
                self._adopt_initiator_end(job)
            return reply
        return Ack(False, f"party {src_party_id} may not stop job {cmd.job_id} here")

    def _adopt_initiator_end(self, job: JobRecord) -> None:
        """Take the initiator's end of a job as this party's own.

        The initiator's stop back to this party may have been lost (it answers a forwarded stop with
        "job already ended"); without this the party would keep the job running and forward its stop
        again on every supervisor pass.
        """
        try:
            view = self.control.ask(job.initiator_party_id, QueryJob(job.job_id), 15.0)
        except FateAirflowError:
            return
        if view.found and view.status in _JOB_END:
            reason = view.reason or f"ended at initiator {job.initiator_party_id}"
            self._end_job(job, st.job_status(view.status), reason)

    def rerun_job(self, src_party_id: str, cmd: RerunJob) -> Ack:
        """Rerun tasks (and everything downstream) with task version + 1 at every party."""
        job = self.store.get_job(cmd.job_id)
        if job is None:
            return Ack(False, f"party {self.party_id} does not know job {cmd.job_id}")
        plan = JobPlan.from_dict(job.plan)
        names = {t.name for t in plan.tasks}
        unknown = [t for t in cmd.task_names if t not in names]
        if unknown:
            return Ack(False, f"job {cmd.job_id} has no task {', '.join(unknown)}")
        if job.is_initiator:
            if src_party_id != self.party_id and src_party_id not in plan.party_ids:
                return Ack(False, f"party {src_party_id} is not a party of job {cmd.job_id}")
            wanted: set[str] = set()
            for name in cmd.task_names:
                wanted.update(plan.downstream_of(name))
            tasks = tuple(t.name for t in plan.tasks if t.name in wanted)
            with self._job_lock(job.job_id):
                self.engine.clear_tasks(job.dag_id, job.job_id, tasks)
                self._begin_rerun(job, tasks)
            return Ack(True, f"rerunning {', '.join(tasks)}")
        if src_party_id == job.initiator_party_id:
            with self._job_lock(job.job_id):
                self.engine.clear_tasks(job.dag_id, job.job_id, tuple(cmd.task_names))
                self._reset_tasks(job, tuple(cmd.task_names))
            return Ack(True)
        if src_party_id == self.party_id:
            try:
                reply = self.control.ask(job.initiator_party_id, cmd, 30.0)
            except FateAirflowError as exc:
                return Ack(False, f"initiator {job.initiator_party_id} unreachable: {exc}")
            return reply
        return Ack(False, f"party {src_party_id} may not rerun job {cmd.job_id} here")

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

    def _begin_rerun(self, job: JobRecord, tasks: tuple[str, ...]) -> None:
        """At the initiator: reopen the job and have every party clear ``tasks``."""
        self._reset_tasks(job, tasks)
        now = self._clock()
        plan = JobPlan.from_dict(job.plan)
        for party in plan.party_ids:
            if party != self.party_id:
                self._last_seen[party] = now
                self._background(party, RerunJob(job.job_id, tasks))
        log.info("job %s: rerun of %s", job.job_id, ", ".join(tasks))

    def _local_rerun_requested(self, job: JobRecord) -> bool:
        """Did the user clear tasks of this ended job in the initiator's own Airflow? Then rerun them."""
        if job.job_id in self._unfailed_runs:
            return False
        try:
            run_state = self.engine.run_state(job.dag_id, job.job_id)
            if run_state not in ("queued", "running"):
                return False
            states = self.engine.task_states(job.dag_id, job.job_id)
        except Exception:
            log.exception("job %s: cannot read the local DAG run", job.job_id)
            return False
        plan = JobPlan.from_dict(job.plan)
        tasks = tuple(t.name for t in plan.tasks if states.get(t.name) not in FINISHED_TI_STATES)
        if not tasks:
            return False
        self._begin_rerun(job, tasks)
        return True

    # ------------------------------------------------------------------ logs
    def fetch_task_log(self, src_party_id: str, cmd: FetchTaskLog) -> TaskLog:
        """This party's log of a task, for itself or another party of the same job.

        A party outside the job learns nothing, not even whether the job exists (the same answer
        as for an unknown job). The last ``max_lines`` lines are sent; ``truncated`` says so.
        """
        unknown = TaskLog(self.party_id, False, message=f"party {self.party_id} has no job {cmd.job_id}")
        job = self.store.get_job(cmd.job_id)
        if job is None:
            return unknown
        plan = JobPlan.from_dict(job.plan)
        if src_party_id != self.party_id and src_party_id not in plan.party_ids:
            log.warning(
                "job %s: party %s asked for a log but is not a party of the job", job.job_id, src_party_id
            )
            return unknown
        if cmd.task_name not in {t.name for t in plan.tasks}:
            return TaskLog(self.party_id, False, message=f"job {cmd.job_id} has no task {cmd.task_name}")
        try:
            lines = self.engine.task_log(job.dag_id, job.job_id, cmd.task_name)
        except Exception as exc:  # an unreachable Airflow is an answer too, not a failed call
            return TaskLog(
                self.party_id, False, message=f"party {self.party_id} cannot read its Airflow: {exc}"
            )
        if lines is None:
            return TaskLog(
                self.party_id, False, message=f"task {cmd.task_name} has not run at party {self.party_id}"
            )
        keep = max(1, cmd.max_lines)
        return TaskLog(self.party_id, True, tuple(lines[-keep:]), truncated=len(lines) > keep)

    # ------------------------------------------------------------------ query
    def query_job(self, src_party_id: str, cmd: QueryJob) -> JobView:
        """This party's view of a job; the plan is included for the party's own workers."""
        job = self.store.get_job(cmd.job_id)
        if job is None:
            return JobView(cmd.job_id, found=False)
        if src_party_id != self.party_id:
            plan_parties = JobPlan.from_dict(job.plan).party_ids
            if src_party_id not in plan_parties:
                return JobView(cmd.job_id, found=False)
        plan = JobPlan.from_dict(job.plan)
        tasks_by_name = {t.task_name: t for t in self.store.list_tasks(job.job_id)}
        rows: dict[tuple[str, str], PartyTaskRecord] = {
            (r.task_name, r.party_id): r for r in self.store.list_party_tasks(job.job_id)
        }
        views: list[TaskView] = []
        for task in plan.tasks:
            rec = tasks_by_name.get(task.name)
            runners = task.party_ids
            cells: list[PartyTaskView] = []
            for party in plan.party_ids:
                roles = tuple(pt.party.role for pt in task.parties if pt.party.party_id == party)
                if party not in runners:
                    cells.append(PartyTaskView(party, plan.roles_of(party), st.PASS))
                    continue
                row = rows.get((task.name, party))
                if row is None or (rec is not None and row.version != rec.version and rec.version >= 0):
                    status = st.WAITING if row is None or row.status != st.READY else st.READY
                    cells.append(PartyTaskView(party, roles, status))
                else:
                    cells.append(PartyTaskView(party, roles, row.status, row.error, row.detail))
            views.append(
                TaskView(
                    task.name, rec.version if rec else -1, rec.status if rec else st.WAITING, tuple(cells)
                )
            )
        detail: dict[str, Any] = {
            "created": job.created,
            "started": job.started,
            "ended": job.ended,
            "parties": [p.to_dict() for p in plan.parties],
        }
        if cmd.with_events:
            detail["events"] = [e.to_dict() for e in self.store.list_events(job.job_id, limit=2000)]
        if src_party_id == self.party_id:
            detail["plan"] = job.plan
            detail["conf"] = job.conf
        return JobView(
            job_id=job.job_id,
            found=True,
            dag_id=job.dag_id,
            status=job.status,
            reason=job.reason,
            initiator_party_id=job.initiator_party_id,
            tasks=tuple(views),
            detail=detail,
        )

    # ------------------------------------------------------------------ supervisor
    def _supervise_loop(self) -> None:
        while not self._stop.wait(self.policy.supervise_interval):
            try:
                self.supervise_once()
            except Exception:  # the supervisor must survive anything one pass hits
                log.exception("supervisor pass failed")

    def supervise_once(self) -> None:
        """One pass: retry failing local runs, notice UI stops, enforce timeouts and liveness."""
        now = self._clock()
        if not self._resumed:
            self._resumed = True
            self._resume_unfinished()
        for job_id in list(self._unfailed_runs):
            job = self.store.get_job(job_id)
            if job is not None:
                self._fail_local_run(job)
        self._recheck_failed_runs(now)
        self._resend_reports()
        running = self.store.list_jobs(statuses=(st.RUNNING,))
        ping_due = now - self._last_ping >= self.policy.ping_interval
        if ping_due:
            self._last_ping = now
        peers_needed: set[str] = set()
        for job in running:
            plan = JobPlan.from_dict(job.plan)
            self._check_local_run(job, plan)
            if job.is_initiator:
                self._check_timeouts(job, plan, now)
                peers_needed.update(p for p in plan.party_ids if p != self.party_id)
            else:
                peers_needed.add(job.initiator_party_id)
        if ping_due and peers_needed:
            self._ping(peers_needed, now)
        for job in self.store.list_jobs(statuses=(st.RUNNING,)):
            plan = JobPlan.from_dict(job.plan)
            watch = (
                [p for p in plan.party_ids if p != self.party_id]
                if job.is_initiator
                else [job.initiator_party_id]
            )
            for party in watch:
                seen = self._last_seen.setdefault(party, job.started or now)
                silent = now - max(seen, job.started or now)
                if silent > self.policy.party_timeout:
                    who = "initiator" if party == job.initiator_party_id else "party"
                    reason = (
                        f"{who} {party} ({'/'.join(plan.roles_of(party))}) is unreachable: no answer for "
                        f"{silent:.0f} s (limit {self.policy.party_timeout:.0f} s)"
                    )
                    self._end_job(job, st.FAILED, reason)
                    if not job.is_initiator:
                        # The end travels both ways: should the initiator come back, it must not wait
                        # for this party's tasks.
                        self._background(
                            job.initiator_party_id,
                            StopJob(job.job_id, "failed", f"at party {self.party_id}: {reason}"),
                        )
                    break

    def _resume_unfinished(self) -> None:
        """Take up what a previous process of this service left halfway (first supervisor pass).

        An initiator's job saved as waiting before its peers were all contacted is submitted again
        (peers that have it answer "already exists"), which ends with the job running or failed at
        every party; a job accepted from an initiator whose local DAG run was never started gets it.
        """
        for job in self.store.list_jobs(statuses=(st.WAITING,)):
            if not job.is_initiator:
                continue
            with self._job_lock(job.job_id):
                if job.job_id in self._submitting:
                    continue
                self._submitting.add(job.job_id)
            self._event(
                job.job_id, "resumed", party=self.party_id, message="submission taken up after a restart"
            )
            self._track(self._pool.submit(self._resume_submission, job))
        for job in self.store.list_jobs(statuses=(st.RUNNING,)):
            if job.is_initiator or job.job_id in self._accepting:
                continue
            try:
                if self.engine.run_state(job.dag_id, job.job_id) is not None:
                    continue
                self.engine.materialize_job(job.dag_id, job.plan)
                self.engine.create_run(job.dag_id, job.job_id, job.conf)
            except Exception as exc:  # Airflow is away: the initiator's liveness rules decide
                log.warning("job %s: could not start the local DAG run after a restart: %s", job.job_id, exc)
                continue
            self._event(
                job.job_id, "resumed", party=self.party_id, message="local DAG run started after a restart"
            )

    def _resume_submission(self, job: JobRecord) -> None:
        try:
            reply = self._create_at_peers(job.job_id, job.dag_id, JobPlan.from_dict(job.plan), job.conf)
            log.info(
                "job %s: submission resumed: %s", job.job_id, "running" if reply.accepted else reply.reason
            )
        except Exception:
            log.exception("job %s: resuming the submission failed", job.job_id)
        finally:
            self._submitting.discard(job.job_id)

    def _resend_reports(self) -> None:
        """Deliver the task reports the initiator has not acknowledged yet, in the background.

        One batch per destination at a time, off the supervisor thread: a dead initiator costs its
        own reports a call timeout, never the supervision of other jobs.
        """
        by_party: dict[str, list[PendingReport]] = {}
        for report in self.store.pending_reports():
            by_party.setdefault(report.dst_party_id, []).append(report)
        for party, reports in by_party.items():
            with self._job_locks_guard:
                if party in self._resending:
                    continue
                self._resending.add(party)
            try:
                self._track(self._pool.submit(self._resend_to, party, reports))
            except RuntimeError:  # the pool is shut down: the service is stopping
                with self._job_locks_guard:
                    self._resending.discard(party)

    def _resend_to(self, party: str, reports: list[PendingReport]) -> None:
        try:
            for report in reports:  # oldest first
                cmd = ReportTaskStatus(
                    report.job_id, report.task_name, report.version, report.party_id,
                    report.status, report.error, report.detail,
                )  # fmt: skip
                try:
                    reply = self.control.ask(party, cmd, 15.0)
                except FateAirflowError as exc:
                    report.attempts += 1
                    report.last_error = str(exc)
                    self.store.keep_report(report)
                    return  # the party is away: the next pass tries again, oldest first
                # Any answer is final (an Ack, also "ignored: old version"): the initiator has seen it.
                if isinstance(reply, Ack) and not reply.ok:
                    log.warning(
                        "job %s: initiator declined a resent report: %s", report.job_id, reply.message
                    )
                self.store.drop_report(
                    report.job_id, report.task_name, report.party_id, report.version, report.status
                )
                self._event(report.job_id, "resent", party=report.party_id, task=report.task_name,
                            version=report.version, message=f"{report.status} after {report.attempts} failed tries")  # fmt: skip
        finally:
            with self._job_locks_guard:
                self._resending.discard(party)

    def _recheck_failed_runs(self, now: float) -> None:
        """Fail again a run that Airflow's scheduler marked successful right after we failed it.

        On SQLite the scheduler does not lock the run row: a pass that loaded the run before our
        PATCH committed sees the pending tasks we skipped and marks the run *success*, overwriting
        *failed*. Only ``success`` is corrected: a queued or running run of an ended job is a rerun
        the user started by clearing tasks.
        """
        for job_id, until in list(self._recheck_runs.items()):
            # Under the lock: a rerun that reopens the job cannot slip between the read and the PATCH.
            with self._job_lock(job_id):
                job = self.store.get_job(job_id)
                if now > until or job is None or job.status not in _JOB_END or job.status == st.SUCCESS:
                    self._recheck_runs.pop(job_id, None)
                    continue
                try:
                    state = self.engine.run_state(job.dag_id, job_id)
                except Exception:
                    continue
                if state == "success":
                    log.warning(
                        "job %s ended %s but Airflow marked its run successful; failing it again",
                        job_id,
                        job.status,
                    )
                    self._fail_local_run(job)

    def _ping(self, parties: Iterable[str], now: float) -> None:
        futures = {
            p: self._pool.submit(self.control.ping, p, min(5.0, self.policy.party_timeout)) for p in parties
        }
        for party, fut in futures.items():
            try:
                fut.result()
                self._last_seen[party] = now
            except Exception as exc:
                log.warning("party %s did not answer a ping: %s", party, exc)

    def _check_local_run(self, job: JobRecord, plan: JobPlan) -> None:
        """A run marked failed in this party's UI (or by Airflow itself) stops the job everywhere."""
        try:
            run_state = self.engine.run_state(job.dag_id, job.job_id)
            states = self.engine.task_states(job.dag_id, job.job_id) if run_state == "success" else {}
        except Exception:
            return
        # A run the user marked failed can come back "success": on SQLite a scheduler pass that loaded
        # the run before the PATCH committed overwrites it once the failed task is no longer pending.
        # A failed task in a successful run of a job still running is that case.
        overwritten = run_state == "success" and any(states.get(t.name) == "failed" for t in plan.tasks)
        if run_state != "failed" and not overwritten:
            self._failed_seen.pop(job.job_id, None)
            return
        # Wait one more pass: a failing task reports its error itself, which gives a better reason.
        seen = self._failed_seen.get(job.job_id, 0) + 1
        self._failed_seen[job.job_id] = seen
        if seen < 3:
            return
        try:
            states = states or self.engine.task_states(job.dag_id, job.job_id)
        except Exception:
            states = {}
        # A task that failed by itself has reported it; one Airflow failed because the run was marked
        # failed (the UI's "mark failed", a stop) was canceled.
        failed = [
            t.name
            for t in plan.tasks
            if states.get(t.name) == "failed" and self._reported_failed(job.job_id, t.name)
        ]
        status: JobStatus = "canceled"
        reason = f"DAG run {job.job_id} was marked failed at party {self.party_id}"
        if failed:
            status = "failed"
            reason = f"task {failed[0]} failed at party {self.party_id} (DAG run failed)"
        if job.is_initiator:
            self._end_job(job, status, reason)
        else:
            self.stop_job(self.party_id, StopJob(job.job_id, status, reason))

    def _check_timeouts(self, job: JobRecord, plan: JobPlan, now: float) -> None:
        job_timeout = _timeout_of(plan.job_parameters)
        if job_timeout is not None and job.started is not None and now - job.started > job_timeout:
            self._end_job(job, st.TIMEOUT, f"job exceeded its timeout of {job_timeout:.0f} s")
            return
        for rec in self.store.list_tasks(job.job_id):
            if rec.status != st.RUNNING or rec.started is None:
                continue
            try:
                timeout = _timeout_of(plan.task(rec.task_name).conf)
            except KeyError:
                continue
            if timeout is not None and now - rec.started > timeout:
                self.store.update_task(job.job_id, rec.task_name, status=st.TIMEOUT, ended=now)
                self._end_job(
                    job, st.TIMEOUT, f"task {rec.task_name} exceeded its timeout of {timeout:.0f} s"
                )
                return

    # ------------------------------------------------------------------ helpers
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


__all__ = ["PartyPolicy", "PartyService"]
