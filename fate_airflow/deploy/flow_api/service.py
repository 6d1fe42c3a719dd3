"""What each FATE-Flow 2.x client call does at a fate-airflow party (plain Python, no web framework).

A submitted DAG schema becomes a job file in the party's drop folder — the same file a user would
drop, so the same Airflow DAG — and a DAG run whose run id is the FATE job id the reply returns.
From there the job is the party service's like any other: query, stop and rerun go through the
federation's control commands (to the initiator), results come from the party's stores (tables,
output indexes, models, metrics) for native and FATE-provider components alike. Uploads and the
dataframe transformer are FATE-Flow's local jobs (role ``local``, party ``0``): done here, at once.

Methods take the request's parameters (query string or JSON body, as FATE-Flow reads them) and
return a reply envelope, or a :class:`FileReply` for downloads; refusals raise
:class:`~fate_airflow.deploy.flow_api.errors.FlowApiError` naming the field.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fate_airflow.core.errors import DslError, FateAirflowError, SchedulingError, StorageError
from fate_airflow.core.files import atomic_write_bytes
from fate_airflow.core.providers import ProviderInfo, party_providers
from fate_airflow.core.types import Party
from fate_airflow.deploy.airflow_rest import AirflowRestEngine
from fate_airflow.deploy.flow_api.errors import FlowApiError, ReturnCode, envelope, invalid, require
from fate_airflow.deploy.flow_api.jobs import ApiJob, ApiJobStore
from fate_airflow.deploy.party import PartyConfig
from fate_airflow.dsl.loader import load_job
from fate_airflow.dsl.plan import JobPlan
from fate_airflow.federation.api import (
    Ack,
    ControlClient,
    JobView,
    QueryJob,
    RerunJob,
    StopJob,
    TaskView,
    initiator_view,
)
from fate_airflow.scheduler.runner import fate_model_id
from fate_airflow.scheduler.store import JobStore
from fate_airflow.storage.artifacts import ArtifactStore
from fate_airflow.storage.table import Table
from fate_airflow.storage.tables import TableStore
from fate_airflow.storage.upload import spec_from_config, upload
from fate_airflow.tracking import ModelKey, ModelStore
from fate_airflow.tracking.metrics import MetricsStore

log = logging.getLogger(__name__)

#: Rows of a data output shown by ``/output/data/display`` (FATE-Board's preview size).
DISPLAY_ROWS = 100
#: Seconds a submitted job's DAG may take to be parsed before the submission is refused.
DAG_PARSE_TIMEOUT = 120.0
_END = ("success", "failed", "canceled", "timeout")
LOCAL_ROLE, LOCAL_PARTY = "local", "0"


@dataclass(frozen=True)
class FileReply:
    """A download: body bytes, content type and file name."""

    body: bytes
    content_type: str
    filename: str


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


def _as_bool(value: Any, name: str, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "y"):
        return True
    if text in ("0", "false", "no", "n"):
        return False
    raise invalid(f"parameter {name!r}: expected a boolean, got {value!r}")


def _as_int(value: Any, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(f"parameter {name!r}: expected an integer, got {value!r}") from None


def _as_mapping(value: Any, name: str) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise invalid(f"parameter {name!r}: not valid JSON") from None
    if not isinstance(value, Mapping):
        raise invalid(f"parameter {name!r}: expected an object")
    return dict(value)


def dag_id_for_schema(schema: Mapping[str, Any]) -> str:
    """The DAG of a submitted schema: ``pipeline_<hash of the schema>``.

    The same pipeline submitted again is a new run of the same DAG (its history in one place); a
    changed one is a new DAG.
    """
    canonical = json.dumps(schema, sort_keys=True, separators=(",", ":"), default=str)
    return "pipeline_" + hashlib.sha256(canonical.encode()).hexdigest()[:12]


class FlowApi:
    """FATE-Flow's client calls for one party.

    :param cfg: the party.
    :param engine: its Airflow (REST).
    :param control: control client speaking as this party (its gateway's).
    :param job_store: the party service's job store (jobs not created through the API are listed too).
    :param providers: the providers installed here, read at each submission.
    :param dag_wait: seconds a submitted job's DAG may take to appear.
    """

    def __init__(
        self,
        cfg: PartyConfig,
        engine: AirflowRestEngine,
        control: ControlClient,
        job_store: JobStore,
        *,
        providers: Callable[[], Sequence[ProviderInfo] | None] | None = None,
        dag_wait: float = DAG_PARSE_TIMEOUT,
    ) -> None:
        self.cfg = cfg
        self.party_id = cfg.party_id
        self.engine = engine
        self.control = control
        self.job_store = job_store
        self.jobs = ApiJobStore(cfg.data_dir)
        self.tables = TableStore.local(cfg.data_dir)
        self.artifacts = ArtifactStore.local(str(cfg.data_dir))
        self.models = ModelStore(cfg.data_dir)
        self.metrics = MetricsStore(cfg.data_dir)
        self._providers = providers or (lambda: party_providers(cfg.provider_dir))
        self._dag_wait = dag_wait
        self._submit_lock = threading.Lock()

    # ------------------------------------------------------------------ site, providers
    def site_info(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``GET /site/info/query``."""
        return envelope(data={"party_id": self.party_id})

    def provider_query(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``GET /provider/query``: the providers installed at this party."""
        rows = []
        for p in self._providers() or []:
            name = p.name if p.name != "native" else "fate_airflow"
            if params.get("name") and params["name"] not in (p.name, name):
                continue
            if params.get("version") and params["version"] != p.version:
                continue
            rows.append(
                {
                    "provider_name": f"{name}:{p.version}@local",
                    "name": name,
                    "version": p.version,
                    "device": "local",
                    "metadata": {"path": p.env_dir, "venv": p.python} if p.python else {},
                    "components": list(p.components),
                    "create_time": p.installed_at or None,
                }
            )
        return envelope(data=rows)

    # ------------------------------------------------------------------ job submit
    def job_submit(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /job/submit {dag_schema}``: a job file in the drop folder and a DAG run with the job id."""
        schema = body.get("dag_schema")
        if not isinstance(schema, Mapping):
            raise invalid(
                "missing required parameter 'dag_schema' (a FATE 2.x DAG: {dag: ..., schema_version})"
            )
        kind = schema.get("kind", "fate")
        if kind not in (None, "fate"):
            raise invalid(f"dag_schema.kind {kind!r} is not supported here (only 'fate')")
        schema = self._with_initiator(dict(schema))
        dag_id = dag_id_for_schema(schema)
        plan = self._plan(schema, dag_id)
        if self.party_id != plan.initiator.party_id:
            raise invalid(
                f"dag_schema.dag.conf: this party ({self.party_id}) is not the job's initiator "
                f"({plan.initiator.role} {plan.initiator.party_id}); submit it there"
            )
        job_id = self.jobs.new_id()
        model_id = (
            fate_model_id(plan) if plan.stage != "predict" else str(plan.job_parameters.get("model_id") or "")
        )
        job = ApiJob(
            job_id=job_id,
            kind="dag",
            dag_id=dag_id,
            created=time.time(),
            model_id=model_id or fate_model_id(plan),
            model_version=job_id,
            dag_schema=schema,
        )
        with self._submit_lock:
            self._write_job_file(dag_id, schema)
        try:
            self._wait_dag(dag_id, plan)
            self.jobs.save(job)
            self.engine.create_run(dag_id, job_id, {})
        except FateAirflowError as exc:
            self.jobs.update(job_id, status="failed", reason=str(exc), ended=time.time())
            raise FlowApiError(ReturnCode.SERVER_ERROR, f"job {job_id} could not start: {exc}") from None
        log.info("job %s submitted through the FATE-Flow API as a run of DAG %s", job_id, dag_id)
        return envelope(
            job_id=job_id,
            data={"model_id": job.model_id, "model_version": job.model_version, "dag_id": dag_id},
        )

    def _with_initiator(self, schema: dict[str, Any]) -> dict[str, Any]:
        """FATE-Flow makes the site a job is submitted to its initiator unless the DAG names one."""
        dag = schema.get("dag")
        if not isinstance(dag, Mapping):
            raise invalid("dag_schema.dag: missing (expected the DAG: parties, tasks, conf)")
        raw_conf = dag.get("conf")
        conf: dict[str, Any] = dict(raw_conf) if isinstance(raw_conf, Mapping) else {}
        if conf.get("initiator_party_id") is None and conf.get("scheduler_party_id") is None:
            parties = dag.get("parties") or []
            ids = {str(pid) for p in parties if isinstance(p, Mapping) for pid in (p.get("party_id") or [])}
            if self.party_id in ids:
                conf = {**conf, "initiator_party_id": self.party_id}
                schema = {**schema, "dag": {**dag, "conf": conf}}
        return schema

    def _plan(self, schema: Mapping[str, Any], dag_id: str) -> JobPlan:
        with tempfile.TemporaryDirectory(prefix="fate-flow-submit-") as tmp:
            path = Path(tmp) / f"{dag_id}.json"
            path.write_text(_job_file_text(schema))
            try:
                return load_job(path, providers=self._providers())
            except DslError as exc:
                problems = "; ".join(p.replace(f"{dag_id}.json: ", "dag_schema.", 1) for p in exc.problems)
                raise invalid(f"invalid dag_schema: {problems}") from None

    def _write_job_file(self, dag_id: str, schema: Mapping[str, Any]) -> None:
        path = self.cfg.drop_folder / f"{dag_id}.json"
        text = _job_file_text(schema)
        if path.exists() and path.read_text() == text:
            return
        atomic_write_bytes(path, text.encode())

    def _wait_dag(self, dag_id: str, plan: JobPlan) -> None:
        try:
            self.engine.wait_structure(
                dag_id, {t.name: sorted(t.upstream) for t in plan.tasks}, self._dag_wait
            )
        except SchedulingError as exc:
            raise FlowApiError(
                ReturnCode.SERVER_ERROR,
                f"{exc}: job file {self.cfg.drop_folder / (dag_id + '.json')}; see the plugin's invalid jobs page",
            ) from None

    # ------------------------------------------------------------------ job query
    def _view(self, job_id: str) -> JobView:
        try:
            return initiator_view(self.control, job_id)
        except FateAirflowError as exc:
            raise FlowApiError(ReturnCode.SERVER_ERROR, f"job {job_id}: {exc}") from None

    def _job_rows(self, job_id: str, role: str | None, party_id: str | None) -> list[dict[str, Any]]:
        api_job = self.jobs.get(job_id)
        if api_job is not None and api_job.kind != "dag":
            if (role or LOCAL_ROLE) != LOCAL_ROLE or str(party_id or LOCAL_PARTY) != LOCAL_PARTY:
                return []
            return [self._local_job_row(api_job)]
        if party_id not in (None, "", self.party_id):
            raise invalid(f"party_id {party_id}: this is party {self.party_id}; ask that party's API")
        view = self._view(job_id)
        if not view.found:
            if api_job is None:
                return []
            return [self._pending_row(api_job, r) for r in self._roles_in(api_job.dag_schema, role)]
        plan = JobPlan.from_dict(view.detail.plan) if view.detail.plan is not None else None
        roles = plan.roles_of(self.party_id) if plan is not None else ()
        if not roles:
            local = self._local_plan(job_id)
            roles = local.roles_of(self.party_id) if local is not None else ("guest",)
        return [self._job_row(view, r, api_job) for r in roles if role in (None, "", r)]

    def _local_plan(self, job_id: str) -> JobPlan | None:
        reply = self.control.ask(self.party_id, QueryJob(job_id))
        if reply.found and reply.detail.plan is not None:
            return JobPlan.from_dict(reply.detail.plan)
        return None

    def _roles_in(self, schema: Mapping[str, Any], role: str | None) -> list[str]:
        roles = []
        for p in (schema.get("dag") or {}).get("parties") or []:
            if self.party_id in [str(x) for x in p.get("party_id") or []] and role in (
                None,
                "",
                p.get("role"),
            ):
                roles.append(str(p.get("role")))
        return roles

    def _pending_row(self, job: ApiJob, role: str) -> dict[str, Any]:
        status = job.status if job.status in _END else "waiting"
        return {
            "job_id": job.job_id,
            "role": role,
            "party_id": self.party_id,
            "status": status,
            "progress": 0,
            "dag_id": job.dag_id,
            "dag": job.dag_schema,
            "model_id": job.model_id,
            "model_version": job.model_version,
            "initiator_party_id": self.party_id,
            "create_time": _ms(job.created),
            "description": job.notes,
            "status_code": job.reason or None,
        }

    def _job_row(self, view: JobView, role: str, api_job: ApiJob | None) -> dict[str, Any]:
        detail = view.detail
        done = sum(1 for t in view.tasks if t.status == "success")
        started, ended = detail.started, detail.ended
        parties: dict[str, list[str]] = {}
        for p in detail.parties:
            parties.setdefault(p.role, []).append(p.party_id)
        row: dict[str, Any] = {
            "job_id": view.job_id,
            "role": role,
            "party_id": self.party_id,
            "status": view.status,
            "progress": int(100 * done / len(view.tasks)) if view.tasks else 0,
            "dag_id": view.dag_id,
            "parties": [{"role": r, "party_id": ids} for r, ids in parties.items()],
            "initiator_party_id": view.initiator_party_id,
            "create_time": _ms(detail.created),
            "start_time": _ms(started),
            "end_time": _ms(ended),
            "elapsed": _ms((ended or time.time()) - started) if started else None,
            "status_code": view.reason or None,
            "protocol": "fate",
        }
        if api_job is not None:
            row.update(
                dag=api_job.dag_schema,
                model_id=api_job.model_id,
                model_version=api_job.model_version,
                description=api_job.notes,
            )
        return {k: v for k, v in row.items() if v is not None}

    def _local_job_row(self, job: ApiJob) -> dict[str, Any]:
        row = {
            "job_id": job.job_id,
            "role": LOCAL_ROLE,
            "party_id": LOCAL_PARTY,
            "status": job.status,
            "progress": 100 if job.status == "success" else 0,
            "dag": {"kind": job.kind, **job.outputs},
            "create_time": _ms(job.created),
            "start_time": _ms(job.started),
            "end_time": _ms(job.ended),
            "elapsed": _ms(job.ended - job.started) if job.ended and job.started else None,
            "status_code": job.reason or None,
            "description": job.notes,
        }
        return {k: v for k, v in row.items() if v is not None}

    def job_query(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``GET /job/query?job_id&role&party_id&status``."""
        (job_id,) = require(params, "job_id")
        rows = self._job_rows(str(job_id), params.get("role"), params.get("party_id"))
        if params.get("status"):
            rows = [r for r in rows if r["status"] == params["status"]]
        if not rows:
            return envelope(
                ReturnCode.JOB_NOT_FOUND, f"job {job_id} not found at party {self.party_id}", data=[]
            )
        return envelope(data=rows)

    def job_list(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``GET /job/list/query?limit&page&job_id&party_id&role&status&order_by&order``."""
        limit = _as_int(params.get("limit"), "limit", 0)
        page = _as_int(params.get("page"), "page", 1)
        ids: dict[str, None] = {}
        for job in self.jobs.list():
            ids[job.job_id] = None
        rows: list[dict[str, Any]] = []
        for job_id in ids:
            if params.get("job_id") and str(params["job_id"]) not in job_id:
                continue
            try:
                rows += self._job_rows(job_id, params.get("role"), None)
            except FlowApiError:
                continue
        for_service = self._service_jobs()
        for row in for_service:
            if row["job_id"] not in ids and (
                not params.get("job_id") or str(params["job_id"]) in row["job_id"]
            ):
                rows.append(row)
        if params.get("status"):
            wanted = params["status"] if isinstance(params["status"], list) else [params["status"]]
            rows = [r for r in rows if r["status"] in wanted]
        reverse = str(params.get("order") or "desc").lower() != "asc"
        key = str(params.get("order_by") or "create_time")
        rows.sort(key=lambda r: (r.get(key) is None, r.get(key) or 0), reverse=reverse)
        total = len(rows)
        if limit > 0:
            rows = rows[(page - 1) * limit : page * limit]
        return envelope(data={"count": total, "data": rows})

    def _service_jobs(self) -> list[dict[str, Any]]:
        """Jobs of the party service not created through the API (dropped files, CLI triggers)."""
        rows = []
        for job in self.job_store.list_jobs():
            plan = JobPlan.from_dict(job.plan)
            for role in plan.roles_of(self.party_id):
                rows.append(
                    {
                        "job_id": job.job_id,
                        "role": role,
                        "party_id": self.party_id,
                        "status": job.status,
                        "dag_id": job.dag_id,
                        "initiator_party_id": job.initiator_party_id,
                        "create_time": _ms(job.created),
                        "start_time": _ms(job.started),
                        "end_time": _ms(job.ended),
                        "status_code": job.reason or None,
                    }
                )
        return [{k: v for k, v in r.items() if v is not None} for r in rows]

    # ------------------------------------------------------------------ tasks
    def _task_rows(self, job_id: str, role: str | None, party_id: str | None) -> list[dict[str, Any]]:
        if party_id not in (None, "", self.party_id):
            raise invalid(f"party_id {party_id}: this is party {self.party_id}; ask that party's API")
        view = self._view(job_id)
        if not view.found:
            return []
        plan = (
            JobPlan.from_dict(view.detail.plan) if view.detail.plan is not None else self._local_plan(job_id)
        )
        rows = []
        for task in view.tasks:
            cell = next((c for c in task.parties if c.party_id == self.party_id), None)
            if cell is None:
                continue
            component = plan.task(task.task_name).component if plan is not None else ""
            for r in cell.roles or ("",):
                if role not in (None, "", r):
                    continue
                rows.append(self._task_row(view, task, cell, r, component))
        return rows

    def _task_row(
        self, view: JobView, task: TaskView, cell: Any, role: str, component: str
    ) -> dict[str, Any]:
        detail = cell.detail or {}
        started, ended = detail.get("started"), detail.get("ended")
        row = {
            "job_id": view.job_id,
            "role": role,
            "party_id": self.party_id,
            "task_name": task.task_name,
            "component": component,
            "task_id": f"{view.job_id}_{task.task_name}",
            "task_version": max(task.task_version, 0),
            "status": task.status,
            "party_status": cell.status,
            "start_time": _ms(started) if isinstance(started, (int, float)) else None,
            "end_time": _ms(ended) if isinstance(ended, (int, float)) else None,
            "error_report": cell.error or None,
        }
        return {k: v for k, v in row.items() if v is not None}

    def task_query(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``GET /job/task/query?job_id&role&party_id&task_name&status``."""
        (job_id,) = require(params, "job_id")
        rows = self._task_rows(str(job_id), params.get("role"), params.get("party_id"))
        for key in ("task_name", "status", "task_id"):
            if params.get(key):
                rows = [r for r in rows if str(r.get(key)) == str(params[key])]
        if not rows:
            return envelope(
                ReturnCode.TASK_NOT_FOUND,
                f"no task of job {job_id} matches at party {self.party_id}",
                data=[],
            )
        return envelope(data=rows)

    def task_list(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``GET /job/task/list/query?limit&page&job_id&role&party_id&task_name&order_by&order``."""
        (job_id,) = require(params, "job_id")
        rows = self._task_rows(str(job_id), params.get("role"), params.get("party_id"))
        if params.get("task_name"):
            rows = [r for r in rows if r["task_name"] == params["task_name"]]
        limit = _as_int(params.get("limit"), "limit", 0)
        page = _as_int(params.get("page"), "page", 1)
        total = len(rows)
        if limit > 0:
            rows = rows[(page - 1) * limit : page * limit]
        return envelope(data={"count": total, "data": rows})

    def dag_dependency(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``GET /job/dag/dependency?job_id``: tasks and their upstreams."""
        (job_id,) = require(params, "job_id")
        view = self._view(str(job_id))
        plan = JobPlan.from_dict(view.detail.plan) if view.found and view.detail.plan is not None else None
        if plan is None:
            plan = self._local_plan(str(job_id))
        if plan is None:
            return envelope(ReturnCode.JOB_NOT_FOUND, f"job {job_id} not found at party {self.party_id}")
        deps = {t.name: [{"component_name": u, "type": "data"} for u in t.upstream] for t in plan.tasks}
        return envelope(
            data={
                "component_list": [t.name for t in plan.tasks],
                "component_module": {t.name: t.component for t in plan.tasks},
                "dependencies": deps,
            }
        )

    # ------------------------------------------------------------------ stop, rerun, notes
    def job_stop(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /job/stop {job_id}``: canceled at every party (through the initiator)."""
        (job_id,) = require(body, "job_id")
        view = self._view(str(job_id))
        if not view.found:
            return envelope(ReturnCode.JOB_NOT_FOUND, f"job {job_id} not found at party {self.party_id}")
        if view.status in _END:
            return envelope(
                ReturnCode.INVALID_PARAMETER, f"job {job_id} already ended: {view.status}", job_id=job_id
            )
        reason = f"stopped through the FATE-Flow API at party {self.party_id}"
        reply = self.control.ask(self.party_id, StopJob(str(job_id), "canceled", reason))
        return self._ack(reply, str(job_id))

    def job_rerun(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /job/rerun {job_id}``: rerun from the first tasks that did not succeed."""
        (job_id,) = require(body, "job_id")
        view = self._view(str(job_id))
        if not view.found:
            return envelope(ReturnCode.JOB_NOT_FOUND, f"job {job_id} not found at party {self.party_id}")
        if view.status not in _END:
            return envelope(
                ReturnCode.INVALID_PARAMETER, f"job {job_id} is {view.status}; rerun needs an ended job"
            )
        plan = (
            JobPlan.from_dict(view.detail.plan)
            if view.detail.plan is not None
            else self._local_plan(str(job_id))
        )
        status = {t.task_name: t.status for t in view.tasks}
        firsts = tuple(
            t.name
            for t in (plan.tasks if plan is not None else ())
            if status.get(t.name) != "success" and all(status.get(u) == "success" for u in t.upstream)
        )
        if not firsts:
            return envelope(
                ReturnCode.INVALID_PARAMETER, f"job {job_id}: every task succeeded; nothing to rerun"
            )
        reply = self.control.ask(self.party_id, RerunJob(str(job_id), firsts), timeout=60.0)
        return self._ack(reply, str(job_id), data={"tasks": list(firsts)})

    def _ack(self, reply: Ack, job_id: str, data: Any = None) -> dict[str, Any]:
        if reply.ok:
            return envelope(message=reply.message or "success", job_id=job_id, data=data)
        return envelope(ReturnCode.SERVER_ERROR, reply.message or "refused", job_id=job_id)

    def job_notes(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /job/notes/add {job_id, role, party_id, notes}``."""
        job_id, notes = require(body, "job_id", "notes")
        if self.jobs.update(str(job_id), notes=str(notes)) is None:
            view = self._view(str(job_id))
            if not view.found:
                return envelope(ReturnCode.JOB_NOT_FOUND, f"job {job_id} not found at party {self.party_id}")
            self.jobs.save(ApiJob(job_id=str(job_id), kind="dag", dag_id=view.dag_id, notes=str(notes)))
        return envelope(job_id=str(job_id))

    # ------------------------------------------------------------------ data
    def _local_job(self, kind: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        job_id = self.jobs.new_id()
        now = time.time()
        job = ApiJob(job_id=job_id, kind=kind, status="running", created=now, started=now)
        self.jobs.save(job)
        try:
            outputs = run()
        except FlowApiError as exc:
            self.jobs.update(job_id, status="failed", reason=exc.message, ended=time.time())
            raise FlowApiError(exc.code, exc.message) from None
        except (FateAirflowError, OSError, ValueError) as exc:
            self.jobs.update(job_id, status="failed", reason=str(exc), ended=time.time())
            raise invalid(f"{kind} failed: {exc}") from None
        self.jobs.update(job_id, status="success", outputs=outputs, ended=time.time())
        return envelope(job_id=job_id, data={**outputs, "job_id": job_id})

    def _upload(self, file: Path, params: Mapping[str, Any], origin: str) -> dict[str, Any]:
        namespace, name = require(params, "namespace", "name")
        meta = _as_mapping(params.get("meta"), "meta")
        conf = {
            "file": str(file),
            "head": _as_bool(params.get("head"), "head", True),
            "partitions": _as_int(params.get("partitions"), "partitions", 4),
            "namespace": str(namespace),
            "name": str(name),
            "meta": meta,
            "extend_sid": _as_bool(params.get("extend_sid"), "extend_sid", False),
        }
        try:
            spec = spec_from_config(conf, origin=origin)
            table_meta = upload(self.tables, spec, overwrite=True)
        except StorageError as exc:
            raise invalid(str(exc)) from None
        return {"namespace": str(namespace), "name": str(name), "count": table_meta.row_count}

    def upload_file(self, form: Mapping[str, Any], filename: str, content: bytes) -> dict[str, Any]:
        """``POST /data/component/upload/file`` (multipart): the client's file becomes a table."""
        if not content:
            raise invalid("multipart part 'file': missing or empty")

        def run() -> dict[str, Any]:
            with tempfile.TemporaryDirectory(prefix="fate-flow-upload-") as tmp:
                path = Path(tmp) / (Path(filename).name or "upload.csv")
                path.write_bytes(content)
                return self._upload(path, form, f"uploaded file {filename!r}")

        return self._local_job("upload", run)

    def upload_server_file(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /data/component/upload {file, ...}``: a file on this party's server becomes a table."""
        (file,) = require(body, "file")
        path = Path(str(file))
        if not path.is_file():
            raise invalid(f"parameter 'file': {path} is not a file on party {self.party_id}'s server")
        return self._local_job("upload", lambda: self._upload(path, body, f"file {path}"))

    def dataframe_transformer(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /data/component/dataframe/transformer {namespace, name, data_warehouse, drop}``.

        Tables here are already dataframes (id, label, features); the transformer copies one under
        the new name (and drops the source when ``drop``), as FATE-Flow's does after an upload.
        """
        namespace, name = require(body, "namespace", "name")
        warehouse = _as_mapping(body.get("data_warehouse"), "data_warehouse")
        src_ns, src_name = require(warehouse, "namespace", "name")
        drop = _as_bool(body.get("drop"), "drop", True)

        def run() -> dict[str, Any]:
            try:
                table = self.tables.read(str(src_ns), str(src_name))
            except StorageError as exc:
                raise invalid(f"data_warehouse: {exc}") from None
            meta = self.tables.write(str(namespace), str(name), table, overwrite=True)
            if drop and (src_ns, src_name) != (namespace, name):
                self.tables.delete(str(src_ns), str(src_name))
            return {"namespace": str(namespace), "name": str(name), "count": meta.row_count}

        return self._local_job("transformer", run)

    def table_bind_path(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /table/bind/path {namespace, name, path}``: bind a CSV on this server as a table.

        The file needs a header; its id column is ``meta.match_id_name`` or the first one.
        """
        namespace, name, path = require(body, "namespace", "name", "path")
        file = Path(str(path))
        if not file.is_file():
            raise invalid(f"parameter 'path': {file} is not a file on party {self.party_id}'s server")
        out = self._upload(
            file, {"namespace": namespace, "name": name, "meta": body.get("meta")}, f"path {file}"
        )
        return envelope(data=out)

    def table_query(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``GET /table/query?namespace&name``."""
        namespace, name = require(params, "namespace", "name")
        try:
            meta = self.tables.info(str(namespace), str(name))
        except StorageError:
            return envelope(
                ReturnCode.NO_FOUND, f"table {namespace}.{name} not found at party {self.party_id}"
            )
        return envelope(
            data={
                "namespace": namespace,
                "name": name,
                "count": meta.row_count,
                "schema": {
                    "id": meta.id_column,
                    "label": meta.label_column,
                    "features": list(meta.feature_columns),
                },
                "create_time": meta.created,
            }
        )

    # ------------------------------------------------------------------ outputs
    def _share(self, params: Mapping[str, Any]) -> tuple[str, str, Party]:
        job_id, role, party_id, task_name = require(params, "job_id", "role", "party_id", "task_name")
        if str(party_id) != self.party_id:
            raise invalid(f"party_id {party_id}: this is party {self.party_id}; ask that party's API")
        return str(job_id), str(task_name), Party(str(role), self.party_id)

    def _outputs(self, job_id: str, task: str, party: Party) -> list[Any]:
        index = self.artifacts.read_index(job_id, task, party)
        if index is None:
            raise FlowApiError(
                ReturnCode.TASK_NOT_FOUND,
                f"task {task} of job {job_id} has no outputs at {party.role} {party.party_id} (not run or not ended)",
            )
        return [r for r in index.outputs if not r.empty]

    def _data_outputs(self, params: Mapping[str, Any]) -> list[tuple[str, Table]]:
        job_id, task, party = self._share(params)
        key = params.get("output_key")
        found = []
        for rec in self._outputs(job_id, task, party):
            if rec.kind == "data" and key in (None, "", rec.key, *rec.aliases):
                found.append((rec.key, self.artifacts.read_data(rec.uri)))
        return found

    def data_download(self, params: Mapping[str, Any]) -> FileReply | dict[str, Any]:
        """``GET /output/data/download``: tar.gz with ``<output_key>/0.csv`` and ``0.meta`` (FATE-Flow's layout)."""
        tables = self._data_outputs(params)
        if not tables:
            return envelope(ReturnCode.NO_FOUND, f"no data output of task {params.get('task_name')}")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for key, table in tables:
                csv = _fate_csv(table.frame).encode()
                meta = json.dumps(
                    {"header": list(map(str, table.frame.columns)), **_table_meta(table)}
                ).encode()
                _add_member(tar, f"{key}/0.csv", csv)
                _add_member(tar, f"{key}/0.meta", meta)
        name = f"{params['job_id']}_{params['task_name']}_{params['role']}_{params['party_id']}.tar.gz"
        return FileReply(buf.getvalue(), "application/gzip", name)

    def data_display(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``GET /output/data/display``: ``{output_key: [{data, metadata, total}]}`` (first 100 rows)."""
        out: dict[str, Any] = {}
        for key, table in self._data_outputs(params):
            head = table.frame.head(DISPLAY_ROWS)
            out[key] = [
                {
                    "data": json.loads(head.to_json(orient="values")),
                    "metadata": {"fields": list(map(str, table.frame.columns)), **_table_meta(table)},
                    "total": len(table.frame),
                }
            ]
        return envelope(data=out)

    def data_table(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``GET /output/data/table``: where each data output is stored."""
        job_id, task, party = self._share(params)
        rows = [
            {"output_key": r.key, "uri": r.uri, "namespace": job_id, "name": f"{task}.{r.key}"}
            for r in self._outputs(job_id, task, party)
            if r.kind == "data"
        ]
        return envelope(data=rows)

    def _models(self, params: Mapping[str, Any]) -> dict[str, Any]:
        job_id, task, party = self._share(params)
        out: dict[str, Any] = {}
        for rec in self._outputs(job_id, task, party):
            if rec.kind != "model":
                continue
            stored = self.models.load(ModelKey.parse(rec.uri))
            fate_models = stored.params.get("fate_models")
            if isinstance(fate_models, Mapping):
                out.update({str(k): v for k, v in fate_models.items()})
                # A model folder (FATE's NN models) is not JSON: the download has its files.
                for key in stored.params.get("fate_model_dirs") or ():
                    out[str(key)] = {"type_name": "model_directory", "download": "/v2/output/model/download"}
            else:
                arrays = {k: v.tolist() for k, v in (stored.arrays or {}).items()}
                doc: dict[str, Any] = {
                    "params": stored.params,
                    **({"arrays": arrays} if arrays else {}),
                    "meta": stored.meta,
                }
                fate = fate_model_document(stored.params)
                if fate is not None:
                    # FATE's scripts read FATE's layout (test_lr_predict_w_torch.py: data.estimator.param).
                    doc = {**doc, "data": fate["data"], "meta": {**stored.meta, **fate["meta"]}}
                out[rec.key] = doc
        return out

    def model_query(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``GET /output/model/query``: ``{output_key: model}``."""
        return envelope(data=self._models(params))

    def model_download(self, params: Mapping[str, Any]) -> FileReply | dict[str, Any]:
        """``GET /output/model/download``: a tar of ``<output_key>.json`` (and ``<output_key>/`` folders)."""
        job_id, task, party = self._share(params)
        buf = io.BytesIO()
        count = 0
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for key, model in self._models(params).items():
                if isinstance(model, Mapping) and model.get("type_name") == "model_directory":
                    continue
                _add_member(tar, f"{key}.json", json.dumps(model, default=str).encode())
                count += 1
            for rec in self._outputs(job_id, task, party):
                if rec.kind != "model":
                    continue
                stored = self.models.load(ModelKey.parse(rec.uri))
                for key in stored.params.get("fate_model_dirs") or ():
                    packed = stored.arrays.get(f"fate_model_dir__{key}")
                    if packed is None:
                        continue
                    with tarfile.open(fileobj=io.BytesIO(packed.tobytes()), mode="r") as inner:
                        for member in inner.getmembers():
                            if member.isfile():
                                data = inner.extractfile(member)
                                name = f"{key}/{member.name.removeprefix('./')}"
                                _add_member(tar, name, data.read() if data else b"")
                                count += 1
        if not count:
            return envelope(
                ReturnCode.NO_FOUND, f"no model output of task {task} at {party.role} {party.party_id}"
            )
        name = f"{job_id}_{task}_{party.role}_{party.party_id}.tar"
        return FileReply(buf.getvalue(), "application/x-tar", name)

    def _metric_records(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        job_id, task, party = self._share(params)
        stored = self.metrics.load(job_id, task, party)
        if stored is None:
            return []
        return fate_metric_records(task, dict(stored.get("metrics") or {}), dict(stored.get("summary") or {}))

    def metric_query(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``GET /output/metric/query``: FATE's records ``[{name, type, groups, step_axis, data}]``."""
        records = self._metric_records(params)
        filters = _as_mapping(params.get("filters"), "filters")
        for key, value in filters.items():
            records = [r for r in records if r.get(key) == value]
        return envelope(data=records)

    def metric_key_query(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``GET /output/metric/key/query``: the records without their data."""
        keys = [{k: v for k, v in r.items() if k != "data"} for r in self._metric_records(params)]
        return envelope(data=keys)

    # ------------------------------------------------------------------ logs
    def _task_log(self, job_id: str, task_name: str) -> list[str]:
        view = self._view(job_id)
        dag_id = view.dag_id if view.found else ""
        if not dag_id:
            api_job = self.jobs.get(job_id)
            dag_id = api_job.dag_id if api_job else ""
        if not dag_id:
            raise FlowApiError(ReturnCode.JOB_NOT_FOUND, f"job {job_id} not found at party {self.party_id}")
        lines = self.engine.task_log(dag_id, job_id, task_name)
        if lines is None:
            raise FlowApiError(ReturnCode.TASK_NOT_FOUND, f"task {task_name} of job {job_id} not found")
        return lines

    def _log_lines(self, params: Mapping[str, Any]) -> list[str]:
        job_id, _, party_id, task_name = require(params, "job_id", "role", "party_id", "task_name")
        if str(party_id) != self.party_id:
            raise invalid(f"party_id {party_id}: this is party {self.party_id}; ask that party's API")
        lines = self._task_log(str(job_id), str(task_name))
        if "error" in str(params.get("log_type") or ""):
            lines = [line for line in lines if "ERROR" in line or "Traceback" in line or "Error" in line]
        return lines

    def log_count(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``GET /log/count?log_type&job_id&role&party_id&task_name``."""
        return envelope(data=len(self._log_lines(params)))

    def log_query(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``GET /log/query?...&begin&end``: lines ``[{line_num, content}]`` (1-based, inclusive)."""
        lines = self._log_lines(params)
        begin = max(_as_int(params.get("begin"), "begin", 1), 1)
        end = _as_int(params.get("end"), "end", len(lines))
        return envelope(
            data=[{"line_num": i, "content": lines[i - 1]} for i in range(begin, min(end, len(lines)) + 1)]
        )

    def log_download(self, body: Mapping[str, Any]) -> FileReply | dict[str, Any]:
        """``POST /job/log/download {job_id}``: every task's log at this party, tar.gz."""
        (job_id,) = require(body, "job_id")
        view = self._view(str(job_id))
        if not view.found:
            return envelope(ReturnCode.JOB_NOT_FOUND, f"job {job_id} not found at party {self.party_id}")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for task in view.tasks:
                try:
                    lines = self._task_log(str(job_id), task.task_name)
                except FlowApiError:
                    continue
                data = ("\n".join(lines) + "\n").encode()
                _add_member(tar, f"job_{job_id}_log/{self.party_id}/{task.task_name}/INFO", data)
        return FileReply(buf.getvalue(), "application/gzip", f"job_{job_id}_log.tar.gz")


def _fate_csv(frame: pd.DataFrame) -> str:
    """A data output as FATE-Flow writes it: predictions end with ``predict_detail, type``.

    FATE's SDK recognises a prediction table by its columns and parses ``predict_detail`` (the
    second-to-last column) as a Python dict repr inside CSV quotes, ``"{'0': 0.2, '1': 0.8}"``.
    """
    tail = [c for c in ("predict_detail", "type") if c in frame.columns]
    if "predict_detail" not in tail:
        return str(frame.to_csv(index=False))
    out = frame[[c for c in frame.columns if c not in tail] + tail].copy()
    if "type" not in out.columns:
        out["type"] = "train"

    def as_repr(value: Any) -> str:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return str(value)
        return str(dict(value)) if isinstance(value, Mapping) else str(value)

    out["predict_detail"] = out["predict_detail"].map(as_repr)
    return str(out.to_csv(index=False))


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _table_meta(table: Table) -> dict[str, Any]:
    meta = table.meta
    return {
        "match_id_name": meta.id_column,
        "label_name": meta.label_column,
        "features": list(meta.feature_columns),
    }


def _job_file_text(schema: Mapping[str, Any]) -> str:
    """The job file of a submitted schema: JSON, as the client sent it (a 2.x DAG file may be JSON)."""
    return json.dumps(schema, indent=2, default=str) + "\n"


def fate_model_document(params: Mapping[str, Any]) -> dict[str, Any] | None:
    """A native linear model (coordinated LR/LinR share) in FATE 2.2's model layout, or None.

    FATE's ``CoordinatedLR`` guest model is ``{"data": {"estimator": {"param": {"coef_", "intercept_",
    "dtype"}, "header", "fit_intercept", ...}}, "meta": {...}}`` with ``coef_`` one ``[w]`` row per
    feature (``serialize_param`` of an (n, 1) tensor) and ``intercept_`` ``[b]`` (None without one, as
    at a host). A one-vs-rest (multi-class) model holds one such estimator per class, keyed by the
    class's index (``"0"``, ``"1"``, ... once in JSON), with ``meta.ovr`` true, the guest's
    ``meta.labels`` and the host's ``meta.label_count`` (FATE's ``CoordinatedLRModuleGuest/Host
    .get_model``).
    """
    header = params.get("header")
    if not isinstance(header, list):
        return None
    if params.get("ovr"):
        return _fate_ovr_document(params, header)
    weights = params.get("weights")
    if not (isinstance(weights, list) and len(header) == len(weights)):
        return None
    intercept = params.get("intercept")
    fit_intercept = bool(params.get("fit_intercept", intercept is not None))
    estimator = _fate_estimator(
        header,
        weights,
        intercept if fit_intercept else None,
        fit_intercept,
        params.get("iterations"),
        params.get("converged"),
    )
    meta = {
        "epochs": params.get("iterations"),
        "threshold": params.get("threshold", 0.5),
        "ovr": False,
        "floating_point_precision": params.get("floating_point_precision"),
    }
    return {"data": {"estimator": estimator}, "meta": meta}


def _fate_estimator(
    header: list[Any], weights: list[Any], intercept: Any, fit_intercept: bool, end_epoch: Any, converged: Any
) -> dict[str, Any]:
    """One FATE ``CoordinatedLREstimator*.get_model()`` (the parts a FATE client reads)."""
    return {
        "param": {
            "coef_": [[float(w)] for w in weights],
            "intercept_": [float(intercept)] if intercept is not None else None,
            # FATE trains in float32 and scripts build float32 torch layers from it
            # (test_lr_predict_w_torch.py copies the weights into nn.Linear): say so.
            "dtype": "float32",
        },
        "header": [str(h) for h in header],
        "fit_intercept": fit_intercept,
        "end_epoch": end_epoch,
        "is_converged": converged,
    }


def _fate_ovr_document(params: Mapping[str, Any], header: list[Any]) -> dict[str, Any] | None:
    """A native one-vs-rest share (guest: ``labels``, ``intercepts``; host: ``label_count``) as FATE's."""
    rows = params.get("class_weights")
    if not (
        isinstance(rows, list) and rows and all(isinstance(r, list) and len(r) == len(header) for r in rows)
    ):
        return None
    labels = params.get("labels")
    raw = params.get("intercepts")
    intercepts: list[Any] = list(raw) if isinstance(raw, list) else []
    fit_intercept = bool(params.get("fit_intercept")) and bool(intercepts)
    if fit_intercept and len(intercepts) != len(rows):
        return None
    ends = params.get("class_iterations")
    done = params.get("class_converged")
    end_epochs = list(ends) if isinstance(ends, list) and len(ends) == len(rows) else None
    converged = list(done) if isinstance(done, list) and len(done) == len(rows) else None
    estimators = {
        str(k): _fate_estimator(
            header,
            row,
            intercepts[k] if fit_intercept else None,
            fit_intercept,
            end_epochs[k] if end_epochs else params.get("iterations"),
            converged[k] if converged else params.get("converged"),
        )
        for k, row in enumerate(rows)
    }
    meta: dict[str, Any] = {
        "epochs": params.get("iterations"),
        "ovr": True,
        "floating_point_precision": params.get("floating_point_precision"),
    }
    if isinstance(labels, list):  # the guest's share
        meta.update({"labels": labels, "threshold": params.get("threshold", 0.5)})
    else:  # a host's: FATE's host model knows the class count only
        meta["label_count"] = params.get("label_count", len(rows))
    return {"data": {"estimator": estimators}, "meta": meta}


def fate_metric_records(
    task: str, metrics: Mapping[str, Any], summary: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """A task's metrics as FATE 2.x's records (``name, type, groups, step_axis, data``).

    FATE-provider tasks carry FATE's own records; native ones are translated: an evaluation's
    numbers become FATE's ``evaluation`` record, keyed like FATE's by the task that produced the
    predictions (``{"lr_0": {"train": [{"metric": "auc", "val": ...}, ...]}}``), other numbers a
    one-time record each, a loss history a step record.
    """
    native = metrics.get("fate_metrics")
    if isinstance(native, list):
        return [dict(r) for r in native if isinstance(r, Mapping)]
    groups: list[dict[str, Any]] = [{"name": "default", "index": None}]
    inputs = [str(i) for i in (summary or {}).get("inputs") or ()]

    def evaluation(data: dict[str, Any]) -> dict[str, Any]:
        return {"name": "evaluation", "type": "evaluation", "groups": groups, "step_axis": None, "data": data}

    def items(values: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [{"metric": k, "val": v} for k, v in values.items() if not isinstance(v, Mapping)]

    if inputs and "eval_type" in (summary or {}):
        if len(inputs) == 1:
            return [evaluation({inputs[0].split(".")[0]: {"train": items(metrics)}})]
        return [
            evaluation(
                {name.split(".")[0]: {"train": items(metrics[name])} for name in inputs if name in metrics}
            )
        ]
    records: list[dict[str, Any]] = []
    for key, value in metrics.items():
        if key in ("loss_history", "losses") and isinstance(value, list):
            data = [{"metric": v, "step": i, "timestamp": None} for i, v in enumerate(value)]
            records.append(
                {"name": "loss", "type": "loss", "groups": groups, "step_axis": "iterations", "data": data}
            )
        else:
            records.append({"name": key, "type": None, "groups": groups, "step_axis": None, "data": value})
    return records


__all__ = [
    "DISPLAY_ROWS",
    "FileReply",
    "FlowApi",
    "dag_id_for_schema",
    "fate_metric_records",
    "fate_model_document",
]
