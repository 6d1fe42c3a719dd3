from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fate_airflow.core.errors import DslError
from fate_airflow.core.types import Party
from fate_airflow.dsl import JobPlan, load_job

from ._support import V1, load_json, write_json

Mutator = Callable[[dict[str, Any]], None]


def _write(
    tmp_path: Path, base: str = "hetero_lr_normal", *, dsl: Mutator | None = None, conf: Mutator | None = None
) -> tuple[Path, Path]:
    dsl_data = load_json(V1 / f"{base}_dsl.json")
    conf_data = load_json(V1 / f"{base}_conf.json")
    if dsl:
        dsl(dsl_data)
    if conf:
        conf(conf_data)
    return write_json(tmp_path / "job_dsl.json", dsl_data), write_json(tmp_path / "job_conf.json", conf_data)


def _plan(tmp_path: Path, base: str = "hetero_lr_normal", **kw: Mutator) -> JobPlan:
    return load_job(*_write(tmp_path, base, **kw))


def _problems(tmp_path: Path, base: str = "hetero_lr_normal", **kw: Mutator) -> list[str]:
    with pytest.raises(DslError) as excinfo:
        load_job(*_write(tmp_path, base, **kw))
    return excinfo.value.problems


def _parties(plan: JobPlan, task: str) -> list[str]:
    return [str(pt.party) for pt in plan.task(task).parties]


# --------------------------------------------------------------------------- semantics


def test_hetero_lr_normal_parties_and_parameters() -> None:
    plan = load_job(V1 / "hetero_lr_normal_dsl.json", V1 / "hetero_lr_normal_conf.json")
    assert [str(p) for p in plan.parties] == ["guest:9999", "host:10000", "arbiter:10000"]
    assert plan.initiator == Party("guest", "9999")
    assert [t.name for t in plan.tasks] == [
        "reader_0",
        "data_transform_0",
        "intersection_0",
        "hetero_lr_0",
        "evaluation_0",
    ]
    # Reader, DataTransform and Intersection do not run at the arbiter; HeteroLR and Evaluation do.
    assert _parties(plan, "reader_0") == ["guest:9999", "host:10000"]
    assert _parties(plan, "intersection_0") == ["guest:9999", "host:10000"]
    assert _parties(plan, "hetero_lr_0") == ["guest:9999", "host:10000", "arbiter:10000"]
    reader = plan.task("reader_0")
    assert reader.parties[1].parameters == {
        "table": {"name": "breast_hetero_host", "namespace": "experiment"}
    }
    transform = plan.task("data_transform_0")
    assert transform.parties[0].parameters == {"output_format": "dense", "with_label": True}
    assert transform.parties[1].parameters == {"output_format": "dense", "with_label": False}
    assert transform.upstream == ("reader_0",)
    assert plan.task("hetero_lr_0").inputs[0].key == "train_data"
    assert plan.stage == "train" and {t.stage for t in plan.tasks} == {"train"}
    assert {t.implementation for t in plan.tasks} >= {"reader@1.0.0", "hetero_lr@1.0.0"}


def test_multi_host_index_ranges_and_shared_party_id() -> None:
    plan = load_job(V1 / "hetero_lr_multi_host_dsl.json", V1 / "hetero_lr_multi_host_conf.json")
    assert [str(p) for p in plan.parties] == ["guest:9999", "host:10000", "host:9999", "arbiter:10000"]
    assert plan.roles_of("9999") == ("guest", "host")
    assert _parties(plan, "reader_0") == ["guest:9999", "host:10000", "host:9999"]
    reader = plan.task("reader_0")
    host_table = {"table": {"name": "breast_hetero_host", "namespace": "experiment"}}
    assert reader.parties[1].parameters == host_table
    assert reader.parties[2].parameters == host_table  # from "0|1"
    assert [pt.party.role for pt in reader.runs_at("9999")] == ["guest", "host"]


def test_need_run_false_drops_the_party() -> None:
    plan = load_job(V1 / "homo_lr_train_dsl.json", V1 / "homo_lr_train_conf.json")
    evaluation = plan.task("evaluation_0")
    assert _parties(plan, "evaluation_0") == ["guest:9999", "arbiter:10000"]
    assert all("need_run" not in pt.parameters for pt in evaluation.parties)


def test_need_run_true_is_dropped_from_parameters(tmp_path: Path) -> None:
    def conf(c: dict[str, Any]) -> None:
        c["component_parameters"]["common"]["evaluation_0"]["need_run"] = True

    plan = _plan(tmp_path, conf=conf)
    assert _parties(plan, "evaluation_0") == ["guest:9999", "host:10000", "arbiter:10000"]
    assert plan.task("evaluation_0").parties[0].parameters == {"eval_type": "binary"}


def test_index_key_precedence(tmp_path: Path) -> None:
    def conf(c: dict[str, Any]) -> None:
        hosts = c["component_parameters"]["role"]["host"]
        hosts["0"] = {"hetero_lr_0": {"alpha": "single"}}
        hosts["0|1"]["hetero_lr_0"] = {"alpha": "range", "tol": "range"}
        hosts["all"] = {"hetero_lr_0": {"alpha": "all", "tol": "all", "batch_size": "all"}}

    plan = _plan(tmp_path, "hetero_lr_multi_host", conf=conf)
    lr = plan.task("hetero_lr_0")
    first, second = lr.parties[1], lr.parties[2]
    assert (first.parameters["alpha"], first.parameters["tol"], first.parameters["batch_size"]) == (
        "single",
        "range",
        "all",
    )
    assert (second.parameters["alpha"], second.parameters["tol"]) == ("range", "range")
    assert lr.parties[0].parameters["alpha"] == 0.01  # guest keeps the common value


def test_role_parameters_deep_merge_over_common(tmp_path: Path) -> None:
    def conf(c: dict[str, Any]) -> None:
        c["component_parameters"]["role"]["guest"]["0"]["hetero_lr_0"] = {
            "encrypt_param": {"method": "paillier"},
            "cv_param": {"n_splits": 3},
        }

    params = _plan(tmp_path, conf=conf).task("hetero_lr_0").parties[0].parameters
    assert params["encrypt_param"] == {"key_length": 1024, "method": "paillier"}
    assert params["cv_param"] == {"n_splits": 3, "shuffle": False, "random_seed": 103, "need_cv": False}


def test_predict_job_uses_stored_models() -> None:
    plan = load_job(V1 / "hetero_lr_normal_predict_dsl.json", V1 / "hetero_lr_normal_predict_conf.json")
    assert plan.stage == "predict"
    assert [t.name for t in plan.tasks] == ["reader_0", "data_transform_0", "intersection_0", "hetero_lr_0"]
    lr = plan.task("hetero_lr_0")
    assert lr.upstream == ("intersection_0",)
    model = lr.inputs[1]
    assert (model.kind, model.key, model.source, model.producer_task, model.output_key) == (
        "model",
        "model",
        "model_warehouse",
        "hetero_lr_0",
        "model",
    )
    # The example conf leaves model_id/model_version empty: unset, not "".
    assert model.model_id is None and model.model_version is None
    assert plan.job_parameters == {"model_id": "", "model_version": ""}


def test_predict_model_ids_come_from_job_parameters(tmp_path: Path) -> None:
    def conf(c: dict[str, Any]) -> None:
        c["job_parameters"]["common"] = {
            "job_type": "predict",
            "model_id": "arbiter-10000#guest-9999",
            "model_version": 2022,
        }

    plan = _plan(tmp_path, "hetero_lr_normal_predict", conf=conf)
    model = plan.task("data_transform_0").inputs[1]
    assert (model.model_id, model.model_version) == ("arbiter-10000#guest-9999", "2022")


def test_timeout_goes_to_task_conf(tmp_path: Path) -> None:
    def conf(c: dict[str, Any]) -> None:
        c["job_parameters"] = {"common": {"timeout": 7200, "task_cores": 4}}

    plan = _plan(tmp_path, conf=conf)
    assert {tuple(t.conf.items()) for t in plan.tasks} == {(("timeout", 7200),)}
    assert plan.job_parameters == {"timeout": 7200, "task_cores": 4}


def test_dsl_version_as_string_and_isometric_model() -> None:
    plan = load_job(V1 / "fateflow_test_hetero_lr_job_dsl.json", V1 / "fateflow_test_hetero_lr_job_conf.json")
    selection = plan.task("hetero_feature_selection_0")
    assert [(i.kind, i.producer_task, i.output_key) for i in selection.inputs] == [
        ("data", "hetero_feature_binning_0", "train"),
        ("isometric_model", "hetero_feature_binning_0", "hetero_feature_binning"),
    ]
    assert selection.implementation == "hetero_feature_selection@1.0.0"
    assert _parties(plan, "evaluation_0") == ["guest:9999", "arbiter:10000"]


def test_explicit_predict_job_type(tmp_path: Path) -> None:
    def conf(c: dict[str, Any]) -> None:
        c["job_parameters"] = {"common": {"job_type": "predict"}}

    assert _plan(tmp_path, conf=conf).stage == "predict"


# --------------------------------------------------------------------------- validation


def test_cycle_is_named(tmp_path: Path) -> None:
    def dsl(d: dict[str, Any]) -> None:
        d["components"]["intersection_0"]["input"]["data"]["data"] = ["evaluation_0.data"]

    assert _problems(tmp_path, dsl=dsl) == [
        "job_dsl.json: components: cycle: intersection_0 -> hetero_lr_0 -> evaluation_0 -> intersection_0"
    ]


def test_unknown_upstream_component_and_output(tmp_path: Path) -> None:
    def dsl(d: dict[str, Any]) -> None:
        c = d["components"]
        c["hetero_lr_0"]["input"]["data"]["train_data"] = ["intersect_0.data"]
        c["evaluation_0"]["input"]["data"]["data"] = ["hetero_lr_0.train"]
        c["intersection_0"]["input"]["model"] = ["data_transform_0.data"]
        c["data_transform_0"]["input"]["data"]["data"] = ["reader_0"]

    assert _problems(tmp_path, dsl=dsl) == [
        "job_dsl.json: components.data_transform_0.input.data.data[0]: invalid reference 'reader_0': "
        'expected "<component>.<output>"',
        "job_dsl.json: components.intersection_0.input.model[0]: component 'data_transform_0' has no model "
        "output 'data' (its model outputs: model)",
        "job_dsl.json: components.hetero_lr_0.input.data.train_data[0]: unknown component 'intersect_0' in "
        "'intersect_0.data' (did you mean: intersection_0?)",
        "job_dsl.json: components.evaluation_0.input.data.data[0]: component 'hetero_lr_0' has no data output "
        "'train' (its data outputs: data)",
    ]


def test_unknown_module_lists_close_names(tmp_path: Path) -> None:
    def dsl(d: dict[str, Any]) -> None:
        d["components"]["hetero_lr_0"]["module"] = "HeteroLr"
        d["components"]["evaluation_0"]["module"] = "Zzzzz"
        d["components"]["intersection_0"]["module"] = "psi"

    assert _problems(tmp_path, dsl=dsl) == [
        "job_dsl.json: components.intersection_0.module: unknown component module 'psi': not in the catalogue; "
        "'psi' is a FATE 2.x component_ref (its 1.x module: Intersection)",
        "job_dsl.json: components.hetero_lr_0.module: unknown component module 'HeteroLr': not in the "
        "catalogue; close known names: HeteroLR, HeteroLinR, HeteroSSHELR",
        "job_dsl.json: components.evaluation_0.module: unknown component module 'Zzzzz': not in the catalogue",
    ]


def test_role_index_out_of_range(tmp_path: Path) -> None:
    def conf(c: dict[str, Any]) -> None:
        hosts = c["component_parameters"]["role"]["host"]
        hosts["3"] = {"reader_0": {}}
        hosts["0|2"] = {"reader_0": {}}
        c["component_parameters"]["role"]["arbiter"] = {"0": {"hetero_lr_0": {}}, "1": {}}
        hosts["first"] = {}

    assert _problems(tmp_path, "hetero_lr_multi_host", conf=conf) == [
        "job_conf.json: component_parameters.role.host.3: host index 3 out of range (2 hosts)",
        "job_conf.json: component_parameters.role.host.0|2: host index 2 out of range (2 hosts)",
        "job_conf.json: component_parameters.role.host.first: invalid party index key 'first': use \"0\", "
        '"0|1" or "all"',
        "job_conf.json: component_parameters.role.arbiter.1: arbiter index 1 out of range (1 arbiter)",
    ]


def test_role_without_parties_has_no_index(tmp_path: Path) -> None:
    def conf(c: dict[str, Any]) -> None:
        del c["role"]["arbiter"]
        c["component_parameters"]["role"]["arbiter"] = {"0": {"hetero_lr_0": {}}}

    assert _problems(tmp_path, conf=conf) == [
        "job_conf.json: component_parameters.role.arbiter.0: arbiter index 0 out of range (0 arbiters)"
    ]


def test_unknown_roles(tmp_path: Path) -> None:
    def conf(c: dict[str, Any]) -> None:
        c["role"]["gust"] = [9999]
        c["component_parameters"]["role"]["hots"] = {"0": {}}
        c["initiator"]["role"] = "leader"

    assert _problems(tmp_path, conf=conf) == [
        "job_conf.json: role.gust: unknown role 'gust'; expected one of guest, host, arbiter, local",
        "job_conf.json: initiator.role: unknown role 'leader'; expected one of guest, host, arbiter, local",
        "job_conf.json: component_parameters.role.hots: unknown role 'hots'; expected one of guest, host, "
        "arbiter, local",
    ]


def test_invalid_party_ids(tmp_path: Path) -> None:
    def conf(c: dict[str, Any]) -> None:
        c["role"]["host"] = ["10000/../x", True, 10000, 10000]
        c["initiator"]["party_id"] = "guest 9999"

    assert _problems(tmp_path, conf=conf) == [
        "job_conf.json: role.host[0]: invalid party id '10000/../x': only letters, digits, '_' and '-' are "
        "allowed",
        "job_conf.json: role.host[1]: party id True must be a string or an integer",
        "job_conf.json: role.host[3]: host 10000 listed twice",
        "job_conf.json: initiator.party_id: invalid party id 'guest 9999': only letters, digits, '_' and '-' "
        "are allowed",
        # Index 2 is a valid host with no table of its own (index 0 had it).
        "job_conf.json: component_parameters.role.host.2.reader_0.table: missing (required): the table "
        "reader_0 reads at host 10000",
    ]


def test_initiator_must_be_a_party(tmp_path: Path) -> None:
    def conf(c: dict[str, Any]) -> None:
        c["initiator"] = {"role": "host", "party_id": 9999}

    assert _problems(tmp_path, conf=conf) == [
        "job_conf.json: initiator: host 9999 is not a party of the job (see role.host)"
    ]


@pytest.mark.parametrize(
    ("value", "what"),
    [
        ("../etc/passwd", "name"),
        ("/abs", "name"),
        ("a..b", "name"),
        (".hidden", "name"),
        ("-x", "name"),
        ("a b", "name"),
        ("", "name"),
    ],
)
def test_reader_table_name_must_be_an_identifier(tmp_path: Path, value: str, what: str) -> None:
    def conf(c: dict[str, Any]) -> None:
        c["component_parameters"]["role"]["host"]["0"]["reader_0"]["table"][what] = value

    assert _problems(tmp_path, conf=conf) == [
        f"job_conf.json: component_parameters.role.host.0.reader_0.table.{what}: invalid table {what} "
        f"{value!r}: use letters, digits, '_', '.' and '-' only, starting with a letter, digit or '_', "
        f"without '..' (a table {what}, never a path)"
    ]


def test_reader_table_namespace_in_common_and_types(tmp_path: Path) -> None:
    def conf(c: dict[str, Any]) -> None:
        c["component_parameters"]["common"]["reader_0"] = {"table": {"namespace": "ns/x"}}
        c["component_parameters"]["role"]["guest"]["0"]["reader_0"]["table"]["name"] = 5
        c["component_parameters"]["role"]["host"]["0"]["reader_0"]["table"] = "experiment.breast"

    assert _problems(tmp_path, conf=conf) == [
        "job_conf.json: component_parameters.common.reader_0.table.namespace: invalid table namespace 'ns/x': "
        "use letters, digits, '_', '.' and '-' only, starting with a letter, digit or '_', without '..' "
        "(a table namespace, never a path)",
        "job_conf.json: component_parameters.role.host.0.reader_0.table: expected a mapping {name, namespace}, "
        "got a string",
        "job_conf.json: component_parameters.role.guest.0.reader_0.table.name: table name must be a string, "
        "got an integer",
    ]


def test_reader_without_table(tmp_path: Path) -> None:
    def conf(c: dict[str, Any]) -> None:
        del c["component_parameters"]["role"]["host"]["0"]["reader_0"]
        del c["component_parameters"]["role"]["guest"]["0"]["reader_0"]["table"]["namespace"]

    assert _problems(tmp_path, conf=conf) == [
        "job_conf.json: component_parameters.role.guest.0.reader_0.table.namespace: missing (required): the "
        "table reader_0 reads at guest 9999",
        "job_conf.json: component_parameters.role.host.0.reader_0.table: missing (required): the table "
        "reader_0 reads at host 10000",
    ]


def test_component_names(tmp_path: Path) -> None:
    def dsl(d: dict[str, Any]) -> None:
        d["components"]["bad name"] = {
            "module": "Evaluation",
            "input": {"data": {"data": ["hetero_lr_0.data"]}},
        }
        d["components"]["x.y"] = {"module": "Evaluation"}

    assert _problems(tmp_path, dsl=dsl) == [
        "job_dsl.json: components.bad name: invalid component name 'bad name': use letters, digits, '_' and '-' "
        "only (at most 128 characters)",
        "job_dsl.json: components.x.y: invalid component name 'x.y': use letters, digits, '_' and '-' only "
        "(at most 128 characters)",
    ]


def test_missing_sections(tmp_path: Path) -> None:
    dsl_path = write_json(tmp_path / "a_dsl.json", {"components": {}})
    conf_path = write_json(tmp_path / "a_conf.json", {"dsl_version": 2})
    with pytest.raises(DslError) as excinfo:
        load_job(dsl_path, conf_path)
    assert excinfo.value.problems == [
        "a_dsl.json: components: no components",
        "a_conf.json: role: missing (required)",
        "a_conf.json: initiator: missing (required)",
    ]


def test_wrong_types(tmp_path: Path) -> None:
    def dsl(d: dict[str, Any]) -> None:
        c = d["components"]
        c["reader_0"]["output"] = {"data": "data"}
        c["data_transform_0"]["input"]["data"] = ["reader_0.data"]
        c["intersection_0"]["input"]["data"]["data"] = "data_transform_0.data"
        c["evaluation_0"] = ["Evaluation"]
        c["hetero_lr_0"]["input"]["cash"] = []
        c["hetero_lr_0"]["output"]["logs"] = []

    def conf(c: dict[str, Any]) -> None:
        c["role"]["guest"] = 9999
        c["component_parameters"]["common"]["hetero_lr_0"] = "fast"
        c["component_parameters"]["common"]["evaluation_0"] = {"need_run": "no"}
        c["job_parameters"] = {"common": []}

    assert _problems(tmp_path, dsl=dsl, conf=conf) == [
        "job_dsl.json: components.reader_0.output.data: expected a list of output names, got a string",
        "job_dsl.json: components.data_transform_0.input.data: expected a mapping of data inputs, got a list",
        "job_dsl.json: components.intersection_0.input.data.data: expected a list of "
        '"<component>.<output>" references, got a string',
        "job_dsl.json: components.hetero_lr_0.output.logs: unknown output kind 'logs'; expected one of data, "
        "model, cache",
        "job_dsl.json: components.hetero_lr_0.input.cash: unknown input kind 'cash'; expected one of data, "
        "model, isometric_model, cache",
        "job_dsl.json: components.evaluation_0: expected a mapping, got a list",
        "job_conf.json: role.guest: expected a list of party ids, got an integer",
        "job_conf.json: initiator: guest 9999 is not a party of the job (see role.guest)",
        "job_conf.json: job_parameters.common: expected a mapping, got a list",
        "job_conf.json: component_parameters.common.hetero_lr_0: expected a mapping of parameters, got a string",
        "job_conf.json: component_parameters.common.evaluation_0.need_run: expected true or false, got a string",
        "job_conf.json: component_parameters.role.guest.0: guest index 0 out of range (0 guests)",
    ]


def test_unknown_component_in_parameters(tmp_path: Path) -> None:
    def conf(c: dict[str, Any]) -> None:
        c["component_parameters"]["common"]["hetero_lr_1"] = {}

    assert _problems(tmp_path, conf=conf) == [
        "job_conf.json: component_parameters.common.hetero_lr_1: no component 'hetero_lr_1' in the dsl "
        "(did you mean: hetero_lr_0?)"
    ]


def test_dsl_version_missing_or_unsupported(tmp_path: Path) -> None:
    def missing(c: dict[str, Any]) -> None:
        del c["dsl_version"]

    def three(c: dict[str, Any]) -> None:
        c["dsl_version"] = 3

    assert _problems(tmp_path, conf=missing) == [
        'job_conf.json: dsl_version: missing; FATE reads a conf without it as DSL v1: add "dsl_version": 2'
    ]
    assert _problems(tmp_path, conf=three) == [
        'job_conf.json: dsl_version: unsupported dsl_version 3; set "dsl_version": 2'
    ]


def test_job_type(tmp_path: Path) -> None:
    def bad(c: dict[str, Any]) -> None:
        c["job_parameters"] = {"common": {"job_type": "infer"}}

    def train(c: dict[str, Any]) -> None:
        c["job_parameters"] = {"common": {"job_type": "train"}}

    assert _problems(tmp_path, conf=bad) == [
        "job_conf.json: job_parameters.common.job_type: unknown job_type 'infer'; expected one of train, predict"
    ]
    assert _problems(tmp_path, "hetero_lr_normal_predict", conf=train) == [
        "job_dsl.json: components.data_transform_0.input.model[0]: 'pipeline.data_transform_0.model' refers "
        'to a stored model, which only a predict job can use (job_parameters.common.job_type is "train")'
    ]


def test_pipeline_refs_only_for_models(tmp_path: Path) -> None:
    def dsl(d: dict[str, Any]) -> None:
        c = d["components"]
        c["intersection_0"]["input"]["data"]["data"] = ["pipeline.data_transform_0.data"]
        c["hetero_lr_0"]["input"]["model"] = ["pipeline.hetero_lr_0"]

    assert _problems(tmp_path, "hetero_lr_normal_predict", dsl=dsl) == [
        "job_dsl.json: components.hetero_lr_0.input.model[0]: invalid reference 'pipeline.hetero_lr_0': "
        'expected "pipeline.<component>.<model>"',
        "job_dsl.json: components.intersection_0.input.data.data[0]: 'pipeline.data_transform_0.data' names a "
        "stored model; use it in input.model, not input.data",
    ]


def test_many_problems_reported_at_once(tmp_path: Path) -> None:
    def dsl(d: dict[str, Any]) -> None:
        d["components"]["hetero_lr_0"]["module"] = "HeteroLRX"
        d["components"]["evaluation_0"]["input"]["data"]["data"] = ["hetero_lr_1.data"]

    def conf(c: dict[str, Any]) -> None:
        c["role"]["host"] = ["10 000"]
        c["component_parameters"]["role"]["host"]["2"] = {}
        c["component_parameters"]["role"]["guest"]["0"]["reader_0"]["table"]["name"] = "../x"

    problems = _problems(tmp_path, dsl=dsl, conf=conf)
    assert problems == [
        "job_dsl.json: components.hetero_lr_0.module: unknown component module 'HeteroLRX': not in the "
        "catalogue; close known names: HeteroLR, HeteroLinR, HeteroSSHELR",
        "job_conf.json: role.host[0]: invalid party id '10 000': only letters, digits, '_' and '-' are allowed",
        "job_conf.json: component_parameters.role.host.2: host index 2 out of range (1 host)",
        "job_conf.json: component_parameters.role.guest.0.reader_0.table.name: invalid table name '../x': use "
        "letters, digits, '_', '.' and '-' only, starting with a letter, digit or '_', without '..' (a table "
        "name, never a path)",
        "job_dsl.json: components.evaluation_0.input.data.data[0]: unknown component 'hetero_lr_1' in "
        "'hetero_lr_1.data' (did you mean: hetero_lr_0?)",
    ]


def test_component_without_any_party_of_its_roles(tmp_path: Path) -> None:
    def dsl(d: dict[str, Any]) -> None:
        d["components"]["upload_0"] = {"module": "Upload"}

    assert _problems(tmp_path, dsl=dsl) == [
        "job_dsl.json: components.upload_0.module: Upload runs at none of the job's parties (it runs at local)"
    ]


def test_control_characters_in_keys_stay_on_one_line(tmp_path: Path) -> None:
    def dsl(d: dict[str, Any]) -> None:
        d["components"]["bad\nname"] = {"module": "Evaluation"}

    assert _problems(tmp_path, dsl=dsl) == [
        "job_dsl.json: components.bad\\nname: invalid component name 'bad\\nname': use letters, digits, '_' "
        "and '-' only (at most 128 characters)"
    ]
