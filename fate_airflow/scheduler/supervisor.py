"""The supervisor: what no message announces, checked once a second.

A DAG run marked failed in a party's UI (or overwritten "success" by Airflow's scheduler on SQLite),
task and job timeouts, parties that stop answering, reports still to deliver, and — on its first pass
after a restart — submissions and local runs a previous process left halfway.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from fate_airflow.core.errors import FateAirflowError
from fate_airflow.dsl.plan import JobPlan
from fate_airflow.federation.api import (
    Ack,
    JobStatus,
    ReportTaskStatus,
    StopJob,
)
from fate_airflow.scheduler import state as st
from fate_airflow.scheduler._core import JOB_END, timeout_of
from fate_airflow.scheduler.coordinator import Coordinator
from fate_airflow.scheduler.store import JobRecord, PendingReport

log = logging.getLogger(__name__)


class Supervisor(Coordinator):
    """The party service's supervision loop (a thread started by :meth:`start`)."""

    def start(self) -> None:
        """Start the supervisor thread."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._supervise_loop, name="fate-supervisor", daemon=True)
            self._thread.start()

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
        ended = self._ended_runs(running)
        for job in running:
            plan = JobPlan.from_dict(job.plan)
            if ended is not None:
                self._check_local_run(job, plan, ended.get((job.dag_id, job.job_id), "running"))
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
                self._start_local_run(job.dag_id, job.job_id, job.plan, job.conf, self.policy.create_timeout)
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
                if now > until or job is None or job.status not in JOB_END or job.status == st.SUCCESS:
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

    def _ended_runs(self, running: list[JobRecord]) -> dict[tuple[str, str], str] | None:
        """The local runs of ``running`` jobs that ended, in one question to Airflow (None: no answer)."""
        if not running:
            return {}
        # Margin for a run triggered (and ended, e.g. marked failed) shortly before its job started.
        since = min(job.started or job.created for job in running) - 300.0
        try:
            return self.engine.ended_runs({job.dag_id for job in running}, since)
        except Exception as exc:
            log.warning("cannot read the local DAG runs: %s", exc)
            return None

    def _check_local_run(self, job: JobRecord, plan: JobPlan, run_state: str) -> None:
        """A run marked failed in this party's UI (or by Airflow itself) stops the job everywhere.

        :param run_state: the local run's state (``running`` for any run that has not ended).
        """
        try:
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
        job_timeout = timeout_of(plan.job_parameters)
        if job_timeout is not None and job.started is not None and now - job.started > job_timeout:
            self._end_job(job, st.TIMEOUT, f"job exceeded its timeout of {job_timeout:.0f} s")
            return
        for rec in self.store.list_tasks(job.job_id):
            if rec.status != st.RUNNING or rec.started is None:
                continue
            try:
                timeout = timeout_of(plan.task(rec.task_name).conf)
            except KeyError:
                continue
            if timeout is not None and now - rec.started > timeout:
                self.store.update_task(job.job_id, rec.task_name, status=st.TIMEOUT, ended=now)
                self._end_job(
                    job, st.TIMEOUT, f"task {rec.task_name} exceeded its timeout of {timeout:.0f} s"
                )
                return
