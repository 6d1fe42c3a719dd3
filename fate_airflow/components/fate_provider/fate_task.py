"""Run one FATE 2.2 component share inside the FATE provider's own environment.

This file is executed by the provider's interpreter (``<env>/bin/python fate_task.py SPEC RESULT``),
never imported by fate-airflow: that environment has pyfate (numpy<2, protobuf 4, pydantic 1) and
none of our dependencies, so only the standard library and FATE's own code are used here.

It does what FATE-Flow 2.2's executor does for one task (``fate.components`` entry point
``execute_component_from_config``), plus the two conversions FATE-Flow's reader/transformer and
download components do, in the same process so the imports are paid once:

1. tables from fate-airflow's store (handed over as Parquet files with their column roles) become FATE
   dataframe artifacts with FATE's own ``PandasReader`` in the task's standalone computing session;
2. the component runs with FATE's task config (computing ``standalone`` under the party's FATE data
   dir, federation ``osx`` at the party gateway's PTP endpoint, device CPU);
3. every dataframe output is also exported as Parquet (``DataFrame.as_pd_df``) for fate-airflow's store;
   models and metrics are FATE's own JSON files, left where FATE wrote them.

The result file is JSON: ``{"status": {"code": 0}, "io_meta": ..., "exports": {...}}`` or
``{"status": {"code": -1, "exceptions": "..."}}``.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

log = logging.getLogger("fate_airflow.fate_task")

#: Output artifact type → how its URI is laid out under the task's output folder.
_FILE_TYPES = {"json_model": ".json", "json_metric": ".json", "model_directory": "", "data_directory": ""}


def _uri_for(spec: dict[str, Any], key: str, type_name: str, multi: bool) -> str:
    suffix = "_{index}" if multi else ""
    if type_name == "dataframe" or type_name == "table":
        return f"standalone:///{spec['namespace']}/{spec['name_prefix']}_{key}{suffix}"
    out = Path(spec["output_dir"]) / type_name / f"{key}{suffix}{_FILE_TYPES.get(type_name, '')}"
    return out.as_uri()


def _output_artifacts(spec: dict[str, Any], component: Any, role: Any, stage: Any) -> dict[str, Any]:
    """An apply spec for every output the component declares at this role and stage."""
    out: dict[str, Any] = {}
    groups = (
        component.artifacts.data_outputs,
        component.artifacts.model_outputs,
        component.artifacts.metric_outputs,
    )
    for group in groups:
        for key, describe in group.items():
            if not describe.is_active_for(stage, role):
                continue
            type_name = describe.types[0].get_type().type_name
            out[key] = {
                "uri": _uri_for(spec, key, type_name, describe.is_multi),
                "type_name": type_name,
            }
    return out


def _table_to_artifact(ctx: Any, item: dict[str, Any], uri: str) -> dict[str, Any]:
    """Turn one of our tables (Parquet + column roles) into a FATE dataframe artifact at ``uri``."""
    import pandas as pd
    from fate.arch import URI, dataframe

    id_column = item["id_column"]
    label_column = item.get("label_column")
    frame = pd.read_parquet(item["path"])
    frame[id_column] = frame[id_column].astype(str)
    # FATE keys rows by a sample id distinct from the match id; ours are unique per row already.
    frame.insert(0, "sample_id", frame[id_column].astype(str))
    label_type = item.get("label_type") or "int64"
    reader = dataframe.PandasReader(
        sample_id_name="sample_id",
        match_id_name=id_column,
        label_name=label_column,
        label_type=label_type,
        dtype="float64",
        partition=int(item.get("partitions") or 4),
    )
    df = reader.to_frame(ctx, frame)
    table = dataframe.serialize(ctx, df)
    schema: dict[str, Any] = {}
    table.save(uri=URI.from_string(uri), schema=schema, options=None)
    return {"uri": uri, "metadata": {"metadata": {"schema": schema}}, "type_name": "dataframe"}


def _input_artifacts(ctx: Any, spec: dict[str, Any], component: Any) -> dict[str, Any]:
    declared = {**component.artifacts.data_inputs, **component.artifacts.model_inputs}
    out: dict[str, Any] = {}
    for key, slot in spec.get("inputs", {}).items():
        if key not in declared:
            raise ValueError(f"component {component.name} has no input {key!r}; it has {sorted(declared)}")
        items: list[dict[str, Any]] = []
        for index, item in enumerate(slot["items"]):
            if item["kind"] == "table":
                uri = f"standalone:///{spec['namespace']}/{spec['name_prefix']}_in_{key}_{index}"
                items.append(_table_to_artifact(ctx, item, uri))
            else:
                items.append(
                    {"uri": item["uri"], "metadata": item["metadata"], "type_name": item.get("type_name")}
                )
        out[key] = items if declared[key].is_multi else (items[0] if items else None)
    return out


def _export(ctx: Any, io_meta: dict[str, Any], export_dir: Path) -> dict[str, Any]:
    """Export every dataframe output as Parquet (FATE's own reader and ``as_pd_df``)."""
    from fate.arch import URI, dataframe

    exports: dict[str, Any] = {}
    for key, value in (io_meta.get("outputs", {}).get("data") or {}).items():
        artifacts = value if isinstance(value, list) else [value]
        files = []
        for index, artifact in enumerate(artifacts):
            # An output the component declares but did not write at this role (a host's predictions).
            if artifact.get("type_name") != "dataframe" or not artifact.get("consumed", True):
                continue
            schema = (artifact.get("metadata") or {}).get("metadata", {}).get("schema")
            table = ctx.computing.load(uri=URI.from_string(artifact["uri"]), schema=schema, options=None)
            frame = dataframe.deserialize(ctx, table).as_pd_df()
            for column in frame.columns:
                if frame[column].dtype == object:
                    frame[column] = [
                        json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
                        for v in frame[column]
                    ]
            path = export_dir / f"{key}_{index}.parquet"
            frame.to_parquet(path, index=False)
            files.append({"path": str(path), "schema": schema or {}})
        if files:
            exports[key] = files
    return exports


def start_pool_workers(computing: Any) -> None:
    """Fork the standalone computing pool's workers now, before the federation uses gRPC.

    FATE's standalone backend forks its process pool at the first map. Forked after the osx
    federation's gRPC channels exist, a worker inherits gRPC's descriptors and every push of a table
    partition from it fails ("Socket operation on non-socket"); FATE then reports only that the
    gRPC error cannot be pickled back ("cannot pickle '_thread.RLock'"). A job reaches that when a
    component's first map comes after its first federation call (sshe_lr fed by another FATE task).
    """
    pool = getattr(getattr(getattr(computing, "_session", None), "_pool", None), "_pool", None)
    if isinstance(pool, concurrent.futures.ProcessPoolExecutor):
        workers = int(getattr(pool, "_max_workers", 1) or 1)
        list(pool.map(abs, range(workers)))


def seed_rngs(seed: int | None) -> None:
    """Seed the RNGs FATE's components draw from when no parameter seeds them (Python, numpy, torch).

    FATE's MPC protocols take their seeds from ``os.urandom`` and are not affected.
    """
    if seed is None:
        return
    import random

    random.seed(seed)
    try:
        import numpy
    except ImportError:  # pragma: no cover - FATE depends on numpy
        pass
    else:
        numpy.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:
        pass
    else:
        torch.manual_seed(seed)


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the component share described by ``spec``; returns the result document."""
    seed_rngs(spec.get("seed"))
    from fate.arch import CipherKit, Context
    from fate.components.core import (
        ComponentExecutionIO,
        Role,
        Stage,
        load_component,
        load_computing,
        load_device,
        load_federation,
        load_metric_handler,
    )
    from fate.components.core.spec.task import TaskConfigSpec

    config: dict[str, Any] = dict(spec["task"])
    conf = config["conf"]
    conf.setdefault("logger", {"config": None})
    base = TaskConfigSpec.TaskConfSpec.parse_obj(conf)
    device = load_device(base.device)
    computing = load_computing(base.computing, None)
    start_pool_workers(computing)
    federation = load_federation(base.federation, computing)
    ctx = Context(device=device, computing=computing, federation=federation, cipher=CipherKit(device=device))
    try:
        role = Role.from_str(config["role"])
        stage = Stage.from_str(config["stage"])
        component = load_component(config["component"], stage)
        config["input_artifacts"] = _input_artifacts(ctx, spec, component)
        config["output_artifacts"] = _output_artifacts(spec, component, role, stage)
        task_config = TaskConfigSpec.parse_obj(config)
        execution_io = ComponentExecutionIO(ctx, component, role, stage, task_config)
        metrics_handler = load_metric_handler(execution_io.get_metric_writer())
        ctx.set_metric_handler(metrics_handler)
        log.info(
            "running FATE component %s as %s %s", config["component"], config["role"], config["party_id"]
        )
        component.execute(ctx, role, **execution_io.get_kwargs())
        metrics_handler.finalize()
        io_meta = execution_io.dump_io_meta()
        export_dir = Path(spec["output_dir"]) / "export"
        export_dir.mkdir(parents=True, exist_ok=True)
        exports = _export(ctx, io_meta, export_dir)
        return {
            "status": {"code": 0},
            "io_meta": json.loads(json.dumps(io_meta, default=str)),
            "exports": exports,
        }
    finally:
        try:
            ctx.destroy()
        except Exception as exc:  # cleanup must not hide the task's own outcome
            log.warning("context cleanup failed: %s", exc)


def _die_with_parent() -> None:
    """Kill this process group when the fate-airflow task that started it is gone.

    The task process may be SIGKILLed (Airflow's timeout, a killed worker); FATE's computing pool
    must not outlive it.
    """
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                log.error("the fate-airflow task process is gone; stopping this FATE task")
                os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    """``fate_task.py SPEC.json RESULT.json``; exit 0 on success, 1 on a failed component."""
    spec_path, result_path = Path(argv[1]), Path(argv[2])
    _die_with_parent()
    logging.basicConfig(
        stream=sys.stderr,
        level=os.environ.get("FATE_TASK_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        # A child of fate_zygote.py inherits the zygote's handlers; they must not catch its lines.
        force=True,
    )
    spec = json.loads(spec_path.read_text())
    try:
        result = run(spec)
        code = 0
    except Exception:
        log.exception("FATE component failed")
        result = {"status": {"code": -1, "exceptions": traceback.format_exc()}}
        code = 1
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, result_path)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
