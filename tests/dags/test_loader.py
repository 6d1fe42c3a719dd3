"""The real ``dags/`` loader under real Airflow parsing: dropped job files become DAGs.

DagBag parses the repository's ``dags/`` folder exactly as the dag-processor does; the drop folder
is a temporary one given through ``AIRFLOW__FATE__JOBS_FOLDER``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FATE_EXAMPLES, REPO_ROOT

V1 = FATE_EXAMPLES / "v1-dsl-v2"
V2 = FATE_EXAMPLES / "v2-dag"


@pytest.fixture
def drop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "jobs"
    folder.mkdir()
    monkeypatch.setenv("AIRFLOW__FATE__JOBS_FOLDER", str(folder))
    monkeypatch.setenv("AIRFLOW__FATE__RECEIVED_FOLDER", str(tmp_path / "received"))
    monkeypatch.setenv("AIRFLOW__FATE__PARTY_ID", "9999")
    return folder


def parse() -> tuple[dict[str, object], dict[str, str]]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    return dict(bag.dags), dict(bag.import_errors)


def edges(dag: object) -> set[tuple[str, str]]:
    return {(up, t.task_id) for t in dag.tasks for up in t.upstream_task_ids}  # type: ignore[attr-defined]


def test_dropped_files_become_one_dag_per_job(drop: Path) -> None:
    for name in ("hetero_lr_normal_dsl.json", "hetero_lr_normal_conf.json"):
        shutil.copy(V1 / name, drop / name)
    shutil.copy(V2 / "train_lr.yaml", drop / "train_lr.yaml")
    dags, errors = parse()
    assert errors == {}
    assert set(dags) == {"hetero_lr_normal", "train_lr"}
    lr = dags["hetero_lr_normal"]
    assert [t.task_id for t in lr.tasks] == [
        "reader_0",
        "data_transform_0",
        "intersection_0",
        "hetero_lr_0",
        "evaluation_0",
    ]  # type: ignore[attr-defined]
    assert edges(lr) == {
        ("reader_0", "data_transform_0"),
        ("data_transform_0", "intersection_0"),
        ("intersection_0", "hetero_lr_0"),
        ("hetero_lr_0", "evaluation_0"),
    }
    assert "guest" in lr.tags and "fate" in lr.tags  # type: ignore[attr-defined]
    assert lr.params["component_parameters"]["common"]["hetero_lr_0"]["max_iter"] == 30  # type: ignore[attr-defined]
    v2 = dags["train_lr"]
    assert ("lr_0", "evaluation_0") in edges(v2)


def test_a_broken_file_is_reported_and_the_others_stay(drop: Path) -> None:
    for name in ("hetero_lr_normal_dsl.json", "hetero_lr_normal_conf.json"):
        shutil.copy(V1 / name, drop / name)
    bad_conf = json.loads((V1 / "hetero_lr_normal_conf.json").read_text())
    bad_conf["component_parameters"]["role"]["host"]["3"] = {
        "reader_0": {"table": {"name": "t", "namespace": "n"}}
    }
    shutil.copy(V1 / "hetero_lr_normal_dsl.json", drop / "broken_dsl.json")
    (drop / "broken_conf.json").write_text(json.dumps(bad_conf))
    (drop / "garbage.yaml").write_text("dag: [unclosed\n")
    dags, errors = parse()
    assert errors == {}
    assert "hetero_lr_normal" in dags
    broken = dags["broken"]
    assert "invalid" in broken.tags  # type: ignore[attr-defined]
    assert broken.description == (  # type: ignore[attr-defined]
        "INVALID JOB FILE: broken_conf.json: component_parameters.role.host.3: host index 3 out of range (1 host)"
    )
    assert [t.task_id for t in broken.tasks] == ["invalid_job_file"]  # type: ignore[attr-defined]
    assert "garbage" in dags
    assert "garbage.yaml" in dags["garbage"].description  # type: ignore[attr-defined]


def test_airflow_cli_lists_and_triggers_the_good_dag_next_to_a_broken_one(tmp_path: Path) -> None:
    """The real Airflow CLI on its own metadata DB: the good job is triggerable, the bad one is flagged."""
    drop = tmp_path / "jobs"
    drop.mkdir()
    for name in ("hetero_lr_normal_dsl.json", "hetero_lr_normal_conf.json"):
        shutil.copy(V1 / name, drop / name)
    (drop / "broken.yaml").write_text("schema_version: 2.0.0\ndag:\n  tasks: {}\n")
    home = tmp_path / "airflow"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__FATE__JOBS_FOLDER": str(drop),
        "AIRFLOW__FATE__PARTY_ID": "9999",
        "PYTHONWARNINGS": "ignore",
    }
    airflow = str(Path(sys.executable).with_name("airflow"))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [airflow, *args], env=env, capture_output=True, text=True, timeout=240, check=False
        )

    assert run("db", "migrate").returncode == 0
    assert run("dags", "reserialize").returncode == 0
    listed = run("dags", "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    ids = {d["dag_id"] for d in json.loads(listed.stdout[listed.stdout.index("[") :])}
    assert {"hetero_lr_normal", "broken"} <= ids
    errors = run("dags", "list-import-errors", "-o", "json")
    assert "hetero_lr_normal" not in errors.stdout
    trig = run(
        "dags", "trigger", "hetero_lr_normal", "--run-id", "job_cli_1", "--conf", '{"job_parameters": {}}'
    )
    assert trig.returncode == 0, trig.stderr
    state = run("dags", "state", "hetero_lr_normal", "job_cli_1")
    assert state.stdout.strip().splitlines()[-1].split(",")[0] in ("queued", "running")


def test_tasks_get_the_party_providers(drop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``[fate] provider_dir`` set, each task's provider is chosen (and checked) when the DAG is built."""
    from fate_airflow.core.providers import ProviderInfo, ProviderRegistry
    from tests.conftest import SHARED
    from tests.unit.dsl.test_selection import FATE_22_COMPONENTS

    dags_dir = FATE_EXAMPLES / "v2-pipeline-dags"
    if not dags_dir.is_dir():
        dags_dir = SHARED / "fate-examples" / "v2-pipeline-dags"
    if not (dags_dir / "sample__test_sample.yaml").exists():
        pytest.skip("FATE's v2 pipeline DAGs are not available")
    shutil.copy(dags_dir / "sample__test_sample.yaml", drop / "sample.yaml")
    shutil.copy(V1 / "hetero_lr_normal_dsl.json", drop / "hetero_lr_normal_dsl.json")
    shutil.copy(V1 / "hetero_lr_normal_conf.json", drop / "hetero_lr_normal_conf.json")
    providers = tmp_path / "providers"
    monkeypatch.setenv("AIRFLOW__FATE__PROVIDER_DIR", str(providers))

    dags, errors = parse()
    assert errors == {}
    assert "invalid" in dags["sample"].tags  # type: ignore[attr-defined]
    assert dags["sample"].description == (  # type: ignore[attr-defined]
        "INVALID JOB FILE: sample.yaml: dag.tasks.sample_0.component_ref: component sample (task sample_0) "
        "needs the FATE provider: run `fate-airflow provider install fate==2.2.0`"
    )
    assert "invalid" not in dags["hetero_lr_normal"].tags  # type: ignore[attr-defined]

    ProviderRegistry(providers).register(ProviderInfo("fate", "2.2.0", components=FATE_22_COMPONENTS))
    dags, errors = parse()
    assert errors == {}
    sample = dags["sample"]
    assert "invalid" not in sample.tags  # type: ignore[attr-defined]
    assert {"reader_0", "psi_0", "sample_0", "sample_1"} <= {t.task_id for t in sample.tasks}  # type: ignore[attr-defined]
    # FATE's integer keys reach the DAG params as JSON-safe strings (and are matched back on trigger).
    frac = sample.params["dag"]["tasks"]["sample_0"]["parameters"]["frac"]  # type: ignore[attr-defined]
    assert frac == {"0": 0.5}
    from airflow.serialization.serialized_objects import DagSerialization

    assert DagSerialization.to_dict(sample)  # Airflow can store it
