"""The initiator's part of the party service: the single brain of a job (FATE invariant).

It creates the job at every party, lets a task start only when its upstream succeeded at all parties
and every party is ready (one agreed task version), restarts a task as a new version everywhere when a
party's try died mid-run, aggregates party statuses with FATE's rules, and begins reruns.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

from fate_airflow.core.errors import FateAirflowError
from fate_airflow.dsl.plan import JobPlan, TaskPlan
from fate_airflow.federation.api import (
    Ack,
    CreateJob,
    CreateJobReply,
    PrepareTask,
    ReportTaskStatus,
    RerunJob,
    StopJob,
    TaskStartDecision,
)
from fate_airflow.scheduler import state as st
from fate_airflow.scheduler._core import JOB_END
from fate_airflow.scheduler.engine import FINISHED_TI_STATES
from fate_airflow.scheduler.participant import Participant
from fate_airflow.scheduler.store import JobRecord, PartyTaskRecord

log = logging.getLogger(__name__)


def plan_width(plan: JobPlan) -> int:
    """How many of the plan's tasks may run at once at one party, at most (its widest level)."""
    level: dict[str, int] = {}
    for task in plan.tasks:  # topological order
        level[task.name] = 1 + max((level[u] for u in task.upstream), default=-1)
    return max(Counter(level.values()).values(), default=1)


class Coordinator(Participant):
    """What the initiator's service does for its jobs."""

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
                if existing.status in JOB_END - {st.SUCCESS} and existing.started is None:
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

    def _prepare_at_initiator(self, cmd: PrepareTask) -> tuple[TaskStartDecision, tuple[str, ...]]:
        """The initiator's answer to ``cmd`` and the parties whose share to clear (under the job's lock)."""
        job = self.store.get_job(cmd.job_id)
        assert job is not None
        if job.status in JOB_END:
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
        queued = self._admission_wait(job, plan)
        if queued:
            return TaskStartDecision("wait", reason=queued), ()
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

    def _admission_wait(self, job: JobRecord, plan: JobPlan) -> str:
        """Why ``job`` may not start its first task yet ("" when it may), as FATE-Flow's job queue.

        A running component holds an executor slot while it waits on its peers. If the parties run
        more components at once than they have slots, each party's slots fill with different jobs'
        components, every one waiting for a peer that waits for a slot: a deadlock across parties.
        So a job starts only while the jobs started by this initiator, each counted at its widest
        (components that may run at once at one party), fit ``policy.max_running_slots``; the others
        wait, queued, until one ends. A job wider than the whole budget starts alone.
        """
        capacity = self.policy.max_running_slots
        if capacity is None or any(t.version >= 0 for t in self.store.list_tasks(job.job_id)):
            return ""
        with self._admission:
            used = 0
            for other in self.store.list_jobs(statuses=(st.RUNNING,)):
                if other.job_id == job.job_id or not other.is_initiator:
                    continue
                if any(t.version >= 0 for t in self.store.list_tasks(other.job_id)):
                    used += plan_width(JobPlan.from_dict(other.plan))
            width = plan_width(plan)
            if used == 0 or used + width <= capacity:
                return ""
        return (
            f"queued: the jobs running now use {used} of {capacity} task slots and this one needs "
            f"{width} (FATE-Flow's job queue; max_running_slots)"
        )

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

    def _aggregate_report(self, job: JobRecord, cmd: ReportTaskStatus) -> Ack:
        """Record a party's report at the initiator; end the task and the job when the statuses say so."""
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
