"""The chaos package's parties (:mod:`tests.chaos.harness`), and their logs when a test fails.

The process logs of a failed test are copied to ``test-results/chaos-logs`` (pytest's temporary
folders do not last).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from fate_airflow.deploy.localfed import LocalFederation
from tests.chaos.harness import Chaos, chaos_parties
from tests.conftest import REPO_ROOT

LOGS = REPO_ROOT / "test-results" / "chaos-logs"


@pytest.fixture(scope="package")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chaos]:
    """Guest 9999 and host 10000 behind fault proxies, shared by the package's tests."""
    with chaos_parties(tmp_path_factory.mktemp("chaos")) as parties:
        yield parties


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome: Any = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for value in getattr(item, "funcargs", {}).values():
        fed = getattr(value, "fed", None)
        if not isinstance(fed, LocalFederation):
            continue
        for party_id, cfg in fed.parties.items():
            target = LOGS / party_id
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(cfg.run_dir, target, ignore=shutil.ignore_patterns("*.pid"), dirs_exist_ok=True)
            logs = cfg.airflow_home / "logs"
            if logs.is_dir():
                shutil.copytree(logs, target / "airflow-logs", dirs_exist_ok=True)
        report.sections.append(("party logs", f"copied to {LOGS}"))
