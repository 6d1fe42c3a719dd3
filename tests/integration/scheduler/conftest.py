"""On a failing federated test, attach each party's recent errors to the report.

The parties' logs live under pytest's temporary folder, which a CI run does not keep; without them a
failure in a multi-process test says what went wrong but not why.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fate_airflow.deploy.localfed import LocalFederation

_NOTABLE = re.compile(r"\[error|\[warning|\bERROR\b|\bWARNING\b|Error:|Marking run|Traceback")
_PER_LOG = 25


def _notable_lines(path: Path) -> list[str]:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [line[:400] for line in lines if _NOTABLE.search(line)][-_PER_LOG:]


def party_log_digest(fed: LocalFederation) -> str:
    """The last notable lines of every process log of every party."""
    out: list[str] = []
    for party_id, cfg in sorted(fed.parties.items()):
        for log in sorted(cfg.run_dir.glob("*.log")):
            lines = _notable_lines(log)
            if lines:
                out.append(f"--- party {party_id}: {log.name}")
                out.extend(lines)
    return "\n".join(out)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, LocalFederation):
            report.sections.append(("party logs (notable lines)", party_log_digest(value)))
