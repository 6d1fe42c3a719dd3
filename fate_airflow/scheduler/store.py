"""The party's job store: jobs, task versions and per-party task statuses (FATE's ``t_job``/``t_task``).

Every party keeps its own rows; the initiator additionally keeps the other parties' statuses (FATE's
"holder" rows) and computes the federated status from them. The store is SQLAlchemy Core on SQLite
by default (a file under the party's data dir, so a restarted gateway remembers its jobs); any
SQLAlchemy URL works, e.g. PostgreSQL in production. ``sqlite://`` gives the in-memory store used in
tests.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from fate_airflow.core.status import WAITING, TaskPartyStatus
from fate_airflow.federation.api import JobEventView

_metadata = MetaData()

_jobs = Table(
    "fate_job",
    _metadata,
    Column("job_id", String(250), primary_key=True),
    Column("dag_id", String(250), nullable=False),
    Column("initiator_party_id", String(64), nullable=False),
    Column("is_initiator", Integer, nullable=False),
    Column("plan", Text, nullable=False),
    Column("conf", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("created", Float, nullable=False),
    Column("started", Float),
    Column("ended", Float),
)

_tasks = Table(
    "fate_task",
    _metadata,
    Column("job_id", String(250), primary_key=True),
    Column("task_name", String(250), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("started", Float),
    Column("ended", Float),
)

_party_tasks = Table(
    "fate_party_task",
    _metadata,
    Column("job_id", String(250), primary_key=True),
    Column("task_name", String(250), primary_key=True),
    Column("party_id", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("prepared", Integer, nullable=False, default=0),
    Column("error", Text, nullable=False, default=""),
    Column("detail", Text, nullable=False, default="{}"),
    Column("updated", Float, nullable=False),
)

#: The job's timeline: what happened when, at which party (``job query --events``).
_events = Table(
    "fate_job_event",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(250), nullable=False, index=True),
    Column("at", Float, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("party_id", String(64), nullable=False, default=""),
    Column("task_name", String(250), nullable=False, default=""),
    Column("version", Integer, nullable=False, default=-1),
    Column("message", Text, nullable=False, default=""),
)

#: Task reports a non-initiator could not deliver yet: kept until the initiator acknowledges one.
_outbox = Table(
    "fate_report_outbox",
    _metadata,
    Column("job_id", String(250), primary_key=True),
    Column("task_name", String(250), primary_key=True),
    Column("party_id", String(64), primary_key=True),
    Column("dst_party_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("error", Text, nullable=False, default=""),
    Column("detail", Text, nullable=False, default="{}"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=False, default=""),
    Column("created", Float, nullable=False),
)


@dataclass
class PendingReport:
    """A task report waiting for the initiator's acknowledgement (the latest one per task share)."""

    job_id: str
    task_name: str
    party_id: str
    dst_party_id: str
    version: int
    status: TaskPartyStatus
    error: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    last_error: str = ""
    created: float = 0.0


@dataclass
class JobRecord:
    """A job as stored at one party."""

    job_id: str
    dag_id: str
    initiator_party_id: str
    is_initiator: bool
    plan: dict[str, Any]
    conf: dict[str, Any]
    status: str
    reason: str = ""
    created: float = 0.0
    started: float | None = None
    ended: float | None = None


@dataclass
class TaskRecord:
    """A task's current version and federated status. ``version`` is -1 before the first start."""

    job_id: str
    task_name: str
    version: int = -1
    status: str = WAITING
    started: float | None = None
    ended: float | None = None


@dataclass
class PartyTaskRecord:
    """One party's status of one task (for the version in ``version``)."""

    job_id: str
    task_name: str
    party_id: str
    version: int = -1
    status: str = WAITING
    prepared: bool = False
    error: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    updated: float = 0.0


def _enable_sqlite_wal(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the CLI read while the gateway writes; busy_timeout rides out short write locks.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


class JobStore:
    """Persistent job/task state of one party.

    :param url: SQLAlchemy URL; ``sqlite://`` (default) is in-memory.
    """

    def __init__(self, url: str = "sqlite://") -> None:
        self._lock = threading.RLock()
        if url in ("sqlite://", "sqlite:///:memory:"):
            self.engine: Engine = create_engine(
                "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
        else:
            kwargs: dict[str, Any] = {}
            if url.startswith("sqlite"):
                kwargs["connect_args"] = {"check_same_thread": False, "timeout": 5}
            self.engine = create_engine(url, **kwargs)
            if url.startswith("sqlite"):
                event.listen(self.engine, "connect", _enable_sqlite_wal)
        _metadata.create_all(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One serialised transaction (the service is the only writer; the lock keeps SQLite happy)."""
        with self._lock, self.engine.begin() as conn:
            yield conn

    # ------------------------------------------------------------------ jobs
    def add_job(self, job: JobRecord) -> None:
        """Insert a new job; its tasks (from the plan) start as waiting with version -1."""
        with self.transaction() as conn:
            conn.execute(
                _jobs.insert().values(
                    job_id=job.job_id,
                    dag_id=job.dag_id,
                    initiator_party_id=job.initiator_party_id,
                    is_initiator=int(job.is_initiator),
                    plan=json.dumps(job.plan),
                    conf=json.dumps(job.conf),
                    status=job.status,
                    reason=job.reason,
                    created=job.created or time.time(),
                    started=job.started,
                    ended=job.ended,
                )
            )
            for task in job.plan.get("tasks", []):
                conn.execute(
                    _tasks.insert().values(
                        job_id=job.job_id, task_name=task["name"], version=-1, status=WAITING
                    )
                )

    def get_job(self, job_id: str) -> JobRecord | None:
        """The job, or None."""
        with self.transaction() as conn:
            row = conn.execute(select(_jobs).where(_jobs.c.job_id == job_id)).mappings().first()
        return None if row is None else _job_from_row(row)

    def list_jobs(self, *, statuses: tuple[str, ...] | None = None) -> list[JobRecord]:
        """Jobs, newest first, optionally only those in ``statuses``."""
        query = select(_jobs).order_by(_jobs.c.created.desc())
        if statuses is not None:
            query = query.where(_jobs.c.status.in_(statuses))
        with self.transaction() as conn:
            rows = conn.execute(query).mappings().all()
        return [_job_from_row(r) for r in rows]

    def update_job(self, job_id: str, **values: Any) -> None:
        """Set columns of a job (status, reason, started, ended)."""
        with self.transaction() as conn:
            conn.execute(_jobs.update().where(_jobs.c.job_id == job_id).values(**values))

    def delete_job(self, job_id: str) -> None:
        """Forget a job, its tasks and its timeline (used when a create is rolled back)."""
        with self.transaction() as conn:
            for table in (_outbox, _events, _party_tasks, _tasks, _jobs):
                conn.execute(table.delete().where(table.c.job_id == job_id))

    # ------------------------------------------------------------------ report outbox
    def keep_report(self, report: PendingReport) -> None:
        """Keep a report to resend, replacing an older one of the same task share.

        Only the latest status matters: resending an older one after it would move the task backwards.
        """
        key = and_(
            _outbox.c.job_id == report.job_id,
            _outbox.c.task_name == report.task_name,
            _outbox.c.party_id == report.party_id,
        )
        values = {
            "dst_party_id": report.dst_party_id, "version": report.version, "status": report.status,
            "error": report.error, "detail": json.dumps(report.detail, default=str), "attempts": report.attempts,
            "last_error": report.last_error, "created": report.created,
        }  # fmt: skip
        with self.transaction() as conn:
            conn.execute(_outbox.delete().where(key))
            conn.execute(
                _outbox.insert().values(
                    job_id=report.job_id, task_name=report.task_name, party_id=report.party_id, **values
                )
            )

    def pending_reports(self) -> list[PendingReport]:
        """Reports still to deliver, oldest first."""
        with self.transaction() as conn:
            rows = conn.execute(select(_outbox).order_by(_outbox.c.created)).mappings().all()
        out = []
        for row in rows:
            data = dict(row)
            data["detail"] = json.loads(data["detail"] or "{}")
            out.append(PendingReport(**data))
        return out

    def drop_report(self, job_id: str, task_name: str, party_id: str, version: int, status: str) -> None:
        """Forget a delivered report (unless a newer one of the same share replaced it meanwhile)."""
        with self.transaction() as conn:
            conn.execute(
                _outbox.delete().where(
                    and_(
                        _outbox.c.job_id == job_id,
                        _outbox.c.task_name == task_name,
                        _outbox.c.party_id == party_id,
                        _outbox.c.version == version,
                        _outbox.c.status == status,
                    )
                )
            )

    # ------------------------------------------------------------------ timeline
    def add_event(self, job_id: str, event: JobEventView) -> None:
        """Append to a job's timeline."""
        with self.transaction() as conn:
            conn.execute(_events.insert().values(job_id=job_id, **event.to_dict()))

    def list_events(self, job_id: str, limit: int = 1000) -> list[JobEventView]:
        """The job's timeline, oldest first (the last ``limit`` entries)."""
        with self.transaction() as conn:
            rows = conn.execute(
                select(_events).where(_events.c.job_id == job_id).order_by(_events.c.id.desc()).limit(limit)
            ).mappings()
            found = [
                JobEventView(**{k: v for k, v in dict(r).items() if k not in ("id", "job_id")}) for r in rows
            ]
        return found[::-1]

    # ------------------------------------------------------------------ tasks
    def get_task(self, job_id: str, task_name: str) -> TaskRecord | None:
        """The task's version and federated status."""
        with self.transaction() as conn:
            row = (
                conn.execute(
                    select(_tasks).where(and_(_tasks.c.job_id == job_id, _tasks.c.task_name == task_name))
                )
                .mappings()
                .first()
            )
        return None if row is None else TaskRecord(**dict(row))

    def list_tasks(self, job_id: str) -> list[TaskRecord]:
        """All tasks of a job (plan order is restored by the caller)."""
        with self.transaction() as conn:
            rows = conn.execute(select(_tasks).where(_tasks.c.job_id == job_id)).mappings().all()
        return [TaskRecord(**dict(r)) for r in rows]

    def update_task(self, job_id: str, task_name: str, **values: Any) -> None:
        """Set columns of a task."""
        with self.transaction() as conn:
            conn.execute(
                _tasks.update()
                .where(and_(_tasks.c.job_id == job_id, _tasks.c.task_name == task_name))
                .values(**values)
            )

    # ------------------------------------------------------------------ party tasks
    def get_party_task(self, job_id: str, task_name: str, party_id: str) -> PartyTaskRecord | None:
        """One party's row for a task."""
        with self.transaction() as conn:
            row = (
                conn.execute(
                    select(_party_tasks).where(
                        and_(
                            _party_tasks.c.job_id == job_id,
                            _party_tasks.c.task_name == task_name,
                            _party_tasks.c.party_id == party_id,
                        )
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else _party_task_from_row(row)

    def list_party_tasks(self, job_id: str) -> list[PartyTaskRecord]:
        """Every party row of a job."""
        with self.transaction() as conn:
            rows = conn.execute(select(_party_tasks).where(_party_tasks.c.job_id == job_id)).mappings().all()
        return [_party_task_from_row(r) for r in rows]

    def upsert_party_task(self, rec: PartyTaskRecord) -> None:
        """Insert or replace one party's row."""
        values = {
            "version": rec.version,
            "status": rec.status,
            "prepared": int(rec.prepared),
            "error": rec.error,
            "detail": json.dumps(rec.detail),
            "updated": rec.updated or time.time(),
        }
        with self.transaction() as conn:
            key = and_(
                _party_tasks.c.job_id == rec.job_id,
                _party_tasks.c.task_name == rec.task_name,
                _party_tasks.c.party_id == rec.party_id,
            )
            if conn.execute(select(_party_tasks.c.job_id).where(key)).first() is None:
                conn.execute(
                    _party_tasks.insert().values(
                        job_id=rec.job_id, task_name=rec.task_name, party_id=rec.party_id, **values
                    )
                )
            else:
                conn.execute(_party_tasks.update().where(key).values(**values))

    def reset_party_tasks(self, job_id: str, task_names: tuple[str, ...]) -> None:
        """Forget readiness and statuses of ``task_names`` (a rerun starts them afresh)."""
        with self.transaction() as conn:
            conn.execute(
                _party_tasks.update()
                .where(and_(_party_tasks.c.job_id == job_id, _party_tasks.c.task_name.in_(task_names)))
                .values(status=WAITING, prepared=0, error="", detail="{}", updated=time.time())
            )


def _job_from_row(row: Mapping[str, Any] | Any) -> JobRecord:
    data = dict(row)
    data["plan"] = json.loads(data["plan"])
    data["conf"] = json.loads(data["conf"])
    data["is_initiator"] = bool(data["is_initiator"])
    return JobRecord(**data)


def _party_task_from_row(row: Mapping[str, Any] | Any) -> PartyTaskRecord:
    data = dict(row)
    data["detail"] = json.loads(data["detail"] or "{}")
    data["prepared"] = bool(data["prepared"])
    return PartyTaskRecord(**data)


__all__ = ["JobRecord", "JobStore", "PartyTaskRecord", "PendingReport", "TaskRecord"]
