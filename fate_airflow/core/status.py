"""The one status vocabulary of jobs and tasks, shared by the control plane and the scheduler.

FATE-Flow's names (``waiting``, ``running``, ``success``, ``failed``, ``canceled``, ``timeout``,
``pass``) plus ``ready`` (a party prepared a task that has not started). Messages
(:mod:`fate_airflow.federation.api`) carry the narrower :data:`JobStatus` and :data:`TaskPartyStatus`;
the scheduler's records hold :data:`Status`; :mod:`fate_airflow.scheduler.state` combines them.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias, cast, get_args

#: Every status a job, a task or one party's share of a task can have.
Status: TypeAlias = Literal["waiting", "ready", "running", "success", "failed", "canceled", "timeout", "pass"]
#: A job's status.
JobStatus: TypeAlias = Literal["waiting", "running", "success", "failed", "canceled", "timeout"]
#: One party's status for a task version, as it reports it.
TaskPartyStatus: TypeAlias = Literal["waiting", "running", "success", "failed", "canceled", "timeout", "pass"]

WAITING: Final = "waiting"
READY: Final = "ready"
RUNNING: Final = "running"
SUCCESS: Final = "success"
FAILED: Final = "failed"
CANCELED: Final = "canceled"
TIMEOUT: Final = "timeout"
PASS: Final = "pass"

_JOB_STATUSES = frozenset(get_args(JobStatus))


def job_status(value: str) -> JobStatus:
    """``value`` as a job status. :raises ValueError: it is not one (``ready``, ``pass``, other)."""
    if value not in _JOB_STATUSES:
        raise ValueError(f"{value!r} is not a job status ({', '.join(sorted(_JOB_STATUSES))})")
    return cast(JobStatus, value)


__all__ = [
    "CANCELED",
    "FAILED",
    "PASS",
    "READY",
    "RUNNING",
    "SUCCESS",
    "TIMEOUT",
    "WAITING",
    "JobStatus",
    "Status",
    "TaskPartyStatus",
    "job_status",
]
