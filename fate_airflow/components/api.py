"""The contract between the scheduler's task runner and the federated components.

The runner (:mod:`fate_airflow.scheduler.runner`) builds one :class:`PartyTaskRequest` per
(role, party id) share of a task and calls
:func:`fate_airflow.components.runtime.run_party_task` with a
:class:`~fate_airflow.federation.api.Federation` scoped to the task version. Everything a component
needs is in the request; nothing is read from Airflow.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fate_airflow.core.types import InputRef, Party
from fate_airflow.federation.api import Federation


@dataclass(frozen=True)
class PartyTaskRequest:
    """One party's share (one role) of one task version.

    :param implementation: catalogue id ``name@version`` of the component to run.
    :param component: module / component_ref as written in the job file (for messages).
    :param local: the (role, party id) this run speaks as.
    :param parties: every (role, party id) where the task runs, in plan order.
    :param parameters: the fully merged parameters for ``local``.
    :param inputs: every input of the task (edges and warehouse inputs), as in the plan.
    :param outputs: declared output keys by kind, e.g. ``{"data": ("data",), "model": ("model",)}``.
    :param job_parameters: job-level parameters (model_id/model_version for predict, ...).
    :param model_id: the job's model id (FATE convention), under which trained models are saved.
    :param model_version: the job's model version (= the job id in FATE 1.x).
    :param data_dir: the party's data root (tables, artifacts, models live below it).
    :param provider: the component provider that runs it (``native`` or e.g. ``fate:2.2.0``).
    :param provider_dir: the party's provider registry folder (where installed providers are listed).
    :param ptp_address: the party gateway's internal PTP endpoint (``host:port``), which FATE
        provider components federate through.
    """

    job_id: str
    task_name: str
    task_version: int
    implementation: str
    component: str
    stage: str
    local: Party
    parties: tuple[Party, ...]
    parameters: Mapping[str, Any]
    inputs: tuple[InputRef, ...]
    outputs: Mapping[str, tuple[str, ...]]
    job_parameters: Mapping[str, Any]
    model_id: str
    model_version: str
    data_dir: str
    provider: str = "native"
    provider_dir: str = ""
    ptp_address: str = ""


@dataclass(frozen=True)
class PartyTaskResult:
    """What one party's share produced.

    :param status: ``success``, or ``pass`` when there was nothing to do at this party.
    :param outputs: output key → artifact URI in the party's store (never the data itself).
    :param metrics: JSON-ready metrics (e.g. ``{"auc": 0.98, "ks": 0.9}``).
    :param summary: JSON-ready facts worth showing (cipher and key size used, rows, iterations).
    """

    status: Literal["success", "pass"] = "success"
    outputs: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    summary: Mapping[str, Any] = field(default_factory=dict)


class Component(ABC):
    """A federated component: one class per catalogue entry, one ``run`` per party share."""

    @abstractmethod
    def run(
        self, request: PartyTaskRequest, federation: Federation, abort: threading.Event
    ) -> PartyTaskResult:
        """Run this party's share; check ``abort`` between rounds and stop promptly when set."""


__all__ = ["Component", "PartyTaskRequest", "PartyTaskResult"]
