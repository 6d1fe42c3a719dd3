"""The party's Airflow as the scheduler's :class:`~fate_airflow.scheduler.engine.WorkflowEngine`.

Everything goes through Airflow's public REST API v2 (token from ``/auth/token``), so the party
service runs in its own process (next to the gateway) and never imports Airflow.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from itsdangerous import URLSafeSerializer

from fate_airflow.core.errors import SchedulingError
from fate_airflow.deploy.received import write_received_plan
from fate_airflow.scheduler.engine import WorkflowEngine

log = logging.getLogger(__name__)


class AirflowRestClient:
    """Airflow's REST API v2 with token auth (re-login on 401: tokens expire, api-servers restart).

    :param base_url: the api-server, e.g. ``http://127.0.0.1:28080``.
    :param username: an Airflow user allowed to trigger, clear and fail runs.
    :param password: its password.
    """

    def __init__(self, base_url: str, username: str, password: str, *, timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._login = {"username": username, "password": password}
        self._timeout = timeout
        self._session = requests.Session()
        self._token: str | None = None
        self._token_time = 0.0
        self._lock = threading.Lock()

    def _auth(self) -> dict[str, str]:
        with self._lock:
            if self._token is None or time.time() - self._token_time > 3000:
                resp = self._session.post(
                    f"{self.base_url}/auth/token", json=self._login, timeout=self._timeout
                )
                if resp.status_code not in (200, 201):
                    raise SchedulingError(
                        f"Airflow at {self.base_url} refused the login: {resp.status_code} {resp.text[:200]}"
                    )
                self._token = str(resp.json()["access_token"])
                self._token_time = time.time()
            return {"Authorization": f"Bearer {self._token}"}

    def request(
        self,
        method: str,
        path: str,
        *,
        ok: tuple[int, ...] | None = None,
        idempotent: bool | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Authenticated request; with ``ok``, any other status raises :class:`SchedulingError`.

        Idempotent requests are retried a few times on 502/503/504, on a 500 "Database error"
        (a busy metadata database), on a timeout and on a refused connection. By default that is every method but POST, which may have taken
        effect; ``idempotent=True`` marks a POST that is safe to repeat (one naming its run id).
        """
        url = f"{self.base_url}{path}"
        if idempotent is None:
            idempotent = method.upper() in _IDEMPOTENT
        retries = _TRANSIENT_RETRIES if idempotent else 0
        relogged = False
        attempt = 0
        while True:
            try:
                resp = self._session.request(
                    method, url, headers=self._auth(), timeout=self._timeout, **kwargs
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                # A busy api-server (SQLite locked while DAGs are parsed) answers late: an idempotent
                # request is safe to send again.
                if attempt < retries:
                    attempt += 1
                    log.warning("%s %s: %s, retry %d of %d", method, path, exc, attempt, retries)
                    time.sleep(1.0 * attempt)
                    continue
                raise SchedulingError(f"Airflow at {self.base_url} unreachable: {exc}") from exc
            except requests.RequestException as exc:
                raise SchedulingError(f"Airflow at {self.base_url} unreachable: {exc}") from exc
            if resp.status_code == 401 and not relogged:
                relogged = True
                self._token = None
                continue
            if _transient(resp) and attempt < retries and (ok is None or resp.status_code not in ok):
                attempt += 1
                log.warning(
                    "%s %s: HTTP %s, retry %d of %d", method, path, resp.status_code, attempt, retries
                )
                time.sleep(0.5 * attempt)
                continue
            if ok is not None and resp.status_code not in ok:
                raise SchedulingError(f"{method} {path}: HTTP {resp.status_code}: {resp.text[:300]}")
            return resp

    def wait_dag(self, dag_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the DAG is parsed; returns its REST representation."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            resp = self.request("GET", f"/api/v2/dags/{_q(dag_id)}", ok=(200, 404))
            if resp.status_code == 200:
                return dict(resp.json())
            time.sleep(1.0)
        raise SchedulingError(f"DAG {dag_id} did not appear at {self.base_url} within {timeout:.0f} s")

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None, run_id: str | None = None) -> str:
        """Trigger a run (Airflow mints the run id unless given); returns the run id = job id."""
        body: dict[str, Any] = {"logical_date": None, "conf": dict(conf or {})}
        if run_id:
            body["dag_run_id"] = run_id
        resp = self.request("POST", f"/api/v2/dags/{_q(dag_id)}/dagRuns", ok=(200, 201), json=body)
        return str(resp.json()["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        """State of the run, or None."""
        resp = self.request("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}", ok=(200, 404))
        return None if resp.status_code == 404 else str(resp.json().get("state"))

    def task_log(self, dag_id: str, run_id: str, task_id: str) -> list[str] | None:
        """The task's log, every try in order, one ``[LEVEL] event`` line per structured record.

        None when the run has no such task; a try whose log Airflow cannot find is skipped.
        """
        base = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
        resp = self.request("GET", base, ok=(200, 404))
        if resp.status_code == 404:
            return None
        tries = int(resp.json().get("try_number") or 0)
        lines: list[str] = []
        for attempt in range(1, tries + 1):
            got = self.request("GET", f"{base}/logs/{attempt}?full_content=true", ok=(200, 404))
            if got.status_code != 200:
                continue
            content = got.json().get("content")
            for entry in content if isinstance(content, list) else [content]:
                if isinstance(entry, Mapping):
                    event = str(entry.get("event", ""))
                    level = str(entry.get("level", "")).upper()
                    lines.append(f"[{level}] {event}" if level else event)
                elif entry:
                    lines.extend(str(entry).splitlines())
        return lines

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """Task id → state of the run's task instances."""
        resp = self.request(
            "GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances", ok=(200, 404)
        )
        if resp.status_code == 404:
            return {}
        return {ti["task_id"]: ti.get("state") for ti in resp.json().get("task_instances", [])}


_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})
_TRANSIENT_RETRIES = 3
#: Runs per page of a batch run query (Airflow's default maximum page size).
_PAGE = 100
#: Seconds a verified DAG structure is trusted without asking Airflow again.
_STRUCTURE_TTL = 60.0


def _transient(resp: requests.Response) -> bool:
    """A failure that may pass: a proxy/restart status, or Airflow's 500 for a database error."""
    if resp.status_code in (502, 503, 504):
        return True
    return resp.status_code == 500 and "Database error" in resp.text


def _q(value: str) -> str:
    return quote(value, safe="")


class AirflowRestEngine(WorkflowEngine):
    """Drive one Airflow instance over REST.

    :param base_url: the api-server, e.g. ``http://127.0.0.1:28080``.
    :param username: an Airflow user allowed to trigger, clear and fail runs.
    :param password: its password.
    :param received_folder: where received job plans are written for the DAG factory.
    :param secret_key: ``[api] secret_key`` of that Airflow; signs the file token that asks the
        dag-processor to re-parse the loader at once (otherwise a new plan waits for the next periodic
        parse).
    :param loader_relpath: the loader's path relative to the dags folder.
    :param bundle_name: the DAG bundle holding the loader.
    :param dag_wait: seconds to wait for a received job's DAG to appear.
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        received_folder: Path,
        *,
        secret_key: str | None = None,
        loader_relpath: str = "fate_jobs.py",
        bundle_name: str = "dags-folder",
        dag_wait: float = 90.0,
        timeout: float = 15.0,
    ) -> None:
        self.client = AirflowRestClient(base_url, username, password, timeout=timeout)
        self.base_url = self.client.base_url
        self.received_folder = received_folder
        self._secret_key = secret_key
        self._loader = loader_relpath
        self._bundle = bundle_name
        self._dag_wait = dag_wait
        #: DAG id → (when, task → upstreams) last verified at Airflow.
        self._structures: dict[str, tuple[float, dict[str, list[str]]]] = {}
        #: DAG id → when it was last un-paused.
        self._unpaused: dict[str, float] = {}

    # ------------------------------------------------------------------ WorkflowEngine
    def dag_structure(self, dag_id: str) -> dict[str, list[str]] | None:
        """Task id → sorted upstream ids of the parsed DAG, or None if Airflow does not know it."""
        resp = self.client.request("GET", f"/api/v2/dags/{_q(dag_id)}/tasks", ok=(200, 404))
        if resp.status_code == 404:
            return None
        tasks = resp.json().get("tasks", [])
        downstream = {t["task_id"]: t.get("downstream_task_ids", []) for t in tasks}
        upstream: dict[str, list[str]] = {tid: [] for tid in downstream}
        for tid, downs in downstream.items():
            for d in downs:
                upstream.setdefault(d, []).append(tid)
        return {tid: sorted(ups) for tid, ups in upstream.items()}

    def request_reparse(self) -> None:
        """Ask the dag-processor to re-parse the job loader now (needs ``secret_key``)."""
        if not self._secret_key:
            return
        token = URLSafeSerializer(self._secret_key).dumps(
            {"bundle_name": self._bundle, "relative_fileloc": self._loader}
        )
        try:
            # 404 means the loader has no DAG yet; the periodic parse will pick the plan up.
            self.client.request("PUT", f"/api/v2/parseDagFile/{token}", ok=(201, 404))
        except SchedulingError as exc:
            log.warning("could not request a re-parse: %s", exc)

    def materialize_job(self, dag_id: str, plan: Mapping[str, Any]) -> None:
        """Write the received plan unless the same graph is already parsed, then wait for the DAG."""
        want = {t["name"]: sorted(t.get("upstream", [])) for t in plan.get("tasks", [])}
        # Twenty jobs of one DAG arriving together need one check, not twenty, of a busy api-server.
        seen = self._structures.get(dag_id)
        if seen is not None and seen[1] == want and time.monotonic() - seen[0] < _STRUCTURE_TTL:
            return
        if self.dag_structure(dag_id) != want:
            write_received_plan(self.received_folder, dag_id, plan, {})
            self.wait_structure(dag_id, want, self._dag_wait)
        self._structures[dag_id] = (time.monotonic(), want)

    def wait_structure(self, dag_id: str, want: Mapping[str, list[str]], timeout: float) -> None:
        """Ask for re-parses until Airflow shows ``dag_id`` with the ``want``-ed task → upstreams.

        :raises SchedulingError: it did not within ``timeout`` seconds.
        """
        self.request_reparse()
        deadline = time.monotonic() + timeout
        last_reparse = time.monotonic()
        while time.monotonic() < deadline:
            if self.dag_structure(dag_id) == want:
                return
            if time.monotonic() - last_reparse > 5:
                self.request_reparse()
                last_reparse = time.monotonic()
            time.sleep(0.5)
        raise SchedulingError(
            f"DAG {dag_id} did not appear within {timeout:.0f} s (is the dag-processor running?)"
        )

    def create_run(self, dag_id: str, run_id: str, conf: Mapping[str, Any]) -> None:
        """POST a DAG run with ``run_id``; 409 (already exists) is fine."""
        self.client.request(
            "POST",
            f"/api/v2/dags/{_q(dag_id)}/dagRuns",
            ok=(200, 409),
            idempotent=True,
            json={"dag_run_id": run_id, "logical_date": None, "conf": dict(conf)},
        )
        # New DAGs may start paused on some deployments; a federated job must run. Once a minute per
        # DAG is enough: each write is one more lock on a SQLite metadata database.
        seen = self._unpaused.get(dag_id)
        if seen is None or time.monotonic() - seen > _STRUCTURE_TTL:
            self.client.request("PATCH", f"/api/v2/dags/{_q(dag_id)}", ok=(200,), json={"is_paused": False})
            self._unpaused[dag_id] = time.monotonic()

    def ended_runs(self, dag_ids: Collection[str], since: float) -> dict[tuple[str, str], str]:
        """One batch query (``POST /dags/~/dagRuns/list``) for the runs that ended since ``since``."""
        if not dag_ids:
            return {}
        after = datetime.fromtimestamp(since, UTC).isoformat()
        out: dict[tuple[str, str], str] = {}
        offset = 0
        while True:
            body = {
                "dag_ids": sorted(dag_ids), "states": ["success", "failed"], "end_date_gte": after,
                "page_offset": offset, "page_limit": _PAGE, "order_by": "end_date",
            }  # fmt: skip
            resp = self.client.request(
                "POST", "/api/v2/dags/~/dagRuns/list", ok=(200,), idempotent=True, json=body
            )
            runs = resp.json().get("dag_runs", [])
            for run in runs:
                out[(str(run["dag_id"]), str(run["dag_run_id"]))] = str(run["state"])
            if len(runs) < _PAGE:
                return out
            offset += len(runs)

    def fail_run(self, dag_id: str, run_id: str) -> None:
        """PATCH the run to failed (Airflow stops its running tasks and skips the rest).

        A successful run is failed too: the job it carries failed at another party.
        """
        state = self.run_state(dag_id, run_id)
        if state in (None, "failed"):
            return
        self.client.request(
            "PATCH", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}", ok=(200,), json={"state": "failed"}
        )

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        """State of the run, or None."""
        return self.client.run_state(dag_id, run_id)

    def task_log(self, dag_id: str, run_id: str, task_id: str) -> list[str] | None:
        """The task's log lines (see :meth:`AirflowRestClient.task_log`)."""
        return self.client.task_log(dag_id, run_id, task_id)

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """Task id → state of the run's task instances."""
        return self.client.task_states(dag_id, run_id)

    def clear_tasks(self, dag_id: str, run_id: str, task_ids: tuple[str, ...]) -> None:
        """Clear exactly ``task_ids`` of the run and reopen the run."""
        self.client.request(
            "POST",
            f"/api/v2/dags/{_q(dag_id)}/clearTaskInstances",
            ok=(200,),
            json={
                "dag_run_id": run_id,
                "task_ids": list(task_ids),
                "dry_run": False,
                "only_failed": False,
                "reset_dag_runs": True,
                "include_downstream": False,
                "include_upstream": False,
            },
        )


__all__ = ["AirflowRestClient", "AirflowRestEngine"]
