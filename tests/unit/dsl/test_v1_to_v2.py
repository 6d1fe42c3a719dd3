"""FATE 1.x modules on FATE 2.2's components: provider selection and the parameter table."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fate_airflow.core.errors import DslError
from fate_airflow.dsl import JobPlan, fate_component, load_job
from fate_airflow.dsl.catalogue import BY_MODULE
from fate_airflow.dsl.v1_to_v2 import MODULES, PARAMETERS, translate
from tests.unit.dsl._support import V1
from tests.unit.dsl.test_selection import FATE_22_COMPONENTS, NATIVE_ONLY, WITH_FATE

SBT_DSL = V1 / "test_secureboost_train_dsl.json"
SBT_CONF = V1 / "test_secureboost_train_binary_conf.json"
CONF_NAME = SBT_CONF.name


def sbt_plan(
    tmp_path: Path,
    providers: Any,
    mutate_conf: Callable[[dict[str, Any]], None] | None = None,
    mutate_dsl: Callable[[dict[str, Any]], None] | None = None,
) -> JobPlan:
    dsl, conf = json.loads(SBT_DSL.read_text()), json.loads(SBT_CONF.read_text())
    if mutate_conf:
        mutate_conf(conf)
    if mutate_dsl:
        mutate_dsl(dsl)
    (tmp_path / SBT_DSL.name).write_text(json.dumps(dsl))
    (tmp_path / CONF_NAME).write_text(json.dumps(conf))
    return load_job(tmp_path / SBT_DSL.name, tmp_path / CONF_NAME, providers=providers)


def sbt_problems(
    tmp_path: Path,
    providers: Any,
    mutate_conf: Callable[[dict[str, Any]], None] | None,
    mutate_dsl: Callable[[dict[str, Any]], None] | None = None,
) -> list[str]:
    with pytest.raises(DslError) as excinfo:
        sbt_plan(tmp_path, providers, mutate_conf, mutate_dsl)
    return excinfo.value.problems


def on_fate(conf: dict[str, Any]) -> None:
    """Name FATE's provider for the SecureBoost (FATE-Flow 1.x: the conf's provider.common)."""
    conf["provider"] = {"common": {"hetero_secure_boost_0": "fate@2.2.0"}}


def with_statistics(dsl: dict[str, Any]) -> None:
    """Add statistics_0 (DataStatistics): a module only FATE's provider runs."""
    dsl["components"]["statistics_0"] = {
        "module": "DataStatistics",
        "input": {"data": {"data": ["intersection_0.data"]}},
        "output": {"model": ["model"]},
    }


def test_module_map_targets_fate_components() -> None:
    for module, component in MODULES.items():
        assert module in BY_MODULE, module
        assert component in FATE_22_COMPONENTS, component
        # A module may be native too (HomoLR): naming provider fate runs FATE's counterpart with
        # translated parameters.
    assert set(PARAMETERS) <= set(MODULES)


def test_secureboost_example_runs_on_fate_with_translated_parameters(tmp_path: Path) -> None:
    p = sbt_plan(tmp_path, WITH_FATE, on_fate)
    providers = {t.name: t.provider for t in p.tasks}
    assert providers["hetero_secure_boost_0"] == "fate:2.2.0"
    assert {v for k, v in providers.items() if k != "hetero_secure_boost_0"} == {"native"}
    task = p.task("hetero_secure_boost_0")
    assert task.component == "HeteroSecureBoost"
    assert fate_component(p, task) == "hetero_secureboost"
    assert [pt.parameters for pt in task.parties] == [
        {
            "objective": "binary:bce",
            "num_trees": 3,
            "he_param": {"kind": "paillier", "key_length": 1024},
            "max_depth": 3,
        }
    ] * 2
    # Without the party's providers nothing changes (planned-only, as before).
    legacy = sbt_plan(tmp_path, None).task("hetero_secure_boost_0")
    assert legacy.provider == "native"
    assert legacy.parties[0].parameters["objective_param"] == {"objective": "cross_entropy"}
    # Not naming a provider, the native SecureBoost runs it, reading the 1.x parameters as written.
    native = sbt_plan(tmp_path, WITH_FATE)
    assert {t.provider for t in native.tasks} == {"native"}
    assert fate_component(native, native.task("hetero_secure_boost_0")) is None
    assert native.task("hetero_secure_boost_0").parties[0].parameters["objective_param"] == {
        "objective": "cross_entropy"
    }


def test_missing_provider_names_the_module(tmp_path: Path) -> None:
    assert sbt_problems(tmp_path, NATIVE_ONLY, None, with_statistics) == [
        f"{SBT_DSL.name}: components.statistics_0.module: component DataStatistics "
        "(task statistics_0) needs the FATE provider: run `fate-airflow provider install fate==2.2.0`"
    ]
    p = sbt_plan(tmp_path, WITH_FATE, mutate_dsl=with_statistics)
    assert p.task("statistics_0").provider == "fate:2.2.0"
    assert fate_component(p, p.task("statistics_0")) == "statistics"
    assert p.task("hetero_secure_boost_0").provider == "native"
    # A provider the conf names but the party lacks names the conf's field.
    assert sbt_problems(tmp_path, NATIVE_ONLY, on_fate) == [
        f"{CONF_NAME}: provider.common.hetero_secure_boost_0: provider fate@2.2.0 is not installed at this "
        "party (installed: native); run `fate-airflow provider install fate==2.2.0`"
    ]


def test_untranslatable_parameters_name_file_and_field(tmp_path: Path) -> None:
    def mutate(conf: dict[str, Any]) -> None:
        on_fate(conf)  # translated only for FATE's provider
        common = conf["component_parameters"]["common"]["hetero_secure_boost_0"]
        common["early_stopping_rounds"] = 3
        common["tree_param"]["max_split_nodes"] = 1024  # a performance knob: accepted
        common["objective_param"]["objective"] = "huber"
        guest = conf["component_parameters"]["role"]["guest"]["0"]
        guest["hetero_secure_boost_0"] = {"use_missing": True}

    prefix = f"{CONF_NAME}: component_parameters"
    assert sbt_problems(tmp_path, WITH_FATE, mutate) == [
        f"{prefix}.common.hetero_secure_boost_0.objective_param.objective: "
        "HeteroSecureBoost.objective_param.objective: 'huber' has no FATE 2.2 counterpart (multi-class jobs "
        "need a FATE 2.x DAG (objective multi:ce with num_class)); accepted: 'cross_entropy', 'lse'",
        f"{prefix}.common.hetero_secure_boost_0.early_stopping_rounds: no translation for "
        "HeteroSecureBoost.early_stopping_rounds to FATE 2.2's hetero_secureboost: remove it, or write the "
        "job as a FATE 2.x DAG",
        f"{prefix}.role.guest.0.hetero_secure_boost_0.use_missing: HeteroSecureBoost.use_missing: True has "
        "no FATE 2.2 counterpart (FATE 2.2 has no missing-value mode); accepted only: false",
    ]


def test_fast_secureboost_has_no_counterpart(tmp_path: Path) -> None:
    def mutate_dsl(dsl: dict[str, Any]) -> None:
        dsl["components"]["hetero_secure_boost_0"]["module"] = "HeteroFastSecureBoost"

    # FATE 2.2 has no fast SecureBoost: naming its provider is an error.
    assert sbt_problems(tmp_path, WITH_FATE, on_fate, mutate_dsl) == [
        f"{CONF_NAME}: provider.common.hetero_secure_boost_0: component HeteroFastSecureBoost "
        "(task hetero_secure_boost_0) cannot run on provider fate@2.2.0: FATE 2.2 has no such component "
        "(native only)"
    ]


def test_what_native_secureboost_lacks_is_refused_or_sent_to_fate_before_the_job_starts(
    tmp_path: Path,
) -> None:
    def fast(dsl: dict[str, Any]) -> None:
        dsl["components"]["hetero_secure_boost_0"]["module"] = "HeteroFastSecureBoost"

    # FATE 1.x defaults HeteroFastSecureBoost to work_mode "mix": never a plain SecureBoost here.
    problems = sbt_problems(tmp_path, WITH_FATE, None, fast)
    assert len(problems) == 1
    assert "uses fast SecureBoost (HeteroFastSecureBoost mix/layered trees)" in problems[0]

    def cv(conf: dict[str, Any]) -> None:
        conf["component_parameters"]["common"]["hetero_secure_boost_0"]["cv_param"] = {"need_cv": True}

    # Not native, and FATE 2.2 has cross validation only as a stage of its own: refused naming it.
    assert any("cv_param.need_cv" in p for p in sbt_problems(tmp_path, WITH_FATE, cv))


def test_explicit_1x_providers(tmp_path: Path) -> None:
    def in_dsl(dsl: dict[str, Any]) -> None:
        dsl["components"]["hetero_secure_boost_0"]["provider"] = "fate@2.2.0"

    assert (
        sbt_plan(tmp_path, WITH_FATE, mutate_dsl=in_dsl).task("hetero_secure_boost_0").provider
        == "fate:2.2.0"
    )

    def in_conf(conf: dict[str, Any]) -> None:
        conf["provider"] = {"common": {"hetero_secure_boost_0": "fate@1.11.4"}}

    # FATE 1.x's own provider versions are not installable here.
    assert sbt_problems(tmp_path, WITH_FATE, in_conf) == [
        f"{CONF_NAME}: provider.common.hetero_secure_boost_0: provider fate@1.11.4 is not installed at this "
        "party (installed: native, fate:2.2.0); run `fate-airflow provider install fate==1.11.4`"
    ]

    def per_role(conf: dict[str, Any]) -> None:
        conf["provider"] = {"role": {"guest": {"0": {"hetero_secure_boost_0": "fate@2.2.0"}}}}

    assert sbt_problems(tmp_path, WITH_FATE, per_role) == [
        f"{CONF_NAME}: provider.role: one provider runs a component at every party: use "
        "provider.common.<component>"
    ]


def test_dsl_provider_of_a_native_module_without_fate_translation(tmp_path: Path) -> None:
    # Intersection is native; naming the FATE provider for it is an error (no 1.x translation for it).
    def in_dsl(dsl: dict[str, Any]) -> None:
        dsl["components"]["intersection_0"]["provider"] = "fate@2.2.0"

    # The DSL's provider is read only when the conf names none; the conf (FATE-Flow 1.x) wins.
    def conf_native(conf: dict[str, Any]) -> None:
        conf["provider"] = {"common": {"intersection_0": "native"}}

    with pytest.raises(DslError) as excinfo:
        sbt_plan(tmp_path, WITH_FATE, mutate_dsl=in_dsl, mutate_conf=None)
    assert excinfo.value.problems == [
        f"{SBT_DSL.name}: components.intersection_0.provider: component Intersection (task intersection_0) "
        "cannot run on provider fate@2.2.0: FATE 2.2 has no such component (native only)"
    ]
    p = sbt_plan(tmp_path, WITH_FATE, mutate_conf=conf_native, mutate_dsl=in_dsl)
    assert p.task("intersection_0").provider == "native"


# ---------------------------------------------------------------------------- the table itself


def test_homo_lr_example_reports_every_setting_fate_lacks() -> None:
    conf = json.loads((V1 / "homo_lr_train_conf.json").read_text())
    params = conf["component_parameters"]["common"]["homo_lr_0"]
    out, problems = translate("HomoLR", params)
    assert [".".join(map(str, path)) for path, _ in problems] == [
        "tol",
        "batch_size",  # FATE 2.2's homo_lr has no full-batch mode (null means its default, 100)
        "early_stop",
        "decay",
        "decay_sqrt",
    ]
    assert out["epochs"] == 30
    assert out["optimizer"] == {
        "penalty": "l2",
        "alpha": 0.01,
        "method": "sgd",
        "optimizer_params": {"lr": 0.15},
    }
    assert out["init_param"] == {"method": "zeros"}


def test_sample_fractions_become_integer_keyed_frac() -> None:
    out, problems = translate(
        "FederatedSample",
        {
            "mode": "stratified",
            "method": "upsample",
            "fractions": [[0, 1.5], ["1", 0.5]],
            "task_type": "homo",
        },
    )
    assert problems == []
    assert out == {"replace": True, "frac": {0: 1.5, 1: 0.5}, "hetero_sync": False}
    out, _ = translate("FederatedSample", {"mode": "random", "fractions": 0.3})
    assert out == {"frac": 0.3}
    _, problems = translate("FederatedSample", {"mode": "random", "fractions": [[0, 1]]})
    assert problems == [((), "FederatedSample: fractions: random mode takes a number, got [[0, 1]]")]


def test_binning_statistics_split_linr() -> None:
    out, problems = translate(
        "HeteroFeatureBinning",
        {"method": "Quantile", "bin_num": 8, "bin_indexes": -1, "transform_param": {"transform_type": "woe"},
         "encrypt_param": {"method": "Paillier", "key_length": 2048}, "compress_thres": 10000},
    )  # fmt: skip
    assert problems == []
    assert out == {
        "method": "quantile",
        "n_bins": 8,
        "bin_idx": None,
        "transform_method": "woe",
        "he_param": {"kind": "paillier", "key_length": 2048},
    }
    out, problems = translate("DataStatistics", {"statistics": ["95%", "count"], "bias": False})
    assert problems == []
    assert out["bias"] is False
    assert out["metrics"][:3] == ["sum", "mean", "std"] and out["metrics"][-2:] == ["95%", "count"]
    out, _ = translate("HeteroDataSplit", {"random_state": 7})
    assert out == {"random_state": 7, "train_size": 0.8, "validate_size": 0.2, "test_size": 0.0}
    out, problems = translate(
        "HeteroLinR",
        {"max_iter": 5, "batch_size": -1, "early_stop": "weight_diff", "penalty": "L1", "optimizer": "adam"},
    )
    assert problems == []
    assert out == {
        "epochs": 5,
        "batch_size": None,
        "early_stop": "weight_diff",
        "optimizer": {"penalty": "l1", "method": "adam"},
    }


def test_modules_without_a_table_refuse_any_parameter() -> None:
    assert translate("Union", {}) == ({}, [])
    _, problems = translate("Union", {"allow_missing": True, "need_run": None})
    assert problems == [
        (
            ("allow_missing",),
            "no translation for Union.allow_missing to FATE 2.2's union: remove it, or write the job as a "
            "FATE 2.x DAG",
        )
    ]
