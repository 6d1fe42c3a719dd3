"""FATE's own hetero-LR example job, compiled by the DSL and run task by task on the components.

``hetero_lr_normal_{dsl,conf}.json`` (reader → data_transform → intersection → HeteroLR → evaluation,
guest 9999 / host 10000 / arbiter 10000, RSA intersection requested, rmsprop with batch 320,
1024-bit Paillier), then ``hetero_lr_normal_predict_*`` with the trained model. The requests are
built by the scheduler's own :func:`~fate_airflow.scheduler.runner.build_requests`, every task's
shares run in threads over the in-memory federation. Only ``max_iter`` is lowered (trigger-time
override) to keep the test short, and the batch shuffle gets a seed so the 3 rmsprop iterations are
reproducible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.metrics import roc_auc_score

from fate_airflow.components.api import PartyTaskRequest
from fate_airflow.components.simulate import run_shares
from fate_airflow.dsl import JobPlan, load_job
from fate_airflow.federation.api import Federation, FederationSession
from fate_airflow.federation.inmemory import InMemoryHub
from fate_airflow.scheduler.runner import build_requests, fate_model_id
from fate_airflow.storage import ArtifactStore, TableStore, UploadSpec, load_upload_config, upload
from tests.conftest import FATE_EXAMPLES

EXAMPLES = FATE_EXAMPLES
V1 = EXAMPLES / "v1-dsl-v2"


def _run_job(plan: JobPlan, job_id: str, dirs: dict[str, str]) -> dict[str, dict[str, Any]]:
    hub = InMemoryHub()

    def federation_for(req: PartyTaskRequest) -> Federation:
        return hub.federation(
            FederationSession(req.job_id, req.task_name, req.task_version, req.local, req.parties)
        )

    results: dict[str, dict[str, Any]] = {}
    for task in plan.tasks:
        requests = [
            r
            for pid in plan.party_ids
            for r in build_requests(plan, task.name, pid, job_id=job_id, task_version=1, data_dir=dirs[pid])
        ]
        outcomes = run_shares(requests, federation_for)
        for outcome in outcomes.values():
            if outcome.error is not None:
                raise outcome.error
        results[task.name] = {str(p): o.unwrap() for p, o in outcomes.items()}
    return results


def test_fate_hetero_lr_normal_train_then_predict(tmp_path: Path) -> None:
    dirs = {"9999": str(tmp_path / "9999"), "10000": str(tmp_path / "10000")}
    guest = pd.read_csv(EXAMPLES / "data" / "breast_hetero_guest.csv", dtype={"id": str})
    upload(
        TableStore.local(dirs["9999"]),
        UploadSpec(EXAMPLES / "data" / "breast_hetero_guest.csv", "experiment", "breast_hetero_guest"),
    )
    upload(
        TableStore.local(dirs["10000"]),
        UploadSpec(EXAMPLES / "data" / "breast_hetero_host.csv", "experiment", "breast_hetero_host"),
    )

    train = load_job(
        V1 / "hetero_lr_normal_dsl.json",
        V1 / "hetero_lr_normal_conf.json",
        overrides={
            "component_parameters": {
                "common": {"hetero_lr_0": {"max_iter": 3, "init_param": {"random_seed": 7}}}
            }
        },
    )
    job_id = "manual__2026-11-27T10:00:00.123+00:00"
    res = _run_job(train, job_id, dirs)
    lr = res["hetero_lr_0"]
    assert lr["guest:9999"].summary["cipher"] == "paillier" and lr["guest:9999"].summary["key_length"] == 1024
    assert (
        lr["guest:9999"].summary["optimizer"] == "rmsprop" and lr["guest:9999"].summary["batch_size"] == 320
    )
    assert res["intersection_0"]["guest:9999"].summary["requested_method"] == "rsa"
    metrics = res["evaluation_0"]["guest:9999"].metrics
    assert metrics["auc"] > 0.9 and 0 < metrics["ks"] <= 1  # 3 rmsprop iterations (seeded shuffle): 0.949
    assert res["evaluation_0"]["host:10000"].status == "pass"

    predict = load_job(
        V1 / "hetero_lr_normal_predict_dsl.json",
        V1 / "hetero_lr_normal_predict_conf.json",
        overrides={
            "job_parameters": {
                "common": {
                    "model_id": fate_model_id(train),
                    "model_version": job_id,
                }
            }
        },
    )
    pres = _run_job(predict, "predict-job", dirs)
    out = pres["hetero_lr_0"]["guest:9999"]
    pred = ArtifactStore.local(dirs["9999"]).read_data(out.outputs["data"]).frame
    trained = ArtifactStore.local(dirs["9999"]).read_data(lr["guest:9999"].outputs["data"]).frame
    # same rows, same model: the predict job reproduces the training predictions
    merged = pred.merge(trained, on="id", suffixes=("_p", "_t"))
    assert len(merged) == len(guest)
    assert (merged["predict_score_p"] - merged["predict_score_t"]).abs().max() < 1e-12
    assert roc_auc_score(merged["label_p"], merged["predict_score_p"]) == metrics["auc"]


def test_fate_2x_dag_reader_psi_scale_coordinated_lr_evaluation(tmp_path: Path) -> None:
    dirs = {"9999": str(tmp_path / "9999"), "9998": str(tmp_path / "9998")}
    for pid, conf in (("9999", "v2_upload_guest.json"), ("9998", "v2_upload_host.json")):
        upload(TableStore.local(dirs[pid]), load_upload_config(EXAMPLES / "upload" / conf, base_dir=EXAMPLES))
    plan = load_job(Path(__file__).parent / "jobs" / "coordinated_lr_no_binning.yaml")
    res = _run_job(plan, "v2-job", dirs)
    assert set(res["reader_0"]["guest:9999"].outputs) == {"output_data"}
    assert set(res["scale_0"]["host:9998"].outputs) == {"train_output_data", "output_model"}
    lr = res["lr_0"]
    assert set(lr["guest:9999"].outputs) == {"train_output_data", "output_model"}
    assert (
        lr["arbiter:9998"].summary["cipher"] == "paillier"
        and lr["arbiter:9998"].summary["key_length"] == 1024
    )
    assert lr["guest:9999"].summary["iterations"] == 3
    metrics = res["evaluation_0"]["guest:9999"].metrics
    assert metrics["auc"] > 0.95
