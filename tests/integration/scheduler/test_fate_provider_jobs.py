"""FATE's own example DAGs through the drop folder at two real Airflow parties, with the FATE provider.

Guest 9999 and host 10000 each run Airflow and a gateway as ``party up`` deploys them, and each has
FATE 2.2 registered as a provider (the environment `make provider-env` built, registered the way
``fate-airflow provider install`` registers it). The job files are FATE's pipeline examples compiled
to DAG YAML, unchanged: native reader/psi/evaluation and FATE's statistics and hetero_secureboost
share one DAG (a mixed-provider job). Expected values are FATE 2.2 standalone's
(../shared/reference/fate22-results.md).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
import pytest

from fate_airflow.core.providers import ProviderRegistry
from fate_airflow.deploy.localfed import LocalFederation, create_local_federation
from fate_airflow.storage.tables import TableStore
from fate_airflow.storage.upload import UploadSpec, upload
from fate_airflow.tracking import ModelKey, ModelStore
from tests.conftest import FATE_EXAMPLES

pytestmark = [pytest.mark.airflow, pytest.mark.slow, pytest.mark.timeout(1200)]

DAGS = FATE_EXAMPLES / "v2-pipeline-dags"
DATA = FATE_EXAMPLES / "data"
GUEST, HOST = "9999", "10000"
STATISTICS = "statistics__test_statistics"
SBT = "hetero_secureboost__test_hetero_sbt_binary"
CLI = str(Path(sys.executable).with_name("fate-airflow"))


def _upload(fed: LocalFederation, party: str, csv: str, name: str, label: str | None) -> None:
    upload(
        TableStore.local(fed.parties[party].data_dir),
        UploadSpec(file=DATA / csv, namespace="experiment", name=name, id_column="id", label_column=label),
        overwrite=True,
    )


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory, fate_provider_dir: Path) -> Iterator[LocalFederation]:
    if not DAGS.is_dir():
        pytest.fail(f"FATE's example DAGs are missing: {DAGS}")
    base = tmp_path_factory.mktemp("fate-federation")
    drop = base / "guest-jobs"
    drop.mkdir()
    federation = create_local_federation(base, [GUEST, HOST], jobs_folders={GUEST: drop}, party_timeout=10.0)
    fate = ProviderRegistry(fate_provider_dir).find("fate", "2.2.0")
    assert fate is not None
    try:
        federation.init()
        for cfg in federation.parties.values():
            ProviderRegistry(cfg.provider_dir).register(fate)
        _upload(federation, GUEST, "breast_hetero_guest.csv", "breast_hetero_guest", "y")
        _upload(federation, HOST, "breast_hetero_host.csv", "breast_hetero_host", None)
        for dag in (STATISTICS, SBT):
            shutil.copy(DAGS / f"{dag}.yaml", drop / f"{dag}.yaml")
        federation.up(wait=300)
        for dag in (STATISTICS, SBT):
            federation.rest(GUEST).wait_dag(dag)
        yield federation
    finally:
        federation.down()


def fate_record(fed: LocalFederation, party: str, dag_id: str, run_id: str, task: str) -> dict[str, Any]:
    resp = fed.rest(party).request(
        "GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task}/xcomEntries/fate"
    )
    assert resp.status_code == 200, resp.text
    value = resp.json()["value"]
    return json.loads(value) if isinstance(value, str) else dict(value)


def test_fate_statistics_example_runs_at_both_parties_and_matches_fate(fed: LocalFederation) -> None:
    job = fed.rest(GUEST).trigger(STATISTICS, None)
    view = fed.wait_job(job, timeout=400)
    assert view.status == "success", view.reason
    for party, (lo, hi) in {GUEST: (-1.726901, 4.094189), HOST: (-2.029648, 3.971288)}.items():
        record = fate_record(fed, party, STATISTICS, job, "statistics_0")
        share = record["roles"]["guest" if party == GUEST else "host"]
        assert share["summary"]["provider"] == "fate:2.2.0"
        uri = share["outputs"]["output_model"]
        stored = ModelStore(fed.parties[party].data_dir).load(ModelKey.parse(uri))
        x0 = stored.params["fate_models"]["output_model"]["data"]["metrics_summary"]["x0"]
        assert x0["0%"] == pytest.approx(lo, abs=1e-6)
        assert x0["100%"] == pytest.approx(hi, abs=1e-6)


def _fate_pids(party_home: Path, task: str) -> list[psutil.Process]:
    """The FATE processes running ``task`` for the party at ``party_home``."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = [str(c) for c in (proc.info.get("cmdline") or [])]
        if any(c.endswith("fate_task.py") for c in cmdline) and any(
            str(party_home) in c and f"/{task}/" in c for c in cmdline
        ):
            found.append(proc)
    return found


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def tis(fed: LocalFederation, party: str, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
    resp = fed.rest(party).request(
        "GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances"
    )
    assert resp.status_code == 200, resp.text
    return {ti["task_id"]: ti for ti in resp.json()["task_instances"]}


def both_failed(fed: LocalFederation, dag_id: str, job: str) -> bool:
    return all(fed.rest(p).run_state(dag_id, job) == "failed" for p in (GUEST, HOST))


def cli(fed: LocalFederation, *args: str) -> None:
    out = subprocess.run(
        [CLI, "job", *args, "--config", str(fed.config_paths[GUEST])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr


#: A SecureBoost long enough to interrupt (several seconds per tree here), short enough to rerun.
LONGER = {"dag": {"tasks": {"sbt_0": {"parameters": {"num_trees": 10, "max_depth": 3}}}}}


def test_mixed_provider_sbt_job_succeeds(fed: LocalFederation) -> None:
    # reader, psi, evaluation: native; hetero_secureboost: FATE 2.2, in one DAG.
    job = fed.rest(GUEST).trigger(SBT, None)
    view = fed.wait_job(job, timeout=500)
    assert view.status == "success", view.reason
    metrics = fate_record(fed, GUEST, SBT, job, "eval_0")["roles"]["guest"]["metrics"]
    # FATE 2.2 reports AUC 0.975166 for this job with its one GOSS draw; the draw differs per run.
    assert metrics["auc"] > 0.95
    sbt = fate_record(fed, GUEST, SBT, job, "sbt_0")["roles"]["guest"]
    assert sbt["summary"]["provider"] == "fate:2.2.0"
    assert sbt["metrics"]["fate_metrics"][0]["name"] == "sbt_loss"
    assert fate_record(fed, GUEST, SBT, job, "psi_0")["roles"]["guest"]["summary"].get("provider") is None


def test_killing_the_hosts_fate_process_fails_every_party_within_10_s_and_a_rerun_succeeds(
    fed: LocalFederation,
) -> None:
    job = fed.rest(GUEST).trigger(SBT, LONGER)
    host_home = fed.parties[HOST].home
    victims: list[psutil.Process] = []

    def started() -> bool:
        victims[:] = _fate_pids(host_home, "sbt_0")
        return bool(victims)

    wait_until(started, 300, "the host's FATE process")
    time.sleep(3)
    for proc in victims:
        proc.kill()
    view = fed.wait_job(job, timeout=120)
    assert view.status == "failed"
    assert "task sbt_0 failed at party 10000 (host)" in view.reason
    assert "FATE process exited" in view.reason
    wait_until(lambda: both_failed(fed, SBT, job), 15, "both runs failed")
    host_ti, guest_ti = tis(fed, HOST, SBT, job)["sbt_0"], tis(fed, GUEST, SBT, job)["sbt_0"]
    assert host_ti["state"] == guest_ti["state"] == "failed"
    lag = (
        datetime.fromisoformat(guest_ti["end_date"]) - datetime.fromisoformat(host_ti["end_date"])
    ).total_seconds()
    assert lag <= 10, f"the guest's FATE task ended {lag:.1f} s after the host's"
    wait_until(lambda: not _fate_pids(fed.parties[GUEST].home, "sbt_0"), 10, "the guest's FATE process gone")

    # Rerun from the failed FATE component: version + 1 at every party, from the same inputs.
    cli(fed, "rerun", job, "--from", "sbt_0")
    view = fed.wait_job(job, timeout=600)
    assert view.status == "success", view.reason
    assert {t.task_name: t.task_version for t in view.tasks}["sbt_0"] == 1
    for party in (GUEST, HOST):
        wait_until(
            lambda p=party: fed.rest(p).run_state(SBT, job) == "success", 30, f"run success at {party}"
        )
        assert fate_record(fed, party, SBT, job, "sbt_0")["task_version"] == 1
    assert fate_record(fed, GUEST, SBT, job, "eval_0")["roles"]["guest"]["metrics"]["auc"] > 0.95


def test_stop_during_a_fate_task_cancels_every_party_and_ends_the_fate_processes(
    fed: LocalFederation,
) -> None:
    job = fed.rest(GUEST).trigger(SBT, LONGER)
    wait_until(
        lambda: all(_fate_pids(fed.parties[p].home, "sbt_0") for p in (GUEST, HOST)),
        300,
        "FATE running at both",
    )
    start = time.monotonic()
    cli(fed, "stop", job)
    wait_until(lambda: both_failed(fed, SBT, job), 10 - (time.monotonic() - start), "both runs stopped")
    view = fed.wait_job(job, timeout=30)
    assert view.status == "canceled"
    for party in (GUEST, HOST):
        wait_until(lambda p=party: not _fate_pids(fed.parties[p].home, "sbt_0"), 10, f"FATE gone at {party}")
