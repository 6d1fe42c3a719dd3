"""FederatedComponentOperator under real Airflow (``dag.test()``) with a real gateway and party service.

A guest-only job (FATE allows single-party jobs) exercises every step of the operator in-process:
submission with the trigger conf, prepare/start, running real components, status reports, and the
tracking records in XCom — without needing a second Airflow.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fate_airflow.storage.tables import TableStore
from fate_airflow.storage.upload import UploadSpec, upload
from tests.conftest import FATE_EXAMPLES, REPO_ROOT
from tests.unit.provider.conftest import LocalParty

pytestmark = pytest.mark.airflow

DSL = {
    "components": {
        "reader_0": {"module": "Reader", "output": {"data": ["data"]}},
        "data_transform_0": {
            "module": "DataTransform",
            "input": {"data": {"data": ["reader_0.data"]}},
            "output": {"data": ["data"], "model": ["model"]},
        },
    }
}
CONF = {
    "dsl_version": 2,
    "initiator": {"role": "guest", "party_id": 9999},
    "role": {"guest": [9999]},
    "component_parameters": {
        "role": {"guest": {"0": {"reader_0": {"table": {"namespace": "experiment", "name": "solo"}}}}},
        "common": {"data_transform_0": {"with_label": True, "output_format": "dense"}},
    },
}


@pytest.fixture(scope="module")
def airflow_db() -> None:
    from airflow.utils import db

    db.resetdb()


@pytest.fixture
def drop(party_env: LocalParty, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "jobs"
    folder.mkdir()
    (folder / "solo_dsl.json").write_text(json.dumps(DSL))
    (folder / "solo_conf.json").write_text(json.dumps(CONF))
    shutil.copy(FATE_EXAMPLES / "v1-dsl-v2" / "hetero_lr_normal_dsl.json", folder / "broken_dsl.json")
    (folder / "broken_conf.json").write_text("{not json")
    monkeypatch.setenv("AIRFLOW__FATE__JOBS_FOLDER", str(folder))
    monkeypatch.setenv("AIRFLOW__FATE__RECEIVED_FOLDER", str(tmp_path / "received"))
    upload(
        TableStore.local(party_env.cfg.data_dir),
        UploadSpec(FATE_EXAMPLES / "data" / "breast_hetero_mini_guest.csv", "experiment", "solo", "id", "y"),
        overwrite=True,
    )
    return folder


def get_dag(dag_id: str) -> object:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.get_dag(dag_id)


def test_a_single_party_job_runs_its_components_and_tracks_them(
    airflow_db: None, party_env: LocalParty, drop: Path
) -> None:
    dag = get_dag("solo")
    override = {
        "component_parameters": {"common": {"data_transform_0": {"label_name": "y", "missing_fill": True}}}
    }
    run = dag.test(run_conf=override)  # type: ignore[attr-defined]
    assert run.state == "success"
    record = run.get_task_instance("data_transform_0").xcom_pull(task_ids="data_transform_0", key="fate")
    assert record["status"] == "success"
    assert record["task_version"] == 0
    assert set(record["roles"]) == {"guest"}
    assert record["roles"]["guest"]["outputs"]  # an artifact reference, not the data
    job = party_env.service.store.get_job(run.run_id)
    assert job is not None and job.status == "success"
    assert job.conf == override
    dt = next(t for t in job.plan["tasks"] if t["name"] == "data_transform_0")
    assert dt["parties"][0]["parameters"]["missing_fill"] is True  # the trigger conf reached the plan
    # The component saved a model: an asset event names it (the model stays in the party's store).
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(select(AssetEvent).where(AssetEvent.source_run_id == run.run_id)).all()
        extras = [e.extra for e in events]
    assert len(extras) == 1
    assert extras[0]["task_version"] == 0
    assert extras[0]["models"]["guest"].startswith("fate-model://")


def test_the_placeholder_of_a_broken_job_file_fails_with_its_error(
    airflow_db: None, party_env: LocalParty, drop: Path
) -> None:
    dag = get_dag("broken")
    assert "INVALID JOB FILE: broken_conf.json" in dag.description  # type: ignore[attr-defined]
    run = dag.test()  # type: ignore[attr-defined]
    assert run.state == "failed"
    assert run.get_task_instance("invalid_job_file").state == "failed"
