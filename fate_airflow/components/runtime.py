"""The runner-facing entry point: run one party's share of one task.

:func:`run_party_task` looks the implementation up in the registry, prepares a
:class:`~fate_airflow.components.context.TaskContext` (stores under ``request.data_dir``, input
resolution, the abort event), runs the component, records its outputs (artifact URIs, model URIs,
output index, metrics) and returns the :class:`~fate_airflow.components.api.PartyTaskResult`.
"""

from __future__ import annotations

import logging
import threading
import time

from fate_airflow.components.api import Component, PartyTaskRequest, PartyTaskResult
from fate_airflow.components.context import LOGGER_NAME, FateComponent, TaskContext
from fate_airflow.components.registry import get_component
from fate_airflow.core.errors import ComponentError
from fate_airflow.core.providers import NATIVE
from fate_airflow.federation.api import Federation
from fate_airflow.storage.computing import ComputingAborted

log = logging.getLogger(LOGGER_NAME)


def run_party_task(
    request: PartyTaskRequest, federation: Federation, abort: threading.Event | None = None
) -> PartyTaskResult:
    """Run ``request``'s share of its task at ``request.local``.

    :param request: what to run, where, with which parameters and inputs.
    :param federation: scoped to this task version (session ``<job>_<task>_<version>``).
    :param abort: set it to stop the share promptly; the component raises ``ComponentError("aborted")``.
    :raises NotImplementedComponentError: the component is catalogued but not implemented.
    :raises ComponentError: the component failed for a reason the user can act on.
    :raises StorageError: an input or output could not be read or written.
    :raises FederationError: a peer could not be reached.
    """
    component: Component
    if request.provider == NATIVE:
        component = get_component(request.implementation, request.component)
    else:
        # Imported on use: native tasks never pay for the FATE provider's module.
        from fate_airflow.components.fate_provider import FateProviderComponent

        component = FateProviderComponent()
    abort = abort if abort is not None else threading.Event()
    where = f"{request.task_name} ({request.implementation}) v{request.task_version} at {request.local}"
    started = time.monotonic()
    log.info(
        "[%s] job %s: starting (stage %s, %d parties)",
        where,
        request.job_id,
        request.stage,
        len(request.parties),
    )
    try:
        if isinstance(component, FateComponent):
            ctx = TaskContext(request, federation, abort)
            ctx.begin()
            if ctx.role not in component.roles:
                ctx.mark_pass(f"{request.implementation} has nothing to do at role {ctx.role}")
            else:
                component.execute(ctx)
            ctx.summary.setdefault("elapsed_seconds", round(time.monotonic() - started, 3))
            result = ctx.finish()
        else:
            result = component.run(request, federation, abort)
    except ComputingAborted:
        log.warning("[%s] aborted", where)
        raise ComponentError("aborted") from None
    except ComponentError as exc:
        log.error("[%s] failed: %s", where, exc)
        raise
    log.info(
        "[%s] %s in %.2fs; outputs %s; metrics %s",
        where,
        result.status,
        time.monotonic() - started,
        dict(result.outputs),
        dict(result.metrics),
    )
    return result


__all__ = ["run_party_task"]
