from __future__ import annotations

import json
from pathlib import Path

import pytest

from fate_airflow.core.errors import DslError
from fate_airflow.dsl import JobPlan, JobSource, job_conf_document, load_job, load_source

from ._support import (
    FIXTURES,
    GOLDEN,
    UPDATE_GOLDEN,
    V1,
    V1_LEGACY,
    V2,
    load_json,
    v1_pairs,
    write_json,
)

GOLDEN_CASES: dict[str, tuple[Path, Path | None]] = {
    "hetero_lr_normal": (V1 / "hetero_lr_normal_dsl.json", V1 / "hetero_lr_normal_conf.json"),
    "hetero_lr_multi_host": (V1 / "hetero_lr_multi_host_dsl.json", V1 / "hetero_lr_multi_host_conf.json"),
    "hetero_lr_normal_predict": (
        V1 / "hetero_lr_normal_predict_dsl.json",
        V1 / "hetero_lr_normal_predict_conf.json",
    ),
    "homo_lr_train": (V1 / "homo_lr_train_dsl.json", V1 / "homo_lr_train_conf.json"),
    "train_lr": (V2 / "train_lr.yaml", None),
    "predict_lr": (V2 / "predict_lr.yaml", None),
    "party_conf_dag": (FIXTURES / "party_conf_dag.yaml", None),
    "toy_example_dag": (FIXTURES / "toy_example_dag.json", None),
}


def _problems(dsl: Path, conf: Path | None = None, **kwargs: object) -> list[str]:
    with pytest.raises(DslError) as excinfo:
        load_job(dsl, conf, **kwargs)  # type: ignore[arg-type]
    return excinfo.value.problems


# --------------------------------------------------------------------------- compatibility suite


@pytest.mark.parametrize(("dsl", "conf"), v1_pairs(), ids=lambda p: p.name)
def test_every_1x_example_plans(dsl: Path, conf: Path) -> None:
    plan = load_job(dsl, conf)
    assert plan.format == "fate-1.x-dsl-v2"
    assert plan.source == f"{dsl.name} + {conf.name}"
    assert {t.name for t in plan.tasks} == set(load_json(dsl)["components"])
    assert JobPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


def test_1x_pairs_cover_every_conf() -> None:
    confs = {c.name for _, c in v1_pairs()}
    assert confs == {p.name for p in V1.glob("*_conf.json")}
    # test_intersect_job_dsl.json has two confs.
    assert [c.name for d, c in v1_pairs() if d.name == "test_intersect_job_dsl.json"] == [
        "test_intersect_job_ecdh_conf.json",
        "test_intersect_job_rsa_conf.json",
    ]


@pytest.mark.parametrize("name", ["train_lr.yaml", "predict_lr.yaml"])
def test_every_2x_example_plans(name: str) -> None:
    plan = load_job(V2 / name)
    assert plan.format == "fate-2.x-dag"
    assert JobPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_golden(case: str) -> None:
    dsl, conf = GOLDEN_CASES[case]
    plan = load_job(dsl, conf)
    golden = GOLDEN / f"{case}.json"
    if UPDATE_GOLDEN:
        write_json(golden, plan.to_dict())
        golden.write_text(golden.read_text() + "\n")
    assert plan.to_dict() == load_json(golden)
    assert JobPlan.from_dict(load_json(golden)) == plan


def test_alpha_schema_rejected_cleanly() -> None:
    assert _problems(V2 / "lr_train_dag_v2.0.0-alpha.yaml") == [
        "lr_train_dag_v2.0.0-alpha.yaml: schema_version: unsupported schema version '2.0.0.alpha': the 2.0.0 "
        "alpha DAG schema (inputs.artifacts, file-URI readers) is historical; supported: 2.x from 2.0.0.beta "
        "on (e.g. 2.0.0.beta, 2.0.0, 2.1.0, 2.2.0)"
    ]


V1_ADVICE = (
    "this is a FATE DSL v1 job (FATE <= 1.6), which is not supported; convert it to DSL v2: read tables "
    'with a Reader component instead of "args.*" data inputs (its table goes in '
    "component_parameters.role.<role>.<idx>.<reader>.table), move role_parameters.<role>.<cpn>.<param>: "
    "[one value per party] to component_parameters.role.<role>.<idx>.<cpn>.<param>, move "
    'algorithm_parameters to component_parameters.common, and set "dsl_version": 2 in the conf'
)


def test_dsl_v1_rejected_with_advice() -> None:
    assert _problems(
        V1_LEGACY / "test_hetero_lr_train_job_dsl.json", V1_LEGACY / "test_hetero_lr_train_job_conf.json"
    ) == [
        "test_hetero_lr_train_job_dsl.json: components.dataio_0.input.data.data[0]: "
        f'"args.train_data" is a DSL v1 data input: {V1_ADVICE}'
    ]


def test_dsl_v1_detected_from_the_conf_alone() -> None:
    # A v2 dsl with the v1 conf: the conf's role_parameters give it away.
    assert _problems(V1 / "hetero_lr_normal_dsl.json", V1_LEGACY / "test_hetero_lr_train_job_conf.json") == [
        f"test_hetero_lr_train_job_conf.json: role_parameters: role_parameters is a DSL v1 section: {V1_ADVICE}"
    ]


def test_dsl_v1_detected_from_the_dsl_alone() -> None:
    assert _problems(V1_LEGACY / "test_hetero_lr_train_job_dsl.json")[0].startswith(
        'test_hetero_lr_train_job_dsl.json: components.dataio_0.input.data.data[0]: "args.train_data" is a '
        "DSL v1 data input: this is a FATE DSL v1 job"
    )


def test_dsl_v1_detected_from_dsl_version(tmp_path: Path) -> None:
    conf = load_json(V1 / "hetero_lr_normal_conf.json")
    conf["dsl_version"] = 1
    path = write_json(tmp_path / "job_conf.json", conf)
    assert _problems(V1 / "hetero_lr_normal_dsl.json", path) == [
        f"job_conf.json: dsl_version: dsl_version 1: {V1_ADVICE}"
    ]


# --------------------------------------------------------------------------- files and formats


def test_1x_needs_a_conf() -> None:
    assert _problems(V1 / "hetero_lr_normal_dsl.json") == [
        "hetero_lr_normal_dsl.json: a FATE 1.x DSL needs its runtime conf: pass --conf CONF_FILE"
    ]


def test_2x_takes_no_conf() -> None:
    assert _problems(V2 / "train_lr.yaml", V1 / "hetero_lr_normal_conf.json") == [
        "hetero_lr_normal_conf.json: a FATE 2.x DAG carries its own conf (dag.conf); drop --conf"
    ]


def test_conf_given_as_dsl() -> None:
    assert _problems(V1 / "hetero_lr_normal_conf.json") == [
        "hetero_lr_normal_conf.json: this looks like a FATE 1.x runtime conf; give the DSL file first and the "
        "conf with --conf"
    ]


def test_not_a_job_file(tmp_path: Path) -> None:
    path = write_json(tmp_path / "x.json", {"hello": 1})
    assert _problems(path) == [
        "x.json: not a FATE job file: expected 'components' (1.x DSL) or 'dag' (2.x DAG) at the top level"
    ]
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    assert _problems(listed) == ["list.yaml: the top level must be a mapping, got a list"]


def test_missing_conf_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing_conf.json"
    assert _problems(V1 / "hetero_lr_normal_dsl.json", missing) == [f"{missing}: no such file"]


def test_2x_as_json_and_int_party_ids() -> None:
    plan = load_job(FIXTURES / "toy_example_dag.json")
    assert [str(p) for p in plan.parties] == ["guest:9999", "host:10000"]
    assert str(plan.initiator) == "host:10000"
    assert plan.stage == "train"


# --------------------------------------------------------------------------- overrides


def test_1x_overrides_merge_into_the_conf() -> None:
    overrides = {
        "component_parameters": {"common": {"hetero_lr_0": {"max_iter": 3}}},
        "job_parameters": {"common": {"timeout": 600}},
    }
    plan = load_job(V1 / "hetero_lr_normal_dsl.json", V1 / "hetero_lr_normal_conf.json", overrides=overrides)
    lr = plan.task("hetero_lr_0")
    assert {pt.parameters["max_iter"] for pt in lr.parties} == {3}
    assert lr.parties[0].parameters["optimizer"] == "rmsprop"  # the rest of the file is kept
    assert lr.conf == {"timeout": 600}
    assert plan.job_parameters == {"timeout": 600}
    assert plan.source == "hetero_lr_normal_dsl.json + hetero_lr_normal_conf.json + trigger conf"


def test_2x_overrides_merge_into_the_whole_document() -> None:
    overrides = {"dag": {"tasks": {"lr_0": {"parameters": {"epochs": 2}}}, "conf": {"task": {"timeout": 60}}}}
    plan = load_job(V2 / "train_lr.yaml", overrides=overrides)
    assert plan.task("lr_0").parties[0].parameters["epochs"] == 2
    assert plan.task("lr_0").conf == {"timeout": 60}
    assert plan.source == "train_lr.yaml + trigger conf"


def test_problems_from_overrides_name_the_trigger_conf() -> None:
    overrides = {
        "component_parameters": {"role": {"host": {"3": {"reader_0": {"table": {"name": "../etc"}}}}}},
    }
    assert _problems(
        V1 / "hetero_lr_normal_dsl.json", V1 / "hetero_lr_normal_conf.json", overrides=overrides
    ) == [
        "trigger conf: component_parameters.role.host.3: host index 3 out of range (1 host)",
        "trigger conf: component_parameters.role.host.3.reader_0.table.name: invalid table name '../etc': use "
        "letters, digits, '_', '.' and '-' only, starting with a letter, digit or '_', without '..' (a table "
        "name, never a path)",
    ]


def test_overrides_repeating_the_file_keep_the_file_label(tmp_path: Path) -> None:
    # Airflow sends the whole params document back as the run conf: that is not a change.
    conf = load_json(V1 / "hetero_lr_normal_conf.json")
    conf["role"]["host"] = ["bad id"]
    path = write_json(tmp_path / "job_conf.json", conf)
    problems = _problems(V1 / "hetero_lr_normal_dsl.json", path, overrides=conf)
    assert problems[0] == (
        "job_conf.json: role.host[0]: invalid party id 'bad id': only letters, digits, '_' and '-' are allowed"
    )
    plan = load_job(
        V2 / "train_lr.yaml",
        overrides=job_conf_document(JobSource("t", V2 / "train_lr.yaml", None, "fate-2.x-dag")),
    )
    assert plan.source == "train_lr.yaml"


def test_overrides_must_be_plain_data() -> None:
    with pytest.raises(DslError) as excinfo:
        load_job(V2 / "train_lr.yaml", overrides=["nope"])  # type: ignore[arg-type]
    assert excinfo.value.problems == ["trigger conf: expected a mapping, got a list"]
    with pytest.raises(DslError) as excinfo:
        load_job(V2 / "train_lr.yaml", overrides={"dag": {1: "x"}})  # type: ignore[dict-item]
    assert excinfo.value.problems == [
        "trigger conf: dag: key 1 is an integer; keys must be strings (quote it)"
    ]


# --------------------------------------------------------------------------- sources


def test_load_source_and_job_conf_document() -> None:
    v1 = JobSource(
        "hetero_lr_normal",
        V1 / "hetero_lr_normal_dsl.json",
        V1 / "hetero_lr_normal_conf.json",
        "fate-1.x-dsl-v2",
    )
    v2 = JobSource("train_lr", V2 / "train_lr.yaml", None, "fate-2.x-dag")
    assert load_source(v1) == load_job(v1.dsl_path, v1.conf_path)
    assert load_source(v2, overrides={"dag": {"stage": "train"}}) == load_job(v2.dsl_path)
    assert job_conf_document(v1) == load_json(V1 / "hetero_lr_normal_conf.json")
    doc = job_conf_document(v2)
    assert doc["schema_version"] == "2.0.0" and "tasks" in doc["dag"]


def test_job_conf_document_of_1x_without_conf() -> None:
    source = JobSource("x", V1 / "hetero_lr_normal_dsl.json", None, "fate-1.x-dsl-v2")
    with pytest.raises(DslError) as excinfo:
        job_conf_document(source)
    assert excinfo.value.problems == ["hetero_lr_normal_dsl.json: a FATE 1.x DSL needs its runtime conf"]
