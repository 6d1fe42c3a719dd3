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
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from fate_airflow.deploy.airflow_rest import AirflowRestClient
from fate_airflow.deploy.localfed import create_local_federation
from fate_airflow.deploy.party import write_party_config

REPO = Path(__file__).resolve().parents[1]
N = 5

BASELINE_DAG = '''
"""Baseline for bench/scheduling.py: 5 chained local tasks, no federation."""
import numpy as np
from airflow.sdk import DAG, task

with DAG("baseline_chain", schedule=None, catchup=False, is_paused_upon_creation=False) as dag:
    prev = None
    for i in range(5):
        @task(task_id=f"local_{i}")
        def local_sum(i=i):
            return int(np.random.default_rng(i).integers(0, 1000, 100).sum())
        cur = local_sum()
        if prev is not None:
            prev >> cur
        prev = cur
'''


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the parties' folder")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="fate-bench-sched-"))
    dags = base / "dags"
    dags.mkdir()
    shutil.copy(REPO / "dags" / "fate_jobs.py", dags / "fate_jobs.py")
    (dags / "baseline_chain.py").write_text(BASELINE_DAG)
    jobs = base / "guest-jobs"
    jobs.mkdir()
    dsl, conf = chain_job()
    (jobs / "chain5_dsl.json").write_text(json.dumps(dsl))
    (jobs / "chain5_conf.json").write_text(json.dumps(conf))
    fed = create_local_federation(base, ["9999", "10000"], jobs_folders={"9999": jobs})
    for pid, cfg in list(fed.parties.items()):
        fed.parties[pid] = dataclasses.replace(cfg, dags_folder=dags)
        write_party_config(fed.parties[pid], fed.config_paths[pid])
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
    finally:
        fed.down()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
