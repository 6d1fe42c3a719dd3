"""Reading component parameters the way FATE names them, with FATE's defaults.

Parameters arrive fully merged (common + role + party) in ``PartyTaskRequest.parameters``. Both the
1.x and the 2.x spelling of a parameter are accepted (``max_iter`` / ``epochs``); whatever a
component never looks at is logged at debug level once the task ends, never an error (FATE confs
carry many parameters we do not implement, such as ``cv_param`` or ``sqn_param``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fate_airflow.core.errors import ComponentError

_MISSING = object()


class Params:
    """Read-tracking view of a parameter mapping.

    :param raw: the merged parameters.
    :param where: who the parameters belong to (``hetero_lr_0 at guest:9999``), for error messages.
    """

    def __init__(self, raw: Mapping[str, Any], where: str) -> None:
        self.raw: Mapping[str, Any] = raw or {}
        self.where = where
        self._used: set[str] = set()

    def _lookup(self, path: str) -> Any:
        node: Any = self.raw
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return _MISSING
            node = node[part]
        return node

    def get(self, *names: str, default: Any = None) -> Any:
        """The first of ``names`` (dotted paths allowed) that is present and not None, else ``default``."""
        for name in names:
            self._used.add(name.split(".")[0])
            value = self._lookup(name)
            if value is not _MISSING and value is not None:
                return value
        return default

    def has(self, *names: str) -> bool:
        """Whether any of ``names`` is present (even when null)."""
        for name in names:
            self._used.add(name.split(".")[0])
            if self._lookup(name) is not _MISSING:
                return True
        return False

    def boolean(self, *names: str, default: bool) -> bool:
        """A boolean parameter (accepts JSON booleans, 0/1 and "true"/"false")."""
        value = self.get(*names, default=default)
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.strip().lower() in ("true", "1", "yes")
        raise ComponentError(f"{self.where}: parameter {names[0]!r} must be a boolean, got {value!r}")

    def integer(self, *names: str, default: int) -> int:
        """An integer parameter."""
        value = self.get(*names, default=default)
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ComponentError(f"{self.where}: parameter {names[0]!r} must be an integer, got {value!r}")
        try:
            as_float = float(value)
        except ValueError:
            raise ComponentError(
                f"{self.where}: parameter {names[0]!r} must be an integer, got {value!r}"
            ) from None
        if as_float != int(as_float):
            raise ComponentError(f"{self.where}: parameter {names[0]!r} must be an integer, got {value!r}")
        return int(as_float)

    def number(self, *names: str, default: float) -> float:
        """A number parameter."""
        value = self.get(*names, default=default)
        if isinstance(value, bool):
            raise ComponentError(f"{self.where}: parameter {names[0]!r} must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ComponentError(
                f"{self.where}: parameter {names[0]!r} must be a number, got {value!r}"
            ) from None

    def string(self, *names: str, default: str | None) -> str | None:
        """A string parameter (None stays None)."""
        value = self.get(*names, default=default)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ComponentError(f"{self.where}: parameter {names[0]!r} must be a string, got {value!r}")
        return value

    def choice(self, *names: str, default: str, choices: Mapping[str, str]) -> str:
        """A string parameter from a fixed set; ``choices`` maps accepted spellings (lower case) to values."""
        value = self.get(*names, default=default)
        key = str(value).strip().lower()
        if key not in choices:
            raise ComponentError(
                f"{self.where}: parameter {names[0]!r} is {value!r}; expected one of {sorted(set(choices))}"
            )
        return choices[key]

    def log_unused(self, log: logging.Logger | logging.LoggerAdapter[logging.Logger]) -> None:
        """Debug-log parameters the component never read (they are ignored)."""
        unused = sorted(k for k in self.raw if k not in self._used)
        if unused:
            log.debug("%s: ignored parameters %s", self.where, unused)


__all__ = ["Params"]
