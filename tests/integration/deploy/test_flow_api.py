"""FATE's own clients, unmodified, against a fate-airflow party's FATE-Flow client API.

FATE-Client 2.2.0 (its ``pipeline`` SDK and ``flow`` CLI, in an environment on the FATE provider's:
``make client-env``) is pointed with ``pipeline init`` / ``flow init`` at the guest of the shared
example parties (guest 9999; host 10000, also the arbiter — FATE's ``v2-pipeline/config.yaml``).
FATE's pipeline scripts run as they are in FATE's repository; what they produce is read back through
the API with FATE's own SDK and compared with FATE 2.2 standalone's results on the same scripts
(../shared/reference/fate22-results.md). Each job they submit is an ordinary Airflow DAG run at
both parties, under the job id FATE's client was given.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from fate_airflow.deploy.localfed import LocalFederation
from fate_airflow.deploy.party import admin_credentials
from tests.conftest import FATE_EXAMPLES
from tests.integration.conftest import wait_until

pytestmark = [pytest.mark.airflow, pytest.mark.slow, pytest.mark.timeout(3600)]

PIPELINE = FATE_EXAMPLES / "v2-pipeline"
GUEST, HOST = "9999", "10000"
SUCCESS = re.compile(r"Job is success!!! Job id is (\d+)")


@pytest.fixture(scope="session")
def client_bin() -> Path:
    """FATE-Client 2.2.0's environment (``make client-env``)."""
    raw = os.environ.get("FATE_AIRFLOW_TEST_CLIENT_ENV", "")
    bin_dir = Path(raw) / "bin"
    if not raw or not (bin_dir / "flow").exists():
        message = f"FATE's client environment is missing ({raw or 'FATE_AIRFLOW_TEST_CLIENT_ENV unset'})"
        if os.environ.get("CI"):
            pytest.fail(message + "; `make client-env` builds it")
        pytest.skip(message + "; run `make client-env`")
    return bin_dir


class Client:
    """FATE's client environment pointed at one party."""

    def __init__(self, bin_dir: Path, fed: LocalFederation, party: str) -> None:
        self.bin, self.fed, self.party = bin_dir, fed, party
        self.url = fed.parties[party].flow_api_url
        port = str(fed.parties[party].ports.flow)
        for tool in ("pipeline", "flow"):
            out = self.run(tool, "init", "--ip", "127.0.0.1", "--port", port)
            assert out.returncode == 0, out.stdout + out.stderr

    def run(
        self, *argv: str, cwd: Path | None = None, timeout: float = 900
    ) -> subprocess.CompletedProcess[str]:
        tool = str(self.bin / argv[0]) if (self.bin / argv[0]).exists() else argv[0]
        env = {**os.environ, "PYTHONNOUSERSITE": "1", "PYTHONPATH": ""}
        return subprocess.run(
            [tool, *argv[1:]], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
        )

    def script(self, family: str, name: str) -> list[str]:
        """Run FATE's pipeline script ``v2-pipeline/<family>/<name>.py`` unmodified; its job ids."""
        out = self.run("python", f"{name}.py", "--config", "../config.yaml", cwd=PIPELINE / family)
        assert out.returncode == 0, f"{family}/{name}.py failed:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}"
        return SUCCESS.findall(out.stdout)

    def sdk(self, code: str) -> Any:
        """Run ``code`` with FATE's SDK (``flow`` = its FlowClient, ``invoker`` = the pipeline's) → its JSON."""
        prelude = (
            "import json, sys\n"
            "from fate_client.flow_sdk import FlowClient\n"
            "from fate_client.pipeline.utils.fateflow.fate_flow_job_invoker import FATEFlowJobInvoker\n"
            f"flow = FlowClient('127.0.0.1', {self.fed.parties[self.party].ports.flow}, 'v2')\n"
            "invoker = FATEFlowJobInvoker()\n"
        )
        out = self.run("python", "-c", prelude + code)
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    def flow(self, *args: str) -> dict[str, Any]:
        """A ``flow`` CLI command's JSON reply."""
        out = self.run("flow", *args)
        assert out.returncode == 0, out.stdout + out.stderr
        return dict(json.loads(out.stdout))


@pytest.fixture(scope="module")
def guest(fate_parties: LocalFederation, client_bin: Path) -> Client:
    return Client(client_bin, fate_parties, GUEST)


def metrics_of(client: Client, job_id: str, role: str, party: str, task: str) -> list[dict[str, Any]]:
    return list(
        client.sdk(f"print(json.dumps(invoker.get_output_metric('{job_id}', '{role}', '{party}', '{task}')))")
    )


def run_at(fed: LocalFederation, party: str, dag_id: str, run_id: str) -> str | None:
    return fed.rest(party).run_state(dag_id, run_id)


def dag_of(fed: LocalFederation, job_id: str) -> str:
    view = fed.job_view(GUEST, job_id)
    assert view.found
    return view.dag_id


# ---------------------------------------------------------------------- pipeline scripts
def test_psi_script_runs_unmodified_and_its_job_is_an_airflow_run_at_both_parties(
    guest: Client, fate_parties: LocalFederation
) -> None:
    (job_id,) = guest.script("psi", "test_psi")
    dag_id = dag_of(fate_parties, job_id)
    for party in (GUEST, HOST):
        assert run_at(fate_parties, party, dag_id, job_id) == "success"
    # FATE's SDK reads the output through the API's tar.gz: 569 of 569 matched, as FATE 2.2.
    rows = guest.sdk(
        f"d = invoker.get_output_data('{job_id}', 'guest', '{GUEST}', 'psi_0')\n"
        "print(json.dumps({k: len(v) for k, v in d.items()}))"
    )
    assert rows == {"output_data": 569}
    records = {r["name"]: r["data"] for r in metrics_of(guest, job_id, "guest", GUEST, "psi_0")}
    assert records["intersect_count"] == 569
    # The task's log at this party, through FATE's log calls (from Airflow's task log).
    logs = guest.sdk(
        f"kw = dict(log_type='task_info', job_id='{job_id}', role='guest', party_id='{GUEST}', task_name='psi_0')\n"
        "print(json.dumps([flow.log.count(**kw), flow.log.query(begin=1, end=3, **kw)]))"
    )
    count, lines = logs
    assert count["code"] == 0 and count["data"] > 3, count
    assert lines["code"] == 0 and [line["line_num"] for line in lines["data"]] == [1, 2, 3]


def test_coordinated_lr_script_fits_deploys_and_predicts_like_fate_2_2(
    guest: Client, fate_parties: LocalFederation
) -> None:
    fit, predict = guest.script("coordinated_lr", "test_lr")
    (evaluation,) = [
        r for r in metrics_of(guest, fit, "guest", GUEST, "evaluation_0") if r["name"] == "evaluation"
    ]
    scores = {m["metric"]: m["val"] for m in evaluation["data"]["lr_0"]["train"]}
    # FATE 2.2: AUC 0.992363 (its mini-batches follow FATE-Flow's time-hashed sample ids; see the
    # example-DAG test for the band).
    assert scores["auc"] == pytest.approx(0.992363, abs=0.005)
    # The predict job loaded the fit job's model by the model id/version the SDK was given.
    out = guest.sdk(
        f"d = invoker.get_output_data('{predict}', 'guest', '{GUEST}', 'lr_0')\n"
        "df = next(iter(d.values()))\n"
        "print(json.dumps({'rows': len(df), 'columns': sorted(map(str, df.columns))}))"
    )
    assert out["rows"] == 569
    assert "predict_score" in out["columns"]
    model = guest.sdk(f"print(json.dumps(invoker.get_output_model('{fit}', 'guest', '{GUEST}', 'lr_0')))")
    assert model, "the fit job's LR model is readable through the API"


def test_a_fate_provider_script_statistics_matches_fate_2_2(
    guest: Client, fate_parties: LocalFederation
) -> None:
    (job_id,) = guest.script("statistics", "test_statistics")
    model = guest.sdk(
        f"print(json.dumps(invoker.get_output_model('{job_id}', 'guest', '{GUEST}', 'statistics_0')))"
    )
    x0 = next(iter(model.values()))["data"]["metrics_summary"]["x0"]
    assert x0["0%"] == pytest.approx(-1.726901, abs=1e-6)
    assert x0["100%"] == pytest.approx(4.094189, abs=1e-6)
    assert x0["std"] == pytest.approx(1.000880, abs=1e-6)


# ---------------------------------------------------------------------- the flow CLI
def test_flow_test_toy_succeeds(guest: Client) -> None:
    out = guest.run("flow", "test", "toy", "-gid", GUEST, "-hid", HOST, "--timeout", "180")
    assert out.returncode == 0, out.stderr
    assert re.search(r"toy test job \d+ is success", out.stdout), out.stdout


def test_flow_data_upload_makes_a_table_the_jobs_can_read(guest: Client, tmp_path: Path) -> None:
    conf = {
        "file": str(FATE_EXAMPLES / "data" / "breast_hetero_guest.csv"),
        "head": True,
        "partitions": 4,
        "extend_sid": True,
        "meta": {"delimiter": ",", "label_name": "y", "match_id_name": "id"},
        "namespace": "flow_cli",
        "name": "breast_guest",
    }
    path = tmp_path / "upload.json"
    path.write_text(json.dumps(conf))
    reply = guest.flow("data", "upload", "-c", str(path))
    assert reply["code"] == 0, reply
    status = guest.flow("job", "query", "-j", reply["job_id"], "-r", "local", "-p", "0")
    assert status["data"][0]["status"] == "success"
    table = Path(guest.fed.parties[GUEST].data_dir) / "tables" / "flow_cli" / "breast_guest"
    assert table.is_dir()


def job_status(client: Client, job_id: str) -> str:
    return str(client.flow("job", "query", "-j", job_id)["data"][0]["status"])


#: Two independent native toy tasks, the second long enough to be stopped after the first ended:
#: the coordination under test is the same for every component, and a short job keeps the test quick.
TOY_DAG = {
    "schema_version": "2.1.0",
    "dag": {
        "parties": [{"role": "guest", "party_id": [GUEST]}, {"role": "host", "party_id": [HOST]}],
        "stage": "default",
        "tasks": {
            "toy_0": {"component_ref": "toy_example", "parameters": {"data_num": 100}},
            "toy_1": {"component_ref": "toy_example", "parameters": {"data_num": 100, "sleep_seconds": 20}},
        },
    },
}


def submit_toy(guest: Client, tmp_path: Path) -> tuple[str, str]:
    path = tmp_path / "toy.yaml"
    path.write_text(json.dumps(TOY_DAG))
    reply = guest.flow("job", "submit", "-c", str(path))
    assert reply["code"] == 0, reply
    return str(reply["job_id"]), str(reply["data"]["dag_id"])


def toy_1_running(guest: Client, job_id: str, toy_0_done: bool = False) -> bool:
    tasks = {t["task_name"]: t["status"] for t in guest.flow("task", "query", "-j", job_id).get("data") or []}
    return tasks.get("toy_1") == "running" and (not toy_0_done or tasks.get("toy_0") == "success")


def test_flow_job_submit_stop_query_and_rerun(
    guest: Client, fate_parties: LocalFederation, tmp_path: Path
) -> None:
    job_id, dag_id = submit_toy(guest, tmp_path)
    wait_until(lambda: toy_1_running(guest, job_id, toy_0_done=True), 300, "toy_0 done, toy_1 running")
    assert guest.flow("job", "stop", "-j", job_id)["code"] == 0
    wait_until(lambda: job_status(guest, job_id) == "canceled", 30, "canceled in flow job query")
    for party in (GUEST, HOST):
        wait_until(
            lambda p=party: run_at(fate_parties, p, dag_id, job_id) == "failed", 15, f"run stopped at {party}"
        )
    # FATE-Flow's rerun: from the first task that did not succeed, as a new task version everywhere.
    assert guest.flow("job", "rerun", "-j", job_id)["code"] == 0
    wait_until(lambda: job_status(guest, job_id) == "success", 300, "the rerun to succeed")
    tasks = {t["task_name"]: t for t in guest.flow("task", "query", "-j", job_id)["data"]}
    assert (tasks["toy_0"]["task_version"], tasks["toy_1"]["task_version"]) == (0, 1)
    for party in (GUEST, HOST):
        wait_until(
            lambda p=party: run_at(fate_parties, p, dag_id, job_id) == "success", 30, f"success at {party}"
        )


def test_marking_the_run_failed_in_airflow_shows_canceled_to_flow(
    guest: Client, fate_parties: LocalFederation, tmp_path: Path
) -> None:
    job_id, dag_id = submit_toy(guest, tmp_path)
    wait_until(lambda: toy_1_running(guest, job_id), 300, "toy_1 running")
    # What the Airflow UI's "mark failed" does, at the host.
    resp = fate_parties.rest(HOST).request(
        "PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{quote(job_id, safe='')}", json={"state": "failed"}
    )
    assert resp.status_code == 200, resp.text
    wait_until(lambda: job_status(guest, job_id) == "canceled", 60, "canceled in flow job query")


# ---------------------------------------------------------------------- API behaviour
def test_bad_requests_get_fate_codes_naming_the_field(guest: Client) -> None:
    base = guest.url + "/v2"
    bad = requests.post(
        f"{base}/job/submit", json={"dag_schema": {"dag": {"parties": [], "tasks": {}}}}, timeout=30
    )
    body = bad.json()
    assert body["code"] == 5001 and "dag_schema" in body["message"], body
    missing = requests.get(f"{base}/job/query", timeout=30).json()
    assert missing["code"] == 5001 and "job_id" in missing["message"]
    unknown = requests.get(f"{base}/job/query", params={"job_id": "19990101000000000000"}, timeout=30).json()
    assert unknown["code"] == 1001
    other = requests.get(
        f"{base}/output/metric/query",
        params={"job_id": "1", "role": "host", "party_id": HOST, "task_name": "psi_0"},
        timeout=30,
    ).json()
    assert other["code"] == 5001 and HOST in other["message"]
    garbage = requests.post(f"{base}/job/stop", data=b"{not json", timeout=30).json()
    assert garbage["code"] == 5001 and "Traceback" not in garbage["message"]


def test_an_airflow_token_of_the_party_is_accepted_and_a_forged_one_refused(
    guest: Client, fate_parties: LocalFederation
) -> None:
    cfg = fate_parties.parties[GUEST]
    user, password = admin_credentials(cfg)
    login = requests.post(
        f"{cfg.api_url}/auth/token", json={"username": user, "password": password}, timeout=30
    )
    token = f"Bearer {login.json()['access_token']}"
    url = guest.url + "/v2/site/info/query"
    assert requests.get(url, headers={"Authorization": token}, timeout=30).json()["code"] == 0
    forged = requests.get(url, headers={"Authorization": "Bearer forged"}, timeout=30).json()
    assert forged["code"] == 5003 and "Airflow refused the token" in forged["message"]
