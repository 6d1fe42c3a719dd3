"""Federated jobs across real Airflow instances and real gateways (processes on 127.0.0.1, SQLite).

Three parties run side by side for the whole module — guest 9999, 10000 and 10001, each with its own
Airflow (api-server, scheduler, dag-processor, triggerer; LocalExecutor) and mTLS gateway — exactly
as ``party up`` deploys them. Two-party jobs use 9999 and 10000 (10000 is host *and* arbiter of the
LR job); the three-party LR job puts the arbiter on 10001. Jobs are triggered at the guest through
Airflow's REST API, like a user would.

The tests run in file order; the last one kills party 10001.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import psutil
import pytest
import requests

from fate_airflow.deploy.gateway_client import gateway_alive
from fate_airflow.deploy.localfed import LocalFederation, create_local_federation
from fate_airflow.deploy.party import airflow_health, kill_party, process_pids, write_party_config
from fate_airflow.federation.api import JobView
from fate_airflow.storage.tables import TableStore
from fate_airflow.storage.upload import UploadSpec, upload
from tests.conftest import FATE_EXAMPLES, REPO_ROOT

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(900)]

JOBS = REPO_ROOT / "tests" / "fixtures" / "jobs"
DATA = FATE_EXAMPLES / "data"
GUEST, HOST, THIRD = "9999", "10000", "10001"
PARTY_TIMEOUT = 10.0
CLI = str(Path(sys.executable).with_name("fate-airflow"))


def put_table(
    fed: LocalFederation, party: str, csv: str, namespace: str, name: str, label: str | None
) -> None:
    upload(
        TableStore.local(fed.parties[party].data_dir),
        UploadSpec(file=DATA / csv, namespace=namespace, name=name, id_column="id", label_column=label),
        overwrite=True,
    )


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    base = tmp_path_factory.mktemp("federation")
    drop = base / "guest-jobs"
    drop.mkdir()
    for path in JOBS.glob("*.json"):
        shutil.copy(path, drop / path.name)
    federation = create_local_federation(
        base, [GUEST, HOST, THIRD], jobs_folders={GUEST: drop}, party_timeout=PARTY_TIMEOUT
    )
    try:
        federation.init()
        federation.up(wait=300)
        put_table(federation, GUEST, "breast_hetero_mini_guest.csv", "itest", "breast_hetero_mini_guest", "y")
        put_table(federation, HOST, "breast_hetero_mini_host.csv", "itest", "breast_hetero_mini_host", None)
        put_table(federation, GUEST, "breast_hetero_mini_guest.csv", "itest", "rerun_guest", "y")
        rest = federation.rest(GUEST)
        for dag_id in ("toy2", "toyfar", "toytimeout", "reader2", "reader3", "lr2", "lr3"):
            rest.wait_dag(dag_id)
        yield federation
    finally:
        federation.down()


# ---------------------------------------------------------------------- helpers
def trigger(fed: LocalFederation, dag_id: str, conf: dict[str, Any] | None = None) -> str:
    return fed.rest(GUEST).trigger(dag_id, conf)


def wait_end(fed: LocalFederation, job_id: str, timeout: float = 240) -> JobView:
    return fed.wait_job(job_id, timeout=timeout)


def rerun_versions(fed: LocalFederation, job_id: str) -> dict[str, int]:
    """The version each task of a job rerun once must end at.

    1, plus one per Airflow retry of a try that died mid-run (the timeline's ``retry`` events): Airflow
    3.3 can fail a resumed deferred task by itself (apache/airflow#72716), and its retry then restarts
    the task as the next version at every party.
    """
    view = fed.job_view(fed.initiator.party_id, job_id, with_events=True)
    retries = Counter(e.task_name for e in view.detail.events if e.kind == "retry")
    return {t.task_name: 1 + retries[t.task_name] for t in view.tasks}


def tis(fed: LocalFederation, party: str, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
    resp = fed.rest(party).request(
        "GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances"
    )
    assert resp.status_code == 200, resp.text
    return {ti["task_id"]: ti for ti in resp.json()["task_instances"]}


def fate_record(fed: LocalFederation, party: str, dag_id: str, run_id: str, task: str) -> dict[str, Any]:
    resp = fed.rest(party).request(
        "GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task}/xcomEntries/fate"
    )
    assert resp.status_code == 200, resp.text
    value = resp.json()["value"]
    return json.loads(value) if isinstance(value, str) else dict(value)


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.5) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def run_state(fed: LocalFederation, party: str, dag_id: str, run_id: str) -> str | None:
    return fed.rest(party).run_state(dag_id, run_id)


def end_time(ti: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(ti["end_date"])


def running_everywhere(
    fed: LocalFederation, dag_id: str, job: str, task: str, parties: tuple[str, ...]
) -> bool:
    try:
        return all(tis(fed, p, dag_id, job).get(task, {}).get("state") == "running" for p in parties)
    except AssertionError:
        return False


# ---------------------------------------------------------------------- tests
def test_two_party_lr_job_runs_everywhere_with_one_run_id_and_the_same_task_ids(fed: LocalFederation) -> None:
    job = trigger(fed, "lr2")
    view = wait_end(fed, job, timeout=400)
    assert view.status == "success", view.reason
    names = ["reader_0", "data_transform_0", "intersection_0", "hetero_lr_0", "evaluation_0"]
    for party in (GUEST, HOST):
        wait_until(lambda p=party: run_state(fed, p, "lr2", job) == "success", 30, f"run success at {party}")
        states = tis(fed, party, "lr2", job)
        assert sorted(states) == sorted(names)
        assert {t["state"] for t in states.values()} == {"success"}
    # 10000 is host and arbiter: one task instance ran both roles.
    lr_host = fate_record(fed, HOST, "lr2", job, "hetero_lr_0")
    assert set(lr_host["roles"]) == {"host", "arbiter"}
    assert lr_host["task_version"] == 0
    metrics = fate_record(fed, GUEST, "lr2", job, "evaluation_0")["roles"]["guest"]["metrics"]
    assert metrics["auc"] > 0.9
    assert view.tasks[3].task_version == 0
    assert {c.party_id: c.status for c in view.tasks[3].parties} == {GUEST: "success", HOST: "success"}


def test_the_plugin_view_shows_the_parties_by_tasks_matrix_at_any_party(fed: LocalFederation) -> None:
    job = trigger(fed, "toy2")
    assert wait_end(fed, job).status == "success"
    # At the host the plugin asks the initiator (through the host's gateway) for the federated view.
    resp = fed.rest(HOST).request("GET", f"/fate/api/jobs/{quote(job, safe='')}")
    assert resp.status_code == 200, resp.text
    matrix = resp.json()
    assert (matrix["status"], matrix["initiator_party_id"]) == ("success", GUEST)
    assert [t["task_name"] for t in matrix["tasks"]] == ["toy_0", "toy_1", "toy_2"]
    assert {p["party_id"]: p["status"] for p in matrix["tasks"][1]["parties"]} == {
        GUEST: "success",
        HOST: "success",
    }
    page = fed.rest(GUEST).request("GET", "/fate/jobs")
    assert page.status_code == 200
    assert job in page.text
    # The job's link, resolved as a browser resolves it against the list page, opens the job page.
    encoded = re.escape(quote(job, safe=""))
    (href,) = re.findall(rf"href='([^']*{encoded})'", page.text)
    link = urljoin(f"{fed.parties[GUEST].api_url}/fate/jobs", href)
    assert link == f"{fed.parties[GUEST].api_url}/fate/jobs/toy2/{quote(job, safe='')}"
    detail = fed.rest(GUEST).request("GET", link.removeprefix(fed.parties[GUEST].api_url))
    assert detail.status_code == 200
    assert "id='job-status'>success</span>" in detail.text
    anonymous = requests.get(f"{fed.parties[GUEST].api_url}/fate/jobs", timeout=10)
    assert anonymous.status_code == 401
    # The same matrix from the command line, asked at the host.
    out = subprocess.run(
        [CLI, "job", "query", job, "--json", "--config", str(fed.config_paths[HOST])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    cli_matrix = json.loads(out.stdout)
    assert cli_matrix["status"] == "success"
    assert cli_matrix["tasks"][2]["parties"] == {
        GUEST: {"roles": ["guest"], "status": "success"},
        HOST: {"roles": ["host"], "status": "success"},
    }


def test_three_party_lr_job(fed: LocalFederation) -> None:
    job = trigger(fed, "lr3")
    view = wait_end(fed, job, timeout=400)
    assert view.status == "success", view.reason
    for party in (GUEST, HOST, THIRD):
        wait_until(lambda p=party: run_state(fed, p, "lr3", job) == "success", 30, f"run success at {party}")
        assert sorted(tis(fed, party, "lr3", job)) == sorted(t.task_name for t in view.tasks)
    assert set(fate_record(fed, THIRD, "lr3", job, "hetero_lr_0")["roles"]) == {"arbiter"}
    # The arbiter plays no part in the reader: its task records a pass, not a fake success.
    assert fate_record(fed, THIRD, "lr3", job, "reader_0")["status"] == "pass"


def test_failure_at_the_host_fails_the_job_everywhere_and_stops_the_guests_share(
    fed: LocalFederation,
) -> None:
    conf = {
        "component_parameters": {
            "common": {"toy_1": {"sleep_seconds": 60}},
            "role": {"host": {"0": {"toy_1": {"fail": True, "sleep_seconds": 0}}}},
        }
    }
    job = trigger(fed, "toy2", conf)
    view = wait_end(fed, job)
    assert view.status == "failed"
    assert "task toy_1 failed at party 10000 (host)" in view.reason
    assert "injected failure at host 10000" in view.reason
    wait_until(lambda: run_state(fed, GUEST, "toy2", job) == "failed", 15, "guest run failed")
    wait_until(lambda: run_state(fed, HOST, "toy2", job) == "failed", 15, "host run failed")
    host_ti = tis(fed, HOST, "toy2", job)["toy_1"]
    guest_ti = tis(fed, GUEST, "toy2", job)["toy_1"]
    assert host_ti["state"] == guest_ti["state"] == "failed"
    # The guest's share was running (sleeping 60 s) when the host failed: "failed", not "success",
    # means it was stopped rather than left to finish. The latency is bench/scheduling.py's job.
    assert tis(fed, GUEST, "toy2", job)["toy_2"]["state"] in ("skipped", "upstream_failed")


def test_stop_at_the_initiator_with_the_cli_stops_every_party(fed: LocalFederation) -> None:
    job = trigger(fed, "toy2", {"component_parameters": {"common": {"toy_1": {"sleep_seconds": 90}}}})
    wait_until(lambda: running_everywhere(fed, "toy2", job, "toy_1", (GUEST, HOST)), 120, "toy_1 running")
    out = subprocess.run(
        [CLI, "job", "stop", job, "--config", str(fed.config_paths[GUEST])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    # The toy sleeps 90 s: a run "failed" before then was stopped, not finished. How fast a stop
    # travels is measured by bench/scheduling.py, not asserted here (no timing thresholds in tests).
    wait_until(
        lambda: (
            run_state(fed, GUEST, "toy2", job) == "failed" and run_state(fed, HOST, "toy2", job) == "failed"
        ),
        75,
        "both runs stopped",
    )
    view = wait_end(fed, job, timeout=30)
    assert view.status == "canceled"
    assert "stopped by `fate-airflow job stop` at party 9999" in view.reason
    # The timeline tells the story after the fact, from the host too (it asks the initiator).
    out = subprocess.run(
        [CLI, "job", "query", job, "--events", "--config", str(fed.config_paths[HOST])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    timeline = out.stdout[out.stdout.index("timeline:") :].splitlines()
    kinds = [line.split()[2] for line in timeline[1:]]
    assert kinds[0] == "created" and {"submitted", "prepared", "started", "stop", "ended"} <= set(kinds)
    # The stop comes before the end it caused (the parties' "canceled" reports may follow both).
    assert kinds.index("stop") < kinds.index("ended")
    ended = timeline[1 + kinds.index("ended")]
    assert "party 9999" in ended and "canceled: stopped by `fate-airflow job stop` at party 9999" in ended


def test_marking_the_run_failed_in_the_initiators_ui_stops_every_party(fed: LocalFederation) -> None:
    job = trigger(fed, "toy2", {"component_parameters": {"common": {"toy_1": {"sleep_seconds": 90}}}})
    wait_until(lambda: running_everywhere(fed, "toy2", job, "toy_1", (GUEST, HOST)), 120, "toy_1 running")
    resp = fed.rest(GUEST).request(
        "PATCH", f"/api/v2/dags/toy2/dagRuns/{quote(job, safe='')}", json={"state": "failed"}
    )
    assert resp.status_code == 200, resp.text
    # Before the toy's 90 s sleep could end: stopped, not finished (latency: bench/scheduling.py).
    wait_until(lambda: run_state(fed, HOST, "toy2", job) == "failed", 75, "host run stopped")
    assert tis(fed, HOST, "toy2", job)["toy_1"]["state"] == "failed"
    assert wait_end(fed, job, timeout=30).status in ("canceled", "failed")


def test_rerun_from_the_failed_component_runs_version_plus_one_everywhere(fed: LocalFederation) -> None:
    job = trigger(fed, "reader2")
    view = wait_end(fed, job)
    assert view.status == "failed"
    assert "task reader_0 failed at party 10000 (host)" in view.reason
    assert "rerun_host" in view.reason
    # The host fixes its data; the guest reruns the job from the failed component.
    put_table(fed, HOST, "breast_hetero_mini_host.csv", "itest", "rerun_host", None)
    out = subprocess.run(
        [CLI, "job", "rerun", job, "--from", "reader_0", "--config", str(fed.config_paths[GUEST])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    wait_until(lambda: run_state(fed, HOST, "reader2", job) == "success", 180, "host run success")
    view = wait_end(fed, job)
    assert view.status == "success", view.reason
    versions = rerun_versions(fed, job)
    assert {t.task_name: t.task_version for t in view.tasks} == versions
    for party in (GUEST, HOST):
        # The job ends when the last report arrives; Airflow closes the run a moment later.
        wait_until(
            lambda p=party: run_state(fed, p, "reader2", job) == "success", 30, f"run success at {party}"
        )
        for task in ("reader_0", "data_transform_0"):
            assert fate_record(fed, party, "reader2", job, task)["task_version"] == versions[task], (
                party,
                task,
            )


def test_clearing_the_failed_task_in_the_initiators_ui_reruns_it_everywhere(fed: LocalFederation) -> None:
    job = trigger(fed, "reader3")
    view = wait_end(fed, job)
    assert view.status == "failed"
    assert "rerun_host_ui" in view.reason
    put_table(fed, HOST, "breast_hetero_mini_host.csv", "itest", "rerun_host_ui", None)
    # What the UI's "Clear" (with downstream) does at the initiator: nothing else is called.
    resp = fed.rest(GUEST).request(
        "POST",
        "/api/v2/dags/reader3/clearTaskInstances",
        json={
            "dag_run_id": job,
            "task_ids": ["reader_0"],
            "include_downstream": True,
            "only_failed": False,
            "dry_run": False,
        },
    )
    assert resp.status_code == 200, resp.text
    wait_until(lambda: run_state(fed, HOST, "reader3", job) == "success", 180, "host run success")
    view = wait_end(fed, job)
    assert view.status == "success", view.reason
    versions = rerun_versions(fed, job)
    assert {t.task_name: t.task_version for t in view.tasks} == versions
    assert fate_record(fed, HOST, "reader3", job, "reader_0")["task_version"] == versions["reader_0"]


def test_a_job_timeout_from_the_conf_ends_the_job_everywhere(fed: LocalFederation) -> None:
    job = trigger(fed, "toytimeout")
    view = wait_end(fed, job, timeout=120)
    assert view.status == "timeout"
    assert view.reason == "job exceeded its timeout of 25 s"
    for party in (GUEST, HOST):
        wait_until(
            lambda p=party: run_state(fed, p, "toytimeout", job) == "failed", 15, f"run stopped at {party}"
        )
        assert tis(fed, party, "toytimeout", job)["toy_1"]["state"] == "failed"


def test_a_dropped_job_file_appears_in_airflow_without_a_restart(fed: LocalFederation) -> None:
    drop = fed.parties[GUEST].drop_folder
    for suffix in ("dsl", "conf"):
        shutil.copy(JOBS / f"toy2_{suffix}.json", drop / f"fresh_drop_{suffix}.json")
    wait_until(
        lambda: fed.rest(GUEST).request("GET", "/api/v2/dags/fresh_drop").status_code == 200,
        60,
        "the dropped job's DAG",
    )


def test_a_job_from_an_initiator_the_host_does_not_allow_is_refused(fed: LocalFederation) -> None:
    cfg = fed.parties[THIRD]
    path = fed.config_paths[THIRD]
    original = path.read_text()
    data = json.loads(original)
    data["allowed_initiators"] = ["8888"]
    path.write_text(json.dumps(data))
    try:
        job = trigger(fed, "toyfar")
        view = wait_end(fed, job, timeout=120)
    finally:
        path.write_text(original)
    expected = (
        "party 10001 refused: party 10001 does not accept jobs from initiator 9999 (allowed initiators: 8888)"
    )
    assert view.status == "failed"
    assert expected in view.reason
    wait_until(lambda: run_state(fed, GUEST, "toyfar", job) == "failed", 30, "guest run failed")
    assert run_state(fed, THIRD, "toyfar", job) is None
    roots = tis(fed, GUEST, "toyfar", job)
    assert roots["toy_0"]["state"] == "failed"
    assert cfg.party_id == THIRD


def test_the_watchdog_restarts_a_party_process_that_died(fed: LocalFederation) -> None:
    # An Airflow scheduler that a locked SQLite database crashed, a gateway the OOM killer took.
    cfg = fed.parties[HOST]
    for name in ("triggerer", "gateway"):
        before = process_pids(cfg)[name]
        assert before is not None
        psutil.Process(before).kill()
        wait_until(lambda n=name, b=before: process_pids(cfg)[n] not in (None, b), 30, f"{name} restarted")
    # A restarted process has a pid before it serves: wait until the gateway answers too.
    wait_until(
        lambda: gateway_alive(cfg) and all(v == "healthy" for v in airflow_health(cfg).values()),
        120,
        "host healthy again",
    )
    job = trigger(fed, "toy2")
    assert wait_end(fed, job).status == "success"


def test_a_host_killed_mid_job_is_named_by_the_guest(fed: LocalFederation) -> None:
    job = trigger(fed, "toyfar", {"component_parameters": {"common": {"toy_1": {"sleep_seconds": 120}}}})
    wait_until(lambda: running_everywhere(fed, "toyfar", job, "toy_1", (GUEST, THIRD)), 120, "toy_1 running")
    kill_party(fed.parties[THIRD])  # the whole party dies at once: Airflow, tasks and gateway
    # The toy would sleep 120 s more: ending before that is the party timeout's doing.
    view = wait_end(fed, job, timeout=100)
    assert view.status == "failed"
    assert "party 10001 (host) is unreachable" in view.reason
    wait_until(lambda: run_state(fed, GUEST, "toyfar", job) == "failed", 15, "guest run failed")
    write_party_config(fed.parties[THIRD], fed.config_paths[THIRD])
