from __future__ import annotations

import json
from pathlib import Path

import pytest

from fate_airflow.cli import main
from tests.conftest import FATE_EXAMPLES

EXAMPLES = FATE_EXAMPLES


def test_upload_list_info_delete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FATE_AIRFLOW_DATA_DIR", str(tmp_path))
    csv = EXAMPLES / "data" / "breast_hetero_guest.csv"
    assert (
        main(
            [
                "data",
                "upload",
                "--file",
                str(csv),
                "--namespace",
                "experiment",
                "--name",
                "g",
                "--id-col",
                "id",
                "--label-col",
                "y",
            ]
        )
        == 0
    )
    assert "569 rows" in capsys.readouterr().out
    assert (
        main(
            [
                "data",
                "upload",
                "--conf",
                str(EXAMPLES / "upload" / "v2_upload_host.json"),
                "--base-dir",
                str(EXAMPLES),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "data",
                "upload",
                "--conf",
                str(EXAMPLES / "upload" / "v1_upload_guest.json"),
                "--base-dir",
                str(EXAMPLES),
                "--name",
                "g1",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["data", "list", "--json"]) == 0
    listed = {(m["namespace"], m["name"]): m for m in json.loads(capsys.readouterr().out)}
    assert set(listed) == {("experiment", "g"), ("experiment", "breast_hetero_host"), ("experiment", "g1")}
    assert listed[("experiment", "g")]["label_column"] == "y"
    assert main(["data", "info", "--namespace", "experiment", "--name", "breast_hetero_host"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["row_count"] == 569 and len(info["feature_columns"]) == 20
    assert main(["data", "delete", "--namespace", "experiment", "--name", "g"]) == 0
    capsys.readouterr()
    assert main(["data", "delete", "--namespace", "experiment", "--name", "g"]) == 1
    assert "experiment.g not found" in capsys.readouterr().err


def test_errors_name_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FATE_AIRFLOW_DATA_DIR", raising=False)
    csv = EXAMPLES / "data" / "breast_hetero_host.csv"
    assert main(["data", "list"]) == 1
    assert "FATE_AIRFLOW_DATA_DIR" in capsys.readouterr().err
    args = [
        "data",
        "upload",
        "--file",
        str(csv),
        "--namespace",
        "e",
        "--name",
        "h",
        "--data-dir",
        str(tmp_path),
    ]
    assert main([*args, "--label-col", "y"]) == 1
    assert "label column 'y' not found" in capsys.readouterr().err
    assert (
        main(
            [
                "data",
                "upload",
                "--file",
                str(csv),
                "--namespace",
                "../x",
                "--name",
                "h",
                "--data-dir",
                str(tmp_path),
            ]
        )
        == 1
    )
    assert "looks like a path" in capsys.readouterr().err
    assert (
        main(["data", "upload", "--conf", str(tmp_path / "missing.json"), "--data-dir", str(tmp_path)]) == 1
    )
    assert "missing.json: upload config not found" in capsys.readouterr().err
    assert not (tmp_path / "tables").exists() or not any((tmp_path / "tables").rglob("*.parquet"))
