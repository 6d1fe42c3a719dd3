"""DAG factory: every FATE job file in the drop folder becomes one Airflow DAG.

* dag id = the job's name (see :func:`fate_airflow.dsl.discover_jobs` for the naming of 1.x dsl+conf
  pairs and 2.x files); task ids = component names; dependencies = the plan's edges.
* DAG params = the job conf (1.x runtime conf / 2.x document), so the trigger form shows it and a
  trigger conf (``airflow dags trigger <dag> --conf '{...}'``) overrides it; the operator deep-merges
  the trigger conf into the file's conf and re-plans at run time.
* Jobs created here by another party's initiator arrive as plans in the *received* folder (the plan
  travels with the job, so this party needs no job file) and become DAGs the same way.
* A broken job file never takes the others down: each file is planned on its own, and a broken one
  becomes a placeholder DAG with the same dag id, tagged ``invalid``, whose description carries the
  error (the same text as ``fate-airflow dsl plan``) and whose only task fails with it.
* Each task's component provider is chosen at plan time from the providers installed at this party
  (``[fate] provider_dir``): a job needing a provider the party lacks becomes an ``invalid`` DAG naming
  it, instead of failing halfway through a run. Without the setting, providers are not checked.

Only local files are read here (DAG parsing must stay cheap and offline).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, Param, conf, get_parsing_context

from fate_airflow.core.errors import DslError
from fate_airflow.core.providers import ProviderInfo, party_providers
from fate_airflow.deploy.received import RECEIVED_SUFFIX, read_received_plan
from fate_airflow.dsl import JobPlan, discover_jobs, job_conf_document, load_source
from fate_airflow.provider.operators.component import FederatedComponentOperator
from fate_airflow.provider.operators.invalid import InvalidJobFileOperator

log = logging.getLogger(__name__)

_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}


def _params(document: Mapping[str, Any]) -> dict[str, Param]:
    params: dict[str, Param] = {}
    for key, value in document.items():
        # Params are stored as JSON: number keys in component parameters (FATE's `frac: {0: 0.5}`)
        # become strings there, and the loader matches them back to the file's keys on trigger.
        value = _string_keys(value)
        json_type = _JSON_TYPES.get(type(value))
        schema: dict[str, Any] = {"type": [json_type, "null"]} if json_type else {}
        params[key] = Param(
            value, description=f"job conf `{key}` (deep-merged into the job file's conf)", **schema
        )
    return params


def _string_keys(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _string_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_string_keys(v) for v in value]
    return value


def model_asset(dag_id: str, task_name: str) -> Asset:
    """The Airflow asset standing for the models a component trains (one event per run and party)."""
    return Asset(name=f"fate_model__{dag_id}__{task_name}", uri=f"x-fate-model://{dag_id}/{task_name}")


def _party_roles(plan: JobPlan, party_id: str | None) -> list[str]:
    return list(plan.roles_of(party_id)) if party_id else []


def _doc(plan: JobPlan, source: str, party_id: str | None) -> str:
    parties = ", ".join(f"{p.role} {p.party_id}" for p in plan.parties)
    lines = [
        f"**FATE job** from `{source}` ({plan.format}, stage {plan.stage})",
        "",
        f"* initiator: {plan.initiator.role} {plan.initiator.party_id}",
        f"* parties: {parties}",
    ]
    if party_id:
        roles = _party_roles(plan, party_id)
        lines.append(f"* this party: {party_id} ({'/'.join(roles) or 'not in this job'})")
    lines += ["", "| component | module | runs at |", "|---|---|---|"]
    for task in plan.tasks:
        where = ", ".join(f"{pt.party.role} {pt.party.party_id}" for pt in task.parties)
        lines.append(f"| {task.name} | {task.component} | {where} |")
    return "\n".join(lines)


def build_job_dag(
    dag_id: str,
    plan: JobPlan,
    *,
    source: str,
    params: Mapping[str, Any] | None = None,
    dsl_path: str | None = None,
    conf_path: str | None = None,
    party_id: str | None = None,
    received_from: str | None = None,
) -> DAG:
    """One DAG for one job plan: one :class:`FederatedComponentOperator` per component."""
    tags = [
        "fate",
        plan.format.rsplit("-", 1)[0] if plan.format.startswith("fate-2") else "fate-1.x",
        plan.stage,
    ]
    tags += _party_roles(plan, party_id)
    # The job list filters by party through these tags (one query, no plan parsing per run).
    tags += [f"party:{p.party_id}" for p in plan.parties]
    if received_from:
        tags.append(f"from:{received_from}")
    initiator = f"{plan.initiator.role} {plan.initiator.party_id}"
    description = f"FATE job ({plan.format}); initiator {initiator}; parties " + ", ".join(
        f"{p.role}:{p.party_id}" for p in plan.parties
    )
    with DAG(
        dag_id=dag_id,
        schedule=None,
        catchup=False,
        description=description[:500],
        doc_md=_doc(plan, source, party_id),
        tags=sorted(set(tags)),
        params=_params(params or {}),
        # Retries only cover Airflow-side hiccups: component failures raise AirflowFailException
        # (never retried) and a retried share that already succeeded does not run again.
        default_args={"retries": 2, "retry_delay": timedelta(seconds=3)},
        is_paused_upon_creation=False,
    ) as dag:
        ops = {
            task.name: FederatedComponentOperator(
                task_id=task.name,
                component=task.component,
                implementation=task.implementation,
                dsl_path=dsl_path,
                conf_path=conf_path,
                doc_md=f"{task.component} ({task.implementation})",
                outlets=[model_asset(dag_id, task.name)] if task.outputs.get("model") else [],
            )
            for task in plan.tasks
        }
        for task in plan.tasks:
            for up in task.upstream:
                ops[up] >> ops[task.name]
    return dag


def build_invalid_dag(dag_id: str, problems: list[str], files: list[str]) -> DAG:
    """Placeholder for a broken job file: visible in the UI with its error; running it fails."""
    first = problems[0] if problems else "invalid job file"
    with DAG(
        dag_id=dag_id,
        schedule=None,
        catchup=False,
        description=f"INVALID JOB FILE: {first}"[:500],
        doc_md="**This job file is invalid** ("
        + ", ".join(f"`{f}`" for f in files)
        + ")\n\n"
        + "\n".join(f"* `{p}`" for p in problems),
        tags=["fate", "invalid"],
        default_args={"retries": 0},
        is_paused_upon_creation=False,
    ) as dag:
        InvalidJobFileOperator(task_id="invalid_job_file", problems=problems)
    return dag


def _structure(plan: JobPlan) -> dict[str, list[str]]:
    return {t.name: sorted(t.upstream) for t in plan.tasks}


def load_job_dags(
    jobs_folder: Path | None,
    received_folder: Path | None = None,
    *,
    party_id: str | None = None,
    only_dag_id: str | None = None,
    providers: list[ProviderInfo] | None = None,
) -> dict[str, DAG]:
    """Build every job DAG of this party (or only ``only_dag_id``, when a worker parses for one task).

    Errors are contained per file: a broken file yields a placeholder DAG, never an exception.

    :param providers: the providers installed at this party (:func:`party_providers`); None: unchecked.
    """
    dags: dict[str, DAG] = {}
    plans: dict[str, JobPlan] = {}
    if jobs_folder is not None and jobs_folder.is_dir():
        sources, source_errors = discover_jobs(jobs_folder)
        for err in source_errors:
            if only_dag_id in (None, err.dag_id):
                log.error("invalid job file(s) %s: %s", [str(f) for f in err.files], err.problems)
                dags[err.dag_id] = build_invalid_dag(
                    err.dag_id, err.problems, [Path(f).name for f in err.files]
                )
        for src in sources:
            if only_dag_id not in (None, src.dag_id):
                continue
            files = [Path(src.dsl_path).name] + ([Path(src.conf_path).name] if src.conf_path else [])
            try:
                plan = load_source(src, providers=providers)
                params = job_conf_document(src)
            except DslError as exc:
                log.error("invalid job %s: %s", src.dag_id, exc.problems)
                dags[src.dag_id] = build_invalid_dag(src.dag_id, exc.problems, files)
                continue
            plans[src.dag_id] = plan
            dags[src.dag_id] = build_job_dag(
                src.dag_id,
                plan,
                source=" + ".join(files),
                params=params,
                dsl_path=str(src.dsl_path),
                conf_path=str(src.conf_path) if src.conf_path else None,
                party_id=party_id,
            )
    if received_folder is not None and received_folder.is_dir():
        for path in sorted(received_folder.glob(f"*{RECEIVED_SUFFIX}")):
            dag_id = path.name[: -len(RECEIVED_SUFFIX)]
            if only_dag_id not in (None, dag_id):
                continue
            try:
                record = read_received_plan(path)
                plan = JobPlan.from_dict(record["plan"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("unreadable received plan %s: %s", path, exc)
                continue
            local = plans.get(dag_id)
            if local is not None and _structure(local) == _structure(plan):
                continue  # the local job file describes the same graph: keep it
            dags[dag_id] = build_job_dag(
                dag_id,
                plan,
                source=f"plan received from initiator {record.get('initiator', plan.initiator.party_id)}",
                params=record.get("conf") or {},
                party_id=party_id,
                received_from=str(record.get("initiator", plan.initiator.party_id)),
            )
    return dags


def load_party_dags(loader_file: str) -> dict[str, DAG]:
    """Entry point of the ``dags/`` loader: this party's folders come from its ``[fate]`` settings.

    ``[fate] jobs_folder`` (default: ``jobs/`` next to the loader) is the drop folder;
    ``[fate] received_folder`` holds plans received from initiators; ``[fate] party_id`` names the
    local party (shown in tags and docs); ``[fate] provider_dir`` holds its installed component
    providers. When a worker parses the file to run one task, only that task's DAG is built.
    """
    default_jobs = Path(loader_file).resolve().parent / "jobs"
    jobs_folder = Path(conf.get("fate", "jobs_folder", fallback=str(default_jobs)) or default_jobs)
    received = conf.get("fate", "received_folder", fallback=None)
    party_id = conf.get("fate", "party_id", fallback=None)
    only = get_parsing_context().dag_id
    providers = party_providers(conf.get("fate", "provider_dir", fallback=None))
    return load_job_dags(
        jobs_folder,
        Path(received) if received else None,
        party_id=party_id or None,
        only_dag_id=only,
        providers=providers,
    )


__all__ = [
    "build_invalid_dag",
    "build_job_dag",
    "load_job_dags",
    "load_party_dags",
    "model_asset",
]
