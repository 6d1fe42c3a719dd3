"""FATE provider tasks forked by the party's warm FATE worker (fate_zygote.py), with real pyfate.

Each test module gets its own provider folder (a copy of the registry of the session's FATE env), so
its zygote is its own: started by the first FATE task here, with the idle timeout chosen here.
A guest-only share of FATE's two-party ``psi`` is a real FATE task that runs until stopped (it waits
for the host over the gateway's PTP endpoint): the abort and dropped-connection tests use it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from fate_airflow.components.api import PartyTaskRequest, PartyTaskResult
from fate_airflow.components.fate_provider.component import job_namespace
from fate_airflow.components.fate_provider.worker import worker_folder
from fate_airflow.components.simulate import TaskSpec, run_shares
from fate_airflow.core.errors import ComponentError
from fate_airflow.core.providers import ProviderRegistry
from fate_airflow.core.types import InputRef, Party
from fate_airflow.tracking import ModelKey, ModelStore
from tests.conftest import FATE_EXAMPLES
from tests.integration.components.test_components_grpc import Gateways

DATA = FATE_EXAMPLES / "data"
GUEST, HOST = Party("guest", "9999"), Party("host", "10000")
FATE = "fate:2.2.0"
REPO = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.slow


def _table(party: Party) -> InputRef:
    name = "breast_hetero_guest" if party == GUEST else "breast_hetero_host"
    return InputRef(
        "data", "input_data", "data_warehouse", namespace="experiment", name=name, parties=(party,)
    )


STATS_METRICS = ["mean", "std", "0%", "25%", "median", "75%", "100%", "missing_ratio"]
#: FATE's statistics at the guest only: a single-party FATE task.
GUEST_STATS = TaskSpec(
    "statistics_0",
    "statistics@1.0.0",
    (GUEST,),
    component="statistics",
    common={"metrics": STATS_METRICS, "bias": True},
    inputs=(_table(GUEST),),
    outputs={"model": ("output_model",)},
    stage="default",
)
#: The same at both parties at once (two shares forked concurrently).
BOTH_STATS = dataclasses.replace(GUEST_STATS, parties=(GUEST, HOST), inputs=(_table(GUEST), _table(HOST)))
#: FATE's psi run at the guest alone: it waits for the host until stopped.
BLOCKING_PSI = TaskSpec(
    "psi_wait",
    "intersection@1.0.0",
    (GUEST, HOST),
    component="psi",
    inputs=(_table(GUEST), _table(HOST)),
    outputs={"data": ("output_data",)},
    stage="default",
)


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateways]:
    gw = Gateways(tmp_path_factory.mktemp("gateways"), ptp=True)
    yield gw
    gw.close()


def _provider_copy(fate_provider_dir: Path, folder: Path) -> Path:
    folder.mkdir(parents=True)
    shutil.copy(fate_provider_dir / "registry.json", folder / "registry.json")
    return folder


def _stop_zygote(provider_dir: Path) -> None:
    for pid_file in provider_dir.glob("run/*/zygote.pid"):
        try:
            proc = psutil.Process(int(pid_file.read_text()))
            if any("fate_zygote.py" in part for part in proc.cmdline()):
                proc.terminate()
                proc.wait(10)
        except (psutil.Error, ValueError, OSError):
            pass


@pytest.fixture(scope="module")
def providers(fate_provider_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """This module's provider folder: same FATE env, its own zygote (stopped at the end)."""
    folder = _provider_copy(fate_provider_dir, tmp_path_factory.mktemp("zygote") / "providers")
    yield folder
    _stop_zygote(folder)


@pytest.fixture(autouse=True)
def _worker_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FATE_AIRFLOW_FATE_WORKER", "on")
    monkeypatch.setenv("FATE_AIRFLOW_FATE_WORKER_IDLE", "120")


def _requests(
    gw: Gateways, spec: TaskSpec, dirs: dict[str, str], provider_dir: Path, job_id: str | None = None
) -> list[PartyTaskRequest]:
    return [
        dataclasses.replace(
            spec.request(
                p, job_id=job_id or dirs["job_id"], data_dir=dirs[p.party_id], model_id="m", model_version="v"
            ),
            provider=FATE,
            provider_dir=str(provider_dir),
            ptp_address=gw.ptp(p.party_id),
        )
        for p in spec.parties
    ]


def _run(
    gw: Gateways,
    spec: TaskSpec,
    dirs: dict[str, str],
    provider_dir: Path,
    *,
    parties: tuple[Party, ...] | None = None,
    job_id: str | None = None,
    abort: threading.Event | None = None,
) -> dict[Party, PartyTaskResult]:
    requests = [
        r for r in _requests(gw, spec, dirs, provider_dir, job_id) if r.local in (parties or spec.parties)
    ]
    out = run_shares(requests, gw.federation, abort=abort)
    for outcome in out.values():
        if outcome.error is not None:
            raise outcome.error
    return {p: o.unwrap() for p, o in out.items()}


def _model(dirs: dict[str, str], party: Party, job_model: str = "m") -> dict[str, object]:
    stored = ModelStore(dirs[party.party_id]).load(
        ModelKey(job_model, "v", party.role, party.party_id, "statistics_0")
    )
    return dict(stored.params["fate_models"])


def _canonical(value: object) -> object:
    """FATE's statistics lists its metric names from a set: their order follows the hash seed."""
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_canonical(v) for v in value]
        return sorted(items) if all(isinstance(v, str) for v in items) else items
    return value


def _forked(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "forked by the warm worker" in r.getMessage()]


def _zygote_pid(provider_dir: Path) -> int:
    (pid_file,) = provider_dir.glob("run/*/zygote.pid")
    return int(pid_file.read_text())


def _task_processes(marker: str) -> list[psutil.Process]:
    """FATE task processes (the matcher of test_fate_provider.py) whose command line names ``marker``."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = [str(c) for c in (proc.info.get("cmdline") or [])]
        if any(c.endswith("fate_task.py") for c in cmdline) and any(marker in c for c in cmdline):
            found.append(proc)
    return found


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


# ---------------------------------------------------------------------- results and logs


def test_a_warm_task_gives_the_same_results_as_a_cold_one_and_streams_its_log(
    gateways: Gateways,
    data_dirs: dict[str, str],
    providers: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("FATE_AIRFLOW_FATE_WORKER", "off")
    cold = _run(gateways, GUEST_STATS, data_dirs, providers, job_id=data_dirs["job_id"] + "-cold")[GUEST]
    cold_model = _model(data_dirs, GUEST)
    assert not _forked(caplog)
    caplog.clear()

    monkeypatch.setenv("FATE_AIRFLOW_FATE_WORKER", "on")
    warm = _run(gateways, GUEST_STATS, data_dirs, providers, job_id=data_dirs["job_id"] + "-warm")[GUEST]
    assert len(_forked(caplog)) == 1
    assert warm.summary["provider"] == cold.summary["provider"] == FATE
    assert _canonical(_model(data_dirs, GUEST)) == _canonical(cold_model)
    assert warm.metrics == cold.metrics
    assert sorted(warm.outputs) == sorted(cold.outputs)
    x0 = cold_model["output_model"]["data"]["metrics_summary"]["x0"]  # type: ignore[index]
    assert x0["0%"] == pytest.approx(-1.726901, abs=1e-6)
    assert x0["std"] == pytest.approx(1.000880, abs=1e-6)

    # FATE's own log lines (fate_task.py's, from the forked child) reach the task log and the share's file.
    fate_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[fate ")]
    assert any("running FATE component statistics as guest 9999" in line for line in fate_lines)
    share = (
        Path(data_dirs["9999"])
        / "fate"
        / "tasks"
        / job_namespace(data_dirs["job_id"] + "-warm")
        / "statistics_0"
    )
    assert "running FATE component statistics" in (share / "guest_9999" / "v1" / "fate_task.log").read_text()

    # A failure is reported as for a cold start: FATE's exception, exit code 1.
    bad = dataclasses.replace(GUEST_STATS, common={"metrics": ["no_such_metric"]})
    with pytest.raises(ComponentError, match="FATE component statistics failed"):
        _run(gateways, bad, data_dirs, providers, job_id=data_dirs["job_id"] + "-bad")


def test_two_first_tasks_start_one_zygote_and_run_concurrently(
    gateways: Gateways,
    data_dirs: dict[str, str],
    fate_provider_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    # A fresh provider folder: both parties' shares find no zygote and race to start one.
    providers = _provider_copy(fate_provider_dir, tmp_path / "race-providers")
    try:
        out = _run(gateways, BOTH_STATS, data_dirs, providers)
        (log,) = providers.glob("run/*/zygote.log")
        assert log.read_text().count("FATE pre-imported") == 1
    finally:
        _stop_zygote(providers)
    forked = _forked(caplog)
    assert len(forked) == 2 and len({line.rsplit("pid ", 1)[1] for line in forked}) == 2
    for party, (lo, hi) in {GUEST: (-1.726901, 4.094189), HOST: (-2.029648, 3.971288)}.items():
        assert out[party].summary["provider"] == FATE
        x0 = _model(data_dirs, party)["output_model"]["data"]["metrics_summary"]["x0"]  # type: ignore[index]
        assert x0["0%"] == pytest.approx(lo, abs=1e-6)
        assert x0["100%"] == pytest.approx(hi, abs=1e-6)


# ---------------------------------------------------------------------- stopping


def test_abort_kills_the_forked_tree_and_the_zygote_serves_on(
    gateways: Gateways, data_dirs: dict[str, str], providers: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    abort = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            _run(gateways, BLOCKING_PSI, data_dirs, providers, parties=(GUEST,), abort=abort)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    marker = str(Path(data_dirs["9999"]) / "fate")
    _wait_for(lambda: _task_processes(marker), 120, "the forked FATE task")
    zygote = _zygote_pid(providers)
    found = _task_processes(marker)
    # The forked child shows the cold start's command line; the zygote does not.
    assert any(p.ppid() == zygote for p in found)
    assert zygote not in {p.pid for p in _task_processes("")}
    assert "fate_zygote.py" in " ".join(psutil.Process(zygote).cmdline())
    time.sleep(2.0)  # let FATE get into its federation wait (and start its computing pool)
    tree = _task_processes(marker)
    abort.set()
    thread.join(60)
    assert not thread.is_alive()
    assert len(failure) == 1 and isinstance(failure[0], ComponentError) and "aborted" in str(failure[0])
    _wait_for(lambda: not _task_processes(marker), 10, "the forked FATE tree to end")
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in tree)
    assert psutil.Process(zygote).is_running()
    # The zygote reaped the child and serves the next task.
    caplog.clear()
    _run(gateways, GUEST_STATS, data_dirs, providers)
    assert len(_forked(caplog)) == 1 and _zygote_pid(providers) == zygote


_KILLED_TASK = """
import json, sys
from fate_airflow.components.simulate import run_shares
from fate_airflow.federation.api import FederationSession
from fate_airflow.federation.inmemory import InMemoryHub
from tests.integration.components.test_fate_zygote import BLOCKING_PSI, GUEST
import dataclasses

args = json.loads(sys.argv[1])
request = dataclasses.replace(
    BLOCKING_PSI.request(GUEST, job_id=args["job_id"], data_dir=args["data_dir"]),
    provider="fate:2.2.0", provider_dir=args["provider_dir"], ptp_address=args["ptp"],
)
hub = InMemoryHub()
run_shares([request], lambda r: hub.federation(
    FederationSession(r.job_id, r.task_name, r.task_version, r.local, r.parties)))
"""


def test_a_killed_task_process_takes_its_forked_child_with_it(
    gateways: Gateways, data_dirs: dict[str, str], providers: Path
) -> None:
    args = {
        "job_id": data_dirs["job_id"],
        "data_dir": data_dirs["9999"],
        "provider_dir": str(providers),
        "ptp": gateways.ptp("9999"),
    }
    task = subprocess.Popen(
        [sys.executable, "-c", _KILLED_TASK, json.dumps(args)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    marker = str(Path(data_dirs["9999"]) / "fate")
    try:
        _wait_for(lambda: _task_processes(marker), 120, "the forked FATE task")
        zygote = _zygote_pid(providers)
        assert any(p.ppid() == zygote for p in _task_processes(marker))
        time.sleep(1.0)
    finally:
        # SIGKILL: the task process cannot clean up; only its dropped connection tells the zygote.
        task.send_signal(signal.SIGKILL)
        task.wait(10)
    _wait_for(lambda: not _task_processes(marker), 10, "the zygote to kill the orphaned child")
    assert psutil.Process(zygote).is_running()


# ---------------------------------------------------------------------- lifecycle and fallback


def test_the_zygote_exits_after_its_idle_timeout(
    gateways: Gateways,
    data_dirs: dict[str, str],
    fate_provider_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("FATE_AIRFLOW_FATE_WORKER_IDLE", "3")
    providers = _provider_copy(fate_provider_dir, tmp_path / "idle-providers")
    try:
        _run(gateways, GUEST_STATS, data_dirs, providers)
        assert len(_forked(caplog)) == 1
        zygote = psutil.Process(_zygote_pid(providers))
        info = ProviderRegistry(providers).find("fate", "2.2.0")
        assert info is not None
        folder = worker_folder(info, providers)
        assert (folder / "zygote.sock").exists()
        assert oct(folder.stat().st_mode & 0o777) == oct(0o700)
        zygote.wait(30)  # idle 3 s (+ the poll tick)
        assert not (folder / "zygote.sock").exists()
        assert "idle for 3 s; exiting" in (folder / "zygote.log").read_text()
    finally:
        _stop_zygote(providers)


def test_an_unusable_worker_folder_falls_back_to_a_cold_start(
    gateways: Gateways,
    data_dirs: dict[str, str],
    fate_provider_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    providers = _provider_copy(fate_provider_dir, tmp_path / "blocked-providers")
    (providers / "run").write_text("not a folder")  # the zygote's folder cannot be created
    out = _run(gateways, GUEST_STATS, data_dirs, providers)[GUEST]
    assert out.summary["provider"] == FATE
    assert not _forked(caplog)
    why = [r.getMessage() for r in caplog.records if "warm worker is unavailable" in r.getMessage()]
    assert len(why) == 1 and "starting FATE statistics cold" in why[0]
    x0 = _model(data_dirs, GUEST)["output_model"]["data"]["metrics_summary"]["x0"]  # type: ignore[index]
    assert x0["0%"] == pytest.approx(-1.726901, abs=1e-6)
