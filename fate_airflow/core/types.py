"""Value types shared across layers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

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
