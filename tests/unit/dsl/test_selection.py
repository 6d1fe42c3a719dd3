"""Plan-time provider selection (explicit, native, installed FATE, error) and integer parameter keys."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from fate_airflow.core.errors import DslError
from fate_airflow.core.providers import ProviderInfo, native_provider
from fate_airflow.dsl import JobPlan, fate_component, load_job
from fate_airflow.dsl.catalogue import ENTRIES
from tests.conftest import FATE_EXAMPLES, SHARED

#: FATE 2.2's components, as `python -m fate.components component list` prints them (pyfate 2.2.0).
FATE_22_COMPONENTS = (
    "feature_scale", "reader", "coordinated_lr", "coordinated_linr", "homo_nn", "hetero_nn", "homo_lr",
    "hetero_secureboost", "dataframe_transformer", "psi", "evaluation", "artifact_test", "statistics",
    "hetero_feature_binning", "hetero_feature_selection", "feature_correlation", "union", "sample",
    "data_split", "sshe_lr", "sshe_linr", "toy_example", "dataframe_io_test", "multi_model_test", "cv_test2",
)  # fmt: skip
FATE = ProviderInfo("fate", "2.2.0", python="/envs/fate/bin/python", components=FATE_22_COMPONENTS)
WITH_FATE = [native_provider(), FATE]
NATIVE_ONLY = [native_provider()]
INSTALL = "run `fate-airflow provider install fate==2.2.0`"

GH = [{"role": "guest", "party_id": ["9999"]}, {"role": "host", "party_id": ["10000"]}]


def _out(producer: str, key: str = "output_data") -> dict[str, Any]:
    return {"task_output_artifact": {"producer_task": producer, "output_artifact_key": key}}


def base_dag() -> dict[str, Any]:
    """reader → psi → hetero_secureboost → evaluation, guest 9999 and host 10000."""
    return {
        "schema_version": "2.2.0",
        "dag": {
            "parties": copy.deepcopy(GH),
            "party_tasks": {
                "guest_9999": {
                    "parties": [GH[0]],
                    "tasks": {"reader_0": {"parameters": {"name": "breast_hetero_guest", "namespace": "e"}}},
                },
                "host_10000": {
                    "parties": [GH[1]],
                    "tasks": {"reader_0": {"parameters": {"name": "breast_hetero_host", "namespace": "e"}}},
                },
            },
            "tasks": {
                "reader_0": {"component_ref": "reader"},
                "psi_0": {"component_ref": "psi", "inputs": {"data": {"input_data": _out("reader_0")}}},
                "sbt_0": {
                    "component_ref": "hetero_secureboost",
                    "inputs": {"data": {"train_data": _out("psi_0")}},
                    "parameters": {"num_trees": 2},
                },
                "eval_0": {
                    "component_ref": "evaluation",
                    "inputs": {"data": {"input_datas": _out("sbt_0", "train_output_data")}},
                    "parties": [GH[0]],
                },
            },
        },
    }


def plan(
    tmp_path: Path,
    providers: Sequence[ProviderInfo] | None,
    mutate: Callable[[dict[str, Any]], None] | None = None,
) -> JobPlan:
    data = base_dag()
    if mutate is not None:
        mutate(data)
    path = tmp_path / "dag.json"
    path.write_text(json.dumps(data))
    return load_job(path, providers=providers)


def problems(
    tmp_path: Path,
    providers: Sequence[ProviderInfo] | None,
    mutate: Callable[[dict[str, Any]], None] | None = None,
) -> list[str]:
    with pytest.raises(DslError) as excinfo:
        plan(tmp_path, providers, mutate)
    return excinfo.value.problems


def chosen(p: JobPlan) -> dict[str, str]:
    return {t.name: t.provider for t in p.tasks}


def with_binning(d: dict[str, Any]) -> None:
    """Add binning_0 (psi → hetero_feature_binning): a component only FATE's provider has."""
    d["dag"]["tasks"]["binning_0"] = {
        "component_ref": "hetero_feature_binning",
        "inputs": {"data": {"train_data": _out("psi_0")}},
    }


# ---------------------------------------------------------------------------- the rule, case by case


def test_without_providers_nothing_changes(tmp_path: Path) -> None:
    # Callers that do not know the party's providers plan as before: planned-only entries are native.
    assert set(chosen(plan(tmp_path, None)).values()) == {"native"}


def test_native_where_implemented_else_the_installed_fate_provider(tmp_path: Path) -> None:
    p = plan(tmp_path, WITH_FATE, with_binning)
    assert chosen(p) == {
        "reader_0": "native",
        "psi_0": "native",
        "sbt_0": "native",
        "binning_0": "fate:2.2.0",
        "eval_0": "native",
    }
    assert fate_component(p, p.task("binning_0")) == "hetero_feature_binning"
    assert fate_component(p, p.task("sbt_0")) is None
    assert fate_component(p, p.task("psi_0")) is None

    # A native component asked for what it lacks runs FATE's of the same name.
    def ou(d: dict[str, Any]) -> None:
        d["dag"]["tasks"]["sbt_0"]["parameters"]["he_param"] = {"kind": "ou", "key_length": 1024}

    p = plan(tmp_path, WITH_FATE, ou)
    assert p.task("sbt_0").provider == "fate:2.2.0"
    assert fate_component(p, p.task("sbt_0")) == "hetero_secureboost"


def test_missing_fate_provider_is_a_plan_error(tmp_path: Path) -> None:
    assert problems(tmp_path, NATIVE_ONLY, with_binning) == [
        "dag.json: dag.tasks.binning_0.component_ref: component hetero_feature_binning (task binning_0) "
        f"needs the FATE provider: {INSTALL}"
    ]
    assert set(chosen(plan(tmp_path, NATIVE_ONLY)).values()) == {"native"}

    def cv(d: dict[str, Any]) -> None:
        d["dag"]["tasks"]["sbt_0"]["parameters"]["cv_param"] = {"need_cv": True}

    assert problems(tmp_path, NATIVE_ONLY, cv) == [
        "dag.json: dag.tasks.sbt_0.component_ref: component hetero_secureboost (task sbt_0) uses cross "
        "validation, which the native provider does not implement; FATE's hetero_secureboost does: "
        "run `fate-airflow provider install fate==2.2.0`"
    ]


def test_a_provider_without_the_component(tmp_path: Path) -> None:
    old = ProviderInfo("fate", "2.2.0", components=("psi", "reader"))
    assert problems(tmp_path, [native_provider(), old], with_binning) == [
        "dag.json: dag.tasks.binning_0.component_ref: component hetero_feature_binning (task binning_0) "
        f"needs the FATE provider: {INSTALL}"
    ]

    def explicit(d: dict[str, Any]) -> None:
        d["dag"]["tasks"]["sbt_0"]["conf"] = {"provider": "fate:2.2.0@local"}

    assert problems(tmp_path, [native_provider(), old], explicit) == [
        "dag.json: dag.tasks.sbt_0.conf.provider: component hetero_secureboost (task sbt_0): provider "
        "fate:2.2.0 has no component 'hetero_secureboost'"
    ]


def test_job_wide_provider_moves_every_provider_component_but_the_reader(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["dag"]["conf"] = {"task": {"provider": "fate:2.2.0@local"}}

    assert chosen(plan(tmp_path, WITH_FATE, mutate)) == {
        "reader_0": "native",  # FATE-Flow's own component, not a provider's
        "psi_0": "fate:2.2.0",
        "sbt_0": "fate:2.2.0",
        "eval_0": "fate:2.2.0",
    }


def test_task_provider_overrides_the_job_one(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["dag"]["conf"] = {"task": {"provider": "fate==2.2.0"}}
        d["dag"]["tasks"]["psi_0"]["conf"] = {"provider": "native"}

    assert chosen(plan(tmp_path, WITH_FATE, mutate))["psi_0"] == "native"


@pytest.mark.parametrize(
    ("task", "value", "message"),
    [
        (
            "sbt_0",
            "fate:2.3.0@local",
            "provider fate:2.3.0@local is not installed at this party (installed: native, fate:2.2.0); "
            "run `fate-airflow provider install fate==2.3.0`",
        ),
        ("sbt_0", "secretflow", "provider secretflow is not installed at this party (installed: native, "
         "fate:2.2.0); run `fate-airflow provider install secretflow`"),
        (
            "binning_0",
            "native",
            "component hetero_feature_binning (task binning_0) is not implemented by the native provider; "
            "it needs the FATE provider (`fate-airflow provider install fate==2.2.0`)",
        ),
        (
            "reader_0",
            "fate",
            "component reader (task reader_0) cannot run on provider fate: FATE 2.2 has no such component "
            "(native only)",
        ),
        ("psi_0", "fate:2.2.0@k8s", "provider 'fate:2.2.0@k8s': device 'k8s' is not supported; components "
         "run as local processes (use @local or leave the device out)"),
    ],
)  # fmt: skip
def test_explicit_provider_problems_name_the_field(
    tmp_path: Path, task: str, value: str, message: str
) -> None:
    def mutate(d: dict[str, Any]) -> None:
        with_binning(d)
        d["dag"]["tasks"][task]["conf"] = {"provider": value}

    assert problems(tmp_path, WITH_FATE, mutate) == [f"dag.json: dag.tasks.{task}.conf.provider: {message}"]


def test_fate_flow_components_are_native(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["dag"]["tasks"]["reader_0"]["conf"] = {"provider": "fate_flow:2.2.0@local"}

    assert chosen(plan(tmp_path, WITH_FATE, mutate))["reader_0"] == "native"


def test_explicit_provider_without_a_registry(tmp_path: Path) -> None:
    def versioned(d: dict[str, Any]) -> None:
        d["dag"]["tasks"]["psi_0"]["conf"] = {"provider": "fate:2.2.0@local"}

    assert chosen(plan(tmp_path, None, versioned))["psi_0"] == "fate:2.2.0"

    def unversioned(d: dict[str, Any]) -> None:
        d["dag"]["tasks"]["psi_0"]["conf"] = {"provider": "fate"}

    assert problems(tmp_path, None, unversioned) == [
        "dag.json: dag.tasks.psi_0.conf.provider: provider 'fate': name its version (e.g. fate:2.2.0)"
    ]


def test_one_provider_per_task_at_every_party(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["dag"]["party_tasks"]["host_10000"]["conf"] = {"provider": "fate:2.2.0"}
        d["dag"]["party_tasks"]["host_10000"]["tasks"]["psi_0"] = {"conf": {"provider": "native"}}

    def line(where: str, task: str) -> str:
        return (
            f"dag.json: dag.party_tasks.host_10000.{where}provider: one provider runs task {task} at every "
            f"party: set it in dag.tasks.{task}.conf.provider (or dag.conf.task.provider), not per party"
        )

    assert problems(tmp_path, WITH_FATE, mutate) == [
        line("conf.", "reader_0"),
        line("conf.", "psi_0"),
        line("tasks.psi_0.conf.", "psi_0"),
        line("conf.", "sbt_0"),
    ]


def test_dag_conf_provider_is_not_where_fate_reads_it(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["dag"]["conf"] = {"provider": "fate:2.2.0@local"}

    assert problems(tmp_path, WITH_FATE, mutate) == [
        "dag.json: dag.conf.provider: FATE-Flow 2.x reads the provider from the task conf: move it to "
        "dag.conf.task.provider"
    ]


def test_component_no_provider_has(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["dag"]["tasks"]["sbt_0"]["component_ref"] = "coordinated_poisson"
        d["dag"]["tasks"]["eval_0"]["inputs"]["data"]["input_datas"] = _out("sbt_0", "train_output_data")

    assert problems(tmp_path, WITH_FATE, mutate) == [
        "dag.json: dag.tasks.sbt_0.component_ref: component coordinated_poisson (task sbt_0) is not "
        "implemented: neither the native provider nor FATE 2.2 has it"
    ]


def test_fate_evaluation_does_not_run_at_the_arbiter(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["dag"]["parties"].append({"role": "arbiter", "party_id": ["10000"]})
        d["dag"]["tasks"]["reader_0"]["parties"] = copy.deepcopy(GH)
        d["dag"]["tasks"]["sbt_0"]["component_ref"] = "coordinated_lr"
        evaluation = d["dag"]["tasks"]["eval_0"]
        del evaluation["parties"]
        evaluation["conf"] = {"provider": "fate:2.2.0"}

    p = plan(tmp_path, WITH_FATE, mutate)
    assert [str(pt.party) for pt in p.task("eval_0").parties] == ["guest:9999", "host:10000"]
    assert plan(tmp_path, WITH_FATE, None).task("eval_0").provider == "native"

    def explicit_arbiter(d: dict[str, Any]) -> None:
        mutate(d)
        d["dag"]["tasks"]["eval_0"]["parties"] = [{"role": "arbiter", "party_id": ["10000"]}]

    assert problems(tmp_path, WITH_FATE, explicit_arbiter) == [
        "dag.json: dag.tasks.eval_0.parties: component 'evaluation' on provider fate:2.2.0 does not run "
        "at role arbiter (FATE 2.2's runs at guest, host)"
    ]


def test_plans_keep_the_provider_in_json(tmp_path: Path) -> None:
    p = plan(tmp_path, WITH_FATE)
    data = p.to_dict()
    assert list(data["tasks"][0])[:4] == ["name", "component", "implementation", "provider"]
    assert JobPlan.from_dict(json.loads(json.dumps(data))) == p
    # A plan written before providers existed still loads: its tasks ran natively.
    for task in data["tasks"]:
        del task["provider"]
    assert {t.provider for t in JobPlan.from_dict(data).tasks} == {"native"}


def test_every_fate_component_is_catalogued() -> None:
    catalogued = {e.fate_component for e in ENTRIES if e.fate_component}
    # FATE-Flow's reader is native here; FATE's own test components are not offered to jobs.
    tests = {"artifact_test", "dataframe_io_test", "multi_model_test", "cv_test2"}
    assert catalogued == set(FATE_22_COMPONENTS) - {"reader"} - tests
    for entry in ENTRIES:
        if entry.fate_component and not entry.native:
            assert entry.component_refs == (entry.fate_component,)


# ---------------------------------------------------------------------------- integer keys


def test_integer_keys_in_parameters_plan_and_round_trip(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["dag"]["tasks"]["sbt_0"]["parameters"] = {"seq": {0: {"k": {1: "a"}}, 2.5: "b"}}

    path = tmp_path / "dag.yaml"
    data = base_dag()
    mutate(data)
    # YAML keeps integer keys, as in FATE's own DAGs.
    import io

    from ruamel.yaml import YAML

    buf = io.StringIO()
    yaml = YAML(typ="safe")
    yaml.representer.ignore_aliases = lambda _data: True  # job files may not use anchors
    yaml.dump(data, buf)
    path.write_text(buf.getvalue())
    p = load_job(path, providers=WITH_FATE)
    params = p.task("sbt_0").parties[0].parameters
    assert params == {"seq": {0: {"k": {1: "a"}}, 2.5: "b"}}
    text = json.dumps(p.to_dict())
    assert '"$pairs"' in text
    back = JobPlan.from_dict(json.loads(text))
    assert back == p
    assert next(iter(back.task("sbt_0").parties[0].parameters["seq"])) == 0  # an int again


def test_integer_keys_only_inside_parameters(tmp_path: Path) -> None:
    path = tmp_path / "dag.yaml"
    path.write_text("schema_version: 2.2.0\ndag:\n  conf:\n    1: x\n  tasks: {}\n")
    with pytest.raises(DslError) as excinfo:
        load_job(path)
    assert excinfo.value.problems == [
        "dag.yaml: dag.conf: key 1 is an integer; keys must be strings (quote it)"
    ]
    path.write_text("schema_version: 2.2.0\ndag:\n  tasks:\n    t:\n      parameters: {'$pairs': []}\n")
    with pytest.raises(DslError) as excinfo:
        load_job(path)
    assert excinfo.value.problems == [
        "dag.yaml: dag.tasks.t.parameters: the key '$pairs' is reserved; rename it"
    ]


def test_trigger_overrides_match_integer_keys(tmp_path: Path) -> None:
    examples = _v2_pipeline_dags()
    source = examples / "sample__test_sample.yaml"
    if not source.exists():
        pytest.skip("FATE's v2 pipeline DAGs are not available")
    # Airflow params and trigger confs are JSON: the file's {0: 0.5} comes back as {"0": 0.3}.
    overrides = {"dag": {"tasks": {"sample_0": {"parameters": {"frac": {"0": 0.3}}}}}}
    p = load_job(source, overrides=overrides, providers=WITH_FATE)
    assert p.task("sample_0").parties[0].parameters["frac"] == {0: 0.3}


# ---------------------------------------------------------------------------- FATE's 54 example DAGs


def _v2_pipeline_dags() -> Path:
    for base in (FATE_EXAMPLES, SHARED / "fate-examples"):
        if (base / "v2-pipeline-dags").is_dir():
            return base / "v2-pipeline-dags"
    return FATE_EXAMPLES / "v2-pipeline-dags"


def test_all_54_fate_example_dags_plan() -> None:
    folder = _v2_pipeline_dags()
    files = sorted(folder.glob("*.yaml"))
    if not files:
        pytest.skip(f"{folder} is not available")
    assert len(files) == 54
    failures: dict[str, list[str]] = {}
    providers: dict[str, str] = {}
    by_task: dict[tuple[str, str], str] = {}
    for path in files:
        try:
            p = load_job(path, providers=WITH_FATE)
        except DslError as exc:
            failures[path.name] = exc.problems
            continue
        for task in p.tasks:
            providers[task.component] = task.provider
            if task.component in ("hetero_secureboost", "homo_lr"):
                by_task[path.stem.split("__")[1], task.name] = task.provider
    assert failures == {}
    assert providers["psi"] == providers["reader"] == "native"
    assert (
        load_job(folder / "coordinated_lr__test_lr.yaml", providers=WITH_FATE).task("lr_0").provider
        == "native"
    )
    assert providers["sample"] == providers["hetero_nn"] == providers["statistics"] == "fate:2.2.0"
    # Native SecureBoost and homo LR, except where a task asks for what they lack (native_gap).
    assert by_task == {
        ("test_hetero_sbt_binary", "sbt_0"): "native",
        ("test_hetero_sbt_multi", "sbt_0"): "native",
        ("test_hetero_sbt_binary_cv", "sbt_0"): "fate:2.2.0",  # cross validation
        ("test_hetero_sbt_binary_warm_start", "sbt_0"): "fate:2.2.0",  # its model warm-starts sbt_1
        ("test_hetero_sbt_binary_warm_start", "sbt_1"): "fate:2.2.0",  # warm start
        ("test_hetero_sbt_binary_warm_start", "sbt_2"): "native",  # a fit of its own
        ("test_homo_lr_binary", "homo_lr_0"): "native",
        ("test_homo_lr_multi_ovr", "homo_lr_0"): "fate:2.2.0",  # one-vs-rest
    }
    # Integer keys survive, as pyfate's sample component expects them.
    sample = load_job(folder / "sample__test_sample.yaml", providers=WITH_FATE)
    frac = sample.task("sample_0").parties[0].parameters["frac"]
    assert frac == {0: 0.5} and isinstance(next(iter(frac)), int)


# ---------------------------------------------------------------------------- what native LR lacks
@pytest.mark.parametrize(
    ("dag", "task", "gap"),
    [
        ("coordinated_lr__test_lr_warm_start", "lr_1", "warm start"),
        ("coordinated_lr__test_lr_validate", "lr_0", "validation data"),
        ("coordinated_lr__test_lr_cv", "lr_0", "cross validation"),
    ],
)
def test_a_coordinated_lr_asking_for_what_native_lr_lacks_runs_fates(dag: str, task: str, gap: str) -> None:
    # Decided before the job starts: never a native LR that silently does less (or hangs) mid-job.
    path = _v2_pipeline_dags() / f"{dag}.yaml"
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    plan = load_job(path, providers=WITH_FATE)
    assert plan.task(task).provider == "fate:2.2.0"
    with pytest.raises(DslError) as caught:
        load_job(path, providers=NATIVE_ONLY)
    problem = next(p for p in caught.value.problems if f"task {task}" in p)
    assert gap in problem and "component_ref" in problem and INSTALL in problem


def test_the_fit_a_fate_warm_start_continues_from_runs_fates_too() -> None:
    # FATE's coordinated_lr reads only FATE's models: the model edge pulls lr_0 over; lr_2 (no model
    # edge) stays native.
    path = _v2_pipeline_dags() / "coordinated_lr__test_lr_warm_start.yaml"
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    plan = load_job(path, providers=WITH_FATE)
    assert plan.task("lr_0").provider == plan.task("lr_1").provider == "fate:2.2.0"
    assert plan.task("lr_2").provider == "native"


@pytest.mark.parametrize(
    ("dag", "task", "gap"),
    [
        ("hetero_secureboost__test_hetero_sbt_binary_cv", "sbt_0", "cross validation"),
        ("hetero_secureboost__test_hetero_sbt_binary_warm_start", "sbt_1", "warm start"),
        ("homo_lr__test_homo_lr_multi_ovr", "homo_lr_0", "one-vs-rest (ovr)"),
    ],
)
def test_fate_examples_asking_for_what_native_sbt_and_homo_lr_lack_run_fates(
    dag: str, task: str, gap: str
) -> None:
    path = _v2_pipeline_dags() / f"{dag}.yaml"
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    assert load_job(path, providers=WITH_FATE).task(task).provider == "fate:2.2.0"
    with pytest.raises(DslError) as caught:
        load_job(path, providers=NATIVE_ONLY)
    problem = next(p for p in caught.value.problems if f"task {task})" in p)
    assert gap in problem and "component_ref" in problem and INSTALL in problem


TRAIN = frozenset({("data", "train_data")})


@pytest.mark.parametrize(
    ("stage", "inputs", "parameters", "gap"),
    [
        # FATE 2.2's own defaults and spellings: native
        ("train", TRAIN, {"num_trees": 3, "he_param": {"kind": "paillier", "key_length": 1024}}, None),
        ("train", TRAIN, {"he_param": {"kind": "Paillier"}}, None),
        ("train", TRAIN, {"he_param": {"kind": "mock"}}, None),
        ("train", TRAIN, {"he_param": None, "goss": True, "cv_param": {"n_splits": 3}}, None),
        ("train", TRAIN, {"cv_param": {"need_cv": False}, "work_mode": None}, None),
        ("train", TRAIN | {("data", "validate_data")}, {}, None),  # FATE 2.2 ignores it too
        ("predict", frozenset({("data", "test_data"), ("model", "input_model")}), {}, None),
        # what native SecureBoost lacks
        ("cross_validation", TRAIN, {}, "cross validation"),
        ("train", frozenset({("data", "cv_data")}), {}, "cross validation"),
        ("train", TRAIN, {"cv_param": {"need_cv": True, "n_splits": 3}}, "cross validation"),
        ("train", TRAIN | {("model", "warm_start_model")}, {}, "warm start (warm_start_model)"),
        ("train", TRAIN, {"he_param": {"kind": "ou"}}, "he_param.kind 'ou'"),
        ("train", TRAIN, {"he_param": {"kind": "OU", "key_length": 1024}}, "he_param.kind 'ou'"),
        ("train", TRAIN, {"work_mode": "mix"}, "fast SecureBoost (HeteroFastSecureBoost mix/layered trees)"),
        ("train", TRAIN, {"guest_depth": 2}, "fast SecureBoost (HeteroFastSecureBoost mix/layered trees)"),
        ("train", TRAIN, {"host_depth": 3}, "fast SecureBoost (HeteroFastSecureBoost mix/layered trees)"),
        (
            "train",
            TRAIN,
            {"tree_num_per_party": 1},
            "fast SecureBoost (HeteroFastSecureBoost mix/layered trees)",
        ),
        # the first gap found is named
        ("cross_validation", TRAIN, {"he_param": {"kind": "ou"}}, "cross validation"),
    ],
)
def test_secureboost_gap(
    stage: str, inputs: frozenset[tuple[str, str]], parameters: dict[str, Any], gap: str | None
) -> None:
    from fate_airflow.dsl.selection import native_gap

    assert native_gap("hetero_secureboost@1.0.0", stage, inputs, parameters) == gap


@pytest.mark.parametrize(
    ("parameters", "gap"),
    [
        ({"optimizer": {"method": "adam"}}, None),
        ({"optimizer": "rmsprop"}, None),  # FATE 1.x names its optimizer as a string
        ({"ovr": True}, "multi-class one-vs-rest (ovr)"),
        ({"optimizer": {"method": "NAdam"}}, "optimizer method 'nadam'"),
    ],
)
def test_native_homo_lr_leaves_what_it_lacks_to_fate(parameters: dict[str, Any], gap: str | None) -> None:
    from fate_airflow.dsl.selection import native_gap

    assert native_gap("homo_lr@1.0.0", "train", {("data", "train_data")}, parameters) == gap
    warm = {("data", "train_data"), ("model", "warm_start_model")}
    assert native_gap("homo_lr@1.0.0", "train", warm, {}) == "warm start (warm_start_model)"
