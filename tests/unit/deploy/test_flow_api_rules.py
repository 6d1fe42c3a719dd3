"""The FATE-Flow client API's own rules: envelope, authentication, refusals, job ids, metric records.

The HTTP app runs in-process (Starlette's test client, which calls from the non-loopback host
``testclient``); the party service behind it is the real one with an in-memory engine and network.
Whole jobs through the API, with FATE's real clients, are in tests/integration/deploy/test_flow_api.py.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from fate_airflow.deploy.airflow_rest import AirflowRestEngine
from fate_airflow.deploy.flow_api import Authenticator, FlowApi, create_app
from fate_airflow.deploy.flow_api.jobs import ApiJobStore
from fate_airflow.deploy.flow_api.server import load_apps
from fate_airflow.deploy.flow_api.service import dag_id_for_schema, fate_metric_records, fate_model_document
from fate_airflow.deploy.party import PartyConfig
from fate_airflow.federation.inmemory import InMemoryControlNetwork
from fate_airflow.scheduler.engine import InMemoryEngine
from fate_airflow.scheduler.service import PartyService
from fate_airflow.scheduler.store import JobStore

APP_ID, TOKEN = "fate-client", "s3cret-token"


def fate_client_headers(app_id: str, token: str, *, age: float = 0.0, user: str = "") -> dict[str, str]:
    # FATE-Client 2.2's flow_sdk/utils/base_utils.py, written out independently of ours.
    nonce = "4321"
    timestamp = str(int(time.time() - age) * 1000)
    temp = hashlib.md5((app_id + user + nonce + timestamp).encode()).hexdigest().lower()
    sign = hashlib.md5((temp + token).encode()).hexdigest().lower()
    return {"appId": app_id, "userName": user, "Nonce": nonce, "Timestamp": timestamp, "Signature": sign}


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    cfg = PartyConfig(party_id="9999", home=tmp_path / "9999")
    network = InMemoryControlNetwork()
    store = JobStore()
    service = PartyService("9999", store, InMemoryEngine())
    network.register("9999", service)
    service.attach_control(network.client("9999"))
    # Airflow is never reached by these calls: a closed port proves it.
    engine = AirflowRestEngine("http://127.0.0.1:9", "admin", "x", tmp_path / "received")
    api = FlowApi(cfg, engine, network.client("9999"), store, providers=lambda: [])
    apps = tmp_path / "apps.json"
    apps.write_text(f'{{"{APP_ID}": "{TOKEN}"}}')
    return TestClient(create_app(api, Authenticator(lambda: load_apps(apps), None)))


def test_an_unsigned_call_from_off_loopback_is_refused_with_fate_code_5003(client: TestClient) -> None:
    body = client.get("/v2/site/info/query").json()
    assert body["code"] == 5003
    assert "authentication required" in body["message"]
    assert "data" not in body  # None values are left out, as FATE-Flow does


def test_fate_clients_signature_is_accepted(client: TestClient) -> None:
    body = client.get("/v2/site/info/query", headers=fate_client_headers(APP_ID, TOKEN)).json()
    assert body == {"code": 0, "message": "success", "data": {"party_id": "9999"}}


@pytest.mark.parametrize(
    ("make", "code", "words"),
    [
        (lambda: fate_client_headers(APP_ID, "wrong"), 5003, "does not verify"),
        (lambda: fate_client_headers("nobody", TOKEN), 5003, "unknown appId 'nobody'"),
        (lambda: fate_client_headers(APP_ID, TOKEN, age=120), 5000, "expired"),
        (lambda: {"appId": APP_ID}, 5003, "Nonce, Timestamp, Signature"),
    ],
)
def test_bad_signatures_are_refused_naming_why(
    client: TestClient, make: Callable[[], dict[str, str]], code: int, words: str
) -> None:
    body = client.get("/v2/site/info/query", headers=make()).json()
    assert body["code"] == code and words in body["message"], body


def test_refusals_name_the_field_and_never_carry_a_traceback(client: TestClient) -> None:
    signed = fate_client_headers(APP_ID, TOKEN)
    missing = client.get("/v2/job/query", headers=signed).json()
    assert missing["code"] == 5001 and "'job_id'" in missing["message"]
    garbage = client.post("/v2/job/stop", content=b"{nope", headers=signed).json()
    assert garbage == {"code": 5001, "message": "request body: not valid JSON"}
    no_schema = client.post("/v2/job/submit", json={}, headers=signed).json()
    assert no_schema["code"] == 5001 and "dag_schema" in no_schema["message"]
    bad_dag = client.post(
        "/v2/job/submit",
        json={
            "dag_schema": {
                "schema_version": "2.1.0",
                "dag": {"parties": [{"role": "guest", "party_id": ["9999"]}], "tasks": {"x": {}}},
            }
        },
        headers=signed,
    ).json()
    assert bad_dag["code"] == 5001 and "dag_schema.dag.tasks.x" in bad_dag["message"], bad_dag
    other = client.get(
        "/v2/output/metric/query",
        params={"job_id": "1", "role": "host", "party_id": "10000", "task_name": "psi_0"},
        headers=signed,
    ).json()
    assert other["code"] == 5001 and "party_id 10000" in other["message"]
    unknown = client.get("/v2/job/query", params={"job_id": "20260101000000000000"}, headers=signed).json()
    assert unknown["code"] == 1001
    for body in (missing, garbage, no_schema, bad_dag, other, unknown):
        assert "Traceback" not in body["message"]


def test_an_unknown_path_is_a_fate_envelope_404(client: TestClient) -> None:
    resp = client.get("/v2/permission/query", headers=fate_client_headers(APP_ID, TOKEN))
    assert resp.status_code == 404 and resp.json()["code"] == 3001


def test_job_ids_are_fate_style_unique_and_increasing(tmp_path: Path) -> None:
    store = ApiJobStore(tmp_path)
    ids = [store.new_id() for _ in range(200)]
    assert all(len(i) == 20 and i.isdigit() for i in ids)
    assert ids == sorted(set(ids))


def test_the_same_pipeline_is_the_same_dag_a_changed_one_a_new_dag() -> None:
    a = {"dag": {"tasks": {"psi_0": {"component_ref": "psi"}}}, "schema_version": "2.1.0"}
    b = {"schema_version": "2.1.0", "dag": {"tasks": {"psi_0": {"component_ref": "psi"}}}}
    c = {"dag": {"tasks": {"psi_1": {"component_ref": "psi"}}}, "schema_version": "2.1.0"}
    assert dag_id_for_schema(a) == dag_id_for_schema(b) != dag_id_for_schema(c)


def test_native_evaluation_metrics_become_fates_evaluation_record_keyed_by_the_producer() -> None:
    records = fate_metric_records(
        "evaluation_0",
        {"auc": 0.99, "ks": 0.93},
        {"eval_type": "binary", "inputs": ["lr_0.train_output_data"]},
    )
    assert records == [
        {
            "name": "evaluation",
            "type": "evaluation",
            "groups": [{"name": "default", "index": None}],
            "step_axis": None,
            "data": {"lr_0": {"train": [{"metric": "auc", "val": 0.99}, {"metric": "ks", "val": 0.93}]}},
        }
    ]
    fate = [{"name": "statistics", "type": None, "groups": [], "step_axis": None, "data": {"x0": 1}}]
    assert fate_metric_records("statistics_0", {"fate_metrics": fate, "x0": 1}) == fate
    (count,) = fate_metric_records("psi_0", {"intersect_count": 569})
    assert (count["name"], count["data"]) == ("intersect_count", 569)


def test_a_native_lr_model_reads_like_fates_for_fates_scripts() -> None:
    # What coordinated_lr/test_lr_predict_w_torch.py does with the model (torch replaced by numpy).
    params = {
        "header": ["x0", "x1", "x2"],
        "weights": [0.5, -1.0, 0.25],
        "intercept": 0.1,
        "fit_intercept": True,
    }
    doc = fate_model_document(params)
    assert doc is not None
    param = doc["data"]["estimator"]["param"]
    assert param["dtype"] == "float32"  # what FATE writes, and what a float32 torch layer accepts
    coef = np.transpose(np.asarray(param["coef_"], dtype=getattr(np, param["dtype"])))
    assert coef.shape == (1, 3) and coef.tolist() == [[0.5, -1.0, 0.25]]
    assert np.asarray(param["intercept_"]).tolist() == [0.1]
    host = fate_model_document({"header": ["x3"], "weights": [0.7]})
    assert host is not None and host["data"]["estimator"]["param"]["intercept_"] is None
    assert fate_model_document({"statistics": {"x0": 1}}) is None
