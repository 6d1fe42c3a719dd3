"""The FATE plugin: a jobs view inside the Airflow UI (no second dashboard to run).

Mounted in the api-server at ``/fate`` (FastAPI) and shown in the UI as an external view:

* ``/fate/jobs`` — the federated jobs of this party (DAG runs of FATE DAGs) with their state;
* ``/fate/jobs/{dag_id}/{run_id}`` — one job: the parties × tasks status matrix as the initiator sees
  it (asked through this party's gateway), task versions, errors, and this party's metrics and
  output references (from XCom);
* ``/fate/api/jobs/{run_id}`` — the same matrix as JSON;
* ``/fate/invalid`` — job files in the drop folder that do not plan, with their errors.

Every page requires an Airflow login (token or the UI's session cookie).
"""

from __future__ import annotations

import html
import json
import logging
from typing import Any
from urllib.parse import quote

from airflow.api_fastapi.core_api.security import GetUserDep
from airflow.models.dag import DagModel, DagTag
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from airflow.plugins_manager import AirflowPlugin
from airflow.utils.session import create_session
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from fate_airflow.core.errors import FateAirflowError
from fate_airflow.federation.api import JobView, initiator_view
from fate_airflow.provider.hooks.federation import FederationHook

log = logging.getLogger(__name__)

app = FastAPI(title="FATE jobs", description="Federated jobs tracked in Airflow's metadata")

_STYLE = """<style>body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;vertical-align:top}th{background:#f3f3f3}
.success{background:#d4f4d4}.failed,.timeout{background:#f8d0d0}.canceled{background:#eee}.running{background:#d6e9fb}
.pass{color:#888}.waiting,.ready{background:#fff8d6}code{font-size:12px}</style>"""


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{_STYLE}</head><body>{body}</body></html>"
    )


def _fate_dag_ids(session: Any, tag: str = "fate") -> list[str]:
    return list(session.scalars(select(DagTag.dag_id).where(DagTag.name == tag)))


def query_initiator(run_id: str) -> JobView:
    """The job as the initiator sees it (asked through this party's gateway)."""
    client = FederationHook().control_client()
    try:
        return initiator_view(client, run_id)
    finally:
        client.close()


def job_view_dict(view: JobView) -> dict[str, Any]:
    """JSON form of a :class:`JobView` (the plan is left out: it can be large)."""
    detail = {k: v for k, v in view.detail.items() if k not in ("plan", "conf")}
    return {
        "job_id": view.job_id,
        "found": view.found,
        "dag_id": view.dag_id,
        "status": view.status,
        "reason": view.reason,
        "initiator_party_id": view.initiator_party_id,
        "detail": detail,
        "tasks": [
            {
                "task_name": t.task_name,
                "task_version": t.task_version,
                "status": t.status,
                "parties": [
                    {"party_id": c.party_id, "roles": list(c.roles), "status": c.status, "error": c.error}
                    for c in t.parties
                ],
            }
            for t in view.tasks
        ],
    }


@app.get("/jobs", response_class=HTMLResponse)
def jobs_page(user: GetUserDep, request: Request) -> HTMLResponse:
    """Federated jobs of this party, newest first."""
    # Links are absolute under the plugin's mount point: relative ones resolve against "/fate/jobs"
    # (or "/fate/jobs/") differently and led users to a 404.
    root = str(request.scope.get("root_path") or "").rstrip("/")
    with create_session() as session:
        dag_ids = _fate_dag_ids(session)
        runs = session.scalars(
            select(DagRun).where(DagRun.dag_id.in_(dag_ids)).order_by(DagRun.id.desc()).limit(200)
        ).all()
        rows = [
            f"<tr class='{html.escape(str(r.state))}'><td>{html.escape(r.dag_id)}</td>"
            f"<td><a href='{root}/jobs/{quote(r.dag_id)}/{quote(r.run_id, safe='')}'>{html.escape(r.run_id)}</a></td>"
            f"<td>{html.escape(str(r.state))}</td><td>{html.escape(str(r.start_date or ''))}</td></tr>"
            for r in runs
        ]
    body = (
        f"<h2>FATE jobs at this party</h2><p><a href='{root}/invalid'>invalid job files</a></p>"
        "<table><tr><th>DAG</th><th>job id (run id)</th><th>local state</th><th>started</th></tr>"
        + "".join(rows)
        + "</table>"
    )
    return _page("FATE jobs", body)


@app.get("/jobs/{dag_id}/{run_id}", response_class=HTMLResponse)
def job_page(dag_id: str, run_id: str, user: GetUserDep) -> HTMLResponse:
    """One job: the parties × tasks matrix and this party's tracking records."""
    try:
        view = query_initiator(run_id)
        fed_error = ""
    except FateAirflowError as exc:
        view, fed_error = JobView(run_id, found=False), str(exc)
    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        ).all()
        xcoms = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == "fate"
            )
        ).all()
    local = {ti.task_id: str(ti.state) for ti in tis}
    records = {x.task_id: XComModel.deserialize_value(x) for x in xcoms}
    parts = [f"<h2>Job <code>{html.escape(run_id)}</code></h2><p>DAG {html.escape(dag_id)}</p>"]
    if fed_error:
        parts.append(f"<p class='failed'>cannot reach the party gateway: {html.escape(fed_error)}</p>")
    if view.found:
        parts.append(
            f"<p class='{html.escape(view.status)}'>federated status: <b>{html.escape(view.status)}</b> "
            f"(initiator {html.escape(view.initiator_party_id)}) {html.escape(view.reason)}</p>"
        )
        party_ids = [c.party_id for c in view.tasks[0].parties] if view.tasks else []
        head = "".join(f"<th>party {html.escape(p)}</th>" for p in party_ids)
        parts.append(f"<table><tr><th>component</th><th>version</th><th>status</th>{head}</tr>")
        for t in view.tasks:
            cells = "".join(
                f"<td class='{html.escape(c.status)}'>{html.escape(c.status)} <small>{html.escape('/'.join(c.roles))}</small>"
                + (f"<br><small>{html.escape(c.error)}</small>" if c.error else "")
                + "</td>"
                for c in t.parties
            )
            parts.append(
                f"<tr><td>{html.escape(t.task_name)}</td><td>{t.task_version}</td>"
                f"<td class='{html.escape(t.status)}'>{html.escape(t.status)}</td>{cells}</tr>"
            )
        parts.append("</table>")
    parts.append(
        "<h3>This party</h3><table><tr><th>component</th><th>Airflow state</th><th>tracking record</th></tr>"
    )
    for task_id in sorted(local):
        rec = records.get(task_id)
        shown = html.escape(json.dumps(rec, indent=1, default=str)[:3000]) if rec else ""
        parts.append(
            f"<tr><td>{html.escape(task_id)}</td><td>{html.escape(local[task_id])}</td><td><pre>{shown}</pre></td></tr>"
        )
    parts.append("</table>")
    return _page(f"FATE job {run_id}", "".join(parts))


@app.get("/api/jobs/{run_id}")
def job_api(run_id: str, user: GetUserDep) -> dict[str, Any]:
    """The parties × tasks matrix as JSON."""
    try:
        view = query_initiator(run_id)
    except FateAirflowError as exc:
        raise HTTPException(status_code=502, detail=str(exc)) from None
    if not view.found:
        raise HTTPException(status_code=404, detail=f"job {run_id} is not known at this party")
    return job_view_dict(view)


@app.get("/invalid", response_class=HTMLResponse)
def invalid_page(user: GetUserDep) -> HTMLResponse:
    """Job files that do not plan, with the error (the DAG factory keeps them as placeholder DAGs)."""
    with create_session() as session:
        dag_ids = _fate_dag_ids(session, "invalid")
        dags = session.scalars(
            select(DagModel).where(DagModel.dag_id.in_(dag_ids), DagModel.is_stale.is_(False))
        ).all()
        rows = [
            f"<tr><td>{html.escape(d.dag_id)}</td><td>{html.escape(d.description or '')}</td></tr>"
            for d in dags
        ]
    return _page(
        "Invalid FATE job files",
        "<h2>Invalid job files</h2><table><tr><th>job</th><th>error</th></tr>" + "".join(rows) + "</table>",
    )


@app.get("/health")
def health() -> dict[str, bool]:
    """Liveness of the plugin app."""
    return {"ok": True}


class FatePlugin(AirflowPlugin):
    """Registers the FATE jobs views (UI/API only; DAGs come from the ``dags/`` loader)."""

    name = "fate"
    fastapi_apps = [{"app": app, "url_prefix": "/fate", "name": "FATE jobs"}]
    external_views = [
        {
            "name": "FATE jobs",
            "href": "/fate/jobs",
            "destination": "nav",
            "category": "browse",
            "url_route": "fate-jobs",
        },
        {
            "name": "FATE job",
            "href": "/fate/jobs/{DAG_ID}/{RUN_ID}",
            "destination": "dag_run",
            "url_route": "fate-job",
        },
    ]


__all__ = ["FatePlugin", "app", "job_view_dict", "query_initiator"]
