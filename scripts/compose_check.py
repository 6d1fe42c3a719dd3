"""Check a running ``docker-compose.yaml`` deployment end to end (run by hand, not in ``make test``).

With the stack up (``docker-compose up -d``), this uploads the breast data at each party inside its
gateway container, drops FATE's hetero-LR example into the guest's drop folder, triggers it at the
guest through Airflow's REST API (as a user would), follows both parties' DAG runs and prints the
guest's evaluation metrics. Exit 0 when the job succeeded at both parties.

    .venv/bin/python scripts/compose_check.py [--project dc] [--timeout 600]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any
from urllib.parse import quote

from fate_airflow.deploy.airflow_rest import AirflowRestClient

GUEST, HOST = "9999", "10000"
DAG = "hetero_lr_normal"
UPLOADS = {
    GUEST: "--file examples/data/breast_hetero_guest.csv --name breast_hetero_guest --label-col y",
    HOST: "--file examples/data/breast_hetero_host.csv --name breast_hetero_host",
}


def in_container(container: str, command: str) -> str:
    """Run a shell command in a container of the stack; its stdout."""
    return subprocess.run(
        ["docker", "exec", container, "sh", "-c", command], check=True, capture_output=True, text=True
    ).stdout


def client(project: str, role: str, party: str, port: int) -> AirflowRestClient:
    """REST client for a party's api-server, logged in with the password its setup generated."""
    secrets = json.loads(in_container(f"{project}_{role}-gateway_1", f"cat /fate/{party}/secrets.json"))
    return AirflowRestClient(f"http://127.0.0.1:{port}", "admin", secrets["admin_password"])


def guest_metrics(guest: AirflowRestClient, run_id: str) -> dict[str, Any]:
    """The guest's evaluation metrics from the task's ``fate`` XCom."""
    resp = guest.request(
        "GET",
        f"/api/v2/dags/{DAG}/dagRuns/{quote(run_id, safe='')}/taskInstances/evaluation_0/xcomEntries/fate",
        ok=(200,),
    )
    value = resp.json()["value"]
    record = json.loads(value) if isinstance(value, str) else value
    return dict(record["roles"]["guest"]["metrics"])


def main() -> int:
    """Upload, drop, trigger, follow; print a JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default="dc", help="docker-compose project name (default: dc)")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    for role, party in (("guest", GUEST), ("host", HOST)):
        print(
            in_container(
                f"{args.project}_{role}-gateway_1",
                f"fate-airflow data upload {UPLOADS[party]} --namespace experiment --id-col id "
                f"--data-dir /fate/{party}/data",
            ).strip()
        )
    in_container(f"{args.project}_guest-gateway_1", f"cp examples/jobs/{DAG}_* /fate/{GUEST}/jobs/")
    guest = client(args.project, "guest", GUEST, 8080)
    host = client(args.project, "host", HOST, 8081)
    guest.wait_dag(DAG, timeout=120)
    start = time.monotonic()
    run_id = guest.trigger(DAG)
    print(f"triggered {DAG} at the guest: run {run_id}")
    states: dict[str, str | None] = {}
    while time.monotonic() - start < args.timeout:
        states = {GUEST: guest.run_state(DAG, run_id), HOST: host.run_state(DAG, run_id)}
        if all(s in ("success", "failed") for s in states.values()):
            break
        time.sleep(3)
    ok = all(s == "success" for s in states.values())
    summary: dict[str, Any] = {
        "run_id": run_id,
        "seconds": round(time.monotonic() - start, 1),
        "runs": states,
    }
    if ok:
        summary["guest_metrics"] = guest_metrics(guest, run_id)
    print(json.dumps(summary))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
