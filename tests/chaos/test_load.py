"""Load: federated jobs submitted at once across two parties all succeed, the same everywhere.

Each job is the 3-component ``toy2`` (every component exchanges messages between the parties); all
of them are triggered at the guest back to back through Airflow's REST API. Every job must succeed at
both parties with no Airflow run or task left running. How the scheduling overhead per component
grows from 1 to 20 concurrent jobs, and what the party service costs in CPU per job, is measured by
``bench/load.py`` (run by hand), not asserted here.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

import pytest

from fate_airflow.deploy.party import start_party
from tests.chaos.harness import DAG, GUEST, HOST, Chaos

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(1800)]

JOBS_AT_ONCE = int(os.environ.get("FATE_AIRFLOW_LOAD_JOBS", "20"))
#: Generous on 2 CPUs: twenty jobs of three components, four task slots per party.
BOUND = 1200.0


def test_jobs_submitted_at_once_all_succeed_at_both_parties(chaos: Chaos) -> None:
    fed = chaos.fed
    # As `party up` deploys them: with the watchdog (the chaos rounds restart what they kill
    # themselves). On SQLite a burst of runs can cost Airflow's scheduler its life ("database is
    # locked"); the watchdog brings it back.
    for pid, cfg in fed.parties.items():
        start_party(replace(cfg, watchdog=True), fed.config_paths[pid])
    rest = fed.rest(GUEST)
    conf = {"component_parameters": {"common": {t: {"data_num": 50} for t in ("toy_0", "toy_1", "toy_2")}}}
    jobs = [rest.trigger(DAG, conf) for _ in range(JOBS_AT_ONCE)]
    assert len(set(jobs)) == JOBS_AT_ONCE
    deadline = time.monotonic() + BOUND
    pending = set(jobs)
    ended: dict[str, dict[str, str]] = {}
    while pending and time.monotonic() < deadline:
        for job in sorted(pending):
            views = {p: fed.job_view(p, job) for p in (GUEST, HOST)}
            if all(
                v.found and v.status in ("success", "failed", "canceled", "timeout") for v in views.values()
            ):
                ended[job] = {p: f"{v.status} {v.reason}".strip() for p, v in views.items()}
                pending.discard(job)
        time.sleep(2.0)
    assert not pending, f"{len(pending)} of {JOBS_AT_ONCE} jobs did not end within {BOUND:.0f} s"
    bad = {
        job: statuses
        for job, statuses in ended.items()
        if {s.split()[0] for s in statuses.values()} != {"success"}
    }
    assert not bad, bad
    for party in (GUEST, HOST):
        states = {job: fed.rest(party).run_state(DAG, job) for job in jobs}
        assert set(states.values()) == {"success"}, states
