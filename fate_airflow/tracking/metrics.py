"""Metrics of a task share, kept as JSON under the party's data dir.

``<data_dir>/metrics/<job_id, percent-encoded>/<task_name>/<role>#<party_id>.json``. The scheduler
also records metrics in Airflow (from ``PartyTaskResult``); this local copy serves the CLI and tests
and survives a metadata-DB reset.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fate_airflow.core.errors import StorageError
from fate_airflow.core.files import atomic_write_bytes, remove_directory
from fate_airflow.core.paths import encode_component, validate_identifier
from fate_airflow.core.types import Party


class MetricsStore:
    """Per-task metrics and summary of each (role, party) share."""

    def __init__(self, data_dir: str | Path) -> None:
        self.root = Path(data_dir) / "metrics"

    def _path(self, job_id: str, task_name: str, party: Party) -> Path:
        return (
            self.root
            / encode_component(job_id)
            / validate_identifier(task_name, "task name")
            / f"{party.role}#{party.party_id}.json"
        )

    def save(
        self,
        job_id: str,
        task_name: str,
        party: Party,
        *,
        task_version: int,
        metrics: Mapping[str, Any],
        summary: Mapping[str, Any],
    ) -> None:
        """Record (replace) the metrics and summary of a task share."""
        body = {"task_version": task_version, "metrics": dict(metrics), "summary": dict(summary)}
        try:
            data = json.dumps(body, indent=2, sort_keys=True, default=str).encode()
        except (TypeError, ValueError) as exc:
            raise StorageError(f"metrics of {task_name} at {party} are not JSON-serialisable: {exc}") from exc
        atomic_write_bytes(self._path(job_id, task_name, party), data)

    def delete_job(self, job_id: str) -> bool:
        """Remove every metrics file of a job at this party; False if there were none."""
        return remove_directory(self.root / encode_component(job_id))

    def load(self, job_id: str, task_name: str, party: Party) -> dict[str, Any] | None:
        """The recorded ``{task_version, metrics, summary}``, or None."""
        path = self._path(job_id, task_name, party)
        try:
            loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StorageError(f"corrupt metrics file {path}: {exc}") from exc
        return loaded


__all__ = ["MetricsStore"]
