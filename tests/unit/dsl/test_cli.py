"""``fate-airflow dsl plan`` (fate_airflow/cli/dsl.py): the JSON contract and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fate_airflow.cli import main
from fate_airflow.dsl import load_job

from ._support import REPO_ROOT, V1, V2

DSL = V1 / "hetero_lr_normal_dsl.json"
CONF = V1 / "hetero_lr_normal_conf.json"


def test_plan_prints_the_plan_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dsl", "plan", str(DSL), "--conf", str(CONF)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    data = json.loads(out)
    assert data == load_job(DSL, CONF).to_dict()
    assert list(data) == ["format", "stage", "initiator", "parties", "job_parameters", "source", "tasks"]
    assert list(data["tasks"][0]) == [
        "name",
        "component",
        "implementation",
        "provider",
        "upstream",
        "stage",
        "inputs",
        "outputs",
        "conf",
        "parties",
    ]
    assert out.startswith('{\n  "format": "fate-1.x-dsl-v2",\n')  # indent 2


def test_plan_2x(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dsl", "plan", str(V2 / "train_lr.yaml")]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "fate-2.x-dag"


def test_invalid_job_exits_2_with_one_line_per_problem(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dsl", "plan", str(DSL)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "hetero_lr_normal_dsl.json: a FATE 1.x DSL needs its runtime conf: pass --conf CONF_FILE\n"


def test_alpha_dag_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dsl", "plan", str(V2 / "lr_train_dag_v2.0.0-alpha.yaml")]) == 2
    assert capsys.readouterr().err.startswith("lr_train_dag_v2.0.0-alpha.yaml: schema_version: unsupported")


def test_missing_file_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope_dsl.json"
    assert main(["dsl", "plan", str(missing), "--conf", str(CONF)]) == 2
    assert capsys.readouterr().err == f"{missing}: no such file\n"
    assert main(["dsl", "plan", str(DSL), "--conf", str(tmp_path / "nope_conf.json")]) == 2
    assert capsys.readouterr().err == f"{tmp_path / 'nope_conf.json'}: no such file\n"


def test_dsl_group_needs_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["dsl"])
    assert excinfo.value.code == 2
    assert "plan" in capsys.readouterr().err


def _fate_airflow() -> list[str]:
    script = REPO_ROOT / ".venv" / "bin" / "fate-airflow"
    return [str(script)] if script.exists() else [sys.executable, "-m", "fate_airflow"]


def test_subprocess_exit_codes_and_no_traceback(tmp_path: Path) -> None:
    ok = subprocess.run(
        [*_fate_airflow(), "dsl", "plan", str(V2 / "predict_lr.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["stage"] == "predict"

    bad = tmp_path / "bad_conf.json"
    bad.write_text('{"dsl_version": 2, "role": {"guest": [9999,]}}')
    for args in (
        [str(DSL), "--conf", str(bad)],
        [str(V1.parent / "v1-dsl-v1" / "test_hetero_lr_train_job_dsl.json")],
        [str(tmp_path / "missing.yaml")],
    ):
        res = subprocess.run(
            [*_fate_airflow(), "dsl", "plan", *args], capture_output=True, text=True, timeout=120, check=False
        )
        assert res.returncode == 2
        assert res.stdout == ""
        assert res.stderr.strip()
        assert "Traceback" not in res.stderr
    assert res.stderr == f"{tmp_path / 'missing.yaml'}: no such file\n"


def test_plan_checks_providers_with_provider_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fate_airflow.core.providers import ProviderInfo, ProviderRegistry

    # statistics is FATE-only: without the FATE provider at this party the plan fails.
    dag = V1.parent / "v2-pipeline-dags" / "statistics__test_statistics.yaml"
    assert main(["dsl", "plan", str(dag), "--provider-dir", str(tmp_path)]) == 2
    assert (
        "component statistics (task statistics_0) needs the FATE provider: "
        "run `fate-airflow provider install fate==2.2.0`" in capsys.readouterr().err
    )
    ProviderRegistry(tmp_path).register(ProviderInfo("fate", "2.2.0", components=("statistics",)))
    assert main(["dsl", "plan", str(dag), "--provider-dir", str(tmp_path)]) == 0
    tasks = {t["name"]: t["provider"] for t in json.loads(capsys.readouterr().out)["tasks"]}
    assert tasks == {"reader_0": "native", "psi_0": "native", "statistics_0": "fate:2.2.0"}
    # A 1.x job too: its SecureBoost is native by default, and naming FATE's runs that provider.
    dsl = V1 / "test_secureboost_train_dsl.json"
    conf = json.loads((V1 / "test_secureboost_train_binary_conf.json").read_text())
    conf["provider"] = {"common": {"hetero_secure_boost_0": "fate@2.2.0"}}
    (tmp_path / "conf.json").write_text(json.dumps(conf))
    args = ["dsl", "plan", str(dsl), "--conf", str(tmp_path / "conf.json"), "--provider-dir", str(tmp_path)]
    assert main(args) == 2
    assert (
        "provider.common.hetero_secure_boost_0: component HeteroSecureBoost (task hetero_secure_boost_0): "
        "provider fate:2.2.0 has no component 'hetero_secureboost'" in capsys.readouterr().err
    )
    ProviderRegistry(tmp_path).register(
        ProviderInfo("fate", "2.2.0", components=("statistics", "hetero_secureboost"))
    )
    assert main(args) == 0
    tasks = {t["name"]: t["provider"] for t in json.loads(capsys.readouterr().out)["tasks"]}
    assert tasks["hetero_secure_boost_0"] == "fate:2.2.0"
    assert tasks["intersection_0"] == "native"
    default = V1 / "test_secureboost_train_binary_conf.json"
    assert main(["dsl", "plan", str(dsl), "--conf", str(default), "--provider-dir", str(tmp_path)]) == 0
    tasks = {t["name"]: t["provider"] for t in json.loads(capsys.readouterr().out)["tasks"]}
    assert tasks["hetero_secure_boost_0"] == "native"
