"""The job page from plain data: graph, matrix, controls, component sections, logs errors first."""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from fate_airflow.core.types import Party
from fate_airflow.dsl.plan import JobPlan, PartyTask, TaskPlan
from fate_airflow.federation.api import JobDetail, JobEventView, JobView, PartyTaskView, TaskLog, TaskView
from fate_airflow.provider.board_page import JobPageData, LocalTask, duration, job_page, logs_page, when
from fate_airflow.tracking.board import binary_curves

GUEST, HOST = "9999", "10000"


def plan() -> JobPlan:
    g, h = Party("guest", GUEST), Party("host", HOST)
    return JobPlan(
        format="fate-2.x-dag",
        stage="train",
        initiator=g,
        parties=(g, h),
        job_parameters={},
        tasks=(
            TaskPlan("reader_0", "reader", "reader@1.0.0", (), (PartyTask(g, {"name": "breast"}), PartyTask(h))),
            TaskPlan("lr_0", "coordinated_lr", "hetero_lr@1.0.0", ("reader_0",), (PartyTask(g, {"epochs": 3}), PartyTask(h))),
            TaskPlan("eval_0", "evaluation", "evaluation@1.0.0", ("lr_0",), (PartyTask(g),)),
        ),
    )  # fmt: skip


def view(status: str = "running", lr: str = "running") -> JobView:
    def cells(s_guest: str, s_host: str, err: str = "") -> tuple[PartyTaskView, ...]:
        return (PartyTaskView(GUEST, ("guest",), s_guest), PartyTaskView(HOST, ("host",), s_host, err))

    return JobView(
        "job-1", True, "dag", status, "", GUEST,
        (
            TaskView("reader_0", 0, "success", cells("success", "success")),
            TaskView("lr_0", 0, lr, cells(lr, "failed" if lr == "failed" else lr, "boom at host" if lr == "failed" else "")),
            TaskView("eval_0", -1, "waiting", (PartyTaskView(GUEST, ("guest",), "waiting"), PartyTaskView(HOST, ("host",), "pass"))),
        ),
        JobDetail(created=1_764_700_000.0, started=1_764_700_001.5),
    )  # fmt: skip


def test_a_running_job_shows_graph_matrix_timing_and_a_stop_button() -> None:
    label = np.array([0, 1] * 50)
    score = np.linspace(0.01, 0.99, 100)
    records = {
        "lr_0": {"roles": {"guest": {"metrics": {"loss_history": [0.7, 0.5, 0.4]}, "summary": {}}}},
        "eval_0": {"roles": {"guest": {"metrics": {"auc": 0.5}, "summary": {"curves": {"lr_0.x": binary_curves(label, score)}}}}},
    }  # fmt: skip
    local = {name: LocalTask("running", record=rec) for name, rec in records.items()}
    html = job_page(JobPageData("dag", "job-1", GUEST, view(), plan(), local, "running"), "/fate")
    nodes = dict(re.findall(r"data-task='([^']+)' data-status='([^']+)'", html))
    assert nodes == {"reader_0": "success", "lr_0": "running", "eval_0": "waiting"}
    assert html.count("class='edge'") == 2
    assert "id='stop-job'" in html and "action='/fate/jobs/dag/job-1/stop'" in html
    assert "id='rerun-job'" not in html  # only an ended job is rerun
    assert "2025-12-02" in html and "UTC" in html  # dates, not epoch floats
    matrix = re.search(r"<table class='matrix' id='status-matrix'>.*?</table>", html)
    assert matrix and matrix.group(0).count("<tr data-task=") == 3
    assert re.search(r"data-series='loss' data-points='3'", html)
    assert "lr_0.x ROC" in html
    assert "href='/fate/jobs/dag/job-1/logs/lr_0'" in html
    assert "<details class='raw'>" in html  # raw JSON only behind a toggle


def test_a_failed_job_puts_the_other_partys_error_first_and_offers_rerun_and_delete() -> None:
    html = job_page(
        JobPageData("dag", "job-1", GUEST, view("failed", "failed"), plan(), {}, "failed"), "/fate"
    )
    section = html[html.index("id='task-lr_0'") :]
    assert section.index("boom at host") < section.index("parameters")
    assert "id='stop-job'" not in html and "id='rerun-job'" in html
    assert "/fate/jobs/dag/job-1/delete" in html


def test_logs_show_every_party_and_errors_first() -> None:
    logs = [
        TaskLog(GUEST, True, ("[INFO] start", "[INFO] done")),
        TaskLog(HOST, True, ("[INFO] start", "[ERROR] host-side failure: x", "[INFO] exit"), truncated=True),
        TaskLog("10001", False, message="party 10001 did not answer"),
    ]
    html = logs_page("dag", "job-1", "lr_0", logs, "/fate/jobs/dag/job-1")
    host = html[html.index("party 10000") :]
    assert host.index("errors-only") < host.index("class='log' data-party='10000'")
    assert "<span class='err'>[ERROR] host-side failure: x</span>" in host
    assert "the last lines only" in host and "party 10001 did not answer" in html


def test_dates_and_durations_read_as_people_write_them() -> None:
    assert when(0) == "" and when(1_764_700_000.0) == "2025-12-02 18:26:40 UTC"
    assert duration(100.0, 3825.0) == "1h 02m 05s" and duration(0, 5) == "" and duration(10.0, 15.4) == "5s"


def test_the_timeline_is_behind_a_toggle() -> None:
    events = (
        JobEventView(1_764_700_000.0, "created", GUEST, "", -1, "DAG dag"),
        JobEventView(1_764_700_002.0, "reported", HOST, "lr_0", 0, "failed: boom"),
    )
    v = view("failed", "failed")
    v = JobView(
        v.job_id,
        v.found,
        v.dag_id,
        v.status,
        v.reason,
        v.initiator_party_id,
        v.tasks,
        dataclasses.replace(v.detail, events=events),
    )
    html = job_page(JobPageData("dag", "job-1", GUEST, v, plan(), {}, "failed"), "/fate")
    timeline = html[html.index("<details id='timeline'>") :]
    assert "timeline (2 events)" in timeline and "failed: boom" in timeline
    assert "2025-12-02 18:26:42 UTC" in timeline
