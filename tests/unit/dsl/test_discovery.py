from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fate_airflow.core.errors import ConfigError
from fate_airflow.dsl import JobSource, SourceError, discover_jobs, load_source
from fate_airflow.dsl.discovery import dag_id_for

from ._support import V1, V2


def _touch(folder: Path, name: str, text: str = "{}") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_shared_examples(tmp_path: Path) -> None:
    for path in [*V1.iterdir(), *V2.iterdir()]:
        shutil.copy(path, tmp_path / path.name)
    jobs, errors = discover_jobs(tmp_path)
    assert errors == []
    assert [
        (j.dag_id, j.dsl_path.name, j.conf_path.name if j.conf_path else None, j.format) for j in jobs
    ] == [
        (
            "fateflow_test_hetero_lr_job",
            "fateflow_test_hetero_lr_job_dsl.json",
            "fateflow_test_hetero_lr_job_conf.json",
            "fate-1.x-dsl-v2",
        ),
        (
            "hetero_lr_multi_host",
            "hetero_lr_multi_host_dsl.json",
            "hetero_lr_multi_host_conf.json",
            "fate-1.x-dsl-v2",
        ),
        ("hetero_lr_normal", "hetero_lr_normal_dsl.json", "hetero_lr_normal_conf.json", "fate-1.x-dsl-v2"),
        (
            "hetero_lr_normal_predict",
            "hetero_lr_normal_predict_dsl.json",
            "hetero_lr_normal_predict_conf.json",
            "fate-1.x-dsl-v2",
        ),
        ("homo_lr_train", "homo_lr_train_dsl.json", "homo_lr_train_conf.json", "fate-1.x-dsl-v2"),
        ("lr_train_dag_v2.0.0-alpha", "lr_train_dag_v2.0.0-alpha.yaml", None, "fate-2.x-dag"),
        ("predict_lr", "predict_lr.yaml", None, "fate-2.x-dag"),
        (
            "test_intersect_job_ecdh",
            "test_intersect_job_dsl.json",
            "test_intersect_job_ecdh_conf.json",
            "fate-1.x-dsl-v2",
        ),
        (
            "test_intersect_job_rsa",
            "test_intersect_job_dsl.json",
            "test_intersect_job_rsa_conf.json",
            "fate-1.x-dsl-v2",
        ),
        (
            "test_secureboost_train_binary",
            "test_secureboost_train_dsl.json",
            "test_secureboost_train_binary_conf.json",
            "fate-1.x-dsl-v2",
        ),
        ("train_lr", "train_lr.yaml", None, "fate-2.x-dag"),
    ]
    # Every discovered job except the historical alpha DAG plans.
    for job in jobs:
        if job.dag_id != "lr_train_dag_v2.0.0-alpha":
            assert load_source(job).tasks


def test_pairs_variants_and_orphans(tmp_path: Path) -> None:
    for name in [
        "lr_dsl.json",
        "lr_conf.json",
        "lr_big_conf.json",
        "lr_predict_dsl.json",
        "lr_predict_conf.json",
        "lonely_dsl.json",
        "orphan_conf.json",
    ]:
        _touch(tmp_path, name)
    jobs, errors = discover_jobs(tmp_path)
    assert [(j.dag_id, j.dsl_path.name, j.conf_path.name if j.conf_path else None) for j in jobs] == [
        ("lr", "lr_dsl.json", "lr_conf.json"),
        ("lr_big", "lr_dsl.json", "lr_big_conf.json"),
        ("lr_predict", "lr_predict_dsl.json", "lr_predict_conf.json"),
    ]
    assert errors == [
        SourceError(
            "lonely",
            (tmp_path / "lonely_dsl.json",),
            [
                "lonely_dsl.json: no runtime conf for this DSL: expected lonely_conf.json or "
                "lonely_<variant>_conf.json in the same folder"
            ],
        ),
        SourceError(
            "orphan",
            (tmp_path / "orphan_conf.json",),
            [
                "orphan_conf.json: no DSL for this runtime conf: expected orphan_dsl.json (or <P>_dsl.json where "
                "orphan starts with <P>_) in the same folder"
            ],
        ),
    ]


def test_1x_files_are_recognised_by_name_without_reading(tmp_path: Path) -> None:
    _touch(tmp_path, "job_dsl.json", "not json at all")
    _touch(tmp_path, "job_conf.json", "\x00\x01")
    jobs, errors = discover_jobs(tmp_path)
    assert errors == []
    assert jobs == [
        JobSource("job", tmp_path / "job_dsl.json", tmp_path / "job_conf.json", "fate-1.x-dsl-v2")
    ]


def test_2x_detection_and_other_files_ignored(tmp_path: Path) -> None:
    _touch(tmp_path, "block.yaml", "# a comment\nschema_version: 2.0.0\ndag:\n  tasks: {}\n")
    _touch(tmp_path, "flow.yml", "{schema_version: 2.0.0, dag: {tasks: {}}}\n")
    _touch(tmp_path, "quoted.yaml", '"dag":\n  tasks: {}\n')
    _touch(tmp_path, "as_json.json", '{"dag": {"tasks": {}}, "schema_version": "2.0.0"}')
    _touch(tmp_path, "nested.yaml", "data:\n  dag: 1\n")  # `dag` not at the top level
    _touch(tmp_path, "upload_guest.json", '{"file": "x.csv", "namespace": "experiment"}')
    _touch(tmp_path, "flow_other.yaml", "{a: 1}\n")
    _touch(tmp_path, "README.md", "dag:\n")
    _touch(tmp_path, ".hidden.yaml", "dag: {}\n")
    _touch(tmp_path, ".hidden_dsl.json")
    _touch(tmp_path, ".hidden_conf.json")
    (tmp_path / ".git").mkdir()
    (tmp_path / "sub").mkdir()
    _touch(tmp_path / "sub", "inner.yaml", "dag: {}\n")
    jobs, errors = discover_jobs(tmp_path)
    assert errors == []
    assert [(j.dag_id, j.dsl_path.name, j.conf_path, j.format) for j in jobs] == [
        ("as_json", "as_json.json", None, "fate-2.x-dag"),
        ("block", "block.yaml", None, "fate-2.x-dag"),
        ("flow", "flow.yml", None, "fate-2.x-dag"),
        ("quoted", "quoted.yaml", None, "fate-2.x-dag"),
    ]


def test_broken_json_is_reported(tmp_path: Path) -> None:
    _touch(tmp_path, "broken.json", '{"dag": ')
    _touch(tmp_path, "bomb.yml", "{a: &a [1], dag: *a}\n")
    jobs, errors = discover_jobs(tmp_path)
    assert jobs == []
    assert errors == [
        SourceError(
            "bomb",
            (tmp_path / "bomb.yml",),
            [
                "bomb.yml: line 1, column 5: YAML anchor '&a' refused: anchors and aliases are not allowed in job "
                "files; write the values out"
            ],
        ),
        SourceError(
            "broken",
            (tmp_path / "broken.json",),
            ["broken.json: line 1, column 9: invalid JSON: Expecting value"],
        ),
    ]


def test_dag_ids_are_sanitised_and_duplicates_reported(tmp_path: Path) -> None:
    _touch(tmp_path, "my job.yaml", "dag: {}\n")
    _touch(tmp_path, "my_job.yml", "dag: {}\n")
    _touch(tmp_path, "lr+v2.yaml", "dag: {}\n")
    _touch(tmp_path, "x_dsl.json")
    _touch(tmp_path, "x_conf.json")
    _touch(tmp_path, "x.yaml", "dag: {}\n")
    jobs, errors = discover_jobs(tmp_path)
    assert [j.dag_id for j in jobs] == ["lr_v2"]
    assert errors == [
        SourceError(
            "my_job",
            (tmp_path / "my job.yaml",),
            [
                "my job.yaml: dag id 'my_job' is also produced by other job files (my job.yaml, my_job.yml); rename one"
            ],
        ),
        SourceError(
            "my_job",
            (tmp_path / "my_job.yml",),
            [
                "my_job.yml: dag id 'my_job' is also produced by other job files (my job.yaml, my_job.yml); rename one"
            ],
        ),
        SourceError(
            "x",
            (tmp_path / "x.yaml",),
            [
                "x.yaml: dag id 'x' is also produced by other job files (x.yaml, x_conf.json, x_dsl.json); rename one"
            ],
        ),
        SourceError(
            "x",
            (tmp_path / "x_dsl.json", tmp_path / "x_conf.json"),
            [
                "x_conf.json: dag id 'x' is also produced by other job files (x.yaml, x_conf.json, x_dsl.json); "
                "rename one"
            ],
        ),
    ]


def test_dag_id_for() -> None:
    assert dag_id_for("a b/c:d") == "a_b_c_d"
    assert dag_id_for("lr_train_dag_v2.0.0-alpha") == "lr_train_dag_v2.0.0-alpha"


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot list job folder"):
        discover_jobs(tmp_path / "nope")
