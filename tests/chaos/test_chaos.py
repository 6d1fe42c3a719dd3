"""Chaos campaign: a federated job survives any one process of any party dying, and a partition.

Two parties (guest 9999, host 10000) run as ``party up`` deploys them — Airflow (api-server,
scheduler, dag-processor, triggerer; LocalExecutor, SQLite) and the gateway with the party service —
and reach each other only through a fault-injecting TCP proxy on loopback. Each round runs the
3-component ``toy2`` job (every component exchanges messages between the parties) and, at a random
moment, SIGKILLs one random process of a random party — party service/gateway, scheduler, triggerer,
api-server, dag-processor, or the task process of a running component — and restarts it after a
random delay (a killed task is restarted by Airflow's retry, not by us). One more round partitions
the gateways for 30 s.

Every round must end with one final status at both parties within a bound after recovery, leave no
Airflow run or task running, and — since recovery always comes before the party timeout and the job
has no timeout — succeed.

``FATE_AIRFLOW_CHAOS_ROUNDS`` (default 3) sets the number of kill rounds and
``FATE_AIRFLOW_CHAOS_SEED`` the seed (default: the date, printed); results go to
``test-results/chaos.json``. The README has a larger campaign run by hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from dataclasses import asdict, dataclass

import psutil
import pytest

from fate_airflow.deploy.localfed import LocalFederation
from fate_airflow.deploy.party import (
    GATEWAY_PROCESS,
    party_processes,
    process_pids,
    start_party,
)
from fate_airflow.federation.api import JobView
from tests.chaos.harness import DAG, GUEST, HOST, ORPHANS, Chaos
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(3600)]

TASKS = ("toy_0", "toy_1", "toy_2")
TARGETS = (GATEWAY_PROCESS, "scheduler", "triggerer", "api-server", "dag-processor", "task")
#: Bound on the time from recovery (restart done / partition healed) to one final status everywhere.
END_BOUND = 240.0
RESULTS = REPO_ROOT / "test-results" / "chaos.json"


# ---------------------------------------------------------------------- helpers
def _task_processes(fed: LocalFederation, party: str) -> list[psutil.Process]:
    """The task runner processes at ``party`` (Airflow titles them ``airflow worker -- <ti id>``).

    Only one job runs during the campaign, so every task runner belongs to its running component.
    """
    found = []
    for proc in party_processes(fed.parties[party]):
        with contextlib.suppress(psutil.Error):
            title = " ".join(proc.cmdline())
            # LocalExecutor's own workers are titled "airflow worker -- LocalExecutor: ...".
            if title.startswith("airflow worker -- ") and "LocalExecutor" not in title:
                found.append(proc)
    return found


def _component_running(fed: LocalFederation, party: str, job: str) -> str | None:
    """The task whose component ``party`` reported running, as the initiator sees it."""
    try:
        view = fed.job_view(GUEST, job)
    except Exception:
        return None
    for task in view.tasks:
        if any(c.party_id == party and c.status == "running" for c in task.parties):
            return task.task_name
    return None


def _running_task(fed: LocalFederation, party: str, run_id: str) -> str | None:
    try:
        states = fed.rest(party).task_states(DAG, run_id)
    except Exception:
        return None
    return next((t for t, s in states.items() if s == "running"), None)


def _kill(fed: LocalFederation, party: str, target: str, run_id: str) -> str:
    """SIGKILL ``target`` at ``party``; returns what was killed (for the report)."""
    if target == "task":
        procs = _task_processes(fed, party)
        if not procs:
            return "task (none running)"
        procs[0].kill()
        return f"task pid {procs[0].pid} ({_running_task(fed, party, run_id)})"
    pid = process_pids(fed.parties[party])[target]
    if pid is None:
        return f"{target} (not running)"
    with contextlib.suppress(psutil.Error):
        proc = psutil.Process(pid)
        # Its children live on (LocalExecutor's workers, retitled so the party no longer finds
        # them); they are killed when the campaign ends.
        ORPHANS.extend(proc.children(recursive=True))
        proc.kill()
    return f"{target} pid {pid}"


def _final_views(fed: LocalFederation, job: str) -> dict[str, JobView]:
    views = {}
    for party in (GUEST, HOST):
        with contextlib.suppress(Exception):
            views[party] = fed.job_view(party, job)
    return views


def _wait_consistent_end(fed: LocalFederation, job: str, bound: float) -> tuple[str, float]:
    """Wait until both parties hold the same final status; returns it and the seconds waited."""
    start = time.monotonic()
    views: dict[str, JobView] = {}
    while time.monotonic() - start < bound:
        views = _final_views(fed, job)
        statuses = {v.status for v in views.values() if v.found}
        if (
            len(views) == 2
            and len(statuses) == 1
            and statuses <= {"success", "failed", "canceled", "timeout"}
        ):
            return statuses.pop(), time.monotonic() - start
        time.sleep(1.0)
    raise AssertionError(
        f"job {job} has no single final status {bound:.0f} s after recovery: "
        + ", ".join(f"{p}: {v.status} ({v.reason})" for p, v in views.items())
    )


def _nothing_left_running(fed: LocalFederation, job: str) -> bool:
    for party in (GUEST, HOST):
        rest = fed.rest(party)
        if rest.run_state(DAG, job) in ("running", "queued"):
            return False
        if any(
            s in ("running", "queued", "scheduled", "up_for_retry", "deferred")
            for s in rest.task_states(DAG, job).values()
        ):
            return False
    return True


@dataclass
class Round:
    index: int
    fault: str
    party: str
    killed: str
    at_s: float
    down_s: float
    status: str
    end_after_recovery_s: float
    versions: dict[str, int]


def _run_round(chaos: Chaos, index: int, rng: random.Random, fault: str, party: str) -> Round:
    fed = chaos.fed
    sleep = {t: round(rng.uniform(4.0, 8.0), 1) for t in TASKS}
    conf = {
        "component_parameters": {
            "common": {t: {"data_num": 100, "sleep_seconds": s} for t, s in sleep.items()}
        }
    }
    job = fed.rest(GUEST).trigger(DAG, conf)
    started = time.monotonic()
    at = rng.uniform(2.0, 12.0)
    down = round(rng.uniform(1.0, 10.0), 1) if fault != "partition" else 30.0
    if fault == "task":
        # Wait for a component to be running at that party, then kill its task process.
        # Wait until a component runs there (the party reported it running), then kill its process
        # during the component's work.
        deadline = time.monotonic() + 90
        while _component_running(fed, party, job) is None and time.monotonic() < deadline:
            time.sleep(0.3)
        time.sleep(rng.uniform(0.5, 2.0))
    else:
        time.sleep(max(0.0, at - (time.monotonic() - started)))
    at = time.monotonic() - started
    if fault == "partition":
        for proxy in chaos.proxies.values():
            proxy.partition()
        killed = "gateway link (both ways)"
        time.sleep(down)
        for proxy in chaos.proxies.values():
            proxy.heal()
    else:
        killed = _kill(fed, party, fault, job)
        time.sleep(down)
        if fault != "task":
            start_party(fed.parties[party], fed.config_paths[party], wait=180)
    status, waited = _wait_consistent_end(fed, job, END_BOUND)
    deadline = time.monotonic() + 60
    while not _nothing_left_running(fed, job) and time.monotonic() < deadline:
        time.sleep(1.0)
    view = fed.job_view(GUEST, job)
    result = Round(
        index, fault, party, killed, round(at, 1), down, status, round(waited, 1),
        {t.task_name: t.task_version for t in view.tasks},
    )  # fmt: skip
    assert _nothing_left_running(fed, job), f"round {index}: an Airflow run or task of {job} is still running"
    assert status == "success", f"round {index} ({fault} at {party}): job {job} ended {status}: {view.reason}"
    return result


def _record(rounds: list[Round], seed: int) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    worst = max((r.end_after_recovery_s for r in rounds), default=0.0)
    RESULTS.write_text(
        json.dumps(
            {"seed": seed, "worst_end_after_recovery_s": worst, "rounds": [asdict(r) for r in rounds]},
            indent=2,
        )
    )


# ---------------------------------------------------------------------- the campaign
def test_every_job_ends_the_same_everywhere_whatever_process_dies(chaos: Chaos) -> None:
    rounds_n = int(os.environ.get("FATE_AIRFLOW_CHAOS_ROUNDS", "3"))
    seed = int(os.environ.get("FATE_AIRFLOW_CHAOS_SEED", time.strftime("%Y%m%d")))
    print(f"chaos seed {seed}, {rounds_n} kill rounds + 1 partition")
    rng = random.Random(seed)
    # The small campaign of `make test` always covers the party service and a running task.
    faults = ["task", GATEWAY_PROCESS, *(rng.choice(TARGETS) for _ in range(max(0, rounds_n - 2)))][:rounds_n]
    rounds: list[Round] = []
    try:
        for index, fault in enumerate(faults):
            rounds.append(_run_round(chaos, index, rng, fault, rng.choice((GUEST, HOST))))
        rounds.append(_run_round(chaos, len(faults), rng, "partition", "both"))
    finally:
        _record(rounds, seed)
    task_round = rounds[0]
    killed_task = task_round.killed.rpartition("(")[2].rstrip(")")
    if killed_task in TASKS:
        # The killed component was retried by Airflow and restarted as a new version at both parties.
        assert task_round.versions[killed_task] >= 1, task_round
