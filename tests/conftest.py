"""Session-wide test setup.

Airflow reads its configuration at import time, so the environment for it is set here, before any
test module can import ``airflow``. Tests that never import Airflow are unaffected.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from fate_airflow.components.context import PARTY_SECRET_FILE
from fate_airflow.core.files import write_secret

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


def fix_party_secret(data_dir: Path | str, party_id: str) -> None:
    """Give a party a fixed secret (its private randomness, e.g. SecureBoost's candidate order and
    FATE's seeds, derives from it), so every run of a test is the same run."""
    write_secret(Path(data_dir) / PARTY_SECRET_FILE, f"{int(party_id):064x}\n")


def _missing_provider(reason: str) -> None:
    # In CI the environment is built by `make provider-env` before pytest: missing means broken.
    if os.environ.get("CI"):
        pytest.fail(f"FATE provider unavailable in CI: {reason}")
    pytest.skip(f"FATE provider unavailable ({reason}); run `make provider-env` or `make test`")


@pytest.fixture(scope="session")
def fate_provider_dir() -> Path:
    """A provider folder with FATE 2.2 registered (`make provider-env` builds and registers it)."""
    from fate_airflow.core.providers import ProviderRegistry

    raw = os.environ.get("FATE_AIRFLOW_TEST_PROVIDERS", "")
    if not raw:
        _missing_provider("FATE_AIRFLOW_TEST_PROVIDERS is not set")
    folder = Path(raw)
    found = ProviderRegistry(folder).find("fate", "2.2.0")
    if found is None or not Path(found.python).exists():
        _missing_provider(f"fate 2.2.0 is not registered in {folder}")
    return folder


@pytest.fixture(scope="session")
def fate_python(fate_provider_dir: Path) -> str:
    """The FATE 2.2 environment's interpreter."""
    from fate_airflow.core.providers import ProviderRegistry

    found = ProviderRegistry(fate_provider_dir).find("fate", "2.2.0")
    assert found is not None
    return found.python


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Run the tests on the shared FATE example parties last, one after the other.

    Those two parties (four Airflow processes each) start at their first user and stay up until the
    session ends; anything running beside them — the three-party scheduler tests, the unit tests —
    shares two CPUs with their idle loops. Sorting is stable: the order within each group is kept.
    """
    items.sort(key=lambda item: "fate_parties" in getattr(item, "fixturenames", ()))
