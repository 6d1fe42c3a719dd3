"""Where a party keeps the plans of jobs that other parties' initiators created here.

The party service writes one file per DAG; the DAG factory turns each into a DAG. The plan travels
with the job, so a party never needs the initiator's job file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Suffix of received plan files (``<dag_id>.plan.json``).
RECEIVED_SUFFIX = ".plan.json"


def write_received_plan(folder: Path, dag_id: str, plan: Mapping[str, Any], conf: Mapping[str, Any]) -> Path:
    """Store ``plan`` for ``dag_id`` atomically (a DAG parse never sees half a file)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{dag_id}{RECEIVED_SUFFIX}"
    tmp = folder / f".{dag_id}.tmp"
    initiator = str(plan.get("initiator", {}).get("party_id", ""))
    tmp.write_text(
        json.dumps({"dag_id": dag_id, "initiator": initiator, "plan": plan, "conf": dict(conf)}, indent=1)
    )
    os.replace(tmp, target)
    return target


def read_received_plan(path: Path) -> dict[str, Any]:
    """Read one received plan file (``{"dag_id", "initiator", "plan", "conf"}``)."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or "plan" not in data:
        raise ValueError(f"{path.name}: not a received plan")
    return data


__all__ = ["RECEIVED_SUFFIX", "read_received_plan", "write_received_plan"]
