"""The main job: a federated FATE job across parties on this machine (``make demo``).

Brings up a guest (9999) and a host that is also the arbiter (10000) — each with its own Airflow
(SQLite + LocalExecutor) and gateway (mutual TLS) — uploads the demo data at each party, drops FATE's
hetero-LR example job into the guest's drop folder, triggers it at the guest like a user would (REST
API), waits, prints a summary and stops the parties. The last stdout line is one JSON object.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from fate_airflow.core.errors import FateAirflowError
from fate_airflow.deploy.localfed import LocalFederation, create_local_federation
from fate_airflow.deploy.party import admin_credentials
from fate_airflow.federation.api import JobView
from fate_airflow.storage.tables import TableStore
from fate_airflow.storage.upload import UploadSpec, upload

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GUEST, HOST = "9999", "10000"


@dataclass(frozen=True)
class DemoJob:
    """A bundled job: its files, its DAG id and the tables each party needs."""

    dag_id: str
    files: tuple[str, ...]
    tables: dict[str, tuple[str, str, str, str | None]]  # party -> (csv, namespace, name, label column)


JOBS = {
    "hetero_lr": DemoJob(
        "hetero_lr_normal",
        ("hetero_lr_normal_dsl.json", "hetero_lr_normal_conf.json"),
        {
            GUEST: ("breast_hetero_guest.csv", "experiment", "breast_hetero_guest", "y"),
            HOST: ("breast_hetero_host.csv", "experiment", "breast_hetero_host", None),
        },
    ),
    "toy": DemoJob("toy_chain", ("toy_chain_dsl.json", "toy_chain_conf.json"), {}),
}


def demo_federation(home: Path) -> LocalFederation:
    """The demo's parties under ``home`` (ports chosen once and kept)."""
    return create_local_federation(home, [GUEST, HOST], party_timeout=60.0)


def prepare(fed: LocalFederation, job: DemoJob, say: Callable[[str], None]) -> None:
    """Upload each party's table into its own storage and drop the job files at the guest."""
    for party_id, (csv, namespace, name, label) in job.tables.items():
        cfg = fed.parties[party_id]
        meta = upload(
            TableStore.local(cfg.data_dir),
            UploadSpec(
                file=EXAMPLES / "data" / csv,
                namespace=namespace,
                name=name,
                id_column="id",
                label_column=label,
            ),
            overwrite=True,
        )
        say(
            f"party {party_id}: uploaded {csv} as {namespace}.{name} ({meta.row_count} rows) into its own storage"
        )
    drop = fed.parties[GUEST].drop_folder
    drop.mkdir(parents=True, exist_ok=True)
    for name in job.files:
        shutil.copy(EXAMPLES / "jobs" / name, drop / name)
    say(f"dropped {', '.join(job.files)} into the guest's drop folder {drop}")


def _metrics(view: JobView) -> dict[str, Any]:
    """The guest's evaluation metrics (AUC, KS, ...) or, failing that, any metrics reported."""
    found: dict[str, Any] = {}
    for task in view.tasks:
        for cell in task.parties:
            roles = (cell.detail or {}).get("roles", {})
            for role, data in roles.items():
                metrics = data.get("metrics") if isinstance(data, dict) else None
                if metrics and role == "guest":
                    found[task.task_name] = metrics
    for metrics in found.values():
        if "auc" in metrics:
            return dict(metrics)
    return found


def summarise(view: JobView, dag_id: str) -> dict[str, Any]:
    """The final JSON object: job, status, per (role, party) status, metrics."""
    parties = []
    for p in view.detail.parties:
        statuses = {
            c.status for t in view.tasks for c in t.parties if c.party_id == p.party_id and p.role in c.roles
        }
        if view.status == "success":
            status = "success"
        elif statuses & {"failed"}:
            status = "failed"
        elif statuses & {"canceled", "timeout"}:
            status = sorted(statuses & {"canceled", "timeout"})[0]
        else:
            status = view.status
        parties.append({**p.to_dict(), "status": status})
    return {
        "job_id": view.job_id,
        "dag_id": dag_id,
        "status": view.status,
        "parties": parties,
        "metrics": _metrics(view),
        **({"reason": view.reason} if view.status != "success" else {}),
    }


def run_demo(
    home: Path,
    *,
    job_name: str = "hetero_lr",
    keep_running: bool = False,
    out: TextIO = sys.stdout,
    timeout: float = 1800.0,
) -> int:
    """Run the main job end to end; returns the process exit status (0 = the job succeeded)."""

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    job = JOBS[job_name]
    fed = demo_federation(home)
    started = time.monotonic()
    say(f"fate-airflow demo: parties {GUEST} (guest) and {HOST} (host + arbiter) under {home}")
    try:
        summary = _run(fed, job, say, started, timeout)
    except FateAirflowError as exc:
        say(f"demo failed: {exc}")
        summary = {
            "job_id": None,
            "dag_id": job.dag_id,
            "status": "failed",
            "parties": [],
            "metrics": {},
            "reason": str(exc),
        }
    finally:
        if keep_running:
            say("parties left running; stop them with `make down`")
        else:
            say("stopping the parties ...")
            fed.down()
    # The last stdout line is the machine-readable result.
    say(json.dumps(summary))
    return 0 if summary["status"] == "success" else 1


def _run(
    fed: LocalFederation, job: DemoJob, say: Callable[[str], None], started: float, timeout: float
) -> dict[str, Any]:
    say("initialising parties (certificates, Airflow metadata DBs) ...")
    fed.init()
    say("starting each party's Airflow (api-server, scheduler, dag-processor, triggerer) and gateway ...")
    fed.up()
    for pid, cfg in fed.parties.items():
        user, password = admin_credentials(cfg)
        say(
            f"  party {pid}: UI {cfg.api_url} (login {user} / {password}), gateway {cfg.gateway_address} (mTLS)"
        )
    prepare(fed, job, say)
    rest = fed.rest(GUEST)
    rest.wait_dag(job.dag_id)
    say(f"DAG {job.dag_id} is live at the guest; triggering it through the Airflow REST API ...")
    job_id = rest.trigger(job.dag_id)
    say(f"job id {job_id} (the DAG run id, identical at every party)")

    def progress(view: JobView) -> None:
        cells = ", ".join(
            f"{t.task_name}={t.status}" + (f"(v{t.task_version})" if t.task_version > 0 else "")
            for t in view.tasks
        )
        say(f"  [{time.monotonic() - started:6.1f}s] {view.status or 'submitting'}: {cells}")

    view = fed.wait_job(job_id, timeout=timeout, on_change=progress)
    summary = summarise(view, job.dag_id)
    say("")
    say(f"job {job_id}: {view.status}" + (f" ({view.reason})" if view.reason else ""))
    for p in summary["parties"]:
        say(f"  {p['role']:8s} {p['party_id']:>6s}: {p['status']}")
    if summary["metrics"]:
        say("  metrics (guest): " + ", ".join(f"{k}={v}" for k, v in summary["metrics"].items()))
    say(f"total {time.monotonic() - started:.1f} s")
    return summary


def bring_up(home: Path, *, job_name: str = "hetero_lr", out: TextIO = sys.stdout) -> int:
    """``make up``: start the demo parties with data and job files in place, and leave them running."""
    job = JOBS[job_name]
    fed = demo_federation(home)

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    fed.init()
    fed.up()
    prepare(fed, job, say)
    # The trigger command printed below must work at once: wait until the guest's Airflow holds the DAG.
    fed.rest(GUEST).wait_dag(job.dag_id)
    for pid, cfg in fed.parties.items():
        user, password = admin_credentials(cfg)
        say(
            f"party {pid}: UI {cfg.api_url}  login {user} / {password}  (party config {fed.config_paths[pid]})"
        )
    say(
        f"trigger DAG {job.dag_id} at the guest's UI (or: `source {fed.parties[GUEST].home / 'party.env'} && airflow dags trigger {job.dag_id}`)"
    )
    say("stop with `make down`")
    return 0


def bring_down(home: Path, *, out: TextIO = sys.stdout) -> int:
    """``make down``: stop the demo parties."""
    if not home.exists():
        print("nothing to stop", file=out)
        return 0
    demo_federation(home).down()
    print("demo parties stopped", file=out)
    return 0


__all__ = ["JOBS", "bring_down", "bring_up", "demo_federation", "prepare", "run_demo", "summarise"]
