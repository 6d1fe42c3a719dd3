"""Run every party's share of a task in one process (threads), for tests and local simulation.

Each share runs :func:`~fate_airflow.components.runtime.run_party_task` in its own thread with its
own :class:`~fate_airflow.federation.api.Federation` (by default an
:class:`~fate_airflow.federation.inmemory.InMemoryFederation` on a shared hub, whose ``log`` then
holds every message that crossed between parties).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fate_airflow.components.api import PartyTaskRequest, PartyTaskResult
from fate_airflow.components.runtime import run_party_task
from fate_airflow.core.types import InputRef, Party
from fate_airflow.federation.api import Federation, FederationSession
from fate_airflow.federation.inmemory import InMemoryHub


@dataclass
class TaskSpec:
    """One task of a simulated job: the same for every party except parameters and data dir.

    :param parameters: per-party parameters (missing parties get ``common``).
    """

    task_name: str
    implementation: str
    parties: tuple[Party, ...]
    common: Mapping[str, Any] = field(default_factory=dict)
    parameters: Mapping[Party, Mapping[str, Any]] = field(default_factory=dict)
    inputs: tuple[InputRef, ...] = ()
    outputs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    stage: str = "train"
    component: str = ""
    task_version: int = 1

    def request(
        self,
        party: Party,
        *,
        job_id: str,
        data_dir: str,
        model_id: str = "",
        model_version: str = "",
        job_parameters: Mapping[str, Any] | None = None,
    ) -> PartyTaskRequest:
        """The request of ``party``'s share."""
        params = {**self.common, **self.parameters.get(party, {})}
        return PartyTaskRequest(
            job_id=job_id,
            task_name=self.task_name,
            task_version=self.task_version,
            implementation=self.implementation,
            component=self.component or self.implementation.split("@")[0],
            stage=self.stage,
            local=party,
            parties=self.parties,
            parameters=params,
            inputs=self.inputs,
            outputs=self.outputs,
            job_parameters=dict(job_parameters or {}),
            model_id=model_id,
            model_version=model_version,
            data_dir=data_dir,
        )


@dataclass(frozen=True)
class ShareOutcome:
    """What one share ended with: a result or the exception it raised."""

    party: Party
    result: PartyTaskResult | None
    error: BaseException | None

    def unwrap(self) -> PartyTaskResult:
        """The result, re-raising the share's exception."""
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def run_shares(
    requests: Sequence[PartyTaskRequest],
    federation_for: Callable[[PartyTaskRequest], Federation],
    *,
    abort: threading.Event | None = None,
    join_timeout: float = 600.0,
) -> dict[Party, ShareOutcome]:
    """Run each request in its own thread; return every share's outcome (never raises for a share)."""
    outcomes: dict[Party, ShareOutcome] = {}
    lock = threading.Lock()
    abort = abort or threading.Event()

    def target(req: PartyTaskRequest) -> None:
        fed = federation_for(req)
        try:
            res = run_party_task(req, fed, abort)
            out = ShareOutcome(req.local, res, None)
        except BaseException as exc:
            out = ShareOutcome(req.local, None, exc)
        finally:
            fed.close()
        with lock:
            outcomes[req.local] = out

    threads = [
        threading.Thread(target=target, args=(r,), name=f"share-{r.local}", daemon=True) for r in requests
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(join_timeout)
    for r in requests:
        if r.local not in outcomes:
            outcomes[r.local] = ShareOutcome(r.local, None, TimeoutError(f"{r.local} did not finish"))
    return outcomes


def simulate(
    spec: TaskSpec,
    *,
    job_id: str,
    data_dirs: Mapping[str, str],
    hub: InMemoryHub | None = None,
    model_id: str = "",
    model_version: str = "",
    job_parameters: Mapping[str, Any] | None = None,
    abort: threading.Event | None = None,
    get_timeout: float | None = None,
) -> dict[Party, ShareOutcome]:
    """Run every party's share of ``spec`` over an in-memory hub.

    :param data_dirs: party id → data dir (a party id playing several roles shares one dir).
    :param get_timeout: override of the per-message wait (tests use a short one so failures end fast).
    """
    hub = hub or InMemoryHub()
    jp = dict(job_parameters or {})
    if get_timeout is not None:
        jp["federation_get_timeout"] = get_timeout
    requests = [
        spec.request(
            p,
            job_id=job_id,
            data_dir=data_dirs[p.party_id],
            model_id=model_id,
            model_version=model_version,
            job_parameters=jp,
        )
        for p in spec.parties
    ]

    def federation_for(req: PartyTaskRequest) -> Federation:
        return hub.federation(
            FederationSession(req.job_id, req.task_name, req.task_version, req.local, req.parties)
        )

    return run_shares(requests, federation_for, abort=abort)


def with_version(spec: TaskSpec, task_version: int) -> TaskSpec:
    """A copy of ``spec`` for another task version (a rerun)."""
    return replace(spec, task_version=task_version)


__all__ = ["ShareOutcome", "TaskSpec", "run_shares", "simulate", "with_version"]
