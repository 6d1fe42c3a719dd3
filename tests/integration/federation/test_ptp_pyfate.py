"""FATE 2.2's own federation client (pyfate's ``OSXFederation``) through our gateways, unchanged.

Two gateway processes (guest 9999, host 10000; mTLS between them) serve the PTP endpoint (the
guest's on a unix socket named as the compose deployment names it, the host's on a loopback port);
one pyfate process per party, in FATE's own environment, federates through its party's endpoint: an object, a 3 MB object (which pyfate splits into a table) and a 4-partition table each
way (see ``pyfate_osx_party.py``).

The FATE interpreter is the registered FATE provider's (the session fixture ``fate_python``: fails in
CI, skips elsewhere).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fedgw_support import Net, gateway_mesh

from fate_airflow.federation.grpc.localnet import free_port

HERE = Path(__file__).resolve().parent
GUEST, HOST = ("guest", "9999"), ("host", "10000")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Net, dict[str, str]]]:
    # Unix socket paths must stay under ~100 bytes: a short folder of their own.
    sockets = Path(tempfile.mkdtemp(prefix="fa-ptp-", dir="/tmp"))
    ptp = {GUEST[1]: f"unix:{sockets}/gateway:9390", HOST[1]: f"127.0.0.1:{free_port()}"}
    extra = {party: {"ptp_listen": address, "log_level": "INFO"} for party, address in ptp.items()}
    try:
        with gateway_mesh(tmp_path_factory.mktemp("ptp-pyfate"), [GUEST[1], HOST[1]], extra) as net:
            yield net, ptp
    finally:
        shutil.rmtree(sockets, ignore_errors=True)


def _party(
    python: str, me: tuple[str, str], peer: tuple[str, str], federation_id: str, address: str, root: Path
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            python,
            str(HERE / "pyfate_osx_party.py"),
            *me,
            *peer,
            federation_id,
            address,
            str(root / f"data-{me[1]}"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # FATE's environment, not ours: nothing of this venv may leak in.
        env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""), "PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.timeout(120)
def test_pyfate_osx_federation_through_the_gateways(
    fate_python: str, mesh: tuple[Net, dict[str, str]], tmp_path: Path
) -> None:
    net, ptp = mesh
    federation_id = "202611290900000000001_ptp_smoke_0"
    procs = {
        "guest": _party(fate_python, GUEST, HOST, federation_id, ptp[GUEST[1]], tmp_path),
        "host": _party(fate_python, HOST, GUEST, federation_id, ptp[HOST[1]], tmp_path),
    }
    outputs: dict[str, str] = {}
    try:
        for role, proc in procs.items():
            outputs[role], _ = proc.communicate(timeout=90)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    logs = "\n".join(f"--- gateway {p}\n{g.log_text()[-3000:]}" for p, g in net.gateways.items())
    for role, proc in procs.items():
        assert proc.returncode == 0, f"pyfate {role} failed:\n{outputs.get(role, '')[-6000:]}\n{logs}"
        summary = json.loads(outputs[role].strip().splitlines()[-1])
        assert summary["ok"] is True
    # Everything sent was taken: both spools hold only tombstones.
    for party, gateway in net.gateways.items():
        leftovers = list((gateway.data_dir / "spool" / "messages").glob("*/*/*.msg"))
        assert not leftovers, f"party {party}: {len(leftovers)} message(s) never popped"
