"""FederatedComponentOperator: one FATE component = one Airflow task at every party.

What one task instance does at a party:

1. Make sure the job exists. At the initiator the first task to run submits it: it plans the job
   file with the trigger-time conf and asks its party service to create the job at every party
   (the plan travels with the request). Elsewhere the job was created by the initiator.
2. If the component does not run at this party (``need_run: false``, task ``parties``), record
   ``pass`` and finish.
3. Prepare: tell the initiator this party is ready and wait — briefly in the worker, then deferred
   to the triggerer so the wait holds no worker slot — until every party is ready and the upstream
   succeeded everywhere. The initiator answers with the task version all parties use.
4. Run every role this party plays in the component, watching the job so a failure or a stop
   elsewhere aborts the run within a second or two; report the outcome to the initiator; record
   status, version, metrics and output references in XCom and the task state store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, overload

from airflow.sdk import BaseOperator, conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from fate_airflow.core.errors import DslError, FateAirflowError, FederationError
from fate_airflow.core.providers import party_providers
from fate_airflow.dsl import load_job
from fate_airflow.dsl.plan import JobPlan
from fate_airflow.federation.api import (
    Ack,
    CreateJob,
    CreateJobReply,
    JobView,
    PrepareTask,
    QueryJob,
    ReportTaskStatus,
    TaskPartyStatus,
    TaskStartDecision,
)
from fate_airflow.provider.hooks.federation import FederationHook
from fate_airflow.provider.triggers.task_start import TaskStartTrigger
from fate_airflow.scheduler.runner import build_requests, run_task_at_party

if TYPE_CHECKING:
    from airflow.sdk import Context

    from fate_airflow.federation.grpc.client import GrpcControlClient

log = logging.getLogger(__name__)

_ENDED_BADLY = frozenset({"failed", "canceled", "timeout"})
#: Seconds the party service may hold a start-decision ask (long poll; see PrepareTask).
PREPARE_HOLD = 10.0
#: Seconds the party service may hold a running task's job-status watch (long poll; see QueryJob).
WATCH_HOLD = 10.0


def party_setting(key: str, default: str | None = None) -> str:
    """A ``[fate]`` setting of this party's Airflow (``AIRFLOW__FATE__<KEY>``)."""
    value = conf.get("fate", key, fallback=default)
    if value is None:
        raise AirflowFailException(f"this Airflow has no [fate] {key} setting; run `fate-airflow party init`")
    return str(value)


class FederatedComponentOperator(BaseOperator):
    """Run this party's share of one federated component (see the module docstring).

    :param component: the module / component_ref as written in the job file.
    :param implementation: catalogue id ``name@version``.
    :param dsl_path: the job file (1.x dsl or 2.x dag); None for jobs received from an initiator.
    :param conf_path: the 1.x runtime conf, if any.
    :param fate_conn_id: connection to this party's gateway.
    :param sync_wait: seconds to wait for the start decision in the worker before deferring; short
        waits are common (the other parties are usually seconds apart) and a deferral costs ~3 s.
    :param poll_interval: seconds between start-decision polls.
    :param resume_delay: the earliest a deferred task resumes, in seconds after deferring.
    """

    template_fields = ()
    ui_color = "#d5e8f7"

    def __init__(
        self,
        *,
        component: str,
        implementation: str,
        dsl_path: str | None = None,
        conf_path: str | None = None,
        fate_conn_id: str = FederationHook.default_conn_name,
        sync_wait: float = 10.0,
        poll_interval: float = 0.3,
        resume_delay: float = 4.0,
        service_patience: float = 120.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.component = component
        self.implementation = implementation
        self.dsl_path = dsl_path
        self.conf_path = conf_path
        self.fate_conn_id = fate_conn_id
        self.sync_wait = sync_wait
        self.poll_interval = poll_interval
        self.resume_delay = resume_delay
        self.service_patience = service_patience

    # ------------------------------------------------------------------ helpers
    @property
    def party_id(self) -> str:
        """This party's id (``[fate] party_id``)."""
        return party_setting("party_id")

    def _hook(self) -> FederationHook:
        return FederationHook(self.fate_conn_id)

    def _client(self) -> GrpcControlClient:
        return self._hook().control_client()

    @overload
    def _ask(self, client: GrpcControlClient, cmd: CreateJob, timeout: float = ...) -> CreateJobReply: ...
    @overload
    def _ask(
        self, client: GrpcControlClient, cmd: PrepareTask, timeout: float = ...
    ) -> TaskStartDecision: ...
    @overload
    def _ask(self, client: GrpcControlClient, cmd: QueryJob, timeout: float = ...) -> JobView: ...
    @overload
    def _ask(self, client: GrpcControlClient, cmd: ReportTaskStatus, timeout: float = ...) -> Ack: ...
    def _ask(self, client: GrpcControlClient, cmd: Any, timeout: float = 30.0) -> Any:
        """Ask this party's own service, waiting out its restart for up to ``service_patience`` s.

        Every command sent here is idempotent; a party service that is restarting (killed, upgraded)
        must not fail the tasks running meanwhile, nor lose their reports.
        """
        deadline = time.monotonic() + self.service_patience
        delay = 0.5
        while True:
            try:
                return client.ask(self.party_id, cmd, timeout=timeout)
            except FederationError as exc:
                if time.monotonic() + delay > deadline:
                    raise
                self.log.warning("party service unreachable (%s); asking again in %.1f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _job_view(self, client: GrpcControlClient, job_id: str) -> JobView:
        return self._ask(client, QueryJob(job_id))

    def _ensure_job(self, context: Context, client: GrpcControlClient) -> tuple[JobPlan, JobView]:
        job_id = context["run_id"]
        view = self._job_view(client, job_id)
        if not view.found:
            if self.dsl_path is None:
                raise AirflowFailException(
                    f"job {job_id} was not created by its initiator; this DAG was received from another "
                    "party, so trigger the job at its initiator"
                )
            dag_run = context["dag_run"]
            overrides: Mapping[str, Any] = dict(dag_run.conf or {})
            try:
                # The same providers as the DAG factory's plan, so the run plans as the DAG was built.
                providers = party_providers(party_setting("provider_dir", ""))
                plan = load_job(
                    self.dsl_path, self.conf_path, overrides=overrides or None, providers=providers
                )
            except DslError as exc:
                raise AirflowFailException("invalid job:\n" + "\n".join(exc.problems)) from None
            self._check_structure(plan, context)
            if plan.initiator.party_id != self.party_id:
                raise AirflowFailException(
                    f"party {self.party_id} is not this job's initiator ({plan.initiator.role} "
                    f"{plan.initiator.party_id}); trigger the job at the initiator"
                )
            try:
                reply = self._ask(
                    client,
                    CreateJob(job_id, self.dag_id, self.party_id, plan.to_dict(), dict(overrides)),
                    timeout=300.0,
                )
            except FateAirflowError as exc:
                # Retryable: a party service that restarts mid-submission takes the submission up
                # again, and the retry's create finds the job ("already submitted").
                raise AirflowException(
                    f"party service unreachable while submitting job {job_id}: {exc}"
                ) from None
            if not reply.accepted:
                raise AirflowFailException(reply.reason)
            self.log.info("job %s submitted to every party", job_id)
            view = self._job_view(client, job_id)
        plan_dict = view.detail.plan
        if plan_dict is None:
            raise AirflowFailException(f"party service returned no plan for job {job_id}")
        return JobPlan.from_dict(plan_dict), view

    def _already_done(self, view: JobView) -> dict[str, Any] | None:
        """This party's result for the current task version, if it already succeeded (else None)."""
        if view.status in _ENDED_BADLY:
            return None
        for task in view.tasks:
            if task.task_name != self.task_id or task.task_version < 0:
                continue
            for cell in task.parties:
                if cell.party_id == self.party_id and cell.status in ("success", "pass") and cell.detail:
                    return {
                        "status": cell.status,
                        "party_id": self.party_id,
                        "task_version": task.task_version,
                        **cell.detail,
                    }
        return None

    def _check_structure(self, plan: JobPlan, context: Context) -> None:
        """Trigger-time overrides may change parameters, never the graph the DAG was built from."""
        dag = context["dag"]
        expected = {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}
        actual = {t.name: sorted(t.upstream) for t in plan.tasks}
        if expected != actual:
            raise AirflowFailException(
                "the trigger conf changes the job's components or edges; edit the job file instead "
                f"(DAG: {expected}, with conf: {actual})"
            )

    # ------------------------------------------------------------------ Airflow entry points
    def execute(self, context: Context) -> Any:
        """Create/join the job, prepare, and start now or defer until the initiator says so."""
        client = self._client()
        try:
            plan, view = self._ensure_job(context, client)
            task = plan.task(self.task_id)
            done = self._already_done(view)
            if done is not None:
                # An Airflow retry of a share that already succeeded (e.g. after Airflow's
                # deferral/executor race, apache/airflow#71580): tasks are idempotent, so record the
                # earlier result instead of running the component again — and report it again, since
                # the first try may have died before its report reached the initiator.
                self._record(context, done)
                detail = {k: v for k, v in done.items() if k not in ("status", "party_id", "task_version")}
                self._report(
                    client, context["run_id"], int(done["task_version"]), done["status"], detail=detail
                )
                return done
            if not task.runs_at(self.party_id):
                result = {
                    "status": "pass",
                    "party_id": self.party_id,
                    "reason": "component does not run here",
                }
                self._record(context, result)
                self.log.info("%s does not run at party %s: pass", self.task_id, self.party_id)
                return result
            cmd = PrepareTask(context["run_id"], self.task_id, self.party_id)
            deadline = time.monotonic() + self.sync_wait
            while True:
                asked = time.monotonic()
                # A long poll: the service answers as soon as the job changes, within the hold.
                hold = max(0.0, min(deadline - asked, PREPARE_HOLD))
                decision = self._ask(client, replace(cmd, wait_seconds=hold), timeout=hold + 25.0)
                if decision.action == "start":
                    return self._run(context, plan, decision.task_version)
                if decision.action == "abort":
                    raise AirflowFailException(decision.reason)
                if time.monotonic() >= deadline:
                    break
                # Answered at once (no hold to spare at the service): ask again at the poll rate.
                time.sleep(max(0.0, self.poll_interval - (time.monotonic() - asked)))
            self.log.info("waiting for the initiator to release %s: %s", self.task_id, decision.reason)
            config = self._hook().client_config().to_dict()
        except FederationError as exc:
            # The party service stayed away longer than service_patience: Airflow's retry may find it.
            raise AirflowException(f"party service of {self.party_id} unreachable: {exc}") from None
        except FateAirflowError as exc:
            raise AirflowFailException(str(exc)) from None
        finally:
            client.close()
        self.defer(
            trigger=TaskStartTrigger(
                config,
                context["run_id"],
                self.task_id,
                self.party_id,
                poll_interval=max(self.poll_interval, 0.5),
                # Resuming before the scheduler has seen this worker exit trips Airflow's
                # "state mismatch" check (apache/airflow#71580); give it a few seconds.
                not_before=time.time() + self.resume_delay,
            ),
            method_name="execute_complete",
            timeout=self.execution_timeout or timedelta(days=3),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger: run on ``start``, fail with the reason otherwise."""
        event = event or {}
        if event.get("status") != "start":
            raise AirflowFailException(str(event.get("reason") or f"cannot start: {event}"))
        client = self._client()
        try:
            plan_dict = self._job_view(client, context["run_id"]).detail.plan
            if plan_dict is None:
                raise KeyError("no plan")
            plan = JobPlan.from_dict(plan_dict)
        except (FateAirflowError, KeyError) as exc:
            raise AirflowFailException(f"cannot read job {context['run_id']}: {exc}") from None
        finally:
            client.close()
        return self._run(context, plan, int(event["task_version"]))

    # ------------------------------------------------------------------ running
    def _run(self, context: Context, plan: JobPlan, version: int) -> dict[str, Any]:
        job_id = context["run_id"]
        data_dir = party_setting("data_dir")
        requests = build_requests(
            plan,
            self.task_id,
            self.party_id,
            job_id=job_id,
            task_version=version,
            data_dir=data_dir,
            provider_dir=party_setting("provider_dir", ""),
            ptp_address=party_setting("ptp_address", ""),
        )
        roles = [r.local.role for r in requests]
        self.log.info(
            "running %s (%s) version %d at party %s as %s",
            self.task_id,
            self.implementation,
            version,
            self.party_id,
            "+".join(roles),
        )
        client = self._client()
        started = time.time()
        self._report(client, job_id, version, "running", detail={"started": started})
        abort = threading.Event()
        stop_reason: list[str] = []
        finished = threading.Event()

        watcher = self._client()

        def watch() -> None:
            # A failure or stop elsewhere must end this run within seconds, not at the next get
            # timeout. The service holds each ask until the job's status changes (a long poll), so a
            # running task costs one call per WATCH_HOLD seconds, not one a second.
            known = "running"
            while not finished.is_set():
                asked = time.monotonic()
                try:
                    view = watcher.ask(
                        self.party_id,
                        QueryJob(job_id, wait_seconds=WATCH_HOLD, known_status=known),
                        timeout=WATCH_HOLD + 20.0,
                    )
                except Exception as exc:  # keep watching; the supervisor handles dead parties
                    if finished.is_set():
                        return
                    self.log.debug("job watch failed: %s", exc)
                    finished.wait(1.0)
                    continue
                if finished.is_set():
                    return
                if view.status in _ENDED_BADLY:
                    stop_reason.append(f"job {view.status}: {view.reason}")
                    abort.set()
                    return
                known = view.status or known
                # An ask answered at once (the service had no hold to spare) is repeated at 1 Hz.
                finished.wait(max(0.0, 1.0 - (time.monotonic() - asked)))

        watch_thread = threading.Thread(target=watch, name="fate-job-watch", daemon=True)
        watch_thread.start()
        try:
            outcome = run_task_at_party(requests, self._hook().federation_factory(), abort)
        finally:
            finished.set()
            watcher.close()  # cancels a held watch at once
            watch_thread.join(timeout=5)
        detail = {**outcome.detail(), "started": started, "ended": time.time()}
        if stop_reason:
            self._report(client, job_id, version, "canceled", error=stop_reason[0], detail=detail)
            client.close()
            raise AirflowFailException(f"{self.task_id} stopped at party {self.party_id}: {stop_reason[0]}")
        if not outcome.ok:
            error = outcome.error
            self._report(client, job_id, version, "failed", error=error, detail=detail)
            client.close()
            raise AirflowFailException(f"{self.task_id} failed at party {self.party_id}: {error}")
        status: TaskPartyStatus = "pass" if outcome.status == "pass" else "success"
        result = {"status": status, "party_id": self.party_id, "task_version": version, **detail}
        # Tracking first: once every party reported success the job is over, and whoever then reads
        # the job's records (a UI, a client, the next job) must find them.
        try:
            self._record(context, result)
        except Exception as exc:
            self._report(client, job_id, version, "failed", error=f"tracking failed: {exc}", detail=detail)
            client.close()
            raise
        self._report(client, job_id, version, status, detail=detail)
        client.close()
        return result

    def _report(
        self,
        client: GrpcControlClient,
        job_id: str,
        version: int,
        status: TaskPartyStatus,
        *,
        error: str = "",
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        cmd = ReportTaskStatus(
            job_id, self.task_id, version, self.party_id, status, error, dict(detail or {})
        )
        # Patient: a report lost here is lost for good (the party service keeps only what it took).
        # If the service stays away, the task fails and Airflow's retry reports or reruns it.
        ack = self._ask(client, cmd)
        if not ack.ok:
            self.log.warning("status report not accepted: %s", ack.message)

    def _record(self, context: Context, result: Mapping[str, Any]) -> None:
        """Tracking in Airflow's metadata.

        XCom ``fate`` and the task state store ``fate_status`` hold this party's status, version,
        metrics and output references; components that train a model also emit an asset event whose
        extra names the stored model(s) (the models themselves stay in the party's model store).
        """
        context["ti"].xcom_push(key="fate", value=dict(result))
        try:
            context["task_state_store"].set("fate_status", dict(result))
        except Exception as exc:  # the store is an optional 3.3 feature; XCom already has the data
            self.log.debug("task state store unavailable: %s", exc)
        models: dict[str, Any] = {
            str(role): uri
            for role, share in (result.get("roles") or {}).items()
            for uri in (share.get("outputs") or {}).values()
            if isinstance(uri, str) and uri.startswith("fate-model://")
        }
        for asset in self.outlets:
            context["outlet_events"][asset].extra = {
                "job_id": context["run_id"],
                "party_id": self.party_id,
                "task_version": result.get("task_version"),
                "status": result.get("status"),
                "models": models,
            }


__all__ = ["FederatedComponentOperator", "party_setting"]
