"""The participant's part of the party service: accept a job from its initiator, start its DAG run.

A non-initiator checks what the initiator may ask of it (allowed initiators, readable tables,
installed providers) before anything is written, starts its local DAG run with the job's run id, and
takes the initiator's end of a job as its own when its own stop meets an ended job.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Mapping
from typing import Any

from fate_airflow.core.errors import FateAirflowError
from fate_airflow.dsl.plan import JobPlan
from fate_airflow.federation.api import (
    CreateJob,
    CreateJobReply,
    QueryJob,
    StopJob,
)
from fate_airflow.scheduler import state as st
from fate_airflow.scheduler._core import JOB_END, ServiceCore, tables_read
from fate_airflow.scheduler.store import JobRecord

log = logging.getLogger(__name__)


class Participant(ServiceCore):
    """What a party does for jobs another party initiated."""

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
            for namespace, name in sorted(tables_read(task, me)):
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
        self._last_seen[src] = self._clock()
        try:
            self._start_local_run(
                cmd.dag_id, cmd.job_id, plan.to_dict(), cmd.conf, self.policy.create_timeout / 4
            )
        except Exception as exc:
            # Airflow is slow or away: the job is accepted and its run started in the background
            # rather than refused, which under load would fail jobs a busy api-server only delays.
            log.warning(
                "job %s: local DAG run not started yet (%s); retrying in the background", cmd.job_id, exc
            )
            self._event(cmd.job_id, "delayed", party=me, message=f"DAG run not started yet: {exc}")
            self._track(self._pool.submit(self._start_in_background, src, cmd, plan.to_dict()))
            return CreateJobReply(True, "accepted; the local DAG run is being started")
        self._accepting.discard(cmd.job_id)
        log.info("job %s accepted from initiator %s; DAG run started", cmd.job_id, src)
        return CreateJobReply(True)

    def _start_in_background(self, src: str, cmd: CreateJob, plan: Mapping[str, Any]) -> None:
        """Keep starting the local run; if it never starts, end the job here and at the initiator."""
        try:
            self._start_local_run(cmd.dag_id, cmd.job_id, plan, cmd.conf, 5 * self.policy.create_timeout)
        except Exception as exc:
            job = self.store.get_job(cmd.job_id)
            reason = f"party {self.party_id} could not start DAG {cmd.dag_id}: {exc}"
            log.error("job %s: %s", cmd.job_id, reason)
            if job is not None:
                self._end_job(job, st.FAILED, reason)
                self._background(src, StopJob(cmd.job_id, st.FAILED, reason))
        finally:
            self._accepting.discard(cmd.job_id)

    def _start_local_run(
        self, dag_id: str, run_id: str, plan: Mapping[str, Any], conf: Mapping[str, Any], patience: float
    ) -> None:
        """Make the DAG and start the job's run, patiently: a busy Airflow is no reason to refuse.

        Both steps are idempotent. One at a time (twenty jobs arriving together would otherwise
        pile twenty requests onto one api-server), retried on failure for up to ``patience`` seconds.
        """
        deadline = time.monotonic() + patience
        delay = 1.0
        while True:
            try:
                with self._engine_slots:
                    self.engine.materialize_job(dag_id, plan)
                    self.engine.create_run(dag_id, run_id, dict(conf))
                return
            except Exception as exc:
                if time.monotonic() + delay > deadline or self._stop.is_set():
                    raise
                log.warning(
                    "job %s: starting the local DAG run failed (%s); again in %.0f s", run_id, exc, delay
                )
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

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
        if view.found and view.status in JOB_END:
            reason = view.reason or f"ended at initiator {job.initiator_party_id}"
            self._end_job(job, st.job_status(view.status), reason)
