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

The code follows the roles: :mod:`._core` (state, one lock per job, events, ending a job),
:mod:`.participant`, :mod:`.coordinator` (the initiator), :mod:`.supervisor`, and here the command
handlers, which route each command to the role the receiving party plays in the job.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from fate_airflow.core.errors import FateAirflowError
from fate_airflow.dsl.plan import JobPlan
from fate_airflow.federation.api import (
    Ack,
    CreateJob,
    CreateJobReply,
    FetchTaskLog,
    JobDetail,
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
from fate_airflow.scheduler._core import JOB_END, PartyPolicy
from fate_airflow.scheduler.store import PartyTaskRecord, PendingReport
from fate_airflow.scheduler.supervisor import Supervisor

log = logging.getLogger(__name__)


class PartyService(Supervisor):
    """FATE-Flow's per-party scheduler (see the module docstring).

    :param party_id: this party's id.
    :param store: the party's job store.
    :param engine: the party's workflow engine (its Airflow).
    :param policy: what the party accepts, and its timeouts.
    :param clock: wall clock (tests pass a fake).
    :param policy_source: re-read before every job creation, so a party's allowlists change without a
        restart (for example from its config file).
    """

    def create_job(self, src_party_id: str, cmd: CreateJob) -> CreateJobReply:
        """Submit a job (at its initiator) or accept one from an initiator."""
        if cmd.initiator_party_id == self.party_id:
            if src_party_id != self.party_id:
                return CreateJobReply(
                    False, f"party {src_party_id} may not submit jobs for initiator {self.party_id}"
                )
            return self._submit(cmd)
        return self._accept(src_party_id, cmd)

    def prepare_task(self, src_party_id: str, cmd: PrepareTask) -> TaskStartDecision:
        """Record readiness and decide whether the task may start (see the module docstring)."""
        job = self.store.get_job(cmd.job_id)
        if job is None:
            return TaskStartDecision("abort", reason=f"party {self.party_id} does not know job {cmd.job_id}")
        if not job.is_initiator:
            if src_party_id != self.party_id:
                return TaskStartDecision("abort", reason=f"party {self.party_id} is not the initiator")
            if job.status in JOB_END and job.status != st.SUCCESS:
                return TaskStartDecision("abort", reason=job.reason or f"job {job.status}")
            # The initiator holds the long poll; this party holds its caller's call meanwhile.
            with self._hold(cmd.wait_seconds) as hold:
                try:
                    reply = self.control.ask(
                        job.initiator_party_id, replace(cmd, wait_seconds=hold), 15.0 + hold
                    )
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
        with self._hold(cmd.wait_seconds) as hold:
            deadline = time.monotonic() + hold
            while True:
                seen = self.changes.seq(cmd.job_id)
                with self._job_lock(cmd.job_id):
                    decision, clear = self._prepare_at_initiator(cmd)
                if clear:
                    # Outside the lock: these are Airflow and peer calls.
                    self._clear_for_restart(cmd.job_id, cmd.task_name, clear)
                remaining = deadline - time.monotonic()
                if decision.action != "wait" or remaining <= 0 or self._stop.is_set():
                    return decision
                # Decided again as soon as the job changes (a party prepared, an upstream task
                # ended, a queued slot freed), instead of at the caller's next poll.
                self.changes.wait(cmd.job_id, seen, remaining)

    def report_task_status(self, src_party_id: str, cmd: ReportTaskStatus) -> Ack:
        """Record a party's task status; at the initiator, aggregate and end the job when due."""
        job = self.store.get_job(cmd.job_id)
        if job is None:
            return Ack(False, f"party {self.party_id} does not know job {cmd.job_id}")
        if not job.is_initiator:
            if src_party_id != self.party_id:
                return Ack(False, f"party {self.party_id} is not the initiator of job {cmd.job_id}")
            rec = self.store.get_task(cmd.job_id, cmd.task_name)
            if rec is not None and rec.status == st.WAITING and cmd.task_version <= rec.version:
                # The late end of a share cleared for a rerun or a restart: recorded here it would
                # read as this party's result of the task, and the cleared task's next try would
                # take it for done instead of preparing the next version.
                return Ack(True, f"ignored: task {cmd.task_name} version {cmd.task_version} was reset here")
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
        return self._aggregate_report(job, cmd)

    def stop_job(self, src_party_id: str, cmd: StopJob) -> Ack:
        """Stop a job everywhere (initiator) or obey / forward a stop (other parties)."""
        job = self.store.get_job(cmd.job_id)
        if job is None:
            return Ack(False, f"party {self.party_id} does not know job {cmd.job_id}")
        if job.is_initiator:
            plan = JobPlan.from_dict(job.plan)
            if src_party_id != self.party_id and src_party_id not in plan.party_ids:
                return Ack(False, f"party {src_party_id} is not a party of job {cmd.job_id}")
            if job.status in JOB_END:
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

    def query_job(self, src_party_id: str, cmd: QueryJob) -> JobView:
        """This party's view of a job; the plan is included for the party's own workers."""
        job = self.store.get_job(cmd.job_id)
        if job is None:
            return JobView(cmd.job_id, found=False)
        if src_party_id != self.party_id:
            plan_parties = JobPlan.from_dict(job.plan).party_ids
            if src_party_id not in plan_parties:
                return JobView(cmd.job_id, found=False)
        if cmd.known_status and job.status == cmd.known_status:
            # A running task's watch: answer when the job's status changes (or the hold runs out).
            with self._hold(cmd.wait_seconds) as hold:
                deadline = time.monotonic() + hold
                while (remaining := deadline - time.monotonic()) > 0 and not self._stop.is_set():
                    seen = self.changes.seq(cmd.job_id)
                    job = self.store.get_job(cmd.job_id) or job
                    if job.status != cmd.known_status:
                        break
                    self.changes.wait(cmd.job_id, seen, remaining)
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
        own = src_party_id == self.party_id
        detail = JobDetail(
            created=job.created,
            started=job.started,
            ended=job.ended,
            parties=plan.parties,
            plan=job.plan if own else None,
            conf=job.conf if own else None,
            events=tuple(self.store.list_events(job.job_id, limit=2000) if cmd.with_events else ()),
        )
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


__all__ = ["PartyPolicy", "PartyService"]
