"""Three real gateways (guest 9999, host 10000, arbiter 10001) as separate processes, mTLS, 127.0.0.1.

Each runs ``python -m fate_airflow gateway --config ... --port-file ...``; the fixture waits for
the port file (written once the server listens). Ports are chosen up front because every gateway's
route table must name the others.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from fate_airflow.core.types import Party
from fate_airflow.federation.api import FederationSession
from fate_airflow.federation.config import GatewayClientConfig
from fate_airflow.federation.grpc import GrpcFederation
from fate_airflow.federation.grpc.localnet import (
    PartyFiles,
    client_config,
    free_port,
    gateway_document,
    provision,
    write_config,
)

GUEST = Party("guest", "9999")
HOST = Party("host", "10000")
ARBITER = Party("arbiter", "10001")
PARTIES = (GUEST, HOST, ARBITER)
#: The arbiter accepts small messages only, to test the size limit without moving gigabytes.
ARBITER_MAX_MESSAGE = 8 << 20


def vm_hwm(pid: int) -> int:
    """Peak resident set size of a process (kernel's high-water mark), bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class RssSampler:
    """Samples a process's RSS with psutil in a background thread; :attr:`peak` is the max seen."""

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        self._proc = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self.peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self._proc.memory_info().rss)
            except psutil.Error:
                return
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class GatewayProcess:
    """One gateway subprocess."""

    party_id: str
    config: Path
    port_file: Path
    log: Path
    address: str
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        self.port_file.unlink(missing_ok=True)
        log = self.log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fate_airflow",
                "gateway",
                "--config",
                str(self.config),
                "--port-file",
                str(self.port_file),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not self.port_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway {self.party_id} exited early:\n{self.log.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"gateway {self.party_id} did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Net:
    """The three-party network."""

    root: Path
    files: dict[str, PartyFiles]
    gateways: dict[str, GatewayProcess]
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)

    def client(self, party_id: str, **extra: Any) -> GatewayClientConfig:
        return client_config(party_id, self.gateways[party_id].address, self.files, **extra)

    def federation(self, job: str, local: Party, **extra: Any) -> GrpcFederation:
        session = FederationSession(job, "task", 0, local, PARTIES)
        return GrpcFederation(session, self.client(local.party_id, **extra))


@contextmanager
def gateway_mesh(
    root: Path, ids: Sequence[str], extra: Mapping[str, Mapping[str, Any]] | None = None
) -> Iterator[Net]:
    """Start one mTLS gateway process per party id, each routing directly to all the others.

    :param extra: per party id, more ``gateway_document`` settings (limits, spool policy, ...).
    """
    files = provision(root / "pki", list(ids))
    addresses = {p: f"127.0.0.1:{free_port()}" for p in ids}
    gateways: dict[str, GatewayProcess] = {}
    documents: dict[str, dict[str, Any]] = {}
    for party in ids:
        doc = gateway_document(
            party,
            listen=addresses[party],
            data_dir=root / f"gw-{party}",
            routes={o: addresses[o] for o in ids if o != party},
            files=files,
            **dict((extra or {}).get(party, {})),
        )
        documents[party] = doc
        gateways[party] = GatewayProcess(
            party,
            write_config(root / f"gateway-{party}.json", doc),
            root / f"gateway-{party}.port",
            root / f"gateway-{party}.log",
            addresses[party],
            root / f"gw-{party}",
        )
    started: list[GatewayProcess] = []
    try:
        for gw in gateways.values():
            gw.start()
            started.append(gw)
        yield Net(root, files, gateways, documents)
    finally:
        for gw in started:
            gw.stop()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    ids = [p.party_id for p in PARTIES]
    extra: dict[str, dict[str, Any]] = {p: {"log_level": "INFO"} for p in ids}
    extra[ARBITER.party_id]["limits"] = {"max_message_bytes": ARBITER_MAX_MESSAGE}
    with gateway_mesh(tmp_path_factory.mktemp("three-gateways"), ids, extra) as mesh:
        yield mesh
