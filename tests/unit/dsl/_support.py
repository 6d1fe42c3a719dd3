"""Paths and small helpers shared by the DSL tests."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from fate_airflow.core.errors import DslError
from tests.conftest import FATE_EXAMPLES, REPO_ROOT

V1 = FATE_EXAMPLES / "v1-dsl-v2"
V1_LEGACY = FATE_EXAMPLES / "v1-dsl-v1"
V2 = FATE_EXAMPLES / "v2-dag"
GOLDEN = REPO_ROOT / "tests" / "golden"
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "dsl"

#: Set to 1 to rewrite tests/golden/*.json from the current compiler (then review the diff by hand).
UPDATE_GOLDEN = os.environ.get("FATE_AIRFLOW_UPDATE_GOLDEN") == "1"


def v1_pairs() -> list[tuple[Path, Path]]:
    """Every (dsl, conf) pair of the 1.x examples: each conf with the dsl of the longest prefix."""
    if not V1.is_dir():
        return []
    dsls = {p.name[: -len("_dsl.json")]: p for p in V1.glob("*_dsl.json")}
    pairs = []
    for conf in sorted(V1.glob("*_conf.json")):
        stem = conf.name[: -len("_conf.json")]
        prefix = max((p for p in dsls if stem == p or stem.startswith(p + "_")), key=len)
        pairs.append((dsls[prefix], conf))
    return pairs


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2))
    return path


def problems_of(excinfo: pytest.ExceptionInfo[DslError]) -> list[str]:
    return list(excinfo.value.problems)
