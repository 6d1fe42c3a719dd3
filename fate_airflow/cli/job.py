"""``fate-airflow job``: query, stop and rerun federated jobs from any party.

Commands go to the party's own gateway; the party service forwards them to the job's initiator,
which acts for every party (FATE-Flow's ``flow job query/stop/rerun``).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from fate_airflow.cli.party import ENV_CONFIG, load
from fate_airflow.core.errors import SchedulingError
from fate_airflow.deploy.gateway_client import control_client
from fate_airflow.deploy.party import job_store_url
from fate_airflow.federation.api import Ack, JobView, RerunJob, StopJob, initiator_view
from fate_airflow.federation.grpc.client import GrpcControlClient
from fate_airflow.scheduler.store import JobStore


def fetch_job(client: GrpcControlClient, job_id: str, *, with_events: bool = False) -> JobView:
    """The job as its initiator sees it (falls back to this party's view if the initiator is away)."""
    view = initiator_view(client, job_id, with_events=with_events)
    if not view.found:
        raise SchedulingError(f"party {client.local_party_id} does not know job {job_id}")
    return view


def view_to_dict(view: JobView) -> dict[str, Any]:
    """JSON form of the parties × tasks matrix."""
    return {
        "job_id": view.job_id,
        "dag_id": view.dag_id,
        "status": view.status,
        "reason": view.reason,
        "initiator_party_id": view.initiator_party_id,
        "tasks": [
            {
                "task": t.task_name,
                "version": t.task_version,
                "status": t.status,
                "parties": {
                    c.party_id: {
                        "roles": list(c.roles),
                        "status": c.status,
                        **({"error": c.error} if c.error else {}),
                    }
                    for c in t.parties
                },
            }
            for t in view.tasks
        ],
    }


def format_matrix(view: JobView) -> str:
    """Human-readable parties × tasks status matrix."""
    parties = [c.party_id for c in view.tasks[0].parties] if view.tasks else []
    header = ["component", "ver", "status", *[f"party {p}" for p in parties]]
    rows = [header]
    errors: list[str] = []
    for t in view.tasks:
        rows.append([t.task_name, str(t.task_version), t.status, *[c.status for c in t.parties]])
        errors += [f"  {t.task_name} at party {c.party_id}: {c.error}" for c in t.parties if c.error]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        f"job {view.job_id} ({view.dag_id}): {view.status}" + (f" — {view.reason}" if view.reason else "")
    ]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    if errors:
        lines += ["errors:", *errors]
    return "\n".join(lines)


def format_events(events: list[dict[str, Any]]) -> str:
    """The job's timeline, one line per event: when, what, which party, which task (version)."""
    lines = ["timeline:"]
    for e in events:
        at = datetime.fromtimestamp(float(e.get("at") or 0), UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        task = e.get("task_name") or ""
        if task and int(e.get("version", -1)) >= 0:
            task += f" v{e['version']}"
        party = f"party {e['party_id']}" if e.get("party_id") else ""
        lines.append(
            "  ".join(
                x
                for x in (f"  {at}", f"{e.get('kind', ''):9s}", party, task, str(e.get("message") or ""))
                if x
            )
        )
    return "\n".join(lines)


def _query(args: argparse.Namespace) -> int:
    client = control_client(load(args))
    try:
        view = fetch_job(client, args.job_id, with_events=args.events)
    finally:
        client.close()
    if args.json:
        data = view_to_dict(view)
        if args.events:
            data["events"] = [e.to_dict() for e in view.detail.events]
        print(json.dumps(data, indent=2))
    else:
        print(format_matrix(view))
        if args.events:
            print(format_events([e.to_dict() for e in view.detail.events]))
    return 0


def _ack(reply: Ack) -> int:
    if reply.ok:
        print(reply.message or "ok")
        return 0
    raise SchedulingError(reply.message or "refused")


def _stop(args: argparse.Namespace) -> int:
    cfg = load(args)
    client = control_client(cfg)
    try:
        reason = args.reason or f"stopped by `fate-airflow job stop` at party {cfg.party_id}"
        return _ack(client.ask(cfg.party_id, StopJob(args.job_id, "canceled", reason)))
    finally:
        client.close()


def _rerun(args: argparse.Namespace) -> int:
    cfg = load(args)
    client = control_client(cfg)
    try:
        return _ack(client.ask(cfg.party_id, RerunJob(args.job_id, (args.from_component,)), timeout=60.0))
    finally:
        client.close()


def _list(args: argparse.Namespace) -> int:
    cfg = load(args)
    store = JobStore(job_store_url(cfg))
    for job in store.list_jobs():
        role = "initiator" if job.is_initiator else f"from {job.initiator_party_id}"
        print(
            f"{job.job_id}  {job.dag_id}  {job.status}  ({role})" + (f"  {job.reason}" if job.reason else "")
        )
    return 0


def register(subparsers: Any) -> None:
    """Add the ``job`` command group."""
    job = subparsers.add_parser("job", help="query, stop and rerun federated jobs")
    sub = job.add_subparsers(dest="job_command", metavar="COMMAND")
    sub.required = True

    def base(name: str, help_text: str, with_job: bool = True) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
        if with_job:
            p.add_argument("job_id", help="the job id (= the Airflow DAG run id)")
        p.add_argument("--config", help=f"party config file (default: ${ENV_CONFIG})")
        return p

    p = base("query", "the parties × tasks status matrix, as the initiator sees it")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--events",
        action="store_true",
        help="also the timeline: who prepared, started, reported what, and why it ended",
    )
    p.set_defaults(func=_query)
    p = base("stop", "stop the job at every party")
    p.add_argument("--reason", help="shown at every party")
    p.set_defaults(func=_stop)
    p = base("rerun", "rerun a component and everything downstream with task version + 1")
    p.add_argument("--from", dest="from_component", required=True, help="the component to rerun from")
    p.set_defaults(func=_rerun)
    base("list", "jobs known at this party", with_job=False).set_defaults(func=_list)
