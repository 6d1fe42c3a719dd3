"""Value types shared across layers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

#: Party ids are plain tokens: they appear in file names, certificate SANs and routing keys.
PARTY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Role(StrEnum):
    """The roles a party can play in a FATE job."""

    GUEST = "guest"
    HOST = "host"
    ARBITER = "arbiter"
    LOCAL = "local"


#: Order used wherever parties are listed: guests, then hosts, then arbiters (then local).
ROLE_ORDER: tuple[str, ...] = ("guest", "host", "arbiter", "local")


def validate_party_id(value: object) -> str:
    """Return ``value`` as a party-id string or raise :class:`ValueError` naming the bad value.

    Integers are accepted because FATE 1.x confs write party ids as JSON numbers.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"party id {value!r} must be a string or an integer")
    text = str(value)
    if not PARTY_ID_PATTERN.match(text):
        raise ValueError(f"invalid party id {text!r}: only letters, digits, '_' and '-' are allowed")
    return text


@dataclass(frozen=True, order=True)
class Party:
    """One (role, party id) pair. A party id may appear with several roles in a job."""

    role: str
    party_id: str

    def __post_init__(self) -> None:
        if self.role not in ROLE_ORDER:
            raise ValueError(f"unknown role {self.role!r}; expected one of {', '.join(ROLE_ORDER)}")
        validate_party_id(self.party_id)

    def __str__(self) -> str:
        return f"{self.role}:{self.party_id}"

    @classmethod
    def parse(cls, text: str) -> Party:
        """Parse ``role:party_id``."""
        role, sep, party_id = text.partition(":")
        if not sep:
            raise ValueError(f"expected role:party_id, got {text!r}")
        return cls(role, party_id)

    def to_dict(self) -> dict[str, str]:
        """JSON form used in plans and on the wire."""
        return {"role": self.role, "party_id": self.party_id}


InputKind = Literal["data", "model", "isometric_model", "cache"]
InputSource = Literal["task", "model_warehouse", "data_warehouse"]


@dataclass(frozen=True)
class InputRef:
    """One input of a task.

    :param kind: data, model, isometric_model or cache.
    :param key: the input slot, e.g. ``train_data``, ``data``, ``input_model``.
    :param source: ``task`` (an upstream output: an edge of the graph), ``model_warehouse`` (a stored
        model of an earlier job: no edge) or ``data_warehouse`` (a stored table: no edge).
    :param producer_task: upstream task name (for warehouse models: the task that trained it).
    :param output_key: the producer's output key, e.g. ``data``, ``model``, ``output_data``.
    :param parties: for 2.x asymmetric inputs, the parties that consume it; None = all task parties.
    :param model_id: stored model id (model_warehouse), if the file names one.
    :param model_version: stored model version (model_warehouse), if the file names one.
    :param namespace: table namespace (data_warehouse).
    :param name: table name (data_warehouse).
    """

    kind: InputKind
    key: str
    source: InputSource
    producer_task: str | None = None
    output_key: str | None = None
    parties: tuple[Party, ...] | None = None
    model_id: str | None = None
    model_version: str | None = None
    namespace: str | None = None
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form; optional fields left out when unset."""
        out: dict[str, Any] = {"kind": self.kind, "key": self.key, "source": self.source}
        for attr in ("producer_task", "output_key", "model_id", "model_version", "namespace", "name"):
            value = getattr(self, attr)
            if value is not None:
                out[attr] = value
        if self.parties is not None:
            out["parties"] = [p.to_dict() for p in self.parties]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputRef:
        """Inverse of :meth:`to_dict`."""
        parties = data.get("parties")
        return cls(
            kind=data["kind"],
            key=data["key"],
            source=data["source"],
            producer_task=data.get("producer_task"),
            output_key=data.get("output_key"),
            parties=None if parties is None else tuple(Party(p["role"], p["party_id"]) for p in parties),
            model_id=data.get("model_id"),
            model_version=data.get("model_version"),
            namespace=data.get("namespace"),
            name=data.get("name"),
        )
