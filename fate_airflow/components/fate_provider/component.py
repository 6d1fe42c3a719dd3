"""Run one party share of a FATE 2.2 component in the FATE provider's environment.

The share's working folder is ``<data_dir>/fate/tasks/<job>/<task>/<role>_<party>/v<version>/``:
``spec.json`` (what :mod:`.fate_task` runs), ``result.json`` (what it reports), ``out/`` (FATE's
model, metric and exported data files), ``in/`` (our tables as Parquet for FATE's reader). FATE's
standalone computing keeps its tables under ``<data_dir>/fate/computing``, so a FATE output consumed
by the next FATE task at this party is read in place, never converted back and forth.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import io
import json
import re
import shutil
import tarfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, ClassVar
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd

from fate_airflow.components.context import FateComponent, TaskContext
from fate_airflow.components.fate_provider.worker import (
    TASK_SCRIPT,
    ColdProcess,
    FateProcess,
    WorkerLost,
    WorkerSettings,
    WorkerUnavailable,
    provider_env,
    start_warm,
    worker_folder,
)
from fate_airflow.core.errors import ComponentError, StorageError
from fate_airflow.core.providers import ProviderInfo, ProviderRegistry, parse_provider_ref
from fate_airflow.core.types import InputRef
from fate_airflow.federation.api import FederationSession
from fate_airflow.storage.table import Table
from fate_airflow.tracking.model_store import StoredModel

#: The script the provider's interpreter runs (it imports only the standard library and FATE).
WORKER_SCRIPT = TASK_SCRIPT
#: Seconds between checks of the abort event while the FATE process runs.
_POLL = 0.2
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
#: A FATE metric record whose ``data`` is one of these is also flattened into the task's metrics.
_SCALAR = (int, float)


def _safe(text: str) -> str:
    return _SAFE.sub("_", text)


def job_namespace(job_id: str) -> str:
    """FATE computing namespace of a job's tables (job ids carry ``:`` and ``+``; LMDB paths may not)."""
    return "fa_" + hashlib.sha256(job_id.encode()).hexdigest()[:20]


def _label_type(table: Table) -> str:
    label = table.meta.label_column
    if label is None:
        return "int64"
    values = pd.to_numeric(table.frame[label], errors="coerce")
    if values.notna().all() and (values == values.round()).all():
        return "int64"
    return "float64"


def _fields(schema: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    fields = (schema.get("schema_meta") or {}).get("fields") or []
    return [f for f in fields if isinstance(f, Mapping)]


#: FATE's prediction columns: kept beside the features, not as features (as native predictions).
PREDICTION_COLUMNS = ("predict_score", "predict_result", "predict_detail", "type")


def _detail_json(value: str) -> str:
    """FATE writes ``predict_detail`` as a Python dict repr; store it as JSON like native outputs."""
    text = value.strip().strip('"')
    try:
        parsed = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return value
    return json.dumps(parsed, sort_keys=True) if isinstance(parsed, dict) else value


def exported_table(path: str, schema: Mapping[str, Any]) -> Table:
    """One of FATE's dataframe outputs (exported as Parquet by :mod:`.fate_task`) as a stored table.

    The column roles come from FATE's own schema: ``match_id`` is our id column, ``label`` our label,
    ``column`` entries our features except FATE's prediction columns, which stay beside them as in
    native predictions.
    """
    frame = pd.read_parquet(path)
    fields = _fields(schema)
    by_property: dict[str, list[str]] = {}
    for field in fields:
        by_property.setdefault(str(field.get("property")), []).append(str(field.get("name")))
    id_column = (by_property.get("match_id") or [""])[0]
    if id_column not in frame.columns:
        raise StorageError(f"FATE output {path} has no match id column (schema fields: {fields})")
    labels = by_property.get("label") or []
    label_column = labels[0] if labels else None
    if "predict_detail" in frame.columns:
        frame["predict_detail"] = [_detail_json(v) for v in frame["predict_detail"]]
    features = [
        c for c in by_property.get("column", []) if c in frame.columns and c not in PREDICTION_COLUMNS
    ]
    extra: dict[str, Any] = {}
    if "predict_score" in frame.columns:
        extra = {"predict_score": "predict_score", "predict_result": "predict_result"}
    return Table.from_frame(
        frame,
        id_column=id_column,
        label_column=label_column if label_column in frame.columns else None,
        feature_columns=features,
        extra=extra,
    )


class FateProviderComponent(FateComponent):
    """Any FATE 2.2 component, run through the FATE provider (see the module docstring)."""

    roles: ClassVar[tuple[str, ...]] = ("guest", "host", "arbiter", "local")

    def execute(self, ctx: TaskContext) -> None:
        """Run the share in FATE's environment and take its outputs into this party's store."""
        request = ctx.request
        provider = self._provider(ctx)
        folder = (
            Path(request.data_dir)
            / "fate"
            / "tasks"
            / job_namespace(request.job_id)
            / _safe(request.task_name)
            / f"{ctx.role}_{ctx.party_id}"
            / f"v{request.task_version}"
        )
        if folder.exists():
            # A retry of the same version starts clean: FATE refuses to write an artifact twice.
            shutil.rmtree(folder)
        (folder / "in").mkdir(parents=True)
        spec = self._spec(ctx, folder)
        spec_path, result_path = folder / "spec.json", folder / "result.json"
        spec_path.write_text(json.dumps(spec, indent=2, default=str))
        started = time.monotonic()
        code = self._run_process(ctx, provider, spec_path, result_path, folder)
        elapsed = round(time.monotonic() - started, 3)
        result = self._read_result(ctx, result_path, code)
        self._take_outputs(ctx, result)
        ctx.summary["provider"] = provider.ref
        ctx.summary["fate_component"] = request.component
        ctx.summary["fate_process_seconds"] = elapsed

    # ------------------------------------------------------------------ provider and spec

    def _provider(self, ctx: TaskContext) -> ProviderInfo:
        request = ctx.request
        name, version = parse_provider_ref(request.provider)
        if not request.provider_dir:
            raise ComponentError(
                f"{ctx.where}: this party has no provider folder ([fate] provider_dir); "
                "run `fate-airflow party init` and `fate-airflow provider install fate==2.2.0`"
            )
        found = ProviderRegistry(request.provider_dir).find(name, version)
        if found is None or not found.python:
            raise ComponentError(
                f"{ctx.where}: provider {request.provider} is not installed at party {ctx.party_id}; "
                f"run `fate-airflow provider install {name}=={version or '2.2.0'}`"
            )
        if not Path(found.python).exists():
            raise ComponentError(
                f"{ctx.where}: provider {found.ref}'s interpreter {found.python} is missing; reinstall it"
            )
        return found

    def _spec(self, ctx: TaskContext, folder: Path) -> dict[str, Any]:
        request = ctx.request
        if not request.ptp_address:
            raise ComponentError(
                f"{ctx.where}: this party's gateway has no PTP endpoint ([fate] ptp_address); "
                "FATE components federate through it"
            )
        host, _, port = request.ptp_address.rpartition(":")
        session = FederationSession(
            request.job_id, request.task_name, request.task_version, ctx.local, request.parties
        ).session_id
        party_task_id = f"{session}_{ctx.role}_{ctx.party_id}"
        parties = [{"role": p.role, "partyid": p.party_id} for p in request.parties]
        return {
            "namespace": job_namespace(request.job_id),
            "name_prefix": _safe(f"{request.task_name}_{ctx.role}_{ctx.party_id}_v{request.task_version}"),
            "output_dir": str(folder / "out"),
            # FATE draws its initial weights, samples and shuffles from the process-wide RNGs
            # unless a parameter seeds them: seeded from this party's private key they repeat run
            # after run of the same task, and the other parties still cannot predict them.
            "seed": int.from_bytes(ctx.private_key(f"fate rng\0{request.component}")[:8], "big") >> 1,
            "inputs": self._inputs(ctx, folder / "in"),
            "task": {
                "task_id": f"{request.job_id}_{request.task_name}",
                "party_task_id": party_task_id,
                "task_name": request.task_name,
                "component": request.component,
                "role": ctx.role,
                "party_id": ctx.party_id,
                "stage": request.stage or "default",
                "parameters": dict(request.parameters),
                "conf": {
                    "device": {"type": "CPU"},
                    "computing": {
                        "type": "standalone",
                        "metadata": {
                            "computing_id": _safe(party_task_id),
                            "options": {
                                "data_dir": str(Path(request.data_dir) / "fate" / "computing"),
                                "task_cores": int(request.job_parameters.get("task_cores") or 2),
                            },
                        },
                    },
                    "federation": {
                        "type": "osx",
                        "metadata": {
                            "federation_id": session,
                            "parties": {
                                "local": {"role": ctx.role, "partyid": ctx.party_id},
                                "parties": parties,
                            },
                            "osx_config": {"host": host, "port": int(port)},
                        },
                    },
                },
            },
        }

    # ------------------------------------------------------------------ inputs

    def _inputs(self, ctx: TaskContext, folder: Path) -> dict[str, Any]:
        """Every input of this share: FATE artifacts as they are, our tables as Parquet for FATE's reader.

        Inputs resolve exactly as for native components; a producer that output nothing at this
        party contributes nothing.
        """
        inputs: dict[str, list[dict[str, Any]]] = {}
        for data in ctx.data_inputs():
            if data.table is not None:
                items = inputs.setdefault(data.ref.key, [])
                items.append(self._data_item(data.ref, data.table, folder, len(items)))
        for ref, model in ctx.model_inputs():
            if model is not None:
                items = inputs.setdefault(ref.key, [])
                items.append(self._model_item(ctx, ref, model, folder, len(items)))
        return {key: {"items": items} for key, items in inputs.items()}

    @staticmethod
    def _data_item(ref: InputRef, table: Table, folder: Path, index: int) -> dict[str, Any]:
        fate = table.meta.extra.get("fate_artifact")
        if isinstance(fate, Mapping):
            return {"kind": "fate", **fate}
        path = folder / f"{_safe(ref.key)}_{index}.parquet"
        table.frame.to_parquet(path, index=False)
        return {
            "kind": "table",
            "path": str(path),
            "id_column": table.meta.id_column,
            "label_column": table.meta.label_column,
            "label_type": _label_type(table),
        }

    @staticmethod
    def _model_item(
        ctx: TaskContext, ref: InputRef, stored: StoredModel, folder: Path, index: int
    ) -> dict[str, Any]:
        wanted = ref.output_key or ref.key
        fate_models = stored.params.get("fate_models") or {}
        fate_dirs = {k: k for k in stored.params.get("fate_model_dirs") or ()}
        artifacts = stored.meta.get("fate_artifacts") or {}
        known = {**fate_models, **fate_dirs}
        if wanted not in known:
            if len(known) != 1:
                raise ComponentError(
                    f"{ctx.where}: model input {ref.key!r} is not a FATE model (from {ref.producer_task!r})"
                )
            wanted = next(iter(known))
        artifact = dict(artifacts.get(wanted) or {})
        # Written out from the model store, so a model exported and imported elsewhere works too; one
        # file or folder per item (``input_models`` lists several under one key).
        if wanted in fate_dirs:
            path = folder / f"model_{_safe(ref.key)}_{index}"
            _unpack_dir(stored.arrays[_DIR_ARRAY + wanted], path)
            default_type = "model_directory"
        else:
            path = folder / f"model_{_safe(ref.key)}_{index}.json"
            path.write_text(json.dumps(fate_models[wanted]))
            default_type = "json_model"
        return {
            "kind": "fate",
            "uri": path.as_uri(),
            "metadata": artifact.get("metadata") or {"metadata": {}},
            "type_name": artifact.get("type_name") or default_type,
        }

    # ------------------------------------------------------------------ process

    def _run_process(
        self, ctx: TaskContext, provider: ProviderInfo, spec: Path, result: Path, folder: Path
    ) -> int:
        argv = [provider.python, str(WORKER_SCRIPT), str(spec), str(result)]
        proc = self._start(ctx, provider, argv, provider_env(), folder)
        log_path = folder / "fate_task.log"
        pump = threading.Thread(
            target=self._pump, args=(ctx, proc.output, log_path), name="fate-log", daemon=True
        )
        pump.start()
        try:
            while (code := proc.wait(_POLL)) is None:
                if ctx.abort.is_set():
                    ctx.warning("aborting: killing the FATE process tree (pid %d)", proc.pid)
                    proc.kill()
                    raise ComponentError("aborted")
        except WorkerLost:
            proc.kill()
            raise ComponentError(
                f"{ctx.where}: the warm FATE worker went away while pid {proc.pid} ran the task "
                f"(see {worker_folder(provider, ctx.request.provider_dir) / 'zygote.log'})"
            ) from None
        except BaseException:
            proc.kill()
            raise
        finally:
            pump.join(timeout=5)
            proc.close()
        return code

    @staticmethod
    def _start(
        ctx: TaskContext, provider: ProviderInfo, argv: list[str], env: dict[str, str], folder: Path
    ) -> FateProcess:
        """Fork the task from the party's warm FATE worker; start it cold if that cannot be done."""
        settings = WorkerSettings.from_env()
        component = ctx.request.component
        if settings.enabled:
            try:
                warm = start_warm(provider, ctx.request.provider_dir, argv, env, folder, settings)
            except WorkerUnavailable as exc:
                ctx.warning("FATE's warm worker is unavailable (%s); starting FATE %s cold", exc, component)
            else:
                ctx.info(
                    "FATE %s (%s) forked by the warm worker of %s: pid %d",
                    component,
                    provider.ref,
                    provider.python,
                    warm.pid,
                )
                return warm
        else:
            ctx.info("FATE's warm worker is off (FATE_AIRFLOW_FATE_WORKER)")
        ctx.info("starting FATE %s (%s) with %s", component, provider.ref, provider.python)
        return ColdProcess(argv, env, folder)

    @staticmethod
    def _pump(ctx: TaskContext, stream: IO[bytes], log_path: Path) -> None:
        """Copy FATE's log lines into the Airflow task log (and the share's own log file)."""
        with log_path.open("ab") as sink:
            for raw in stream:
                sink.write(raw)
                line = raw.decode("utf-8", "replace").rstrip()
                if line:
                    ctx.log.info("[fate %s] %s", ctx.where, line)

    def _read_result(self, ctx: TaskContext, path: Path, code: int) -> dict[str, Any]:
        try:
            result: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            raise ComponentError(
                f"{ctx.where}: the FATE process exited with code {code} without a result "
                f"(killed? see {path.parent / 'fate_task.log'})"
            ) from None
        status = result.get("status") or {}
        if status.get("code") != 0 or code != 0:
            trace = str(status.get("exceptions") or "").strip().splitlines()
            last = trace[-1] if trace else f"exit code {code}"
            raise ComponentError(f"{ctx.where}: FATE component {ctx.request.component} failed: {last}")
        return result

    # ------------------------------------------------------------------ outputs

    def _take_outputs(self, ctx: TaskContext, result: Mapping[str, Any]) -> None:
        outputs = (result.get("io_meta") or {}).get("outputs") or {}
        exports = result.get("exports") or {}
        for key, value in (outputs.get("data") or {}).items():
            artifacts = [
                a
                for a in (value if isinstance(value, list) else [value])
                if a.get("type_name") == "dataframe" and a.get("consumed", True)
            ]
            files = exports.get(key) or []
            if not artifacts:
                # Declared but not written at this role: consumers here get "no data", as natively.
                ctx.record_empty_data(key)
                continue
            for index, (artifact, exported) in enumerate(zip(artifacts, files, strict=True)):
                table = exported_table(exported["path"], exported.get("schema") or {})
                fate = {k: artifact[k] for k in ("uri", "metadata", "type_name") if k in artifact}
                table = table.with_meta(extra={**table.meta.extra, "fate_artifact": fate})
                ctx.store_data(key if not isinstance(value, list) else f"{key}_{index}", table)
        self._take_models(ctx, outputs.get("model") or {})
        self._take_metrics(ctx, outputs.get("metric") or {})

    def _take_models(self, ctx: TaskContext, models: Mapping[str, Any]) -> None:
        """FATE's model outputs into the model store: JSON models as JSON, model folders (NN) packed."""
        contents: dict[str, Any] = {}
        dirs: dict[str, np.ndarray] = {}
        artifacts: dict[str, Any] = {}
        for key, artifact in models.items():
            kind = None if isinstance(artifact, list) else artifact.get("type_name")
            if kind not in ("json_model", "model_directory"):
                ctx.warning("model output %r (%s) is kept only in FATE's folder", key, kind or "a list")
                continue
            path = Path(_uri_path(str(artifact["uri"])))
            try:
                if kind == "json_model":
                    contents[key] = json.loads(path.read_text())
                else:
                    dirs[_DIR_ARRAY + key] = _pack_dir(path)
            except (OSError, ValueError) as exc:
                raise ComponentError(f"{ctx.where}: cannot read FATE model {key!r} at {path}: {exc}") from exc
            artifacts[key] = {k: artifact[k] for k in ("metadata", "type_name") if k in artifact}
        if not contents and not dirs:
            return
        dir_keys = sorted(k[len(_DIR_ARRAY) :] for k in dirs)
        uri = ctx.models.save(
            ctx.model_key(),
            {"fate_models": contents, **({"fate_model_dirs": dir_keys} if dir_keys else {})},
            dirs,
            {
                "component": ctx.request.component,
                "implementation": ctx.request.implementation,
                "provider": ctx.request.provider,
                "job_id": ctx.request.job_id,
                "task_version": ctx.request.task_version,
                "fate_artifacts": artifacts,
            },
        )
        for key in [*contents, *dir_keys]:
            ctx.record_model(key, uri)
        ctx.info("saved FATE model(s) %s → %s", sorted([*contents, *dir_keys]), uri)

    def _take_metrics(self, ctx: TaskContext, metrics: Mapping[str, Any]) -> None:
        records: list[Any] = []
        for artifact in metrics.values():
            for item in artifact if isinstance(artifact, list) else [artifact]:
                path = Path(_uri_path(str(item.get("uri", ""))))
                with contextlib.suppress(OSError, ValueError):
                    loaded = json.loads(path.read_text())
                    records.extend(loaded if isinstance(loaded, list) else [loaded])
        if not records:
            return
        # FATE's own records (name, type, groups, step_axis, data) are kept whole for the UI;
        # one-number records are also flattened so `job query` shows e.g. auc at a glance.
        ctx.metrics["fate_metrics"] = records
        for record in records:
            if isinstance(record, Mapping) and isinstance(record.get("data"), _SCALAR):
                ctx.metrics.setdefault(str(record.get("name")), record["data"])


#: Model-store array holding a packed FATE model folder (NN models), by output key.
_DIR_ARRAY = "fate_model_dir__"


def _pack_dir(path: Path) -> np.ndarray:
    """A model folder as a tar's bytes (a uint8 array: the model store keeps arrays without pickle)."""
    if not path.is_dir():
        raise OSError(f"{path} is not a folder")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(path), arcname=".")
    return np.frombuffer(buf.getvalue(), dtype=np.uint8)


def _unpack_dir(packed: np.ndarray, dest: Path) -> None:
    """Inverse of :func:`_pack_dir` (members must stay inside ``dest``)."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(packed.tobytes()), mode="r") as tar:
        tar.extractall(dest, filter="data")


def _uri_path(uri: str) -> str:
    return unquote(urlparse(uri).path)


__all__ = ["WORKER_SCRIPT", "FateProviderComponent", "exported_table", "job_namespace"]
