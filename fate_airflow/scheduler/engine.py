"""The party's own workflow engine, as the scheduler needs it (a port).

In production the engine is the party's Airflow, driven through its REST API
(:class:`fate_airflow.deploy.airflow_rest.AirflowRestEngine`); the scheduler never imports Airflow.
:class:`InMemoryEngine` is the in-memory implementation used by the scheduler's unit tests.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Airflow task-instance states after which a task will not run again unless cleared.
FINISHED_TI_STATES = frozenset({"success", "failed", "upstream_failed", "skipped", "removed"})


class WorkflowEngine(ABC):
    """Create, stop, inspect and clear the local DAG runs that carry federated jobs."""

    @abstractmethod
    def materialize_job(self, dag_id: str, plan: Mapping[str, Any]) -> None:
        """Make sure a DAG ``dag_id`` with the plan's tasks and edges exists locally (may take seconds)."""

    @abstractmethod
    def create_run(self, dag_id: str, run_id: str, conf: Mapping[str, Any]) -> None:
        """Start a run of ``dag_id`` with ``run_id``; an existing run with that id is accepted."""

    @abstractmethod
    def fail_run(self, dag_id: str, run_id: str) -> None:
        """Mark the run failed (also a successful one): running tasks are stopped, pending ones skipped."""

    @abstractmethod
    def run_state(self, dag_id: str, run_id: str) -> str | None:
        """``queued``, ``running``, ``success``, ``failed``; None if there is no such run."""

    @abstractmethod
    def ended_runs(self, dag_ids: Collection[str], since: float) -> dict[tuple[str, str], str]:
        """(dag id, run id) → ``success``/``failed`` of the runs of ``dag_ids`` that ended since ``since``.

        The supervisor's one question per pass for every running job at once (asking each run's
        state would cost one request per job per second); runs not listed count as still active.

        :param since: wall-clock seconds; runs that ended earlier may be left out.
        """

    @abstractmethod
    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """Task id → state (None = not scheduled yet / cleared)."""

    @abstractmethod
    def clear_tasks(self, dag_id: str, run_id: str, task_ids: tuple[str, ...]) -> None:
        """Clear ``task_ids`` (exactly those) so they run again; the run becomes active again."""

    @abstractmethod
    def task_log(self, dag_id: str, run_id: str, task_id: str) -> list[str] | None:
        """The task's log lines, every try in order; None if the run has no such task."""


@dataclass
class _Run:
    dag_id: str
    conf: dict[str, Any]
    state: str = "running"
    tasks: dict[str, str | None] = field(default_factory=dict)


class InMemoryEngine(WorkflowEngine):
    """A workflow engine that only records what it was asked to do (scheduler unit tests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.dags: dict[str, dict[str, Any]] = {}
        self.runs: dict[tuple[str, str], _Run] = {}
        #: When set, every call raises it (an unreachable Airflow).
        self.broken: Exception | None = None
        #: (dag id, run id, task id) → log lines, as a test writes them.
        self.logs: dict[tuple[str, str, str], list[str]] = {}

    def _check(self) -> None:
        if self.broken is not None:
            raise self.broken

    def materialize_job(self, dag_id: str, plan: Mapping[str, Any]) -> None:
        """Remember the plan as the DAG."""
        self._check()
        with self._lock:
            self.dags[dag_id] = dict(plan)

    def create_run(self, dag_id: str, run_id: str, conf: Mapping[str, Any]) -> None:
        """Record a running run whose tasks are all unscheduled."""
        self._check()
        with self._lock:
            plan = self.dags.get(dag_id, {})
            tasks: dict[str, str | None] = {t["name"]: None for t in plan.get("tasks", [])}
            self.runs.setdefault((dag_id, run_id), _Run(dag_id, dict(conf), tasks=tasks))

    def fail_run(self, dag_id: str, run_id: str) -> None:
        """Mark the run and its unfinished tasks failed/skipped, as Airflow does."""
        self._check()
        with self._lock:
            run = self.runs.get((dag_id, run_id))
            if run is None:
                return
            run.state = "failed"
            for name, state in run.tasks.items():
                if state not in FINISHED_TI_STATES:
                    run.tasks[name] = "failed" if state == "running" else "skipped"

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        """Recorded state of the run."""
        self._check()
        run = self.runs.get((dag_id, run_id))
        return None if run is None else run.state

    def ended_runs(self, dag_ids: Collection[str], since: float) -> dict[tuple[str, str], str]:
        """Every recorded run of ``dag_ids`` in state success or failed (no end times are kept)."""
        self._check()
        return {
            key: run.state
            for key, run in list(self.runs.items())
            if key[0] in dag_ids and run.state in ("success", "failed")
        }

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """Recorded task states."""
        self._check()
        run = self.runs.get((dag_id, run_id))
        return {} if run is None else dict(run.tasks)

    def clear_tasks(self, dag_id: str, run_id: str, task_ids: tuple[str, ...]) -> None:
        """Reset tasks to unscheduled and the run to running."""
        self._check()
        with self._lock:
            run = self.runs[(dag_id, run_id)]
            for name in task_ids:
                run.tasks[name] = None
            run.state = "running"

    def task_log(self, dag_id: str, run_id: str, task_id: str) -> list[str] | None:
        """The lines a test recorded; None when the run or task does not exist."""
        self._check()
        run = self.runs.get((dag_id, run_id))
        if run is None or task_id not in run.tasks:
            return None
        return list(self.logs.get((dag_id, run_id, task_id), []))


__all__ = ["FINISHED_TI_STATES", "InMemoryEngine", "WorkflowEngine"]
