"""TaskStartTrigger against a real gateway and party service (grpc.aio, mutual TLS)."""

from __future__ import annotations

import asyncio
import time

from fate_airflow.core.types import Party
from fate_airflow.dsl.plan import JobPlan, PartyTask, TaskPlan
from fate_airflow.federation.api import CreateJob, PrepareTask, ReportTaskStatus, StopJob
from fate_airflow.provider.hooks.federation import FederationHook
from fate_airflow.provider.triggers.task_start import TaskStartTrigger
from tests.unit.provider.conftest import LocalParty

G = Party("guest", "9999")


def plan() -> JobPlan:
    return JobPlan(
        "fate-1.x-dsl-v2",
        "train",
        G,
        (G,),
        (
            TaskPlan("a", "SecureAddExample", "toy_example@1.0.0", (), (PartyTask(G),)),
            TaskPlan("b", "SecureAddExample", "toy_example@1.0.0", ("a",), (PartyTask(G),)),
        ),
    )


def test_serialize_round_trips_with_json_kwargs() -> None:
    trig = TaskStartTrigger(
        {"address": "h:1", "party_id": "9999", "insecure": True}, "job", "t", "9999", 0.5, 60.0, 12.5
    )
    path, kwargs = trig.serialize()
    assert path == "fate_airflow.provider.triggers.task_start.TaskStartTrigger"
    assert TaskStartTrigger(**kwargs).serialize() == (path, kwargs)


async def test_trigger_waits_for_upstream_then_fires_start(party_env: LocalParty) -> None:
    job = f"trigger_job_{time.monotonic_ns()}"
    svc = party_env.service
    assert svc.create_job("9999", CreateJob(job, "dag", "9999", plan().to_dict())).accepted
    config = (await FederationHook().aclient_config()).to_dict()
    trig = TaskStartTrigger(config, job, "b", "9999", poll_interval=0.1)
    task = asyncio.create_task(trig.run().__anext__())
    await asyncio.sleep(1.0)
    assert not task.done()  # upstream "a" has not run yet
    assert svc.prepare_task("9999", PrepareTask(job, "a", "9999")).action == "start"
    svc.report_task_status("9999", ReportTaskStatus(job, "a", 0, "9999", "success"))
    event = await asyncio.wait_for(task, timeout=10)
    assert event.payload == {"status": "start", "task_version": 0}


async def test_trigger_yields_abort_with_the_reason_when_the_job_failed(party_env: LocalParty) -> None:
    job = f"trigger_job_{time.monotonic_ns()}"
    svc = party_env.service
    assert svc.create_job("9999", CreateJob(job, "dag", "9999", plan().to_dict())).accepted
    svc.stop_job("9999", StopJob(job, "canceled", "user said so"))
    config = (await FederationHook().aclient_config()).to_dict()
    event = await asyncio.wait_for(
        TaskStartTrigger(config, job, "b", "9999", 0.1).run().__anext__(), timeout=10
    )
    assert event.payload == {"status": "abort", "reason": "user said so"}


async def test_trigger_reports_an_unreachable_gateway_as_an_error() -> None:
    config = {"address": "127.0.0.1:1", "party_id": "9999", "insecure": True}
    trig = TaskStartTrigger(config, "j", "t", "9999", poll_interval=0.05, unreachable_timeout=0.5)
    event = await asyncio.wait_for(trig.run().__anext__(), timeout=20)
    assert event.payload["status"] == "error"
    assert "party gateway unreachable" in event.payload["reason"]
