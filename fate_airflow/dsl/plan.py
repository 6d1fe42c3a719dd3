"""The execution plan: what a job file means, independent of its format (1.x DSL v2 or 2.x DAG).

A :class:`JobPlan` is immutable and JSON round-trippable (:meth:`JobPlan.to_dict` /
:meth:`JobPlan.from_dict`). Its JSON form is the stable output of ``fate-airflow dsl plan`` and is
what the initiator sends to every party when it creates a job, so parties never need the job file.

Component parameters may have non-string keys, because FATE's do: a 2.x DAG writes
``sample_0.parameters.frac: {0: 0.5, 1: 0.5}`` (label → rate) and NN ``seq_conf: {0: {...}}``, and
pyfate's components expect them as written. In memory they stay as parsed (integers stay integers).
JSON objects only have string keys, so :meth:`PartyTask.to_dict` writes a mapping with any non-string
key as ``{"$pairs": [[key, value], ...]}`` (each key keeps its JSON type) and
:meth:`PartyTask.from_dict` turns it back: the round trip is lossless, and plans without such keys
look exactly as before. Job files may not use ``$pairs`` as a key (:mod:`fate_airflow.dsl.io`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fate_airflow.core.providers import NATIVE
from fate_airflow.core.types import InputRef, Party
from fate_airflow.dsl.merge import deep_merge

PlanFormat = Literal["fate-1.x-dsl-v2", "fate-2.x-dag"]
Stage = Literal["train", "predict", "default", "cross_validation"]

#: JSON marker of a mapping with non-string keys (see the module docstring).
PAIRS = "$pairs"


def encode_keys(value: Any) -> Any:
    """``value`` with every mapping that has a non-string key written as ``{"$pairs": [[k, v], ...]}``."""
    if isinstance(value, Mapping):
        if all(isinstance(k, str) for k in value):
            return {k: encode_keys(v) for k, v in value.items()}
        return {PAIRS: [[k, encode_keys(v)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return [encode_keys(v) for v in value]
    return value


def decode_keys(value: Any) -> Any:
    """Inverse of :func:`encode_keys`."""
    if isinstance(value, Mapping):
        pairs = value.get(PAIRS) if len(value) == 1 else None
        if isinstance(pairs, list) and all(isinstance(p, list) and len(p) == 2 for p in pairs):
            return {k: decode_keys(v) for k, v in pairs}
        return {k: decode_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_keys(v) for v in value]
    return value


@dataclass(frozen=True)
class PartyTask:
    """A task's share at one (role, party id): only parties where the task runs appear in a plan."""

    party: Party
    parameters: Mapping[str, Any] = field(default_factory=dict)
    #: Party-specific task conf laid over :attr:`TaskPlan.conf` (2.x ``party_tasks.<alias>.conf`` and
    #: ``party_tasks.<alias>.tasks.<t>.conf``); empty for most tasks. See :meth:`TaskPlan.conf_for`.
    conf: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"role", "party_id", "parameters"}``, plus ``"conf"`` when it is not empty.

        Parameter mappings with non-string keys are written with the ``$pairs`` marker (module docstring).
        """
        out: dict[str, Any] = {**self.party.to_dict(), "parameters": encode_keys(dict(self.parameters))}
        if self.conf:
            out["conf"] = dict(self.conf)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PartyTask:
        """Inverse of :meth:`to_dict`."""
        return cls(
            Party(data["role"], str(data["party_id"])),
            decode_keys(dict(data.get("parameters") or {})),
            dict(data.get("conf") or {}),
        )


@dataclass(frozen=True)
class TaskPlan:
    """One component of the job.

    :param name: component name = Airflow task id at every party.
    :param component: the module (1.x) or component_ref (2.x) exactly as written in the file.
    :param implementation: our catalogue entry, ``name@version`` (e.g. ``hetero_lr@1.0.0``).
    :param provider: the provider that runs it at every party: ``native`` (this project's components)
        or an installed provider's :attr:`~fate_airflow.core.providers.ProviderInfo.ref`, e.g.
        ``fate:2.2.0`` (chosen at plan time, see :mod:`fate_airflow.dsl.selection`). For a FATE 1.x
        task on the fate provider, :attr:`parties` hold the parameters already translated to FATE 2.2's
        (:mod:`fate_airflow.dsl.v1_to_v2`).
    :param upstream: names of tasks whose outputs this task consumes (graph edges), sorted.
    :param inputs: every input, including warehouse inputs that are not edges.
    :param outputs: declared outputs by kind, e.g. ``{"data": ["data"], "model": ["model"]}``.
    :param stage: train, predict, default or cross_validation.
    :param conf: task runtime conf (timeout, engine settings), merged from job level.
    :param parties: the parties where the task runs, each with its fully merged parameters.
    """

    name: str
    component: str
    implementation: str
    upstream: tuple[str, ...]
    parties: tuple[PartyTask, ...]
    inputs: tuple[InputRef, ...] = ()
    outputs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    stage: str = "train"
    conf: Mapping[str, Any] = field(default_factory=dict)
    provider: str = NATIVE

    @property
    def party_ids(self) -> tuple[str, ...]:
        """Distinct party ids where the task runs, in plan order."""
        return tuple(dict.fromkeys(pt.party.party_id for pt in self.parties))

    def runs_at(self, party_id: str) -> tuple[PartyTask, ...]:
        """This task's shares at ``party_id`` (several when the id plays several roles)."""
        return tuple(pt for pt in self.parties if pt.party.party_id == party_id)

    def conf_for(self, party: Party) -> dict[str, Any]:
        """The effective task conf at ``party``: :attr:`conf` with that party's overrides laid over it.

        :raises KeyError: the task does not run at ``party``.
        """
        for pt in self.parties:
            if pt.party == party:
                return deep_merge(self.conf, pt.conf)
        raise KeyError(str(party))

    def to_dict(self) -> dict[str, Any]:
        """JSON form (key order is part of the CLI contract)."""
        return {
            "name": self.name,
            "component": self.component,
            "implementation": self.implementation,
            "provider": self.provider,
            "upstream": list(self.upstream),
            "stage": self.stage,
            "inputs": [i.to_dict() for i in self.inputs],
            "outputs": {k: list(v) for k, v in self.outputs.items()},
            "conf": dict(self.conf),
            "parties": [p.to_dict() for p in self.parties],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskPlan:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=data["name"],
            component=data["component"],
            implementation=data["implementation"],
            upstream=tuple(data.get("upstream") or ()),
            parties=tuple(PartyTask.from_dict(p) for p in data.get("parties") or ()),
            inputs=tuple(InputRef.from_dict(i) for i in data.get("inputs") or ()),
            outputs={k: tuple(v) for k, v in (data.get("outputs") or {}).items()},
            stage=data.get("stage", "train"),
            conf=dict(data.get("conf") or {}),
            # Plans written before providers existed only ever ran native components.
            provider=data.get("provider") or NATIVE,
        )


@dataclass(frozen=True)
class JobPlan:
    """A validated job: parties, tasks in topological order, and job-level parameters.

    :param format: which file format it came from.
    :param stage: ``train`` or ``predict`` for the job as a whole.
    :param initiator: the party that creates the job everywhere and aggregates status.
    :param parties: guests, then hosts, then arbiters, each in file order.
    :param tasks: in topological order.
    :param job_parameters: 1.x ``job_parameters.common`` or 2.x ``dag.conf``, kept as written
        (timeouts, auto_retries, model_id/model_version, ...).
    :param source: the job file name(s) the plan came from (for messages).
    """

    format: PlanFormat
    stage: str
    initiator: Party
    parties: tuple[Party, ...]
    tasks: tuple[TaskPlan, ...]
    job_parameters: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""

    def task(self, name: str) -> TaskPlan:
        """The task called ``name``; KeyError if absent."""
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(name)

    @property
    def party_ids(self) -> tuple[str, ...]:
        """Distinct party ids in plan order."""
        return tuple(dict.fromkeys(p.party_id for p in self.parties))

    def roles_of(self, party_id: str) -> tuple[str, ...]:
        """Roles ``party_id`` plays in the job."""
        return tuple(p.role for p in self.parties if p.party_id == party_id)

    def downstream_of(self, name: str) -> tuple[str, ...]:
        """``name`` and every task depending on it, directly or not, in plan order."""
        wanted = {name}
        for t in self.tasks:
            if wanted.intersection(t.upstream):
                wanted.add(t.name)
        return tuple(t.name for t in self.tasks if t.name in wanted)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape printed by ``fate-airflow dsl plan`` (stable: other tools read it)."""
        return {
            "format": self.format,
            "stage": self.stage,
            "initiator": self.initiator.to_dict(),
            "parties": [p.to_dict() for p in self.parties],
            "job_parameters": dict(self.job_parameters),
            "source": self.source,
            "tasks": [t.to_dict() for t in self.tasks],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobPlan:
        """Inverse of :meth:`to_dict` (used by parties receiving a job)."""
        init = data["initiator"]
        return cls(
            format=data["format"],
            stage=data["stage"],
            initiator=Party(init["role"], str(init["party_id"])),
            parties=tuple(Party(p["role"], str(p["party_id"])) for p in data["parties"]),
            tasks=tuple(TaskPlan.from_dict(t) for t in data["tasks"]),
            job_parameters=dict(data.get("job_parameters") or {}),
            source=data.get("source", ""),
        )


__all__ = [
    "PAIRS",
    "InputRef",
    "JobPlan",
    "PartyTask",
    "PlanFormat",
    "Stage",
    "TaskPlan",
    "decode_keys",
    "encode_keys",
]
