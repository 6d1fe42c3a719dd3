"""Load: scheduling overhead per component at 1 and at 20 concurrent jobs, and the party service's CPU.

Run by hand (brings up two local parties; ten minutes or so on 2 CPUs)::

    .venv/bin/python bench/load.py [--jobs 20] [--keep]

Both chains run in the same guest Airflow in the same run:

* **federated** — the 3-component ``toy2`` job (``SecureAddExample``: a real secure sum between guest
  9999 and host 10000 through both gateways, each component coordinated across the parties);
* **baseline** — 3 chained plain Airflow tasks computing the same local sum, no federation.

Reported, for 1 job and for ``--jobs`` jobs triggered at once: the mean trigger → success time per
run and the makespan of the batch, for both; the added time per component
``(federated - baseline) / 3``; and the CPU seconds the party service process (gateway + party
service, ``fate-airflow party serve``) spent per federated job at each party.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import psutil
from _baseline import REPO, bench_parties

from fate_airflow.deploy.airflow_rest import AirflowRestClient
from fate_airflow.deploy.localfed import LocalFederation
from fate_airflow.deploy.party import GATEWAY_PROCESS, process_pids

N = 3


def batch(rest: AirflowRestClient, dag_id: str, count: int) -> tuple[float, float]:
    """Trigger ``count`` runs at once; returns (mean trigger → success seconds, makespan seconds)."""
    start = time.monotonic()
    runs = {rest.trigger(dag_id): time.monotonic() for _ in range(count)}
    done: dict[str, float] = {}
    while len(done) < count:
        for run_id, triggered in runs.items():
            if run_id in done:
                continue
            state = rest.run_state(dag_id, run_id)
            if state == "success":
                done[run_id] = time.monotonic() - triggered
            elif state == "failed":
                raise SystemExit(f"{dag_id} run {run_id} failed")
        time.sleep(0.5)
    return statistics.mean(done.values()), time.monotonic() - start


def service_cpu(fed: LocalFederation) -> dict[str, float]:
    """CPU seconds (user + system) each party's service process has used so far."""
    out = {}
    for pid, cfg in fed.parties.items():
        proc = psutil.Process(process_pids(cfg)[GATEWAY_PROCESS] or 0)
        times = proc.cpu_times()
        out[pid] = times.user + times.system
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the parties' folder")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="fate-bench-load-"))
    fixtures = REPO / "tests" / "fixtures" / "jobs"
    toy2 = {name: (fixtures / name).read_text() for name in ("toy2_dsl.json", "toy2_conf.json")}
    fed = bench_parties(base, ("baseline_chain3", N, "bench/load.py"), toy2)
    results: dict[str, object] = {}
    try:
        fed.init()
        fed.up()
        rest = fed.rest("9999")
        rest.wait_dag("toy2")
        rest.wait_dag("baseline_chain3")
        batch(rest, "baseline_chain3", 1)  # warm-up: first task runs pay one-off imports
        batch(rest, "toy2", 1)
        for count in (1, args.jobs):
            b_mean, b_span = batch(rest, "baseline_chain3", count)
            cpu_before = service_cpu(fed)
            f_mean, f_span = batch(rest, "toy2", count)
            cpu_after = service_cpu(fed)
            cpu = {p: (cpu_after[p] - cpu_before[p]) / count for p in cpu_after}
            results[str(count)] = {
                "baseline_mean_s": b_mean, "baseline_makespan_s": b_span,
                "federated_mean_s": f_mean, "federated_makespan_s": f_span,
                "added_per_component_s": (f_mean - b_mean) / N, "service_cpu_s_per_job": cpu,
            }  # fmt: skip
        print(json.dumps(results, indent=2))
        print(f"{'concurrent jobs':>16s} {'baseline s':>11s} {'federated s':>12s} {'added/comp s':>13s} "
              f"{'makespan b/f s':>15s} {'service CPU s/job (guest, host)':>32s}")  # fmt: skip
        for count, row in results.items():
            assert isinstance(row, dict)
            cpu = row["service_cpu_s_per_job"]
            print(
                f"{count:>16s} {row['baseline_mean_s']:11.2f} {row['federated_mean_s']:12.2f} "
                f"{row['added_per_component_s']:13.2f} "
                f"{row['baseline_makespan_s']:7.1f}/{row['federated_makespan_s']:<7.1f} "
                f"{cpu['9999']:15.2f}, {cpu['10000']:.2f}"
            )
    finally:
        fed.down()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
