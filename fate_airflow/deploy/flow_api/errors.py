"""FATE-Flow 2.x's reply envelope and error codes (FATE-Flow ``entity/code/_api.py``, ``utils/api_utils.py``).

Every JSON reply is ``{"code": int, "message": str, "data": ..., "job_id": ...}`` with None values
left out, sent with HTTP 200 even for errors — FATE's clients read ``code``, not the HTTP status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ReturnCode:
    """FATE-Flow 2.x's API codes (the ones its clients tell apart)."""

    SUCCESS = 0
    JOB_NOT_FOUND = 1001
    TASK_NOT_FOUND = 2000
    NO_FOUND = 3001
    EXPIRED = 5000
    INVALID_PARAMETER = 5001
    VERIFY_FAILED = 5003
    PERMISSION_DENIED = 5004
    SERVER_ERROR = 6000


class FlowApiError(Exception):
    """A request the API refuses; ``message`` names the field, job, task or party concerned."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> FlowApiError:
    """A 5001 (invalid parameter) error."""
    return FlowApiError(ReturnCode.INVALID_PARAMETER, message)


def envelope(
    code: int = ReturnCode.SUCCESS,
    message: str = "success",
    data: Any = None,
    job_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """FATE-Flow's reply body: None values are left out, extra keys merged at the top level."""
    body: dict[str, Any] = {"code": code, "message": message, "data": data, "job_id": job_id, **extra}
    return {k: v for k, v in body.items() if v is not None}


def require(params: Mapping[str, Any], *names: str) -> list[Any]:
    """The values of ``names`` in ``params``; a 5001 naming the first one missing or empty."""
    values = []
    for name in names:
        value = params.get(name)
        if value is None or value == "":
            raise invalid(f"missing required parameter {name!r}")
        values.append(value)
    return values


__all__ = ["FlowApiError", "ReturnCode", "envelope", "invalid", "require"]
