from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from fate_airflow.core.errors import DslError
from fate_airflow.core.types import InputRef, Party
from fate_airflow.dsl import JobPlan, load_job

from ._support import FIXTURES, V2, write_json

Mutator = Callable[[dict[str, Any]], None]
GUEST = {"role": "guest", "party_id": ["9999"]}
HOST = {"role": "host", "party_id": ["9998"]}
ARBITER = {"role": "arbiter", "party_id": ["9998"]}


def _doc(name: str = "train_lr.yaml") -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load((V2 / name).read_text())
    return data


def _write(tmp_path: Path, mutate: Mutator | None = None, base: str = "train_lr.yaml") -> Path:
    data = _doc(base)
    if mutate:
        mutate(data)
    return write_json(tmp_path / "dag.json", data)


def _problems(tmp_path: Path, mutate: Mutator, base: str = "train_lr.yaml") -> list[str]:
    with pytest.raises(DslError) as excinfo:
        load_job(_write(tmp_path, mutate, base))
    return excinfo.value.problems


def _parties(plan: JobPlan, task: str) -> list[str]:
    return [str(pt.party) for pt in plan.task(task).parties]


# --------------------------------------------------------------------------- semantics


def test_train_lr() -> None:
    plan = load_job(V2 / "train_lr.yaml")
    assert [str(p) for p in plan.parties] == ["guest:9999", "host:9998", "arbiter:9998"]
    assert plan.initiator == Party("guest", "9999")
    assert [t.name for t in plan.tasks] == [
        "reader_0",
        "psi_0",
        "scale_0",
        "binning_0",
        "selection_0",
        "lr_0",
        "evaluation_0",
    ]
    assert _parties(plan, "reader_0") == ["guest:9999", "host:9998"]  # arbiter absent
    assert plan.task("reader_0").parties[1].parameters == {
        "name": "breast_hetero_host",
        "namespace": "experiment",
    }
    assert _parties(plan, "lr_0") == ["guest:9999", "host:9998", "arbiter:9998"]  # no `parties`: all roles
    assert plan.task("selection_0").upstream == ("binning_0", "scale_0")
    assert plan.task("reader_0").stage == "default" and plan.task("lr_0").stage == "train"
    assert plan.task("lr_0").implementation == "hetero_lr@1.0.0"
    assert plan.task("evaluation_0").inputs == (
        InputRef(
            kind="data",
            key="input_datas",
            source="task",
            producer_task="lr_0",
            output_key="train_output_data",
            parties=(Party("guest", "9999"),),
        ),
    )
    assert dict(plan.task("psi_0").outputs) == {"data": ("output_data",)}


def test_predict_lr_uses_warehouses_without_edges() -> None:
    plan = load_job(V2 / "predict_lr.yaml")
    assert plan.stage == "predict"
    assert plan.task("psi_0").upstream == ()
    assert plan.task("psi_0").inputs == (
        InputRef(
            kind="data",
            key="input_data",
            source="data_warehouse",
            namespace="experiment",
            name="breast_hetero_guest",
            parties=(Party("guest", "9999"),),
        ),
        InputRef(
            kind="data",
            key="input_data",
            source="data_warehouse",
            namespace="experiment",
            name="breast_hetero_host",
            parties=(Party("host", "9998"),),
        ),
    )
    scale = plan.task("scale_0")
    assert scale.upstream == ("psi_0",)
    assert scale.inputs[1] == InputRef(
        kind="model",
        key="input_model",
        source="model_warehouse",
        producer_task="scale_0",
        output_key="output_model",
        model_id="202309081631313722080",
        model_version="0",
    )
    # The older `roles:` key restricts consumers by role.
    assert plan.task("evaluation_0").inputs[0].parties == (Party("guest", "9999"),)
    assert plan.task("lr_0").inputs[1].parties == (Party("guest", "9999"), Party("host", "9998"))
    assert plan.task("scale_0").stage == "predict"


def test_party_conf_layers() -> None:
    plan = load_job(FIXTURES / "party_conf_dag.yaml")
    assert plan.initiator == Party("host", "9998")  # scheduler_party_id; host before arbiter
    reader = plan.task("reader_0")
    assert reader.conf == {"timeout": 3600, "engine_run": {"cores": 2}}
    assert reader.conf_for(Party("guest", "9999")) == {"timeout": 3600, "engine_run": {"cores": 4}}
    assert reader.conf_for(Party("host", "9997")) == {"timeout": 7200, "engine_run": {"cores": 2}}
    lr = plan.task("lr_0")
    assert lr.conf_for(Party("arbiter", "9998")) == {"timeout": 600, "engine_run": {"cores": 2}}
    assert lr.conf_for(Party("guest", "9999")) == {"timeout": 600, "engine_run": {"cores": 4}}
    assert lr.parties[2].parameters == {
        "epochs": 5,
        "batch_size": None,
        "optimizer": {"method": "adam", "penalty": "l2"},
    }
    assert _parties(plan, "psi_0") == ["guest:9999", "host:9998", "host:9997"]  # psi has no arbiter role
    with pytest.raises(KeyError):
        plan.task("eval_0").conf_for(Party("host", "9998"))


def test_initiator_party_id_and_first_guest(tmp_path: Path) -> None:
    def initiator(d: dict[str, Any]) -> None:
        d["dag"]["conf"] = {"initiator_party_id": "9998"}

    assert load_job(_write(tmp_path, initiator)).initiator == Party("host", "9998")

    def shared(d: dict[str, Any]) -> None:
        d["dag"]["parties"] = [GUEST, {"role": "host", "party_id": ["9999", "9998"]}, ARBITER]
        d["dag"]["conf"] = {"scheduler_party_id": "9999"}
        d["dag"]["party_tasks"]["host_9998"]["parties"] = [{"role": "host", "party_id": ["9998", "9999"]}]
        d["dag"]["tasks"]["reader_0"]["parties"] = [GUEST, {"role": "host", "party_id": ["9999", "9998"]}]
        d["dag"]["tasks"]["psi_0"].pop("parties")

    plan = load_job(_write(tmp_path, shared))
    assert plan.initiator == Party("guest", "9999")
    assert plan.roles_of("9999") == ("guest", "host")
    # No `parties`: every job party whose role psi supports (not the arbiter).
    assert _parties(plan, "psi_0") == ["guest:9999", "host:9999", "host:9998"]


def test_party_tasks_inputs_override_task_inputs(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["dag"]["party_tasks"]["host_9998"]["tasks"]["psi_0"] = {
            "inputs": {"data": {"input_data": {"data_warehouse": {"name": "other", "namespace": "ns"}}}}
        }

    psi = load_job(_write(tmp_path, mutate)).task("psi_0")
    assert psi.upstream == ("reader_0",)
    assert psi.inputs == (
        InputRef(
            "data",
            "input_data",
            "task",
            producer_task="reader_0",
            output_key="output_data",
            parties=(Party("guest", "9999"),),
        ),
        InputRef(
            "data",
            "input_data",
            "data_warehouse",
            namespace="ns",
            name="other",
            parties=(Party("host", "9998"),),
        ),
    )


def test_model_id_in_the_input_wins(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["dag"]["tasks"]["lr_0"]["inputs"]["model"]["input_model"]["model_warehouse"]["model_id"] = "m1"
        d["dag"]["tasks"]["lr_0"]["inputs"]["model"]["input_model"]["model_warehouse"]["model_version"] = 3

    ref = load_job(_write(tmp_path, mutate, "predict_lr.yaml")).task("lr_0").inputs[1]
    assert (ref.model_id, ref.model_version) == ("m1", "3")


def test_schema_versions_accepted(tmp_path: Path) -> None:
    for version in ("2.0.0", "2.1.0", "2.2.0", "2.0.0.beta", "2.0.0-rc1"):

        def mutate(d: dict[str, Any], v: str = version) -> None:
            d["schema_version"] = v

        assert load_job(_write(tmp_path, mutate)).format == "fate-2.x-dag"


# --------------------------------------------------------------------------- validation


def test_schema_version_problems(tmp_path: Path) -> None:
    def missing(d: dict[str, Any]) -> None:
        del d["schema_version"]

    def three(d: dict[str, Any]) -> None:
        d["schema_version"] = "3.0.0"

    def number(d: dict[str, Any]) -> None:
        d["schema_version"] = 2.0

    supported = "supported: 2.x from 2.0.0.beta on (e.g. 2.0.0.beta, 2.0.0, 2.1.0, 2.2.0)"
    assert _problems(tmp_path, missing) == [f"dag.json: schema_version: missing (required); {supported}"]
    assert _problems(tmp_path, three) == [
        f"dag.json: schema_version: unsupported schema version '3.0.0'; {supported}"
    ]
    assert _problems(tmp_path, number) == [
        f"dag.json: schema_version: unsupported schema version 2.0; {supported}"
    ]


def test_missing_sections(tmp_path: Path) -> None:
    def no_dag(d: dict[str, Any]) -> None:
        del d["dag"]

    def empty_dag(d: dict[str, Any]) -> None:
        d["dag"] = {}
        d["kind"] = "bfia"

    assert _problems(tmp_path, no_dag) == ["dag.json: dag: missing (required)"]
    assert _problems(tmp_path, empty_dag) == [
        "dag.json: kind: unsupported kind 'bfia'; only 'fate' DAGs are supported",
        "dag.json: dag.parties: missing (required)",
        "dag.json: dag.tasks: missing (required)",
    ]


def test_unknown_component_ref(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["dag"]["tasks"]["lr_0"]["component_ref"] = "coordinated_lrr"
        d["dag"]["tasks"]["scale_0"]["component_ref"] = "HeteroLR"

    assert _problems(tmp_path, mutate) == [
        "dag.json: dag.tasks.lr_0.component_ref: unknown component_ref 'coordinated_lrr': not in the catalogue; "
        "close known names: coordinated_lr, coordinated_linr, coordinated_poisson",
        "dag.json: dag.tasks.scale_0.component_ref: unknown component_ref 'HeteroLR': not in the catalogue; "
        "'HeteroLR' is a FATE 1.x module name (its 2.x component_ref: coordinated_lr)",
    ]


def test_unknown_producer_and_output(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        tasks = d["dag"]["tasks"]
        tasks["psi_0"]["inputs"]["data"]["input_data"]["task_output_artifact"]["producer_task"] = "reader_1"
        tasks["scale_0"]["inputs"]["data"]["train_data"]["task_output_artifact"]["output_artifact_key"] = (
            "data"
        )
        tasks["selection_0"]["inputs"]["data"]["train_data"]["task_output_artifact"][
            "output_artifact_key"
        ] = "output_model"
        del tasks["lr_0"]["inputs"]["data"]["train_data"]["task_output_artifact"]["producer_task"]

    assert _problems(tmp_path, mutate) == [
        "dag.json: dag.tasks.lr_0.inputs.data.train_data.task_output_artifact.producer_task: missing (required)",
        "dag.json: dag.tasks.psi_0.inputs.data.input_data.task_output_artifact.producer_task: unknown task "
        "'reader_1' (did you mean: reader_0?)",
        "dag.json: dag.tasks.scale_0.inputs.data.train_data.task_output_artifact.output_artifact_key: task "
        "'psi_0' (psi) has no data output 'data' (its data outputs: output_data)",
        "dag.json: dag.tasks.selection_0.inputs.data.train_data.task_output_artifact.output_artifact_key: task "
        "'scale_0' (feature_scale) has no data output 'output_model' (its data outputs: train_output_data, "
        "test_output_data)",
    ]


def test_cycle(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["dag"]["tasks"]["scale_0"]["inputs"]["data"]["train_data"]["task_output_artifact"] = {
            "producer_task": "selection_0",
            "output_artifact_key": "train_output_data",
        }

    assert _problems(tmp_path, mutate) == [
        "dag.json: dag.tasks: cycle: binning_0 -> selection_0 -> scale_0 -> binning_0"
    ]


def test_parties_problems(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["dag"]["parties"] = [
            GUEST,
            {"role": "host", "party_id": ["9998", "bad/id"]},
            ARBITER,
            {"role": "judge", "party_id": ["1"]},
            {"role": "host", "party_id": "9997"},
            GUEST,
        ]
        d["dag"]["tasks"]["psi_0"]["parties"] = [GUEST, {"role": "host", "party_id": ["9996"]}]
        d["dag"]["tasks"]["scale_0"]["parties"] = [GUEST, HOST, ARBITER]
        d["dag"]["party_tasks"]["host_9998"]["parties"] = [{"role": "host", "party_id": ["9995"]}]
        d["dag"]["party_tasks"]["host_9998"]["tasks"]["reader_9"] = {}

    assert _problems(tmp_path, mutate) == [
        "dag.json: dag.parties[1].party_id[1]: invalid party id 'bad/id': only letters, digits, '_' and '-' are "
        "allowed",
        "dag.json: dag.parties[3].role: unknown role 'judge'; expected one of guest, host, arbiter, local",
        "dag.json: dag.parties[4].party_id: expected a list of party ids, got a string",
        "dag.json: dag.parties[5].party_id[0]: guest 9999 listed twice",
        "dag.json: dag.tasks.psi_0.parties[1].party_id[0]: host 9996 is not a party of the job (dag.parties)",
        "dag.json: dag.tasks.scale_0.parties[2].role: component 'feature_scale' does not run at role arbiter "
        "(it runs at guest, host)",
        "dag.json: dag.party_tasks.host_9998.parties[0].party_id[0]: host 9995 is not a party of the job "
        "(dag.parties)",
        "dag.json: dag.party_tasks.host_9998.tasks.reader_9: no task 'reader_9' in dag.tasks (did you mean: "
        "reader_0?)",
        "dag.json: dag.tasks.reader_0.parameters.namespace: missing (required): the table reader_0 reads at "
        "host 9998 (set it here or in dag.party_tasks.<alias>.tasks.reader_0.parameters)",
        "dag.json: dag.tasks.reader_0.parameters.name: missing (required): the table reader_0 reads at host "
        "9998 (set it here or in dag.party_tasks.<alias>.tasks.reader_0.parameters)",
    ]


def test_table_identifiers(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["dag"]["party_tasks"]["guest_9999"]["tasks"]["reader_0"]["parameters"]["name"] = "../../etc"
        d["dag"]["tasks"]["reader_0"]["parameters"] = {"namespace": "a/b"}

    assert _problems(tmp_path, mutate) == [
        "dag.json: dag.tasks.reader_0.parameters.namespace: invalid table namespace 'a/b': use letters, digits, "
        "'_', '.' and '-' only, starting with a letter, digit or '_', without '..' (a table namespace, never a "
        "path)",
        "dag.json: dag.party_tasks.guest_9999.tasks.reader_0.parameters.name: invalid table name '../../etc': "
        "use letters, digits, '_', '.' and '-' only, starting with a letter, digit or '_', without '..' (a table "
        "name, never a path)",
    ]


def test_data_warehouse_problems(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        pt = d["dag"]["party_tasks"]
        pt["guest_9999"]["tasks"]["psi_0"]["inputs"]["data"]["input_data"]["data_warehouse"] = {
            "name": "x..y",
            "roles": ["guest"],
        }
        pt["host_9998"]["tasks"]["psi_0"]["inputs"]["data"]["input_data"]["data_warehouse"] = {
            "job_id": "202401010000000000",
            "producer_task": "reader_0",
            "output_artifact_key": "output_data",
        }

    assert _problems(tmp_path, mutate, "predict_lr.yaml") == [
        "dag.json: dag.party_tasks.guest_9999.tasks.psi_0.inputs.data.input_data.data_warehouse.namespace: "
        "missing (required)",
        "dag.json: dag.party_tasks.guest_9999.tasks.psi_0.inputs.data.input_data.data_warehouse.name: invalid "
        "table name 'x..y': use letters, digits, '_', '.' and '-' only, starting with a letter, digit or '_', "
        "without '..' (a table name, never a path)",
        "dag.json: dag.party_tasks.host_9998.tasks.psi_0.inputs.data.input_data.data_warehouse: only stored "
        "tables named by name and namespace are supported",
    ]


def test_input_structure_problems(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        tasks = d["dag"]["tasks"]
        tasks["psi_0"]["inputs"]["artifacts"] = {}
        tasks["scale_0"]["inputs"]["data"]["train_data"] = {"model_warehouse": {}}
        tasks["binning_0"]["inputs"]["data"]["train_data"] = ["scale_0"]
        tasks["lr_0"]["inputs"]["data"]["train_data"]["task_output_artifact"]["roles"] = ["guest", "arbiter"]
        del tasks["lr_0"]["inputs"]["data"]["train_data"]["task_output_artifact"]["parties"]
        tasks["evaluation_0"]["stage"] = "eval"
        tasks["bad.name"] = {"component_ref": "evaluation"}

    assert _problems(tmp_path, mutate) == [
        "dag.json: dag.tasks.binning_0.inputs.data.train_data: expected a mapping, got a list",
        "dag.json: dag.tasks.evaluation_0.stage: unknown stage 'eval'; expected one of train, predict, default, "
        "cross_validation",
        "dag.json: dag.tasks.psi_0.inputs.artifacts: unknown input kind 'artifacts'; expected data or model",
        "dag.json: dag.tasks.scale_0.inputs.data.train_data.model_warehouse: unknown data input source "
        "'model_warehouse'; expected task_output_artifact or data_warehouse",
        "dag.json: dag.tasks.bad.name: invalid task name 'bad.name': use letters, digits, '_' and '-' only (at "
        "most 128 characters)",
        "dag.json: dag.tasks.lr_0.inputs.data.train_data.task_output_artifact: producer task 'selection_0' does "
        "not run at arbiter 9998",
    ]


def test_input_parties_must_be_where_tasks_run(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        tasks = d["dag"]["tasks"]
        tasks["evaluation_0"]["inputs"]["data"]["input_datas"]["task_output_artifact"][0]["parties"] = [HOST]
        artifact = tasks["lr_0"]["inputs"]["data"]["train_data"]["task_output_artifact"]
        del artifact["parties"]
        artifact["roles"] = ["arbiter"]

    assert _problems(tmp_path, mutate) == [
        "dag.json: dag.tasks.evaluation_0.inputs.data.input_datas.task_output_artifact[0].parties: task "
        "'evaluation_0' does not run at host 9998",
        "dag.json: dag.tasks.lr_0.inputs.data.train_data.task_output_artifact: producer task 'selection_0' does "
        "not run at arbiter 9998",
    ]


def test_scheduler_party_must_be_in_the_job(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["dag"]["conf"] = {"scheduler_party_id": "10001"}

    assert _problems(tmp_path, mutate) == [
        "dag.json: dag.conf.scheduler_party_id: party 10001 is not a party of the job (dag.parties)"
    ]


def test_many_problems_at_once(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["dag"]["stage"] = "fit"
        d["dag"]["tasks"]["lr_0"]["component_ref"] = "lr"
        d["dag"]["tasks"]["psi_0"]["parties"] = [{"role": "host", "party_id": ["x y"]}]
        d["dag"]["party_tasks"]["guest_9999"]["tasks"]["reader_0"]["parameters"]["namespace"] = "/tmp"

    assert _problems(tmp_path, mutate) == [
        "dag.json: dag.stage: unknown stage 'fit'; expected one of train, predict, default, cross_validation",
        "dag.json: dag.tasks.lr_0.component_ref: unknown component_ref 'lr': not in the catalogue",
        "dag.json: dag.tasks.psi_0.parties[0].party_id[0]: invalid party id 'x y': only letters, digits, '_' and "
        "'-' are allowed",
        "dag.json: dag.party_tasks.guest_9999.tasks.reader_0.parameters.namespace: invalid table namespace "
        "'/tmp': use letters, digits, '_', '.' and '-' only, starting with a letter, digit or '_', without '..' "
        "(a table namespace, never a path)",
    ]


def test_yaml_bomb_in_a_dag_fails_fast(tmp_path: Path) -> None:
    lines = ["schema_version: 2.0.0", 'x0: &x0 ["a","a","a","a","a","a","a","a","a","a"]']
    for i in range(1, 15):
        lines.append(f"x{i}: &x{i} [" + ",".join([f"*x{i - 1}"] * 10) + "]")
    lines.append("dag: {parties: *x14}")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    with pytest.raises(DslError) as excinfo:
        load_job(path)
    assert time.perf_counter() - started < 1.0
    assert excinfo.value.problems == [
        "bomb.yaml: line 2, column 5: YAML anchor '&x0' refused: anchors and aliases are not allowed in job "
        "files; write the values out"
    ]


def test_task_running_nowhere(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["dag"]["tasks"]["upload_0"] = {"component_ref": "upload"}
        d["dag"]["tasks"]["psi_0"]["parties"] = []

    assert _problems(tmp_path, mutate) == [
        "dag.json: dag.tasks.psi_0.parties: empty list: leave it out to run at every supported party",
        "dag.json: dag.tasks.upload_0: component 'upload' runs at none of the job's parties (it runs at local)",
    ]
