"""Fixtures shared by the component tests over real gateways."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fate_airflow.storage import Table, TableStore
from tests.conftest import FATE_EXAMPLES


@pytest.fixture
def data_dirs(tmp_path: Path) -> dict[str, str]:
    """Data dirs of guest 9999 and host 10000 holding FATE's breast_hetero tables, and a job id.

    Each test is its own job: module-scoped gateways are shared, and a federation session is per job.
    """
    dirs = {pid: str(tmp_path / pid) for pid in ("9999", "10000")}
    dirs["job_id"] = f"job-{tmp_path.name}"
    data = FATE_EXAMPLES / "data"
    guest = pd.read_csv(data / "breast_hetero_guest.csv", dtype={"id": str})
    host = pd.read_csv(data / "breast_hetero_host.csv", dtype={"id": str})
    TableStore.local(dirs["9999"]).write(
        "experiment", "breast_hetero_guest", Table.from_frame(guest, id_column="id", label_column="y")
    )
    TableStore.local(dirs["10000"]).write(
        "experiment", "breast_hetero_host", Table.from_frame(host, id_column="id")
    )
    return dirs
