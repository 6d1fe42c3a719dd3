"""Shared helpers: upload tables and chain simulated tasks (each party in its own thread)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from fate_airflow.components.api import PartyTaskResult
from fate_airflow.components.simulate import TaskSpec, simulate
from fate_airflow.core.types import InputRef, Party
from fate_airflow.federation.inmemory import InMemoryHub
from fate_airflow.storage import ArtifactStore, Table, TableStore
from tests.conftest import FATE_EXAMPLES

from .conftest import JOB_ID

DATA = FATE_EXAMPLES / "data"


def put_table(
    data_dir: str, name: str, frame: pd.DataFrame, label: str | None = None, namespace: str = "experiment"
) -> None:
    table = Table.from_frame(frame, id_column="id", label_column=label)
    TableStore.local(data_dir).write(namespace, name, table, overwrite=True)


def edge(producer: str, key: str = "data", output: str = "data", kind: str = "data") -> InputRef:
    return InputRef(kind, key, "task", producer_task=producer, output_key=output)  # type: ignore[arg-type]


def run(
    spec: TaskSpec,
    data_dirs: Mapping[str, str],
    *,
    hub: InMemoryHub | None = None,
    job_id: str = JOB_ID,
    **kwargs: Any,
) -> dict[Party, PartyTaskResult]:
    """Simulate ``spec`` and return every share's result (raising the first share error)."""
    out = simulate(
        spec,
        job_id=job_id,
        data_dirs=data_dirs,
        hub=hub,
        get_timeout=kwargs.pop("get_timeout", 120.0),
        **kwargs,
    )
    errors = [o.error for o in out.values() if o.error is not None]
    if errors:
        raise errors[0]
    return {p: o.unwrap() for p, o in out.items()}


def output_frame(data_dirs: Mapping[str, str], result: PartyTaskResult, key: str = "data") -> pd.DataFrame:
    uri = result.outputs[key]
    pid = uri.split("/")[-2]
    return ArtifactStore.local(data_dirs[pid]).read_data(uri).frame


def output_table(data_dirs: Mapping[str, str], result: PartyTaskResult, key: str = "data") -> Table:
    uri = result.outputs[key]
    return ArtifactStore.local(data_dirs[uri.split("/")[-2]]).read_data(uri)
