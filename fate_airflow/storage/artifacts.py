"""Component outputs: data artifacts addressed by URI, plus a per-task index of every output.

URI scheme (the scheduler records these strings; only this party can resolve them)::

    fate-artifact://<job_id, percent-encoded>/<task_name>/<role>/<party_id>/<output_key>

stored under ``<data_dir>/artifacts/<encoded job_id>/<task_name>/<role>/<party_id>/<output_key>/``.
Each (job, task, role, party) directory also holds ``_outputs.json``: the outputs of the latest
task version (data outputs by URI, model outputs by model-store URI) with the aliases a consumer may
ask for. The index is written last, so a task that failed half-way has no index and its partial
outputs are never resolved.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from fate_airflow.core.errors import StorageError
from fate_airflow.core.files import atomic_write_bytes
from fate_airflow.core.paths import encode_component, validate_identifier
from fate_airflow.core.types import Party
from fate_airflow.storage.table import (
    LocalParquetEngine,
    Location,
    StorageEngine,
    Table,
)

ARTIFACT_SCHEME = "fate-artifact"
_ARTIFACTS = "artifacts"
_INDEX = "_outputs.json"


@dataclass(frozen=True)
class ArtifactAddress:
    """One output of one party's share of one task."""

    job_id: str
    task_name: str
    role: str
    party_id: str
    output_key: str

    def __post_init__(self) -> None:
        if not self.job_id:
            raise StorageError("artifact job id is empty")
        validate_identifier(self.task_name, "task name")
        validate_identifier(self.output_key, "output key")
        try:
            Party(self.role, self.party_id)
        except ValueError as exc:
            raise StorageError(str(exc)) from None

    @property
    def uri(self) -> str:
        """``fate-artifact://<job>/<task>/<role>/<party_id>/<output_key>``."""
        return (
            f"{ARTIFACT_SCHEME}://{quote(self.job_id, safe='')}/{self.task_name}/{self.role}/"
            f"{self.party_id}/{self.output_key}"
        )

    @classmethod
    def parse(cls, uri: str) -> ArtifactAddress:
        """Inverse of :attr:`uri`. :raises StorageError: not an artifact URI."""
        parts = urlsplit(uri)
        segments = parts.path.strip("/").split("/") if parts.path else []
        if parts.scheme != ARTIFACT_SCHEME or not parts.netloc or len(segments) != 4:
            raise StorageError(
                f"not an artifact URI: {uri!r} (expected "
                f"{ARTIFACT_SCHEME}://<job_id>/<task_name>/<role>/<party_id>/<output_key>)"
            )
        return cls(unquote(parts.netloc), *segments)

    def task_location(self) -> Location:
        """Location of the (job, task, role, party) directory."""
        return (_ARTIFACTS, encode_component(self.job_id), self.task_name, self.role, self.party_id)

    def location(self) -> Location:
        """Location of this output's table."""
        return (*self.task_location(), self.output_key)


@dataclass(frozen=True)
class OutputRecord:
    """One recorded output of a task share.

    :param key: the key it is stored under (the declared output key).
    :param kind: ``data`` or ``model``.
    :param uri: artifact URI (data) or model-store URI (model).
    :param aliases: other keys a consumer may use for it (e.g. 2.x ``output_data`` for 1.x ``data``).
    :param empty: True when the task had nothing to output at this party (e.g. hetero LR at a host).
    """

    key: str
    kind: str
    uri: str
    aliases: tuple[str, ...] = ()
    empty: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "key": self.key,
            "kind": self.kind,
            "uri": self.uri,
            "aliases": list(self.aliases),
            "empty": self.empty,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutputRecord:
        """Inverse of :meth:`to_dict`."""
        return cls(
            data["key"], data["kind"], data["uri"], tuple(data.get("aliases") or ()), bool(data.get("empty"))
        )


@dataclass(frozen=True)
class OutputIndex:
    """The outputs of one task version at one (role, party)."""

    task_version: int
    outputs: tuple[OutputRecord, ...] = field(default_factory=tuple)

    def find(self, key: str, kind: str) -> OutputRecord | None:
        """The record for ``key``: exact key, else an alias, else the only output of that kind."""
        wanted = "model" if kind in ("model", "isometric_model") else kind
        for rec in self.outputs:
            if rec.key == key:
                return rec
        for rec in self.outputs:
            if key in rec.aliases and rec.kind == wanted:
                return rec
        same_kind = [rec for rec in self.outputs if rec.kind == wanted]
        if len(same_kind) == 1:
            return same_kind[0]
        return None


class ArtifactStore:
    """Data artifacts and output indexes on a :class:`StorageEngine`."""

    def __init__(self, engine: StorageEngine) -> None:
        self.engine = engine

    @classmethod
    def local(cls, data_dir: str) -> ArtifactStore:
        """The default store: parquet files under ``data_dir``."""
        return cls(LocalParquetEngine(data_dir))

    def write_data(self, address: ArtifactAddress, table: Table) -> str:
        """Store a data output (replacing an earlier version's) and return its URI."""
        self.engine.write(
            address.location(), table.with_meta(uri=address.uri, namespace=None, name=None), overwrite=True
        )
        return address.uri

    def read_data(self, uri_or_address: str | ArtifactAddress) -> Table:
        """Load a data output. :raises StorageError: naming the URI when it is not stored."""
        address = (
            uri_or_address
            if isinstance(uri_or_address, ArtifactAddress)
            else ArtifactAddress.parse(uri_or_address)
        )
        if not self.engine.exists(address.location()):
            raise StorageError(f"artifact {address.uri} not found")
        return self.engine.read(address.location())

    def clear_task(self, job_id: str, task_name: str, party: Party) -> None:
        """Remove every output of a task share (done before a new task version runs)."""
        probe = ArtifactAddress(job_id, task_name, party.role, party.party_id, "x")
        self.engine.delete(probe.task_location())

    def _index_path(self, job_id: str, task_name: str, party: Party) -> Location:
        probe = ArtifactAddress(job_id, task_name, party.role, party.party_id, "x")
        return probe.task_location()

    def write_index(self, job_id: str, task_name: str, party: Party, index: OutputIndex) -> None:
        """Record the outputs of a finished task share (atomically, last)."""
        if not isinstance(self.engine, LocalParquetEngine):
            raise StorageError("output indexes need a local engine")
        path = self.engine.path(self._index_path(job_id, task_name, party)) / _INDEX
        body = {"task_version": index.task_version, "outputs": [r.to_dict() for r in index.outputs]}
        atomic_write_bytes(path, json.dumps(body, indent=2, sort_keys=True).encode())

    def read_index(self, job_id: str, task_name: str, party: Party) -> OutputIndex | None:
        """The recorded outputs of a task share, or None when it never finished here."""
        if not isinstance(self.engine, LocalParquetEngine):
            raise StorageError("output indexes need a local engine")
        path = self.engine.path(self._index_path(job_id, task_name, party)) / _INDEX
        try:
            with open(path, encoding="utf-8") as fh:
                body = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StorageError(f"corrupt output index {path}: {exc}") from exc
        return OutputIndex(
            int(body.get("task_version", 0)),
            tuple(OutputRecord.from_dict(r) for r in body.get("outputs", ())),
        )

    def resolve(
        self, job_id: str, producer_task: str, party: Party, output_key: str, kind: str
    ) -> OutputRecord | None:
        """The producer's output a consumer asks for, as recorded by the same (role, party id).

        Returns None when the producer finished here but output nothing under that key (a host's
        hetero-LR share, for instance).

        :raises StorageError: the producer never finished at this party, or the key is ambiguous.
        """
        index = self.read_index(job_id, producer_task, party)
        if index is None:
            raise StorageError(
                f"no outputs of task {producer_task!r} at {party} in job {job_id}: it has not finished here"
            )
        record = index.find(output_key, kind)
        if record is None:
            wanted = "data" if kind == "data" else "model"
            if not any(r.kind == wanted for r in index.outputs):
                return None
            stored = [r.key for r in index.outputs]
            raise StorageError(
                f"task {producer_task!r} at {party} has no {kind} output {output_key!r}; it stored {stored}"
            )
        return None if record.empty else record


def declared_key(
    outputs: Mapping[str, Sequence[str]], kind: str, preferred: Sequence[str], default: str
) -> str:
    """The key to store an output under: a preferred name if declared, else the first declared key.

    1.x job files name outputs freely (``data``, ``train``); 2.x uses fixed keys (``output_data``,
    ``train_output_data``). ``preferred`` lists the 2.x names for this output, in order.
    """
    declared = list(outputs.get(kind, ()))
    for name in preferred:
        if name in declared:
            return name
    if declared:
        return declared[0]
    return default


__all__ = [
    "ARTIFACT_SCHEME",
    "ArtifactAddress",
    "ArtifactStore",
    "OutputIndex",
    "OutputRecord",
    "declared_key",
]
