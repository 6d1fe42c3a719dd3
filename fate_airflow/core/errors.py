"""One small error hierarchy; each edge (CLI, gRPC servicer, Airflow adapter) translates it exactly once."""

from __future__ import annotations

from collections.abc import Iterable


class FateAirflowError(Exception):
    """Base class of every error this project raises on purpose (user or peer mistakes, not bugs)."""


class ConfigError(FateAirflowError):
    """A configuration file or setting is missing or invalid."""


class DslError(FateAirflowError):
    """A job file is invalid; carries every problem found, one line each.

    Each problem line names the file and the field path, e.g.
    ``job_conf.json: component_parameters.role.host.3: host index 3 out of range (2 hosts)``.
    """

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("\n".join(self.problems) if self.problems else "invalid job file")


class PlanError(DslError):
    """The job file parsed but cannot be turned into an execution plan."""


class FederationError(FateAirflowError):
    """A party-to-party transfer or control call failed."""


class FederationTimeout(FederationError):
    """A ``get`` or control call waited longer than allowed.

    :param party: the party that was waited for, as ``role:party_id``.
    :param name: the variable name waited for.
    :param tag: the tag waited for.
    """

    def __init__(self, message: str, *, party: str = "", name: str = "", tag: str = "") -> None:
        super().__init__(message)
        self.party = party
        self.name = name
        self.tag = tag


class StorageError(FateAirflowError):
    """A table, model or artifact could not be read or written."""


class ComponentError(FateAirflowError):
    """A federated component failed for a reason the user can act on."""


class NotImplementedComponentError(ComponentError):
    """The component is catalogued (it plans) but has no implementation yet; running it fails."""


class SchedulingError(FateAirflowError):
    """A job could not be created, started, stopped or rerun across parties."""
