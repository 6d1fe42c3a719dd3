"""Job and task statuses and FATE-Flow's rules for combining them across parties.

The rules follow FATE-Flow 1.x (``calculate_multi_party_task_status``): a party where a component
does not run counts as passed, ``pass`` counts as ``success``, and when parties disagree the most
severe interruption wins in the order failed > timeout > canceled. (FATE-Flow 2.x picks the least
severe; we keep 1.x's order because it surfaces the real failure rather than the cancellations it
caused at the other parties.)
"""

from __future__ import annotations

from collections.abc import Iterable

from fate_airflow.core.status import (
    CANCELED,
    FAILED,
    PASS,
    READY,
    RUNNING,
    SUCCESS,
    TIMEOUT,
    WAITING,
    JobStatus,
    Status,
    TaskPartyStatus,
    job_status,
)

#: Statuses after which a task version or a job does not change any more (until a rerun).
END_STATUSES = frozenset({SUCCESS, FAILED, CANCELED, TIMEOUT, PASS})
#: Statuses that interrupt a job.
INTERRUPT_STATUSES = frozenset({FAILED, CANCELED, TIMEOUT})
#: Severity used when parties report different interruptions (higher wins).
_SEVERITY = {CANCELED: 3, TIMEOUT: 4, FAILED: 5}


def federated_task_status(party_statuses: Iterable[str]) -> str:
    """Combine the statuses of the parties where a task runs into the task's federated status.

    >>> federated_task_status(["success", "pass"])
    'success'
    >>> federated_task_status(["running", "canceled", "failed"])
    'failed'
    >>> federated_task_status(["success", "waiting"])
    'running'
    """
    statuses = [SUCCESS if s == PASS else s for s in party_statuses]
    if not statuses:
        return SUCCESS
    distinct = set(statuses)
    if len(distinct) == 1:
        only = statuses[0]
        return WAITING if only == READY else only
    interrupts = distinct & INTERRUPT_STATUSES
    if interrupts:
        return max(interrupts, key=_SEVERITY.__getitem__)
    return RUNNING


def federated_job_status(task_statuses: Iterable[str]) -> str:
    """Combine federated task statuses into the job status (running until every task ended)."""
    statuses = list(task_statuses)
    if not statuses:
        return SUCCESS
    interrupts = set(statuses) & INTERRUPT_STATUSES
    if interrupts:
        return max(interrupts, key=_SEVERITY.__getitem__)
    if all(s in (SUCCESS, PASS) for s in statuses):
        return SUCCESS
    return RUNNING


__all__ = [
    "CANCELED",
    "END_STATUSES",
    "FAILED",
    "INTERRUPT_STATUSES",
    "PASS",
    "READY",
    "RUNNING",
    "SUCCESS",
    "TIMEOUT",
    "WAITING",
    "JobStatus",
    "Status",
    "TaskPartyStatus",
    "federated_job_status",
    "federated_task_status",
    "job_status",
]
