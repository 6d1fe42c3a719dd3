"""TaskStartTrigger: wait, without holding a worker slot, until the initiator releases a task.

A federated task may start only when its upstream succeeded at every party and every party is ready
for it; the initiator then answers ``start`` with the agreed task version (or ``abort`` when the
job failed or was stopped). The trigger asks through the party's own gateway over ``grpc.aio``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from fate_airflow.core.errors import FateAirflowError
from fate_airflow.federation.api import PrepareTask, TaskStartDecision
from fate_airflow.federation.config import GatewayClientConfig
from fate_airflow.federation.grpc.client import AsyncGrpcControlClient


class TaskStartTrigger(BaseTrigger):
    """Ask ``PrepareTask`` (long polls) until the decision is ``start`` or ``abort``; yield one event.

    Events: ``{"status": "start", "task_version": int}``, ``{"status": "abort", "reason": str}`` or
    ``{"status": "error", "reason": str}`` (the party's own gateway stayed unreachable).

    :param client_config: JSON form of the gateway client configuration.
    :param job_id: the job (= DAG run id).
    :param task_name: the component (= task id). Kept under its own name: Airflow overwrites
        ``task_id`` on triggers with the local task.
    :param party_id: this party.
    :param poll_interval: seconds between asks.
    :param unreachable_timeout: seconds the local gateway may stay unreachable before giving up.
    :param not_before: wall-clock time before which no event is yielded.
    :param hold_seconds: how long the party service may hold each ask (long poll).
    """

    def __init__(
        self,
        client_config: dict[str, Any],
        job_id: str,
        task_name: str,
        party_id: str,
        poll_interval: float = 0.5,
        unreachable_timeout: float = 120.0,
        not_before: float = 0.0,
        hold_seconds: float = 10.0,
    ) -> None:
        super().__init__()
        self.client_config = client_config
        self.job_id = job_id
        self.task_name = task_name
        self.party_id = party_id
        self.poll_interval = poll_interval
        self.unreachable_timeout = unreachable_timeout
        self.not_before = not_before
        self.hold_seconds = hold_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and JSON-only kwargs (keep them backward compatible: rows outlive deploys)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "client_config": self.client_config,
                "job_id": self.job_id,
                "task_name": self.task_name,
                "party_id": self.party_id,
                "poll_interval": self.poll_interval,
                "unreachable_timeout": self.unreachable_timeout,
                "not_before": self.not_before,
                "hold_seconds": self.hold_seconds,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Ask until decided; transport errors are retried until ``unreachable_timeout``."""
        client = AsyncGrpcControlClient(GatewayClientConfig.from_dict(self.client_config))
        # A long poll: the party service holds the ask until the job changes (a peer prepared, an
        # upstream task ended) or the hold ends, so a waiting task costs one call per hold.
        cmd = PrepareTask(self.job_id, self.task_name, self.party_id, wait_seconds=self.hold_seconds)
        last_ok = time.monotonic()
        try:
            while True:
                asked = time.monotonic()
                try:
                    decision = await client.call(self.party_id, cmd, timeout=self.hold_seconds + 30.0)
                    last_ok = time.monotonic()
                except FateAirflowError as exc:
                    if time.monotonic() - last_ok > self.unreachable_timeout:
                        yield TriggerEvent({"status": "error", "reason": f"party gateway unreachable: {exc}"})
                        return
                    await asyncio.sleep(self.poll_interval)
                    continue
                if not isinstance(decision, TaskStartDecision):
                    yield TriggerEvent({"status": "error", "reason": f"unexpected reply {decision!r}"})
                    return
                if decision.action == "start":
                    delay = self.not_before - time.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    yield TriggerEvent({"status": "start", "task_version": decision.task_version})
                    return
                if decision.action == "abort":
                    yield TriggerEvent({"status": "abort", "reason": decision.reason})
                    return
                # Answered at once (the service had no hold to spare): ask again at the poll rate.
                await asyncio.sleep(max(0.0, self.poll_interval - (time.monotonic() - asked)))
        finally:
            await client.close()
