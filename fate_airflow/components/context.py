"""What a component sees while it runs: parameters, inputs, outputs, stores, federation, abort.

:class:`TaskContext` is built by :func:`fate_airflow.components.runtime.run_party_task` from the
:class:`~fate_airflow.components.api.PartyTaskRequest`; :class:`FateComponent` is the base of every
built-in component (it implements :meth:`Component.run` on top of a context).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from fate_airflow.components.api import Component, PartyTaskRequest, PartyTaskResult
from fate_airflow.components.params import Params
from fate_airflow.core.errors import ComponentError, FederationTimeout, StorageError
from fate_airflow.core.files import read_or_create_secret
from fate_airflow.core.types import InputRef, Party
from fate_airflow.federation.api import DEFAULT_GET_TIMEOUT, Federation, Payload
from fate_airflow.storage.artifacts import (
    ArtifactAddress,
    ArtifactStore,
    OutputIndex,
    OutputRecord,
    declared_key,
)
from fate_airflow.storage.table import LocalParquetEngine, Table
from fate_airflow.storage.tables import TableStore
from fate_airflow.tracking.metrics import MetricsStore
from fate_airflow.tracking.model_store import ModelKey, ModelStore, StoredModel, make_model_id

LOGGER_NAME = "fate_airflow.components"

#: The party's own random key below its data dir (never sent anywhere); see TaskContext.private_key.
PARTY_SECRET_FILE = "party-secret.key"

#: Seconds between abort checks while waiting for a peer.
GET_POLL_SECONDS = 1.0

#: Data input slots, 1.x and 2.x, by meaning.
TRAIN_KEYS = ("train_data", "data", "input_data")
TEST_KEYS = ("test_data", "eval_data")
VALIDATE_KEYS = ("validate_data",)
#: Where a model component finds the rows to predict, in order of preference.
PREDICT_KEYS = (*TEST_KEYS, "data", "input_data", "train_data")
#: Output slots of a model component's training and prediction rows (2.x name first, then 1.x).
TRAIN_OUT_KEYS = ("train_output_data", "output_data")
TEST_OUT_KEYS = ("test_output_data", "output_data")


@dataclass(frozen=True)
class ResolvedData:
    """One data input as the component receives it.

    :param ref: the plan's input reference.
    :param table: the rows, or None when the producer output nothing here (e.g. a host's LR data).
    """

    ref: InputRef
    table: Table | None


def _rows_digest(ids: Sequence[str]) -> bytes:
    return hashlib.sha256("\n".join(ids).encode("utf-8")).digest()


class TaskContext:
    """One party's share of one task version, as seen by a component."""

    def __init__(
        self,
        request: PartyTaskRequest,
        federation: Federation,
        abort: threading.Event,
        *,
        get_timeout: float | None = None,
    ) -> None:
        self.request = request
        self.federation = federation
        self.abort = abort
        self.local: Party = request.local
        self.role: str = request.local.role
        self.party_id: str = request.local.party_id
        engine = LocalParquetEngine(request.data_dir)
        self.tables = TableStore(engine)
        self.artifacts = ArtifactStore(engine)
        self.models = ModelStore(request.data_dir)
        self.metrics_store = MetricsStore(request.data_dir)
        self.where = f"{request.task_name} ({request.implementation}) at {request.local}"
        self.params = Params(request.parameters, self.where)
        self.log = logging.LoggerAdapter(
            logging.getLogger(LOGGER_NAME),
            {"job_id": request.job_id, "task_name": request.task_name, "party": str(request.local)},
        )
        self.get_timeout = float(
            get_timeout
            if get_timeout is not None
            else request.job_parameters.get("federation_get_timeout", DEFAULT_GET_TIMEOUT)
        )
        self.status: Literal["success", "pass"] = "success"
        self.outputs: dict[str, str] = {}
        self.metrics: dict[str, Any] = {}
        self.summary: dict[str, Any] = {}
        self._records: list[OutputRecord] = []

    # ------------------------------------------------------------------ parties

    def parties_of(self, role: str) -> tuple[Party, ...]:
        """The task's parties with ``role`` in plan order (the order is FATE's role index)."""
        return tuple(p for p in self.request.parties if p.role == role)

    @property
    def stage(self) -> str:
        """``train``, ``predict`` or ``default``."""
        return self.request.stage or "train"

    def info(self, msg: str, *args: Any) -> None:
        """Log at info level, prefixed with the task and party."""
        self.log.info(f"[{self.where}] {msg}", *args)

    def warning(self, msg: str, *args: Any) -> None:
        """Log at warning level, prefixed with the task and party."""
        self.log.warning(f"[{self.where}] {msg}", *args)

    def mark_pass(self, reason: str) -> None:
        """Nothing to do at this party: the share ends with status ``pass``."""
        self.status = "pass"
        self.summary["reason"] = reason
        self.info("pass: %s", reason)

    def align_rows_as_guest(self, hosts: Sequence[Party], ids: list[str], tag: str, what: str) -> None:
        """Check that every host holds the guest's rows in the guest's order (ids never cross).

        The guest sends a digest of its row ids; each host answers whether its own match.

        :raises ComponentError: naming the first host whose rows differ and ``what`` needs PSI first.
        """
        self.remote({"count": len(ids), "digest": _rows_digest(ids)}, "data_align", tag, hosts)
        for host, ack in zip(hosts, self.get("data_align_ack", tag, hosts), strict=True):
            if not isinstance(ack, dict) or not ack.get("ok"):
                count = ack.get("count") if isinstance(ack, dict) else "?"
                raise ComponentError(
                    f"{self.where}: the rows of {host} ({count}) do not match the guest's ({len(ids)}); "
                    f"run intersection (psi) before {what}"
                )

    def align_rows_as_host(self, guest: Party, ids: list[str], tag: str) -> None:
        """The host's side of :meth:`align_rows_as_guest`.

        :raises ComponentError: when this party's rows differ from the guest's.
        """
        msg = self.get_one("data_align", tag, guest)
        ok = isinstance(msg, dict) and msg.get("count") == len(ids) and msg.get("digest") == _rows_digest(ids)
        self.remote({"ok": bool(ok), "count": len(ids)}, "data_align_ack", tag, [guest])
        if not ok:
            raise ComponentError(
                f"{self.where}: this party's {len(ids)} rows do not match the guest's; run intersection (psi) first"
            )

    def training_seed(self, configured: int | None) -> int:
        """The seed of a component's own randomness (initial weights, mini-batch order, sampling).

        FATE's seed parameter when given, else one fixed by the task's name: the same job on the
        same data trains the same model on every run. Cryptographic randomness (masks, Paillier
        nonces) stays fresh; it cancels out of the results.
        """
        if configured is not None:
            return configured
        return int.from_bytes(hashlib.sha256(self.request.task_name.encode()).digest()[:8], "big")

    def private_key(self, purpose: str) -> bytes:
        """A 32-byte key only this party can compute, the same every run for the same ``purpose``.

        HMAC of ``purpose`` and the task name under the party's own random secret
        (``<data_dir>/party-secret.key``, created on first use, never sent).

        For randomness that must stay secret from the other parties and still repeat run after run
        of the same job (e.g. the order a host shuffles its split candidates in: the guest must not
        predict it, and which of two equally good splits wins must not change between runs).
        """
        secret = read_or_create_secret(Path(self.request.data_dir) / PARTY_SECRET_FILE)
        label = f"{self.request.task_name}\0{purpose}".encode()
        return hmac.new(secret, label, hashlib.sha256).digest()

    # ------------------------------------------------------------------ abort and federation

    def check_abort(self) -> None:
        """:raises ComponentError: ``aborted`` when the abort event is set."""
        if self.abort.is_set():
            raise ComponentError("aborted")

    def remote(self, obj: Payload, name: str, tag: str, parties: Sequence[Party]) -> None:
        """Send ``obj`` to ``parties`` (no-op for an empty list)."""
        if parties:
            self.federation.remote(obj, name, tag, list(parties))

    def get(
        self, name: str, tag: str, parties: Sequence[Party], timeout: float | None = None
    ) -> list[Payload]:
        """Receive from each party in order, checking ``abort`` while waiting.

        Parties are waited for one at a time with short polls, so nothing already received is lost
        when a poll times out.

        :raises ComponentError: aborted, or nothing arrived within ``timeout`` (naming the party).
        """
        deadline = time.monotonic() + (self.get_timeout if timeout is None else timeout)
        out: list[Payload] = []
        for party in parties:
            while True:
                self.check_abort()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ComponentError(
                        f"{self.where}: timed out waiting for {name!r} tag {tag!r} from {party}"
                    )
                try:
                    out.extend(
                        self.federation.get(name, tag, [party], timeout=min(GET_POLL_SECONDS, remaining))
                    )
                    break
                except FederationTimeout:
                    continue
        return out

    def get_one(self, name: str, tag: str, party: Party, timeout: float | None = None) -> Payload:
        """Receive one object from one party."""
        return self.get(name, tag, [party], timeout)[0]

    # ------------------------------------------------------------------ inputs

    def _applies(self, ref: InputRef) -> bool:
        return ref.parties is None or self.local in ref.parties

    def data_inputs(self, keys: Sequence[str] | None = None) -> list[ResolvedData]:
        """Resolve the data inputs for this party (all, or those whose slot is in ``keys``), in plan order."""
        out: list[ResolvedData] = []
        for ref in self.request.inputs:
            if ref.kind != "data" or not self._applies(ref):
                continue
            if keys is not None and ref.key not in keys:
                continue
            out.append(ResolvedData(ref, self._resolve_data(ref)))
        return out

    def input_table(self, keys: Sequence[str]) -> Table | None:
        """The first data input whose slot is in ``keys`` (``keys`` order wins), or None."""
        resolved = self.data_inputs(keys)
        for key in keys:
            for item in resolved:
                if item.ref.key == key:
                    return item.table
        return None

    def has_input(self, keys: Sequence[str]) -> bool:
        """Whether the plan gives this party a data input in one of ``keys``."""
        return any(
            ref.kind == "data" and ref.key in keys and self._applies(ref) for ref in self.request.inputs
        )

    def refuse_warm_start(self, native: str, fate_component: str) -> None:
        """Raise at every party alike when the task asks for a warm start the native ``native`` lacks.

        Plan-time selection sends such tasks to FATE's ``fate_component``; this catches a job that
        named the native provider anyway. Every role raises, so none waits for a peer that gave up.
        """
        if any(ref.key == "warm_start_model" for ref in self.request.inputs):
            raise ComponentError(
                f"{self.where}: warm start (warm_start_model) is not implemented by the native {native}; "
                f"with the FATE provider installed, FATE's {fate_component} runs such tasks"
            )

    def training_table(self) -> Table:
        """The training rows. :raises ComponentError: the plan gives this party none."""
        table = self.input_table(TRAIN_KEYS)
        if table is None:
            raise ComponentError(f"{self.where}: no training data")
        return table

    def note_warnings(self, warnings: Sequence[str]) -> None:
        """Log parameter warnings and keep them in the summary (the board shows them)."""
        for w in warnings:
            self.warning("%s", w)
        self.summary["warnings"] = list(warnings)

    def predicts(self, model: StoredModel | None) -> bool:
        """Whether this share predicts with ``model`` (a predict stage, or a model and no training data)."""
        return self.stage == "predict" or (model is not None and not self.has_input(TRAIN_KEYS))

    def _resolve_data(self, ref: InputRef) -> Table | None:
        if ref.source == "data_warehouse":
            if not ref.namespace or not ref.name:
                raise ComponentError(f"{self.where}: data_warehouse input {ref.key!r} names no table")
            return self.tables.read(ref.namespace, ref.name)
        if ref.source == "task":
            if not ref.producer_task:
                raise ComponentError(f"{self.where}: input {ref.key!r} names no producer task")
            record = self.artifacts.resolve(
                self.request.job_id, ref.producer_task, self.local, ref.output_key or ref.key, "data"
            )
            if record is None:
                return None
            return self.artifacts.read_data(record.uri)
        raise ComponentError(f"{self.where}: a {ref.source} input cannot be data ({ref.key!r})")

    def model_inputs(self) -> list[tuple[InputRef, StoredModel | None]]:
        """Resolve the model inputs (``model`` / ``isometric_model``) for this party."""
        out: list[tuple[InputRef, StoredModel | None]] = []
        for ref in self.request.inputs:
            if ref.kind not in ("model", "isometric_model") or not self._applies(ref):
                continue
            out.append((ref, self._resolve_model(ref)))
        return out

    def input_model(self) -> StoredModel | None:
        """The first model input (``model`` kind before ``isometric_model``), or None."""
        models = self.model_inputs()
        for kind in ("model", "isometric_model"):
            for ref, model in models:
                if ref.kind == kind and model is not None:
                    return model
        return None

    def _warehouse_ids(self, ref: InputRef) -> tuple[str, str]:
        jp = self.request.job_parameters
        warehouse = jp.get("model_warehouse") if isinstance(jp.get("model_warehouse"), Mapping) else {}
        model_id = ref.model_id or jp.get("model_id") or (warehouse or {}).get("model_id")
        version = ref.model_version or jp.get("model_version") or (warehouse or {}).get("model_version")
        if not model_id or not version:
            raise ComponentError(
                f"{self.where}: model input {ref.key!r} from {ref.producer_task!r} needs model_id and "
                "model_version (job_parameters.common in 1.x, dag.conf.model_warehouse in 2.x)"
            )
        return str(model_id), str(version)

    def _resolve_model(self, ref: InputRef) -> StoredModel | None:
        if ref.source == "model_warehouse":
            if not ref.producer_task:
                raise ComponentError(f"{self.where}: model_warehouse input {ref.key!r} names no component")
            model_id, version = self._warehouse_ids(ref)
            key = ModelKey(model_id, version, self.role, self.party_id, ref.producer_task)
            self.info("loading model %s", key.uri)
            return self.models.load(key)
        if ref.source == "task":
            if not ref.producer_task:
                raise ComponentError(f"{self.where}: input {ref.key!r} names no producer task")
            record = self.artifacts.resolve(
                self.request.job_id, ref.producer_task, self.local, ref.output_key or ref.key, ref.kind
            )
            if record is None:
                return None
            return self.models.load(ModelKey.parse(record.uri))
        raise ComponentError(f"{self.where}: a {ref.source} input cannot be a model ({ref.key!r})")

    # ------------------------------------------------------------------ outputs

    def _output_key(self, kind: str, preferred: Sequence[str], default: str) -> str:
        return declared_key(self.request.outputs, kind, preferred, default)

    def save_data(
        self, table: Table, preferred: Sequence[str] = ("output_data",), default: str = "data"
    ) -> str:
        """Store a data output under the declared key (a 2.x name from ``preferred`` or 1.x's first key)."""
        key = self._output_key("data", preferred, default)
        return self.store_data(key, table, aliases=(*preferred, default))

    def store_data(self, key: str, table: Table, aliases: Sequence[str] = ()) -> str:
        """Store a data output under exactly ``key`` (a provider that names its own outputs)."""
        address = ArtifactAddress(self.request.job_id, self.request.task_name, self.role, self.party_id, key)
        extra = {
            **table.meta.extra,
            "task_version": self.request.task_version,
            "task_name": self.request.task_name,
        }
        uri = self.artifacts.write_data(address, table.with_meta(extra=extra))
        self._records.append(OutputRecord(key, "data", uri, aliases=tuple(aliases)))
        self.outputs[key] = uri
        self.info("stored data output %r: %d rows → %s", key, len(table.frame), uri)
        return uri

    def save_empty_data(self, preferred: Sequence[str] = ("output_data",), default: str = "data") -> None:
        """Record that this party has no data output (consumers see None, evaluation passes)."""
        key = self._output_key("data", preferred, default)
        self.record_empty_data(key, aliases=(*preferred, default))

    def record_empty_data(self, key: str, aliases: Sequence[str] = ()) -> None:
        """Record that this party has no data output ``key`` (exactly that key)."""
        self._records.append(OutputRecord(key, "data", "", aliases=tuple(aliases), empty=True))

    def model_key(self) -> ModelKey:
        """Where this task's model share is saved (the job's model id/version, this task name)."""
        model_id = self.request.model_id or make_model_id(list(self.request.parties))
        version = self.request.model_version or self.request.job_id
        return ModelKey(model_id, version, self.role, self.party_id, self.request.task_name)

    def save_model(
        self,
        params: Mapping[str, Any],
        arrays: Mapping[str, np.ndarray] | None = None,
        meta: Mapping[str, Any] | None = None,
        preferred: Sequence[str] = ("output_model", "train_output_model"),
        default: str = "model",
    ) -> str:
        """Save this party's model share to the model store and record it as the model output."""
        key = self._output_key("model", preferred, default)
        full_meta = {
            "component": self.request.component,
            "implementation": self.request.implementation,
            "job_id": self.request.job_id,
            "task_version": self.request.task_version,
            **(meta or {}),
        }
        uri = self.models.save(self.model_key(), params, arrays, full_meta)
        self.record_model(key, uri, aliases=(*preferred, default))
        self.info("saved model %s", uri)
        return uri

    def record_model(self, key: str, uri: str, aliases: Sequence[str] = ()) -> None:
        """Record ``uri`` (in the model store) as this share's model output ``key``."""
        self._records.append(OutputRecord(key, "model", uri, aliases=tuple(aliases)))
        self.outputs[key] = uri

    # ------------------------------------------------------------------ lifecycle

    def begin(self) -> None:
        """Forget outputs of an earlier version of this task share (a rerun overwrites them)."""
        try:
            self.artifacts.clear_task(self.request.job_id, self.request.task_name, self.local)
        except StorageError:
            raise
        except OSError as exc:
            raise StorageError(f"cannot clear earlier outputs of {self.where}: {exc}") from exc

    def finish(self) -> PartyTaskResult:
        """Write the output index and metrics, and build the result."""
        self.artifacts.write_index(
            self.request.job_id,
            self.request.task_name,
            self.local,
            OutputIndex(self.request.task_version, tuple(self._records)),
        )
        self.metrics_store.save(
            self.request.job_id,
            self.request.task_name,
            self.local,
            task_version=self.request.task_version,
            metrics=self.metrics,
            summary=self.summary,
        )
        self.params.log_unused(self.log)
        return PartyTaskResult(
            status=self.status,
            outputs=dict(self.outputs),
            metrics=dict(self.metrics),
            summary=dict(self.summary),
        )


class FateComponent(Component):
    """Base of the built-in components: :meth:`execute` works on a :class:`TaskContext`.

    ``roles`` lists where the component does something; at any other role the share passes.
    """

    roles: ClassVar[tuple[str, ...]] = ("guest", "host")

    def run(
        self, request: PartyTaskRequest, federation: Federation, abort: threading.Event
    ) -> PartyTaskResult:
        """Run on a fresh context (the runtime normally calls :meth:`execute` itself)."""
        ctx = TaskContext(request, federation, abort)
        ctx.begin()
        if ctx.role not in self.roles:
            ctx.mark_pass(f"{request.implementation} has nothing to do at role {ctx.role}")
        else:
            self.execute(ctx)
        return ctx.finish()

    @abstractmethod
    def execute(self, ctx: TaskContext) -> None:
        """Do this party's share: read inputs and parameters from ``ctx``, store outputs through it."""


__all__ = [
    "LOGGER_NAME",
    "TEST_KEYS",
    "TRAIN_KEYS",
    "VALIDATE_KEYS",
    "FateComponent",
    "ResolvedData",
    "TaskContext",
]
