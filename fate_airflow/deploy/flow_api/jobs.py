"""Jobs created through the FATE-Flow client API, kept beside the party's job store.

A federated job submitted through the API is an Airflow DAG run like any other (its record lives in
the party service's job store once the run starts); this file remembers what only the API knows:
the DAG schema the client sent, the model id/version it was told, its notes, and the local jobs
FATE-Flow has that are not federated (upload, dataframe transformer), which complete in the API.
One JSON file per job under ``<data_dir>/flow_api/jobs/``, written atomically.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fate_airflow.core.files import atomic_write_bytes

_JOB_ID = re.compile(r"^[0-9A-Za-z_.:+-]{1,128}$")


@dataclass
class ApiJob:
    """A job created through the API.

    :param kind: ``dag`` (a federated job: an Airflow DAG run) or ``upload`` / ``transformer``
        (local data jobs, role ``local``, party ``0`` as in FATE-Flow).
    """

    job_id: str
    kind: str
    dag_id: str = ""
    status: str = "waiting"
    created: float = 0.0
    started: float | None = None
    ended: float | None = None
    reason: str = ""
    model_id: str = ""
    model_version: str = ""
    dag_schema: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ApiJob:
        """Inverse of :func:`dataclasses.asdict` (unknown keys ignored)."""
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


def new_job_id() -> str:
    """FATE-Flow's job id form: UTC time to the microsecond, 20 digits (also the Airflow run id)."""
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")


class ApiJobStore:
    """:class:`ApiJob` records under ``<data_dir>/flow_api/jobs``."""

    def __init__(self, data_dir: str | Path) -> None:
        self.root = Path(data_dir) / "flow_api" / "jobs"
        self._lock = threading.Lock()
        self._last_id = ""

    def new_id(self) -> str:
        """A job id not used before by this party's API (two calls in one microsecond differ)."""
        with self._lock:
            job_id = new_job_id()
            while job_id <= self._last_id or (self.root / f"{job_id}.json").exists():
                time.sleep(0.000_01)
                job_id = new_job_id()
            self._last_id = job_id
            return job_id

    def _path(self, job_id: str) -> Path:
        if not _JOB_ID.match(job_id):
            raise ValueError(f"invalid job id {job_id!r}")
        return self.root / f"{job_id}.json"

    def save(self, job: ApiJob) -> None:
        """Write (replace) a record atomically."""
        atomic_write_bytes(self._path(job.job_id), json.dumps(asdict(job), default=str).encode())

    def get(self, job_id: str) -> ApiJob | None:
        """The record, or None (also for an id that cannot be one)."""
        try:
            path = self._path(job_id)
        except ValueError:
            return None
        try:
            return ApiJob.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None

    def update(self, job_id: str, **values: Any) -> ApiJob | None:
        """Change fields of a record; None when there is none."""
        with self._lock:
            job = self.get(job_id)
            if job is None:
                return None
            for key, value in values.items():
                setattr(job, key, value)
            self.save(job)
            return job

    def list(self) -> list[ApiJob]:
        """Every record, newest first."""
        if not self.root.is_dir():
            return []
        jobs = []
        for path in sorted(self.root.glob("*.json"), reverse=True):
            try:
                jobs.append(ApiJob.from_dict(json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError):
                continue
        return jobs


__all__ = ["ApiJob", "ApiJobStore", "new_job_id"]
