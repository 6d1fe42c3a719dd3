"""Where a party keeps the plans of jobs that other parties' initiators created here.

The party service writes one file per DAG; the DAG factory turns each into a DAG. The plan travels
with the job, so a party never needs the initiator's job file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fate_airflow.core.files import atomic_write_bytes

#: Suffix of received plan files (``<dag_id>.plan.json``).
RECEIVED_SUFFIX = ".plan.json"


def write_received_plan(folder: Path, dag_id: str, plan: Mapping[str, Any], conf: Mapping[str, Any]) -> Path:
    """Store ``plan`` for ``dag_id`` atomically (a DAG parse never sees half a file)."""
    target = folder / f"{dag_id}{RECEIVED_SUFFIX}"
    initiator = str(plan.get("initiator", {}).get("party_id", ""))
    record = {"dag_id": dag_id, "initiator": initiator, "plan": plan, "conf": dict(conf)}
    atomic_write_bytes(target, json.dumps(record, indent=1).encode())
    return target


def read_received_plan(path: Path) -> dict[str, Any]:
    """Read one received plan file (``{"dag_id", "initiator", "plan", "conf"}``)."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or "plan" not in data:
        raise ValueError(f"{path.name}: not a received plan")
    return data


__all__ = ["RECEIVED_SUFFIX", "read_received_plan", "write_received_plan"]
