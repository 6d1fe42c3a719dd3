"""PartyService: FATE-Flow's cross-party coordination, on the in-memory federation and engine."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fate_airflow.core.errors import FederationError
from fate_airflow.core.types import Party
from fate_airflow.dsl.plan import JobPlan, PartyTask, TaskPlan
from fate_airflow.federation.api import (
    Ack,
    CreateJob,
    FetchTaskLog,
    JobView,
    PrepareTask,
    QueryJob,
    ReportTaskStatus,
    RerunJob,
    StopJob,
    TaskLog,
)
from fate_airflow.federation.inmemory import InMemoryControlNetwork
from fate_airflow.scheduler.engine import InMemoryEngine
from fate_airflow.scheduler.service import PartyPolicy, PartyService
from fate_airflow.scheduler.store import JobRecord, JobStore, PendingReport

GUEST, HOST = "9999", "10000"
JOB = "manual__2026-11-27T10:00:00+00:00"
DAG = "hetero_lr_normal"


def make_plan(*, task_timeout: float | None = None, job_timeout: float | None = None) -> JobPlan:
    g, h, a = Party("guest", GUEST), Party("host", HOST), Party("arbiter", HOST)
    conf = {"timeout": task_timeout} if task_timeout else {}
    return JobPlan(
        format="fate-1.x-dsl-v2",
        stage="train",
        initiator=g,
        parties=(g, h, a),
        job_parameters={"timeout": job_timeout} if job_timeout else {},
        tasks=(
            TaskPlan(
                "reader_0",
                "Reader",
                "reader@1.0.0",
                (),
                (
                    PartyTask(g, {"table": {"namespace": "experiment", "name": "breast_hetero_guest"}}),
                    PartyTask(h, {"table": {"namespace": "experiment", "name": "breast_hetero_host"}}),
                ),
            ),
            TaskPlan(
                "lr_0",
                "HeteroLR",
                "hetero_lr@1.0.0",
                ("reader_0",),
                (PartyTask(g), PartyTask(h), PartyTask(a)),
                conf=conf,
            ),
            TaskPlan("eval_0", "Evaluation", "evaluation@1.0.0", ("lr_0",), (PartyTask(g),)),
        ),
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Federation2:
    net: InMemoryControlNetwork
    guest: PartyService
    host: PartyService
    guest_engine: InMemoryEngine
    host_engine: InMemoryEngine
    clock: Clock

    def drain(self) -> None:
        self.guest.drain()
        self.host.drain()


@pytest.fixture
def fed() -> Iterator[Federation2]:
    net = InMemoryControlNetwork()
    clock = Clock()
    engines = {GUEST: InMemoryEngine(), HOST: InMemoryEngine()}
    services = {}
    for pid, allowed in ((GUEST, None), (HOST, (GUEST,))):
        svc = PartyService(
            pid,
            JobStore(),
            engines[pid],
            PartyPolicy(allowed_initiators=allowed, readable_tables=("experiment.*",), party_timeout=10),
            clock=clock,
        )
        svc.attach_control(net.client(pid))
        net.register(pid, svc)
        services[pid] = svc
    yield Federation2(net, services[GUEST], services[HOST], engines[GUEST], engines[HOST], clock)
    # Background deliveries (with retries) must not outlive the test.
    for svc in services.values():
        svc.stop()


def submit(fed: Federation2, plan: JobPlan | None = None) -> JobPlan:
    plan = plan or make_plan()
    # The initiator's own DAG run exists before submission (the user triggered it).
    fed.guest_engine.materialize_job(DAG, plan.to_dict())
    fed.guest_engine.create_run(DAG, JOB, {})
    reply = fed.guest.create_job(GUEST, CreateJob(JOB, DAG, GUEST, plan.to_dict(), {"x": 1}))
    assert reply.accepted, reply.reason
    return plan


def run_task(
    fed: Federation2, task: str, parties: tuple[str, ...] = (GUEST, HOST), status: str = "success"
) -> int:
    """Prepare everywhere, start, then report ``status`` from every party; returns the version."""
    services = {GUEST: fed.guest, HOST: fed.host}
    decisions = [services[p].prepare_task(p, PrepareTask(JOB, task, p)) for p in parties]
    decisions = [services[p].prepare_task(p, PrepareTask(JOB, task, p)) for p in parties]
    assert all(d.action == "start" for d in decisions), decisions
    version = decisions[0].task_version
    for p in parties:
        services[p].report_task_status(p, ReportTaskStatus(JOB, task, version, p, status))  # type: ignore[arg-type]
    return version


def test_submit_creates_the_job_and_the_dag_run_at_every_party(fed: Federation2) -> None:
    submit(fed)
    host_job = fed.host.store.get_job(JOB)
    assert host_job is not None and host_job.initiator_party_id == GUEST and not host_job.is_initiator
    assert fed.host_engine.runs[(DAG, JOB)].conf == {"x": 1}
    assert [t["name"] for t in fed.host_engine.dags[DAG]["tasks"]] == ["reader_0", "lr_0", "eval_0"]
    assert fed.guest.query_job(GUEST, QueryJob(JOB)).status == "running"


def test_a_task_starts_only_when_all_its_parties_are_ready(fed: Federation2) -> None:
    submit(fed)
    first = fed.guest.prepare_task(GUEST, PrepareTask(JOB, "reader_0", GUEST))
    assert first.action == "wait" and HOST in first.reason
    host = fed.host.prepare_task(HOST, PrepareTask(JOB, "reader_0", HOST))
    again = fed.guest.prepare_task(GUEST, PrepareTask(JOB, "reader_0", GUEST))
    assert (host.action, host.task_version) == ("start", 0)
    assert (again.action, again.task_version) == ("start", 0)


def test_downstream_waits_for_upstream_success_at_all_parties(fed: Federation2) -> None:
    submit(fed)
    for p, svc in ((GUEST, fed.guest), (HOST, fed.host)):
        svc.prepare_task(p, PrepareTask(JOB, "reader_0", p))
    fed.guest.report_task_status(GUEST, ReportTaskStatus(JOB, "reader_0", 0, GUEST, "success"))
    # Host still running reader_0: lr_0 must wait even though both are ready for it.
    fed.host.prepare_task(HOST, PrepareTask(JOB, "lr_0", HOST))
    d = fed.guest.prepare_task(GUEST, PrepareTask(JOB, "lr_0", GUEST))
    assert d.action == "wait" and "reader_0" in d.reason
    fed.host.report_task_status(HOST, ReportTaskStatus(JOB, "reader_0", 0, HOST, "success"))
    assert fed.guest.prepare_task(GUEST, PrepareTask(JOB, "lr_0", GUEST)).action == "start"


def test_job_succeeds_when_every_task_succeeded_everywhere(fed: Federation2) -> None:
    submit(fed)
    run_task(fed, "reader_0")
    run_task(fed, "lr_0")
    run_task(fed, "eval_0", parties=(GUEST,))
    fed.drain()
    view = fed.guest.query_job(GUEST, QueryJob(JOB))
    assert view.status == "success"
    assert fed.host.store.get_job(JOB).status == "success"  # type: ignore[union-attr]
    eval_cells = {c.party_id: c.status for c in view.tasks[2].parties}
    assert eval_cells == {GUEST: "success", HOST: "pass"}  # evaluation does not run at the host


def test_failure_at_the_host_fails_the_job_everywhere_with_its_error(fed: Federation2) -> None:
    submit(fed)
    run_task(fed, "reader_0")
    for p, svc in ((GUEST, fed.guest), (HOST, fed.host)):
        svc.prepare_task(p, PrepareTask(JOB, "lr_0", p))
    fed.guest.prepare_task(GUEST, PrepareTask(JOB, "lr_0", GUEST))
    fed.host.report_task_status(
        HOST, ReportTaskStatus(JOB, "lr_0", 0, HOST, "failed", error="boom: bad table")
    )
    fed.drain()
    job = fed.guest.store.get_job(JOB)
    assert job is not None and job.status == "failed"
    assert job.reason == "task lr_0 failed at party 10000 (host/arbiter): boom: bad table"
    assert fed.host.store.get_job(JOB).status == "failed"  # type: ignore[union-attr]
    assert fed.guest_engine.runs[(DAG, JOB)].state == "failed"
    assert fed.host_engine.runs[(DAG, JOB)].state == "failed"
    # The guest's running share is told to abort.
    assert fed.guest.prepare_task(GUEST, PrepareTask(JOB, "eval_0", GUEST)).action == "abort"


def test_rerun_from_the_failed_component_uses_version_plus_one_everywhere(fed: Federation2) -> None:
    submit(fed)
    run_task(fed, "reader_0")
    assert run_task(fed, "lr_0", status="failed") == 0
    fed.drain()
    ack = fed.guest.rerun_job(GUEST, RerunJob(JOB, ("lr_0",)))
    assert ack.ok, ack.message
    fed.drain()
    assert fed.host_engine.runs[(DAG, JOB)].state == "running"
    assert fed.host_engine.runs[(DAG, JOB)].tasks["lr_0"] is None
    assert fed.host_engine.runs[(DAG, JOB)].tasks["eval_0"] is None
    assert run_task(fed, "lr_0") == 1
    # eval_0 never started before the rerun: its version 0 is spent too (FATE-Flow's rule).
    assert run_task(fed, "eval_0", parties=(GUEST,)) == 1
    fed.drain()
    assert fed.guest.store.get_job(JOB).status == "success"  # type: ignore[union-attr]
    assert fed.host.store.get_job(JOB).status == "success"  # type: ignore[union-attr]


def test_clearing_a_task_in_the_initiators_ui_reruns_it_everywhere(fed: Federation2) -> None:
    submit(fed)
    run_task(fed, "reader_0")
    run_task(fed, "lr_0", status="failed")
    fed.drain()
    # The user clears lr_0 (with downstream) in the guest's Airflow UI.
    fed.guest_engine.clear_tasks(DAG, JOB, ("lr_0", "eval_0"))
    d = fed.guest.prepare_task(GUEST, PrepareTask(JOB, "lr_0", GUEST))
    assert d.action == "wait"
    fed.drain()
    assert fed.host_engine.runs[(DAG, JOB)].tasks["lr_0"] is None
    assert run_task(fed, "lr_0") == 1


def test_a_late_report_from_a_cleared_try_does_not_spoil_the_rerun(fed: Federation2) -> None:
    submit(fed)
    for p, svc in ((GUEST, fed.guest), (HOST, fed.host)):
        svc.prepare_task(p, PrepareTask(JOB, "reader_0", p))
    fed.guest.prepare_task(GUEST, PrepareTask(JOB, "reader_0", GUEST))
    fed.host.report_task_status(HOST, ReportTaskStatus(JOB, "reader_0", 0, HOST, "failed", error="no table"))
    fed.drain()
    # The user clears reader_0 while the guest's try 1 is still finishing; its new try asks to start.
    fed.guest_engine.clear_tasks(DAG, JOB, ("reader_0", "lr_0", "eval_0"))
    assert fed.guest.prepare_task(GUEST, PrepareTask(JOB, "reader_0", GUEST)).action == "wait"
    fed.drain()
    # Try 1 reports its (version 0) success only now.
    ack = fed.guest.report_task_status(GUEST, ReportTaskStatus(JOB, "reader_0", 0, GUEST, "success"))
    assert ack.ok and "reset for a rerun" in ack.message
    assert run_task(fed, "reader_0") == 1


def test_a_stale_task_at_the_initiator_is_not_mistaken_for_a_rerun(fed: Federation2) -> None:
    submit(fed)
    run_task(fed, "reader_0")
    run_task(fed, "lr_0", status="failed")
    fed.drain()
    # The local run was failed by the service: a late prepare is told to abort.
    assert fed.guest_engine.runs[(DAG, JOB)].state == "failed"
    assert fed.guest.prepare_task(GUEST, PrepareTask(JOB, "eval_0", GUEST)).action == "abort"


def test_host_refuses_an_initiator_it_does_not_allow(fed: Federation2) -> None:
    fed.host.policy = PartyPolicy(allowed_initiators=("8888",))
    plan = make_plan()
    fed.guest_engine.materialize_job(DAG, plan.to_dict())
    reply = fed.guest.create_job(GUEST, CreateJob(JOB, DAG, GUEST, plan.to_dict()))
    assert not reply.accepted
    assert reply.reason == (
        "job submission failed: party 10000 refused: party 10000 does not accept jobs from initiator 9999 "
        "(allowed initiators: 8888)"
    )
    assert fed.host.store.get_job(JOB) is None
    assert fed.guest.prepare_task(GUEST, PrepareTask(JOB, "reader_0", GUEST)).action == "abort"


def test_host_refuses_a_table_it_does_not_expose(fed: Federation2) -> None:
    fed.host.policy = PartyPolicy(readable_tables=("public.*",))
    plan = make_plan()
    reply = fed.guest.create_job(GUEST, CreateJob(JOB, DAG, GUEST, plan.to_dict()))
    assert not reply.accepted
    assert "job may not read table experiment.breast_hetero_host at party 10000" in reply.reason


def test_host_refuses_a_job_needing_a_provider_it_has_not_installed(fed: Federation2) -> None:
    plan = make_plan()
    sbt = dataclasses.replace(plan.tasks[1], implementation="hetero_secureboost@1.0.0", provider="fate:2.2.0")
    plan = dataclasses.replace(plan, tasks=(plan.tasks[0], sbt, plan.tasks[2]))
    fed.host.policy = PartyPolicy(providers=("native",))
    reply = fed.guest.create_job(GUEST, CreateJob(JOB, DAG, GUEST, plan.to_dict()))
    assert not reply.accepted
    assert (
        "party 10000 does not have provider fate:2.2.0 (task lr_0); install it there with "
        "`fate-airflow provider install fate==2.2.0`"
    ) in reply.reason
    assert fed.host.store.get_job(JOB) is None
    # With the provider installed the same plan is accepted (as a new job: the first one failed).
    fed.host.policy = PartyPolicy(providers=("native", "fate:2.2.0"))
    assert fed.guest.create_job(GUEST, CreateJob(JOB + "-2", DAG, GUEST, plan.to_dict())).accepted


def test_unreachable_party_fails_submission_naming_it(fed: Federation2) -> None:
    fed.net.down.add(HOST)
    plan = make_plan()
    reply = fed.guest.create_job(GUEST, CreateJob(JOB, DAG, GUEST, plan.to_dict()))
    assert not reply.accepted and "party 10000 could not be reached" in reply.reason


def test_stop_requested_at_a_host_stops_the_job_everywhere(fed: Federation2) -> None:
    submit(fed)
    ack = fed.host.stop_job(HOST, StopJob(JOB, "canceled", "user pressed stop"))
    assert ack.ok
    fed.drain()
    assert fed.guest.store.get_job(JOB).status == "canceled"  # type: ignore[union-attr]
    assert fed.host.store.get_job(JOB).status == "canceled"  # type: ignore[union-attr]
    assert fed.host_engine.runs[(DAG, JOB)].state == "failed"


def test_a_run_airflow_marks_successful_after_the_job_failed_is_failed_again(fed: Federation2) -> None:
    submit(fed)
    run_task(fed, "reader_0")
    run_task(fed, "lr_0", status="failed")
    fed.drain()
    assert fed.guest_engine.runs[(DAG, JOB)].state == "failed"
    # Airflow's scheduler, racing our PATCH on SQLite, sees the skipped leaves and writes success.
    fed.guest_engine.runs[(DAG, JOB)].state = "success"
    fed.clock.now += 1
    fed.guest.supervise_once()
    assert fed.guest_engine.runs[(DAG, JOB)].state == "failed"
    assert fed.guest.store.get_job(JOB).status == "failed"  # type: ignore[union-attr]


def test_a_cleared_run_of_a_failed_job_is_left_running_and_checks_expire(fed: Federation2) -> None:
    submit(fed)
    run_task(fed, "reader_0")
    run_task(fed, "lr_0", status="failed")
    fed.drain()
    # The user clears tasks in the UI: a running run of an ended job is a rerun, not a race.
    fed.host_engine.runs[(DAG, JOB)].state = "running"
    fed.host.supervise_once()
    assert fed.host_engine.runs[(DAG, JOB)].state == "running"
    # Past the check window a later success (say, after a manual fix) is left alone.
    fed.clock.now += 61
    fed.host_engine.runs[(DAG, JOB)].state = "success"
    fed.host.supervise_once()
    assert fed.host_engine.runs[(DAG, JOB)].state == "success"


def test_a_run_marked_failed_in_a_ui_stops_the_job(fed: Federation2) -> None:
    submit(fed)
    fed.host_engine.runs[(DAG, JOB)].state = "failed"
    for _ in range(3):
        fed.host.supervise_once()
    fed.drain()
    job = fed.guest.store.get_job(JOB)
    assert job is not None and job.status == "canceled"
    assert job.reason == f"DAG run {JOB} was marked failed at party 10000"
    assert fed.guest_engine.runs[(DAG, JOB)].state == "failed"


def test_a_running_task_failed_by_marking_its_run_failed_is_a_cancel_not_a_task_failure(
    fed: Federation2,
) -> None:
    # Airflow's "mark failed" on a run fails its running task instance too; the task never
    # reported a failure of its own, so the job was canceled from the UI.
    submit(fed)
    run_task(fed, "reader_0")
    run = fed.host_engine.runs[(DAG, JOB)]
    run.state, run.tasks["lr_0"] = "failed", "failed"
    for _ in range(3):
        fed.host.supervise_once()
    fed.drain()
    job = fed.guest.store.get_job(JOB)
    assert job is not None and job.status == "canceled", job.reason


def test_an_unreachable_party_fails_the_running_job_naming_it(fed: Federation2) -> None:
    submit(fed)
    fed.net.down.add(HOST)
    fed.clock.now += 5
    fed.guest.supervise_once()
    assert fed.guest.store.get_job(JOB).status == "running"  # type: ignore[union-attr]
    fed.clock.now += 11
    fed.guest.supervise_once()
    job = fed.guest.store.get_job(JOB)
    assert job is not None and job.status == "failed"
    assert job.reason.startswith("party 10000 (host/arbiter) is unreachable: no answer for")


def test_task_timeout_ends_the_job_with_timeout(fed: Federation2) -> None:
    submit(fed, make_plan(task_timeout=30))
    run_task(fed, "reader_0")
    for p, svc in ((GUEST, fed.guest), (HOST, fed.host)):
        svc.prepare_task(p, PrepareTask(JOB, "lr_0", p))
    fed.guest.prepare_task(GUEST, PrepareTask(JOB, "lr_0", GUEST))
    fed.clock.now += 31
    fed.guest.supervise_once()
    fed.drain()
    job = fed.guest.store.get_job(JOB)
    assert job is not None and (job.status, job.reason) == (
        "timeout",
        "task lr_0 exceeded its timeout of 30 s",
    )
    assert fed.host.store.get_job(JOB).status == "timeout"  # type: ignore[union-attr]


def test_reports_of_an_old_version_are_ignored(fed: Federation2) -> None:
    submit(fed)
    run_task(fed, "reader_0")
    ack = fed.guest.report_task_status(GUEST, ReportTaskStatus(JOB, "reader_0", 7, GUEST, "failed"))
    assert ack.ok and "ignored" in ack.message
    assert fed.guest.store.get_job(JOB).status == "running"  # type: ignore[union-attr]


def test_a_party_cannot_speak_for_another(fed: Federation2) -> None:
    submit(fed)
    d = fed.guest.prepare_task(HOST, PrepareTask(JOB, "reader_0", GUEST))
    assert d.action == "abort"
    assert not fed.guest.report_task_status(HOST, ReportTaskStatus(JOB, "reader_0", 0, GUEST, "failed")).ok


def test_a_party_of_the_job_reads_another_partys_task_log_and_an_outsider_learns_nothing(
    fed: Federation2,
) -> None:
    submit(fed)
    fed.drain()
    lines = [f"[INFO] epoch {i}" for i in range(5)] + ["[ERROR] host-side failure"]
    fed.host_engine.logs[(DAG, JOB, "lr_0")] = lines
    guest = fed.net.client(GUEST)
    got = guest.call(HOST, FetchTaskLog(JOB, "lr_0", max_lines=3))
    assert got == TaskLog(HOST, True, tuple(lines[-3:]), truncated=True)
    whole = guest.call(HOST, FetchTaskLog(JOB, "lr_0"))
    assert isinstance(whole, TaskLog) and whole.lines == tuple(lines) and not whole.truncated
    assert "has no task nope" in fed.host.fetch_task_log(GUEST, FetchTaskLog(JOB, "nope")).message
    # A party outside the job gets the answer of an unknown job, not the log.
    outsider = fed.host.fetch_task_log("8888", FetchTaskLog(JOB, "lr_0"))
    assert not outsider.found and outsider.lines == ()
    unknown = fed.host.fetch_task_log(GUEST, FetchTaskLog("other-job", "lr_0"))
    assert outsider.message == unknown.message.replace("other-job", JOB)
    # Airflow unreachable: an answer naming the party, not a failed call.
    fed.host_engine.broken = ConnectionError("api-server down")
    down = guest.call(HOST, FetchTaskLog(JOB, "lr_0"))
    assert (
        isinstance(down, TaskLog) and not down.found and "party 10000 cannot read its Airflow" in down.message
    )
    fed.host_engine.broken = None


def test_the_timeline_says_who_prepared_started_and_reported_what_and_why_the_job_ended(
    fed: Federation2,
) -> None:
    submit(fed)
    run_task(fed, "reader_0")
    for p, svc in ((HOST, fed.host), (GUEST, fed.guest)):
        svc.prepare_task(p, PrepareTask(JOB, "lr_0", p))
    fed.host.report_task_status(HOST, ReportTaskStatus(JOB, "lr_0", 0, HOST, "failed", error="boom"))
    fed.drain()
    view = fed.net.client(GUEST).call(GUEST, QueryJob(JOB, with_events=True))
    assert isinstance(view, JobView)
    events = [(e.kind, e.party_id, e.task_name, e.message) for e in view.detail.events]
    assert events[:2] == [
        ("created", GUEST, "", f"DAG {DAG} (initiator)"),
        ("submitted", GUEST, "", f"accepted by {HOST}"),
    ]
    assert ("prepared", HOST, "reader_0", "") in events and ("prepared", GUEST, "reader_0", "") in events
    assert ("started", "", "reader_0", f"{GUEST}, {HOST}") in events
    assert ("reported", HOST, "lr_0", "failed: boom") in events
    assert events[-1] == ("ended", GUEST, "", "failed: task lr_0 failed at party 10000 (host/arbiter): boom")
    # In order of time, and only when asked: the status polls stay small.
    times = [e.at for e in view.detail.events]
    assert times == sorted(times)
    plain = fed.net.client(GUEST).call(GUEST, QueryJob(JOB))
    assert isinstance(plain, JobView) and plain.detail.events == ()
    # The host keeps its own side: created from the initiator, and the end the initiator sent.
    host_kinds = [e.kind for e in fed.host.store.list_events(JOB)]
    assert host_kinds[0] == "created" and host_kinds[-1] == "ended"


def test_a_failed_submission_is_cleaned_up_at_a_peer_whose_create_timed_out(fed: Federation2) -> None:
    class SlowHost:
        """Creates the job, then the reply is lost (what a timeout looks like to the initiator)."""

        def __getattr__(self, name: str) -> Any:
            return getattr(fed.host, name)

        def create_job(self, src_party_id: str, cmd: CreateJob) -> Any:
            fed.host.create_job(src_party_id, cmd)
            raise FederationError("party 10000 did not answer within 30 s")

    fed.net.register(HOST, SlowHost())  # type: ignore[arg-type]
    plan = make_plan()
    fed.guest_engine.materialize_job(DAG, plan.to_dict())
    fed.guest_engine.create_run(DAG, JOB, {})
    reply = fed.guest.create_job(GUEST, CreateJob(JOB, DAG, GUEST, plan.to_dict(), {}))
    assert not reply.accepted and "party 10000 could not be reached" in reply.reason
    fed.net.register(HOST, fed.host)
    fed.drain()
    host_job = fed.host.store.get_job(JOB)
    assert host_job is not None and host_job.status == "failed"  # not left running, waiting forever
    assert fed.host_engine.runs[(DAG, JOB)].state == "failed"


def test_a_party_that_missed_the_end_adopts_it_instead_of_forwarding_stops_forever(fed: Federation2) -> None:
    submit(fed)
    fed.drain()

    class DeafHost:
        """The host while the initiator's stop to it is lost on the way."""

        def __getattr__(self, name: str) -> Any:
            return getattr(fed.host, name)

        def stop_job(self, src_party_id: str, cmd: StopJob) -> Ack:
            return Ack(True, "lost")

    fed.net.register(HOST, DeafHost())  # type: ignore[arg-type]
    fed.guest.stop_job(GUEST, StopJob(JOB, "canceled", "stopped by the user at 9999"))
    fed.drain()
    fed.net.register(HOST, fed.host)
    assert fed.host.store.get_job(JOB).status == "running"  # type: ignore[union-attr]

    forwarded: list[StopJob] = []

    class CountingGuest:
        def __getattr__(self, name: str) -> Any:
            return getattr(fed.guest, name)

        def stop_job(self, src_party_id: str, cmd: StopJob) -> Ack:
            forwarded.append(cmd)
            return fed.guest.stop_job(src_party_id, cmd)

    fed.net.register(GUEST, CountingGuest())  # type: ignore[arg-type]
    fed.host_engine.fail_run(DAG, JOB)  # the host's run fails locally (its UI, its Airflow)
    for _ in range(6):
        fed.host.supervise_once()
    host_job = fed.host.store.get_job(JOB)
    assert host_job is not None and host_job.status == "canceled"
    assert host_job.reason == "stopped by the user at 9999"  # the initiator's end, not a new one
    assert len(forwarded) == 1  # asked once, then adopted: no stop every pass


def test_a_party_that_lost_the_initiator_tells_it_when_it_comes_back(fed: Federation2) -> None:
    submit(fed)
    fed.drain()
    fed.net.down.add(GUEST)
    fed.clock.now += 11
    fed.host.supervise_once()
    host_job = fed.host.store.get_job(JOB)
    assert host_job is not None and host_job.status == "failed"
    assert host_job.reason.startswith("initiator 9999 (guest) is unreachable")
    assert fed.guest.store.get_job(JOB).status == "running"  # type: ignore[union-attr]
    fed.net.down.discard(GUEST)  # back before the host's retries run out
    fed.host.drain()
    guest_job = fed.guest.store.get_job(JOB)
    assert guest_job is not None and guest_job.status == "failed"
    assert "at party 10000: initiator 9999 (guest) is unreachable" in guest_job.reason


def test_a_report_the_initiator_cannot_take_is_kept_and_resent_until_acknowledged(fed: Federation2) -> None:
    submit(fed)
    for p, svc in ((GUEST, fed.guest), (HOST, fed.host)):
        svc.prepare_task(p, PrepareTask(JOB, "reader_0", p))
    version = fed.guest.prepare_task(GUEST, PrepareTask(JOB, "reader_0", GUEST)).task_version
    fed.guest.report_task_status(GUEST, ReportTaskStatus(JOB, "reader_0", version, GUEST, "success"))
    fed.net.down.add(GUEST)
    # The host's share ends while the initiator is away: the operator is told the report is safe.
    for status in ("running", "success"):
        ack = fed.host.report_task_status(HOST, ReportTaskStatus(JOB, "reader_0", version, HOST, status))  # type: ignore[arg-type]
        assert ack.ok and "kept and resent" in ack.message
    assert [(r.status, r.attempts) for r in fed.host.store.pending_reports()] == [
        ("success", 1)
    ]  # the latest only
    fed.host.supervise_once()  # still away: kept, one more attempt counted
    fed.host.drain()
    assert [r.attempts for r in fed.host.store.pending_reports()] == [2]
    assert fed.guest.store.get_task(JOB, "reader_0").status == "running"  # type: ignore[union-attr]
    fed.net.down.discard(GUEST)
    fed.host.supervise_once()
    fed.host.drain()
    assert fed.host.store.pending_reports() == []
    assert fed.guest.store.get_task(JOB, "reader_0").status == "success"  # type: ignore[union-attr]


def test_kept_reports_survive_a_restart_of_the_party_service(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    JobStore(url).keep_report(
        PendingReport(JOB, "lr_0", HOST, GUEST, 2, "failed", "boom", {"k": 1}, 3, "down", 5.0)
    )
    again = JobStore(url).pending_reports()
    assert again == [PendingReport(JOB, "lr_0", HOST, GUEST, 2, "failed", "boom", {"k": 1}, 3, "down", 5.0)]


def test_a_ui_mark_failed_that_airflow_overwrote_with_success_still_stops_the_job(fed: Federation2) -> None:
    # Seen at a real SQLite-backed Airflow: the user marks the run failed while toy_1 runs; a scheduler
    # pass that had loaded the run earlier marks it successful; the task stays failed.
    submit(fed)
    run = fed.guest_engine.runs[(DAG, JOB)]
    run.state = "success"
    run.tasks.update({"reader_0": "success", "lr_0": "failed", "eval_0": "skipped"})
    for _ in range(3):
        fed.guest.supervise_once()
    fed.drain()
    job = fed.guest.store.get_job(JOB)
    assert job is not None and job.status == "canceled"
    assert job.reason == f"DAG run {JOB} was marked failed at party 9999"
    assert fed.host.store.get_job(JOB).status == "canceled"  # type: ignore[union-attr]
    assert fed.host_engine.runs[(DAG, JOB)].state == "failed"


def test_a_successful_run_of_a_party_whose_tasks_all_succeeded_is_left_alone(fed: Federation2) -> None:
    submit(fed)
    run = fed.host_engine.runs[(DAG, JOB)]
    run.state = "success"  # the host's shares are done; the job still runs at the guest
    run.tasks.update({"reader_0": "success", "lr_0": "success", "eval_0": "success"})
    for _ in range(4):
        fed.host.supervise_once()
    fed.drain()
    assert fed.guest.store.get_job(JOB).status == "running"  # type: ignore[union-attr]


def test_an_airflow_retry_of_a_crashed_share_restarts_the_task_as_a_new_version_everywhere(
    fed: Federation2,
) -> None:
    submit(fed)
    run_task(fed, "reader_0")
    services = {GUEST: fed.guest, HOST: fed.host}
    for p in (GUEST, HOST, GUEST):
        decision = services[p].prepare_task(p, PrepareTask(JOB, "lr_0", p))
    assert decision.action == "start"
    first = decision.task_version
    for p in (GUEST, HOST):
        services[p].report_task_status(p, ReportTaskStatus(JOB, "lr_0", first, p, "running"))
    fed.guest_engine.runs[(DAG, JOB)].tasks["lr_0"] = "running"
    fed.host_engine.create_run(DAG, JOB, {})  # idempotent: the host's run exists since the create
    fed.host_engine.runs[(DAG, JOB)].tasks["lr_0"] = "running"
    # The host's task process was killed -9; Airflow retries it: the retry prepares again.
    retry = fed.host.prepare_task(HOST, PrepareTask(JOB, "lr_0", HOST))
    assert retry.action == "wait" and f"restarts as version {first + 1}" in retry.reason
    fed.drain()
    # The guest's share of the spent version is cleared in its Airflow (killing it); the host's live
    # retry is left alone.
    assert fed.guest_engine.runs[(DAG, JOB)].tasks["lr_0"] is None
    assert fed.host_engine.runs[(DAG, JOB)].tasks["lr_0"] == "running"
    # The killed guest share's late report does not count.
    late = fed.guest.report_task_status(
        GUEST, ReportTaskStatus(JOB, "lr_0", first, GUEST, "failed", "killed")
    )
    assert late.ok and "ignored" in late.message
    assert fed.guest.store.get_job(JOB).status == "running"  # type: ignore[union-attr]
    # The guest's new try prepares: both start the next version.
    decisions = [services[p].prepare_task(p, PrepareTask(JOB, "lr_0", p)) for p in (GUEST, HOST)]
    assert [(d.action, d.task_version) for d in decisions] == [("start", first + 1)] * 2
    for p in (GUEST, HOST):
        services[p].report_task_status(p, ReportTaskStatus(JOB, "lr_0", first + 1, p, "success"))
    assert fed.guest.store.get_task(JOB, "lr_0").status == "success"  # type: ignore[union-attr]
    kinds = [e.kind for e in fed.guest.store.list_events(JOB)]
    assert "retry" in kinds


def test_a_share_that_prepares_again_before_it_started_is_not_a_retry(fed: Federation2) -> None:
    submit(fed)
    run_task(fed, "reader_0")
    for p, svc in ((GUEST, fed.guest), (HOST, fed.host), (GUEST, fed.guest)):
        decision = svc.prepare_task(p, PrepareTask(JOB, "lr_0", p))
    # The host was released but has not reported "running" yet: asking again is its trigger polling.
    again = fed.host.prepare_task(HOST, PrepareTask(JOB, "lr_0", HOST))
    assert (again.action, again.task_version) == ("start", decision.task_version)


class SlowEngine(InMemoryEngine):
    """An Airflow whose "fail run" hangs for one run until released."""

    def __init__(self, slow_run: str) -> None:
        super().__init__()
        self.slow_run = slow_run
        self.entered = threading.Event()
        self.release = threading.Event()

    def fail_run(self, dag_id: str, run_id: str) -> None:
        if run_id == self.slow_run:
            self.entered.set()
            self.release.wait(30)
        super().fail_run(dag_id, run_id)


def test_a_slow_airflow_call_for_one_job_does_not_stall_another_jobs_coordination() -> None:
    other = JOB + "-2"
    net = InMemoryControlNetwork()
    engine = SlowEngine(JOB)
    guest = PartyService(GUEST, JobStore(), engine, PartyPolicy(readable_tables=("experiment.*",)))
    host = PartyService(HOST, JobStore(), InMemoryEngine(), PartyPolicy(readable_tables=("experiment.*",)))
    for pid, svc in ((GUEST, guest), (HOST, host)):
        svc.attach_control(net.client(pid))
        net.register(pid, svc)
    plan = make_plan()
    try:
        for job_id in (JOB, other):
            engine.materialize_job(DAG, plan.to_dict())
            engine.create_run(DAG, job_id, {})
            assert guest.create_job(GUEST, CreateJob(job_id, DAG, GUEST, plan.to_dict(), {})).accepted
        stopper = threading.Thread(target=guest.stop_job, args=(GUEST, StopJob(JOB, "canceled", "user")))
        stopper.start()
        assert engine.entered.wait(10)  # the stop of JOB now hangs in Airflow, holding JOB's lock
        done = threading.Event()

        def prepare_other() -> None:
            guest.prepare_task(GUEST, PrepareTask(other, "reader_0", GUEST))
            host.prepare_task(HOST, PrepareTask(other, "reader_0", HOST))
            done.set()

        threading.Thread(target=prepare_other, daemon=True).start()
        # With one service-wide lock this waited for the hung call; now it does not.
        assert done.wait(10)
        assert guest.prepare_task(GUEST, PrepareTask(other, "reader_0", GUEST)).action == "start"
        engine.release.set()
        stopper.join(10)
        assert guest.store.get_job(JOB).status == "canceled"  # type: ignore[union-attr]
    finally:
        engine.release.set()
        guest.stop()
        host.stop()


def _two_parties(
    guest_store: JobStore, host_store: JobStore, host_engine: InMemoryEngine | None = None
) -> tuple[InMemoryControlNetwork, PartyService, PartyService]:
    net = InMemoryControlNetwork()
    # A short create timeout: the host retries a failing Airflow for half of it before refusing.
    policy = PartyPolicy(readable_tables=("experiment.*",), create_timeout=2.0)
    guest = PartyService(GUEST, guest_store, InMemoryEngine(), policy)
    host = PartyService(HOST, host_store, host_engine or InMemoryEngine(), policy)
    for pid, svc in ((GUEST, guest), (HOST, host)):
        svc.attach_control(net.client(pid))
        net.register(pid, svc)
    return net, guest, host


def _waiting_job(plan: JobPlan) -> JobRecord:
    # What the initiator saved before the crash: the job, waiting, and no peer contacted yet.
    return JobRecord(JOB, DAG, GUEST, True, plan.to_dict(), {}, "waiting", created=1.0)


def test_a_restarted_initiator_submits_a_job_it_left_waiting_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'guest.db'}"
    plan = make_plan()
    JobStore(url).add_job(_waiting_job(plan))
    host_engine = InMemoryEngine()
    _, guest, host = _two_parties(JobStore(url), JobStore(), host_engine)  # the restarted process
    try:
        guest.supervise_once()
        guest.drain()
        assert guest.store.get_job(JOB).status == "running"  # type: ignore[union-attr]
        assert host.store.get_job(JOB).status == "running"  # type: ignore[union-attr]
        assert host_engine.run_state(DAG, JOB) == "running"
        assert "resumed" in [e.kind for e in guest.store.list_events(JOB)]
    finally:
        guest.stop()
        host.stop()


def test_a_restarted_initiator_ends_a_waiting_job_a_peer_refuses_at_every_party(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'guest.db'}"
    plan = make_plan()
    JobStore(url).add_job(_waiting_job(plan))
    _, guest, host = _two_parties(JobStore(url), JobStore())
    host.policy = dataclasses.replace(host.policy, allowed_initiators=("12345",))  # the host refuses
    try:
        guest.supervise_once()
        guest.drain()
        job = guest.store.get_job(JOB)
        assert job is not None and job.status == "failed"
        assert "party 10000 refused: party 10000 does not accept jobs from initiator 9999" in job.reason
        assert host.store.get_job(JOB) is None  # nothing half-created is left at the host
    finally:
        guest.stop()
        host.stop()


def test_a_job_whose_run_a_party_cannot_start_is_accepted_then_failed_at_every_party() -> None:
    # A busy Airflow only delays the run; one that never comes back fails the job everywhere.
    host_engine = InMemoryEngine()
    host_engine.broken = RuntimeError("airflow down")
    _, guest, host = _two_parties(JobStore(), JobStore(), host_engine)
    try:
        reply = guest.create_job(GUEST, CreateJob(JOB, DAG, GUEST, make_plan().to_dict(), {}))
        assert reply.accepted
        host.drain(timeout=30)  # the background start gives up after 5 × the create timeout
        host.drain()  # ... and then tells the initiator
        guest.drain()
        for svc in (guest, host):
            job = svc.store.get_job(JOB)
            assert job is not None and job.status == "failed", svc.party_id
            assert "party 10000 could not start DAG hetero_lr_normal: airflow down" in job.reason
    finally:
        guest.stop()
        host.stop()


def test_a_restarted_participant_starts_the_dag_run_it_had_not_started(tmp_path: Path) -> None:
    plan = make_plan()
    host_store = JobStore()
    host_store.add_job(
        JobRecord(JOB, DAG, GUEST, False, plan.to_dict(), {"x": 1}, "running", created=1.0, started=1.0)
    )
    host_engine = InMemoryEngine()
    _, guest, host = _two_parties(JobStore(), host_store, host_engine)
    try:
        host.supervise_once()
        assert host_engine.run_state(DAG, JOB) == "running"
        assert host_engine.runs[(DAG, JOB)].conf == {"x": 1}
    finally:
        guest.stop()
        host.stop()


class FlakyEngine(InMemoryEngine):
    """An Airflow too busy to create the first ``failures`` runs (read timeouts under load)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def create_run(self, dag_id: str, run_id: str, conf: Any) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("Airflow at http://127.0.0.1:8080 unreachable: read timed out")
        super().create_run(dag_id, run_id, conf)


def test_a_busy_airflow_at_the_host_delays_a_job_instead_of_refusing_it() -> None:
    net = InMemoryControlNetwork()
    host_engine = FlakyEngine(failures=2)
    policy = PartyPolicy(readable_tables=("experiment.*",), create_timeout=20.0)
    guest = PartyService(GUEST, JobStore(), InMemoryEngine(), policy)
    host = PartyService(HOST, JobStore(), host_engine, policy)
    for pid, svc in ((GUEST, guest), (HOST, host)):
        svc.attach_control(net.client(pid))
        net.register(pid, svc)
    try:
        reply = guest.create_job(GUEST, CreateJob(JOB, DAG, GUEST, make_plan().to_dict(), {}))
        assert reply.accepted, reply.reason
        assert host_engine.failures == 0 and host_engine.run_state(DAG, JOB) == "running"
    finally:
        guest.stop()
        host.stop()


def test_jobs_beyond_the_task_slots_wait_queued_until_a_running_one_ends() -> None:
    # Two parties with one task slot each: a second job started beside the first would hold the
    # guest's slot while its peer waits for the host's, held by the first job: a deadlock.
    from fate_airflow.scheduler.coordinator import plan_width

    other = JOB + "-2"
    net = InMemoryControlNetwork()
    policy = PartyPolicy(readable_tables=("experiment.*",), max_running_slots=1)
    guest = PartyService(GUEST, JobStore(), InMemoryEngine(), policy)
    host = PartyService(HOST, JobStore(), InMemoryEngine(), policy)
    services = {GUEST: guest, HOST: host}
    for pid, svc in services.items():
        svc.attach_control(net.client(pid))
        net.register(pid, svc)
    plan = make_plan()
    assert plan_width(plan) == 1
    try:
        for job_id in (JOB, other):
            assert guest.create_job(GUEST, CreateJob(job_id, DAG, GUEST, plan.to_dict(), {})).accepted

        def prepare(job_id: str) -> list[Any]:
            return [services[p].prepare_task(p, PrepareTask(job_id, "reader_0", p)) for p in (GUEST, HOST)]

        prepare(JOB)
        assert [d.action for d in prepare(JOB)] == ["start", "start"]
        prepare(other)
        queued = prepare(other)
        assert [d.action for d in queued] == ["wait", "wait"]
        assert "queued: the jobs running now use 1 of 1 task slots" in queued[0].reason
        guest.stop_job(GUEST, StopJob(JOB, "canceled", "make room"))
        assert [d.action for d in prepare(other)] == ["start", "start"]
    finally:
        guest.stop()
        host.stop()


def test_a_late_end_of_a_share_cleared_for_a_restart_does_not_read_as_done_at_that_party(
    fed: Federation2,
) -> None:
    # Seen in the chaos campaign: the guest's try was killed and retried; the host's share of the
    # spent version, cleared by the restart, still reported success — and the host's next try took
    # that for its result and never prepared the new version.
    submit(fed)
    run_task(fed, "reader_0")
    services = {GUEST: fed.guest, HOST: fed.host}
    for p in (GUEST, HOST, GUEST):
        decision = services[p].prepare_task(p, PrepareTask(JOB, "lr_0", p))
    first = decision.task_version
    for p in (GUEST, HOST):
        services[p].report_task_status(p, ReportTaskStatus(JOB, "lr_0", first, p, "running"))
    fed.host_engine.create_run(DAG, JOB, {})
    assert fed.guest.prepare_task(GUEST, PrepareTask(JOB, "lr_0", GUEST)).action == "wait"  # restart
    fed.drain()  # the host's share is cleared (RerunJob)
    late = fed.host.report_task_status(HOST, ReportTaskStatus(JOB, "lr_0", first, HOST, "success"))
    assert late.ok and "ignored" in late.message
    host_view = fed.host.query_job(HOST, QueryJob(JOB))
    cell = next(c for t in host_view.tasks if t.task_name == "lr_0" for c in t.parties if c.party_id == HOST)
    assert cell.status != "success"
    decisions = [services[p].prepare_task(p, PrepareTask(JOB, "lr_0", p)) for p in (HOST, GUEST)]
    assert [(d.action, d.task_version) for d in decisions] == [("start", first + 1)] * 2


# ---------------------------------------------------------------------- long polls


def _in_thread(fn: Any) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: out.setdefault("value", fn()), daemon=True)
    thread.start()
    return thread, out


def test_a_held_prepare_is_answered_when_the_last_party_gets_ready(fed: Federation2) -> None:
    submit(fed)
    # The host asks first, through its own service to the initiator, holding for up to a minute.
    held, out = _in_thread(
        lambda: fed.host.prepare_task(HOST, PrepareTask(JOB, "reader_0", HOST, wait_seconds=60))
    )
    held.join(0.5)
    assert held.is_alive()  # no answer while the guest is not ready: the ask is held, not polled
    guest = fed.guest.prepare_task(GUEST, PrepareTask(JOB, "reader_0", GUEST))
    held.join(10)
    assert not held.is_alive()  # woken by the guest's readiness, long before the hold ends
    assert (guest.action, out["value"].action) == ("start", "start")
    assert out["value"].task_version == guest.task_version == 0


def test_a_held_prepare_is_answered_when_its_upstream_succeeds_everywhere(fed: Federation2) -> None:
    submit(fed)
    run_task(fed, "reader_0")
    fed.host.prepare_task(HOST, PrepareTask(JOB, "lr_0", HOST))
    fed.guest.prepare_task(GUEST, PrepareTask(JOB, "eval_0", GUEST))
    held, out = _in_thread(
        lambda: fed.guest.prepare_task(GUEST, PrepareTask(JOB, "eval_0", GUEST, wait_seconds=60))
    )
    held.join(0.5)
    assert held.is_alive()
    run_task(fed, "lr_0")
    held.join(10)
    assert not held.is_alive() and out["value"].action == "start"


def test_beyond_its_hold_slots_a_service_answers_at_once(fed: Federation2) -> None:
    fed.guest.policy = dataclasses.replace(fed.guest.policy, max_held_calls=1)
    fed.guest._holds = threading.BoundedSemaphore(1)
    submit(fed)
    held, out = _in_thread(
        lambda: fed.guest.prepare_task(GUEST, PrepareTask(JOB, "reader_0", GUEST, wait_seconds=60))
    )
    held.join(0.5)
    assert held.is_alive()
    # The only slot is taken: the host's forwarded ask is answered at once with "wait".
    second = fed.host.prepare_task(HOST, PrepareTask(JOB, "lr_0", HOST, wait_seconds=60))
    assert second.action == "wait" and "reader_0" in second.reason
    fed.host.prepare_task(HOST, PrepareTask(JOB, "reader_0", HOST))
    held.join(10)
    assert not held.is_alive() and out["value"].action == "start"


def test_a_held_job_watch_is_answered_when_the_job_ends_at_that_party(fed: Federation2) -> None:
    submit(fed)
    run_task(fed, "reader_0")
    held, out = _in_thread(
        lambda: fed.host.query_job(HOST, QueryJob(JOB, wait_seconds=60, known_status="running"))
    )
    held.join(0.5)
    assert held.is_alive()
    fed.guest.stop_job(GUEST, StopJob(JOB, "canceled", "stopped by the user"))
    fed.drain()
    held.join(10)
    assert not held.is_alive()
    assert out["value"].status == "canceled" and out["value"].reason == "stopped by the user"
    # Without a known status (or with another one) the view comes at once, as before.
    assert (
        fed.host.query_job(HOST, QueryJob(JOB, wait_seconds=60, known_status="running")).status == "canceled"
    )


def test_a_service_that_stops_answers_its_held_calls_at_once(fed: Federation2) -> None:
    submit(fed)
    held, out = _in_thread(
        lambda: fed.guest.prepare_task(GUEST, PrepareTask(JOB, "reader_0", GUEST, wait_seconds=60))
    )
    watch, seen = _in_thread(
        lambda: fed.guest.query_job(GUEST, QueryJob(JOB, wait_seconds=60, known_status="running"))
    )
    held.join(0.5)
    assert held.is_alive() and watch.is_alive()
    fed.guest.stop()
    held.join(10)
    watch.join(10)
    assert not held.is_alive() and not watch.is_alive()
    assert out["value"].action == "wait" and seen["value"].status == "running"
