"""Session-wide test setup.

Airflow reads its configuration at import time, so the environment for it is set here, before any
test module can import ``airflow``. Tests that never import Airflow are unaffected.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The project's reference folder (../shared next to the repository), when present.
SHARED = REPO_ROOT.parent / "shared"
#: FATE's example jobs and datasets, vendored so a clone anywhere is self-contained
#: (tests/test_fixtures.py checks the copy against ../shared/fate-examples when that exists).
FATE_EXAMPLES = REPO_ROOT / "tests" / "fixtures" / "fate-examples"

_AIRFLOW_HOME = tempfile.mkdtemp(prefix="fate-airflow-test-home-")
os.environ.setdefault("AIRFLOW_HOME", _AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
# dag.test() only runs DAGs from the configured dags folder: the repository's loader.
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO_ROOT / "dags"))
os.environ.setdefault("PYTHONWARNINGS", "ignore")
