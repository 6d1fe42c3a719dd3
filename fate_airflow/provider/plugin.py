"""The FATE plugin: a FATE-Board-class job view inside the Airflow UI (no second dashboard to run).

Mounted in the api-server at ``/fate`` (a FastAPI app) and shown in the UI as two external views:
Browse → "FATE jobs", and a "FATE job" tab on every DAG run.

* ``/fate/jobs`` — the federated jobs of this party, filtered by status, DAG, party and dates;
* ``/fate/jobs/{dag_id}/{run_id}`` — one job: its component graph with live status per party, the
  status matrix as the initiator sees it, timing, stop and rerun (the same coordination as the CLI),
  and per component its parameters, metrics as charts, summaries and model views as tables, links to
  its output data and to the log of every party (fetched through the gateways);
* ``.../logs/{task}``, ``.../data/{task}/{role}/{key}``, ``.../delete`` — those pages;
* ``/fate/api/jobs/{run_id}`` — the status matrix as JSON; ``/fate/invalid`` — job files that do not plan.

Why server-rendered HTML with inline SVG rather than a React app: every chart is computed from data
the server already holds (tracking records, stores), the page needs no build step or bundled
JavaScript library, works offline by construction, and its content can be asserted in tests; the
one asset, a stylesheet, is served by the plugin itself.

Every page requires an Airflow login; stop, rerun, logs and deletion also check Airflow's DAG-run,
task-log and delete permissions for the job's DAG.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from airflow.configuration import conf
from airflow.models.dag import DagModel, DagTag
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from airflow.plugins_manager import AirflowPlugin
from airflow.utils.session import create_session
from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from fate_airflow.core.errors import FateAirflowError
from fate_airflow.core.types import Party
from fate_airflow.dsl.plan import JobPlan
from fate_airflow.federation.api import (
    Ack,
    ControlClient,
    FetchTaskLog,
    JobView,
    QueryJob,
    RerunJob,
    StopJob,
    TaskLog,
    initiator_view,
)
from fate_airflow.provider.board_page import (
    BOARD_CSS,
    JobPageData,
    LocalTask,
    RunRow,
    confirm_delete_page,
    data_page,
    job_list,
    job_page,
    logs_page,
    page,
)
from fate_airflow.provider.hooks.federation import FederationHook
from fate_airflow.storage.artifacts import ArtifactStore, OutputIndex
from fate_airflow.tracking.board import model_panels, table
from fate_airflow.tracking.metrics import MetricsStore
from fate_airflow.tracking.model_store import ModelKey, ModelStore

log = logging.getLogger(__name__)

app = FastAPI(title="FATE jobs", description="Federated jobs tracked in Airflow's metadata")


#: Rows of an output table shown in the preview, and per page.
PREVIEW_ROWS, PAGE_ROWS = 100, 20


def _root(request: Request) -> str:
    # Links are absolute under the plugin's mount point: relative ones resolve against "/fate/jobs"
    # (or "/fate/jobs/") differently and led users to a 404.
    return str(request.scope.get("root_path") or "").rstrip("/")


def _html(title: str, body: str, request: Request) -> HTMLResponse:
    return HTMLResponse(page(title, body, _root(request)))


def _fate_dag_ids(session: Any, tag: str = "fate") -> list[str]:
    return list(session.scalars(select(DagTag.dag_id).where(DagTag.name == tag)))


_R = TypeVar("_R")


def _control() -> ControlClient:
    return FederationHook().control_client()


def _with_control(call: Callable[[ControlClient], _R]) -> _R:
    client = _control()
    try:
        return call(client)
    finally:
        client.close()


def query_initiator(run_id: str) -> JobView:
    """The job as the initiator sees it (asked through this party's gateway)."""
    return _with_control(lambda client: initiator_view(client, run_id))


def job_view_dict(view: JobView) -> dict[str, Any]:
    """JSON form of a :class:`JobView` (the plan is left out: it can be large)."""
    detail = {k: v for k, v in view.detail.to_dict().items() if k not in ("plan", "conf")}
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


def _data_dir() -> str:
    value = conf.get("fate", "data_dir", fallback=None)
    if not value:
        raise HTTPException(
            status_code=500, detail="this Airflow has no [fate] data_dir; run `fate-airflow party init`"
        )
    return str(value)


def _party_id() -> str:
    return str(conf.get("fate", "party_id", fallback="") or "")


# ----------------------------------------------------------------------------- static
@app.get("/static/board.css")
def board_css() -> Response:
    """The board's stylesheet (served here: the pages load nothing from elsewhere)."""
    return Response(BOARD_CSS, media_type="text/css", headers={"Cache-Control": "max-age=3600"})


# ----------------------------------------------------------------------------- job list
def _day(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        raise HTTPException(status_code=400, detail=f"{name}: not a date (YYYY-MM-DD): {value!r}") from None


@app.get("/jobs", response_class=HTMLResponse)
def jobs_page(
    user: GetUserDep,
    request: Request,
    status: str = "",
    dag: str = "",
    party: str = "",
    since: str = "",
    until: str = "",
) -> HTMLResponse:
    """Federated jobs of this party, newest first, filtered by status, DAG, party and start date."""
    start, end = _day(since, "since"), _day(until, "until")
    with create_session() as session:
        dag_ids = _fate_dag_ids(session)
        if party:
            with_party = set(_fate_dag_ids(session, f"party:{party}"))
            wanted = [d for d in dag_ids if d in with_party]
        else:
            wanted = dag_ids
        if dag:
            wanted = [d for d in wanted if dag in d]
        query = select(DagRun).where(DagRun.dag_id.in_(wanted))
        if status:
            query = query.where(DagRun.state == status)
        if start is not None:
            query = query.where(DagRun.start_date >= start)
        if end is not None:
            query = query.where(DagRun.start_date < end.replace(hour=23, minute=59, second=59))
        runs = session.scalars(query.order_by(DagRun.id.desc()).limit(500)).all()
        tags: dict[str, list[str]] = {}
        for dag_id, name in session.execute(
            select(DagTag.dag_id, DagTag.name).where(DagTag.dag_id.in_({r.dag_id for r in runs}))
        ):
            if name.startswith("party:"):
                tags.setdefault(dag_id, []).append(name.removeprefix("party:"))
        rows = [
            RunRow(
                r.dag_id,
                r.run_id,
                str(r.state),
                r.start_date,
                r.end_date,
                tuple(sorted(tags.get(r.dag_id, []))),
            )
            for r in runs
        ]
    filters = {"status": status, "dag": dag, "party": party, "since": since, "until": until}
    return _html("FATE jobs", job_list(rows, filters, sorted(dag_ids), _root(request)), request)


# ----------------------------------------------------------------------------- job page
def _job_base(request: Request, dag_id: str, run_id: str) -> str:
    return f"{_root(request)}/jobs/{quote(dag_id, safe='')}/{quote(run_id, safe='')}"


def _local_shares(
    artifacts: ArtifactStore, run_id: str, plan: JobPlan, party_id: str
) -> Iterator[tuple[str, Party, OutputIndex]]:
    """(task name, role at this party, output index) of every task share that finished here."""
    for task in plan.tasks:
        for pt in task.parties:
            if pt.party.party_id != party_id:
                continue
            index = artifacts.read_index(run_id, task.name, pt.party)
            if index is not None:
                yield task.name, pt.party, index


def _models_and_data(
    run_id: str, plan: JobPlan, party_id: str, records: Mapping[str, Any]
) -> tuple[dict[str, list[Any]], dict[str, list[tuple[str, str, int]]]]:
    """Model views and data-output links of the components that ran here (from the output indexes)."""
    artifacts = ArtifactStore.local(_data_dir())
    models = ModelStore(_data_dir())
    model_views: dict[str, list[Any]] = {}
    data: dict[str, list[tuple[str, str, int]]] = {}
    for task_name, party, index in _local_shares(artifacts, run_id, plan, party_id):
        if task_name not in records:
            continue
        for rec in index.outputs:
            if rec.empty:
                continue
            if rec.kind == "model":
                try:
                    stored = models.load(ModelKey.parse(rec.uri))
                except FateAirflowError as exc:
                    log.warning("model %s of %s: %s", rec.uri, task_name, exc)
                    continue
                arrays = {k: v for k, v in stored.arrays.items() if not k.startswith("fate_model_dir__")}
                model_views.setdefault(task_name, []).extend(model_panels(rec.key, stored.params, arrays))
            elif rec.kind == "data":
                rows = _rows_of(records.get(task_name), party.role, rec.key)
                data.setdefault(task_name, []).append((party.role, rec.key, rows))
    return model_views, data


def _rows_of(record: Any, role: str, key: str) -> int:
    """Row count of an output from the task's summary when it says so (reading the table costs more)."""
    try:
        summary = record["roles"][role].get("summary") or {}
    except (KeyError, TypeError, AttributeError):
        return -1
    for name in (f"{key}_rows", "rows", "output_rows"):
        if isinstance(summary.get(name), int):
            return int(summary[name])
    return -1


def job_views(run_id: str) -> tuple[JobView, JobPlan | None, str]:
    """The initiator's view of a job (with its timeline), this party's plan, and a gateway error.

    At the initiator its own view holds the plan: one call. Elsewhere the plan comes from this
    party's own view, which only this party is given.
    """
    try:
        client = _control()
        try:
            view = initiator_view(client, run_id, with_events=True)
            mine = view
            if view.found and view.initiator_party_id != client.local_party_id:
                mine = client.ask(client.local_party_id, QueryJob(run_id), timeout=10.0)
        finally:
            client.close()
    except FateAirflowError as exc:
        return JobView(run_id, found=False), None, str(exc)
    plan_dict = mine.detail.plan if mine.found else None
    return view, JobPlan.from_dict(plan_dict) if plan_dict else None, ""


def _run_state(session: Any, dag_id: str, run_id: str) -> str:
    run = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).first()
    if run is None:
        raise HTTPException(status_code=404, detail=f"DAG {dag_id} has no run {run_id} at this party")
    return str(run.state)


def gather_job(dag_id: str, run_id: str, party_id: str) -> JobPageData:
    """Everything the job page shows: the initiator's view, this party's plan, tasks and records."""
    view, plan, fed_error = job_views(run_id)
    with create_session() as session:
        run_state = _run_state(session, dag_id, run_id)
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        ).all()
        xcoms = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == "fate"
            )
        ).all()
        records = {x.task_id: XComModel.deserialize_value(x) for x in xcoms}
        local_tasks = {
            ti.task_id: LocalTask(
                str(ti.state or ""),
                ti.start_date,
                ti.end_date,
                int(ti.try_number or 0),
                records.get(ti.task_id),
            )
            for ti in tis
        }
    data = JobPageData(dag_id, run_id, party_id, view, plan, local_tasks, run_state, fed_error)
    if plan is not None:
        data.models, data.data_outputs = _models_and_data(run_id, plan, party_id, records)
    return data


@app.get("/jobs/{dag_id}/{run_id}", response_class=HTMLResponse)
def job_page_route(
    dag_id: str, run_id: str, user: GetUserDep, request: Request, msg: str = ""
) -> HTMLResponse:
    """One job (see the module docstring)."""
    data = gather_job(dag_id, run_id, _party_id())
    data.message = msg
    return _html(f"FATE job {run_id}", job_page(data, _root(request)), request)


def _ack_message(reply: Ack, done: str) -> str:
    return done if reply.ok else f"refused: {reply.message}"


@app.post(
    "/jobs/{dag_id}/{run_id}/stop",
    dependencies=[Depends(requires_access_dag("PUT", DagAccessEntity.RUN))],
)
def stop_route(dag_id: str, run_id: str, user: GetUserDep, request: Request) -> RedirectResponse:
    """Stop the job at every party: the same request as ``fate-airflow job stop``."""
    party = _party_id()
    reason = (
        f"stopped from the FATE job page at party {party} by {getattr(user, 'get_name', lambda: 'a user')()}"
    )
    try:
        reply = _with_control(lambda c: c.ask(c.local_party_id, StopJob(run_id, "canceled", reason)))
        msg = _ack_message(reply, "stop requested at every party")
    except FateAirflowError as exc:
        msg = f"stop failed: {exc}"
    return RedirectResponse(f"{_job_base(request, dag_id, run_id)}?msg={quote(msg)}", status_code=303)


@app.post(
    "/jobs/{dag_id}/{run_id}/rerun",
    dependencies=[Depends(requires_access_dag("PUT", DagAccessEntity.RUN))],
)
def rerun_route(
    dag_id: str, run_id: str, user: GetUserDep, request: Request, component: str = Form(...)
) -> RedirectResponse:
    """Rerun from a component (and everything downstream) at every party, version + 1."""
    try:
        reply = _with_control(lambda c: c.ask(c.local_party_id, RerunJob(run_id, (component,)), timeout=60.0))
        msg = _ack_message(reply, f"rerun from {component} requested")
    except FateAirflowError as exc:
        msg = f"rerun failed: {exc}"
    return RedirectResponse(f"{_job_base(request, dag_id, run_id)}?msg={quote(msg)}", status_code=303)


@app.get(
    "/jobs/{dag_id}/{run_id}/logs/{task_name}",
    response_class=HTMLResponse,
    dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.TASK_LOGS))],
)
def logs_route(dag_id: str, run_id: str, task_name: str, user: GetUserDep, request: Request) -> HTMLResponse:
    """The task's log at every party of the job (other parties' through the gateways)."""
    logs: list[TaskLog] = []

    def fetch(client: Any) -> None:
        view = client.ask(client.local_party_id, QueryJob(run_id), timeout=10.0)
        parties = [p.party_id for p in view.detail.parties]
        for pid in dict.fromkeys([client.local_party_id, *parties]):
            try:
                reply = client.ask(pid, FetchTaskLog(run_id, task_name), timeout=20.0)
            except FateAirflowError as exc:
                reply = TaskLog(pid, False, message=f"party {pid} did not answer: {exc}")
            logs.append(reply)

    try:
        _with_control(fetch)
    except FateAirflowError as exc:
        logs.append(TaskLog(_party_id() or "?", False, message=f"cannot reach this party's gateway: {exc}"))
    body = logs_page(dag_id, run_id, task_name, logs, _job_base(request, dag_id, run_id))
    return _html(f"logs of {task_name}", body, request)


@app.get(
    "/jobs/{dag_id}/{run_id}/data/{task_name}/{role}/{key}",
    response_class=HTMLResponse,
    dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.XCOM))],
)
def data_route(
    dag_id: str,
    run_id: str,
    task_name: str,
    role: str,
    key: str,
    user: GetUserDep,
    request: Request,
    page_no: int = Query(0, alias="page"),
) -> HTMLResponse:
    """A paged preview of the first rows of one of this party's output tables."""
    artifacts = ArtifactStore.local(_data_dir())
    index = artifacts.read_index(run_id, task_name, Party(role, _party_id()))
    rec = index.find(key, "data") if index else None
    if rec is None or rec.kind != "data":
        raise HTTPException(
            status_code=404, detail=f"{task_name} has no data output {key} as {role} at this party"
        )
    frame = artifacts.read_data(rec.uri).frame
    head = frame.head(PREVIEW_ROWS)
    page_no = max(0, min(page_no, max(0, (len(head) - 1) // PAGE_ROWS)))
    chunk = head.iloc[page_no * PAGE_ROWS : (page_no + 1) * PAGE_ROWS]
    rows = [[idx, *row] for idx, row in zip(chunk.index, chunk.itertuples(index=False), strict=True)]
    columns = [str(frame.index.name or "id"), *map(str, frame.columns)]
    here = str(request.url.path)
    body = data_page(
        run_id,
        task_name,
        key,
        columns,
        rows,
        len(frame),
        page_no,
        PAGE_ROWS,
        _job_base(request, dag_id, run_id),
        here,
    )
    return _html(f"{task_name} {key}", body, request)


@app.get(
    "/jobs/{dag_id}/{run_id}/delete",
    response_class=HTMLResponse,
    dependencies=[Depends(requires_access_dag("DELETE", DagAccessEntity.RUN))],
)
def confirm_delete_route(dag_id: str, run_id: str, user: GetUserDep, request: Request) -> HTMLResponse:
    """Ask before deleting the job's outputs at this party."""
    view, plan, _ = job_views(run_id)
    with create_session() as session:
        run_state = _run_state(session, dag_id, run_id)
    shares = list(_local_shares(ArtifactStore.local(_data_dir()), run_id, plan, _party_id())) if plan else []
    outputs = sum(1 for _, _, index in shares for rec in index.outputs if not rec.empty)
    status = view.status if view.found else run_state
    summary = f"job status {status}; {len(shares)} task shares with {outputs} outputs here"
    base = _job_base(request, dag_id, run_id)
    return _html("delete job outputs", confirm_delete_page(dag_id, run_id, base, summary), request)


@app.post(
    "/jobs/{dag_id}/{run_id}/delete",
    dependencies=[Depends(requires_access_dag("DELETE", DagAccessEntity.RUN))],
)
def delete_route(dag_id: str, run_id: str, user: GetUserDep, request: Request) -> RedirectResponse:
    """Delete the job's data, models and metrics at this party (an ended job only)."""
    view, plan, _ = job_views(run_id)
    with create_session() as session:
        run_state = _run_state(session, dag_id, run_id)
    status = view.status if view.found else ""
    if status not in ("success", "failed", "canceled", "timeout") and run_state in ("queued", "running"):
        raise HTTPException(
            status_code=409, detail=f"job {run_id} has not ended ({status or run_state}); stop it first"
        )
    removed = delete_job_outputs(run_id, plan, _party_id())
    msg = f"deleted at this party: {removed['tasks']} task outputs, {removed['models']} models, metrics {removed['metrics']}"
    return RedirectResponse(f"{_job_base(request, dag_id, run_id)}?msg={quote(msg)}", status_code=303)


def delete_job_outputs(run_id: str, plan: JobPlan | None, party_id: str) -> dict[str, int]:
    """Remove a job's outputs at this party: every task share's data and index, its models, its metrics."""
    artifacts = ArtifactStore.local(_data_dir())
    models = ModelStore(_data_dir())
    counts = {"tasks": 0, "models": 0, "metrics": 0}
    # Listed first: clearing a share removes the index the walk reads.
    shares = list(_local_shares(artifacts, run_id, plan, party_id)) if plan is not None else []
    for task_name, party, index in shares:
        for rec in index.outputs:
            if rec.kind == "model" and not rec.empty:
                counts["models"] += int(models.delete(ModelKey.parse(rec.uri)))
        artifacts.clear_task(run_id, task_name, party)
        counts["tasks"] += 1
    counts["metrics"] = int(MetricsStore(_data_dir()).delete_job(run_id))
    return counts


# ----------------------------------------------------------------------------- JSON and other pages
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
def invalid_page(user: GetUserDep, request: Request) -> HTMLResponse:
    """Job files that do not plan, with the error (the DAG factory keeps them as placeholder DAGs)."""
    with create_session() as session:
        dag_ids = _fate_dag_ids(session, "invalid")
        dags = session.scalars(
            select(DagModel).where(DagModel.dag_id.in_(dag_ids), DagModel.is_stale.is_(False))
        ).all()
        rows = [[d.dag_id, d.description or ""] for d in dags]
    body = f"<p><a href='{_root(request)}/jobs'>← all FATE jobs</a></p><h2>Invalid job files</h2>" + table(
        ["job", "error"], rows
    )
    return _html("Invalid FATE job files", body, request)


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


__all__ = [
    "FatePlugin",
    "app",
    "delete_job_outputs",
    "gather_job",
    "job_view_dict",
    "job_views",
    "query_initiator",
]
