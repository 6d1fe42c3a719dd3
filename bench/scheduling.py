"""Scheduling overhead: a 5-component federated chain across 2 parties vs the same chain on one Airflow.

Run by hand (takes a few minutes; brings up two local parties)::

    .venv/bin/python bench/scheduling.py [--runs 3] [--keep]

Both chains run in the same guest Airflow in the same run:

* **federated** — 5 chained FATE ``SecureAddExample`` components (``toy_example``: a real secure sum
  between guest 9999 and host 10000 through both gateways), each one coordinated across the parties
  (prepare everywhere, start with one task version, report, aggregate);
* **baseline** — 5 chained plain Airflow tasks computing the same local sum, no federation.

Reported: trigger → success wall time (median of ``--runs``), and the added time per component
``(federated - baseline) / 5``. The README states the ratio.

Stop latency (the integration tests check that a stop or failure reaches every party, not how fast):
the chain runs with ``toy_0`` sleeping, the run is marked failed in the guest's Airflow (the UI's
"mark failed"), and the time until the **host's** task has ended is set against the **baseline**:
the time until the guest's own task — the one Airflow itself terminates — has ended.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from _baseline import bench_parties

from fate_airflow.deploy.airflow_rest import AirflowRestClient

N = 5


def chain_job() -> tuple[dict[str, object], dict[str, object]]:
    components: dict[str, object] = {}
    for i in range(N):
        spec: dict[str, object] = {"module": "SecureAddExample", "output": {"data": ["data"]}}
        if i:
            spec["input"] = {"data": {"data": [f"toy_{i - 1}.data"]}}
        components[f"toy_{i}"] = spec
    dsl = {"components": components}
    conf = {
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": 9999},
        "role": {"guest": [9999], "host": [10000]},
        "component_parameters": {"common": {f"toy_{i}": {"data_num": 100} for i in range(N)}},
    }
    return dsl, conf


def timed_run(rest: AirflowRestClient, dag_id: str) -> float:
    start = time.monotonic()
    run_id = rest.trigger(dag_id)
    while True:
        state = rest.run_state(dag_id, run_id)
        if state == "success":
            return time.monotonic() - start
        if state == "failed":
            raise SystemExit(f"{dag_id} run {run_id} failed")
        time.sleep(0.2)


def _task_end(rest: AirflowRestClient, dag_id: str, run_id: str, task_id: str) -> datetime | None:
    resp = rest.request(
        "GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}"
    )
    body = resp.json()
    return datetime.fromisoformat(body["end_date"]) if body.get("end_date") else None


def stop_latency(guest: AirflowRestClient, host: AirflowRestClient) -> tuple[float, float]:
    """Seconds from "mark failed" at the guest to the end of toy_0 at the guest and at the host."""
    conf = {"component_parameters": {"common": {"toy_0": {"data_num": 100, "sleep_seconds": 120}}}}
    run_id = guest.trigger("chain5", conf)
    path = f"/api/v2/dags/chain5/dagRuns/{quote(run_id, safe='')}/taskInstances/toy_0"
    deadline = time.monotonic() + 180
    while not all(
        r.request("GET", path, ok=(200, 404)).json().get("state") == "running" for r in (guest, host)
    ):
        if time.monotonic() > deadline:
            raise SystemExit("toy_0 never ran at both parties")
        time.sleep(0.5)
    time.sleep(3)  # into the sleep, past the task's start-up
    marked = datetime.now(UTC)
    guest.request("PATCH", f"/api/v2/dags/chain5/dagRuns/{quote(run_id, safe='')}", json={"state": "failed"})
    ends: dict[str, datetime] = {}
    while len(ends) < 2:
        if time.monotonic() > deadline + 120:
            raise SystemExit(f"the stop did not end toy_0 everywhere: {sorted(ends)}")
        for name, rest in (("guest", guest), ("host", host)):
            end = ends.get(name) or _task_end(rest, "chain5", run_id, "toy_0")
            if end is not None:
                ends[name] = end
        time.sleep(0.5)
    return (ends["guest"] - marked).total_seconds(), (ends["host"] - marked).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the parties' folder")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="fate-bench-sched-"))
    dsl, conf = chain_job()
    files = {"chain5_dsl.json": json.dumps(dsl), "chain5_conf.json": json.dumps(conf)}
    fed = bench_parties(base, ("baseline_chain", N, "bench/scheduling.py"), files)
    try:
        fed.init()
        fed.up()
        rest = fed.rest("9999")
        rest.wait_dag("chain5")
        rest.wait_dag("baseline_chain")
        timed_run(rest, "baseline_chain")  # warm-up: first task runs pay one-off imports
        timed_run(rest, "chain5")
        fed_times, base_times = [], []
        for _ in range(args.runs):
            base_times.append(timed_run(rest, "baseline_chain"))
            fed_times.append(timed_run(rest, "chain5"))
        f, b = statistics.median(fed_times), statistics.median(base_times)
        print(json.dumps({"federated_s": fed_times, "baseline_s": base_times}))
        print(f"{'chain (5 components)':28s} {'median s':>9s}")
        print(f"{'baseline (1 Airflow)':28s} {b:9.2f}")
        print(f"{'federated (2 parties)':28s} {f:9.2f}")
        print(f"added per component: {(f - b) / N:.2f} s   (federated / baseline = {f / b:.2f})")
        stops = [stop_latency(rest, fed.rest("10000")) for _ in range(args.runs)]
        g, h = statistics.median(s[0] for s in stops), statistics.median(s[1] for s in stops)
        print(json.dumps({"stop_guest_s": [s[0] for s in stops], "stop_host_s": [s[1] for s in stops]}))
        print(f"{'mark failed -> task ended':28s} {'median s':>9s}")
        print(f"{'baseline (guest, Airflow)':28s} {g:9.2f}")
        print(f"{'host (through the gateway)':28s} {h:9.2f}   (host / baseline = {h / max(g, 0.01):.2f})")
    finally:
        fed.down()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
