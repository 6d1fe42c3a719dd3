from __future__ import annotations

from pathlib import Path

import pytest

from fate_airflow.core.types import Party
from tests.conftest import fix_party_secret

JOB_ID = "manual__2026-11-27T10:00:00.123+00:00"
GUEST = Party("guest", "9999")
HOST = Party("host", "10000")
HOST2 = Party("host", "10001")
ARBITER = Party("arbiter", "10000")


@pytest.fixture
def data_dirs(tmp_path: Path) -> dict[str, str]:
    """One data dir per party id (the arbiter shares the host's, as in FATE's examples)."""
    dirs = {}
    for pid in ("9999", "10000", "10001"):
        d = tmp_path / f"party-{pid}"
        d.mkdir()
        fix_party_secret(d, pid)
        dirs[pid] = str(d)
    return dirs
