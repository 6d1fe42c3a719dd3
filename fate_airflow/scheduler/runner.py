"""Run one party's share of one task version: every role the party plays, side by side.

The Airflow operator calls :func:`run_task_at_party` once the initiator has released the task with
its version. A party id may play several roles in one task (FATE's examples run host 10000 and
arbiter 10000 together); each role runs in its own thread with its own federation endpoint, because
the roles exchange messages with each other as with any other party.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from fate_airflow.components.api import PartyTaskRequest, PartyTaskResult
from fate_airflow.core.errors import ComponentError
from fate_airflow.core.types import ROLE_ORDER, Party
from fate_airflow.dsl.plan import JobPlan
from fate_airflow.dsl.selection import fate_component
from fate_airflow.federation.api import Federation, FederationSession

log = logging.getLogger(__name__)

FederationFactory = Callable[[FederationSession], Federation]


def fate_model_id(plan: JobPlan) -> str:
    """FATE's model id: ``arbiter-10000#guest-9999#host-10000#model`` (roles sorted, ids ``_``-joined)."""
    by_role: dict[str, list[str]] = {}
    for party in plan.parties:
        by_role.setdefault(party.role, []).append(party.party_id)
    return "#".join(f"{role}-{'_'.join(ids)}" for role, ids in sorted(by_role.items())) + "#model"


def build_requests(
    plan: JobPlan,
    task_name: str,
    party_id: str,
    *,
    job_id: str,
    task_version: int,
    data_dir: str,
    provider_dir: str = "",
    ptp_address: str = "",
) -> list[PartyTaskRequest]:
    """One request per role ``party_id`` plays in ``task_name`` (empty when the task does not run here).

    :param provider_dir: the party's provider registry (needed by tasks of installed providers).
    :param ptp_address: the party gateway's PTP endpoint (FATE provider tasks federate through it).
    """
    task = plan.task(task_name)
    parties = tuple(pt.party for pt in task.parties)
    model_id = str(plan.job_parameters.get("model_id") or "") if plan.stage == "predict" else ""
    model_version = str(plan.job_parameters.get("model_version") or "") if plan.stage == "predict" else ""
    shares = sorted(task.runs_at(party_id), key=lambda pt: ROLE_ORDER.index(pt.party.role))
    return [
        PartyTaskRequest(
            job_id=job_id,
            task_name=task.name,
            task_version=task_version,
            implementation=task.implementation,
            # A provider's component runs under its own name (1.x modules map to FATE 2.x names).
            component=fate_component(plan, task) or task.component,
            stage=task.stage,
            local=share.party,
            parties=parties,
            parameters=dict(share.parameters),
            inputs=task.inputs,
            outputs=dict(task.outputs),
            job_parameters=dict(plan.job_parameters),
            model_id=model_id or fate_model_id(plan),
            model_version=model_version or job_id,
            data_dir=data_dir,
            provider=task.provider,
            provider_dir=provider_dir,
            ptp_address=ptp_address,
        )
        for share in shares
    ]


@dataclass
class ShareOutcome:
    """What one role's share ended with."""

    party: Party
    result: PartyTaskResult | None = None
    error: str = ""


@dataclass
class TaskOutcome:
    """All shares of the task at this party."""

    shares: list[ShareOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every share succeeded (or passed)."""
        return all(s.result is not None for s in self.shares)

    @property
    def error(self) -> str:
        """The first error, prefixed with its role."""
        for share in self.shares:
            if share.result is None:
                return f"{share.party.role} {share.party.party_id}: {share.error}"
        return ""

    def detail(self) -> dict[str, Any]:
        """JSON-ready per-role outputs, metrics and summaries (goes to tracking and to the initiator)."""
        roles: dict[str, Any] = {}
        for share in self.shares:
            if share.result is None:
                roles[share.party.role] = {"status": "failed", "error": share.error}
            else:
                roles[share.party.role] = {
                    "status": share.result.status,
                    "outputs": dict(share.result.outputs),
                    "metrics": dict(share.result.metrics),
                    "summary": dict(share.result.summary),
                }
        return {"roles": roles}

    @property
    def status(self) -> str:
        """``success``, ``pass`` (every share passed) or ``failed``."""
        if not self.ok:
            return "failed"
        if self.shares and all(s.result is not None and s.result.status == "pass" for s in self.shares):
            return "pass"
        return "success"


def run_task_at_party(
    requests: list[PartyTaskRequest], federation_factory: FederationFactory, abort: threading.Event
) -> TaskOutcome:
    """Run every request (one per role) concurrently; a failing role sets ``abort`` for the others."""
    outcome = TaskOutcome([ShareOutcome(r.local) for r in requests])
    if not requests:
        return outcome

    # Imported here, not at module level: DAG files import this module and must parse fast.
    from fate_airflow.components.runtime import run_party_task

    def run_one(index: int) -> None:
        request = requests[index]
        share = outcome.shares[index]
        session = FederationSession(
            request.job_id,
            request.task_name,
            request.task_version,
            request.local,
            request.parties,
        )
        federation = federation_factory(session)
        try:
            share.result = run_party_task(request, federation, abort)
        except ComponentError as exc:
            share.error = str(exc)
            abort.set()
        except Exception as exc:  # a component bug must still fail the task with its message
            log.exception("task %s failed at %s", request.task_name, request.local)
            share.error = f"{type(exc).__name__}: {exc}"
            abort.set()
        finally:
            federation.close()

    with ThreadPoolExecutor(max_workers=len(requests), thread_name_prefix="fate-role") as pool:
        list(pool.map(run_one, range(len(requests))))
    return outcome


__all__ = [
    "FederationFactory",
    "ShareOutcome",
    "TaskOutcome",
    "build_requests",
    "fate_model_id",
    "run_task_at_party",
]
