"""Integration fixtures: FATE's two example parties, and party logs on a failing federated test.

``fate_parties`` is guest 9999 and host 10000 (also the arbiter, as in FATE's
``v2-pipeline/config.yaml``), each running Airflow and a gateway as ``party up`` deploys them, with
FATE 2.2 registered as a component provider and every table of FATE's example testsuites uploaded
with ``fate-airflow data upload``. It is shared by the session (starting two Airflows takes a
minute): the FATE example DAGs and the FATE-Flow client API tests run on the same parties.

The parties' logs live under pytest's temporary folder, which a CI run does not keep; without them a
failure in a multi-process test says what went wrong but not why.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fate_airflow.core.providers import ProviderRegistry
from fate_airflow.deploy.localfed import LocalFederation, create_local_federation
from tests.conftest import FATE_EXAMPLES, fix_party_secret

PIPELINE = FATE_EXAMPLES / "v2-pipeline"
GUEST, HOST = "9999", "10000"
CLI = str(Path(sys.executable).with_name("fate-airflow"))
#: The example families whose testsuite tables the shared parties hold.
FAMILIES = (
    "coordinated_linr", "coordinated_lr", "data_split", "feature_correlation", "hetero_feature_binning",
    "hetero_feature_selection", "hetero_secureboost", "homo_lr", "psi", "sample", "sshe_lr", "statistics",
)  # fmt: skip


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    """Poll ``predicate`` every 0.5 s; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def suite_uploads() -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(party id, table) → its upload entries, from the families' testsuites (roles as config.yaml)."""
    roles = yaml.safe_load((PIPELINE / "config.yaml").read_text())["parties"]
    uploads: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for family in FAMILIES:
        for suite in sorted((PIPELINE / family).glob("*testsuite.yaml")):
            for entry in yaml.safe_load(suite.read_text()).get("data") or []:
                role, _, index = str(entry["role"]).rpartition("_")
                party = str(roles[role][int(index)])
                conf = {k: v for k, v in entry.items() if k != "role"}
                uploads.setdefault((party, f"{conf['namespace']}.{conf['table_name']}"), []).append(conf)
    return uploads


def upload_with_cli(fed: LocalFederation, folder: Path) -> None:
    """``fate-airflow data upload --conf`` for every testsuite table, at its party."""
    for (party, table), (conf, *_) in sorted(suite_uploads().items()):
        path = folder / f"{party}-{table}.yaml"
        path.write_text(yaml.safe_dump(conf))
        data_dir = str(fed.parties[party].data_dir)
        args = ["--conf", str(path), "--base-dir", str(FATE_EXAMPLES), "--data-dir", data_dir, "--overwrite"]
        out = subprocess.run([CLI, "data", "upload", *args], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, f"upload of {table} at {party}: {out.stderr}"


@pytest.fixture(scope="session")
def fate_parties(
    tmp_path_factory: pytest.TempPathFactory, fate_provider_dir: Path
) -> Iterator[LocalFederation]:
    """FATE's example parties (see the module docstring); the guest's drop folder is ``<base>/guest-jobs``."""
    base = tmp_path_factory.mktemp("fate-parties")
    drop = base / "guest-jobs"
    drop.mkdir()
    federation = create_local_federation(base, [GUEST, HOST], jobs_folders={GUEST: drop}, party_timeout=10.0)
    fate = ProviderRegistry(fate_provider_dir).find("fate", "2.2.0")
    assert fate is not None
    try:
        federation.init()
        for pid, cfg in federation.parties.items():
            ProviderRegistry(cfg.provider_dir).register(fate)
            # FATE's random draws (e.g. sshe_lr's random_uniform init) are seeded from it: the
            # parity checks below compare one reproducible draw.
            fix_party_secret(cfg.data_dir, pid)
        uploads = base / "uploads"
        uploads.mkdir()
        upload_with_cli(federation, uploads)
        federation.up(wait=300)
        yield federation
    finally:
        federation.down()


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
