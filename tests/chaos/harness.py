"""The chaos and load tests' two parties, behind a fault-injecting proxy.

Guest 9999 and host 10000 run as ``party up`` deploys them (Airflow with LocalExecutor on SQLite, the
gateway with the party service) and reach each other only through :class:`PartitionProxy` in front of
the other party's gateway. Both modules share them (starting two Airflows takes a minute).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

from fate_airflow.deploy.localfed import LocalFederation, create_local_federation
from fate_airflow.deploy.party import write_party_config
from tests.conftest import REPO_ROOT

JOBS = REPO_ROOT / "tests" / "fixtures" / "jobs"
GUEST, HOST = "9999", "10000"
DAG = "toy2"
#: Longer than any outage a chaos round causes (kill → restart ≤ 10 s + start-up ≤ 30 s, partition
#: 30 s): every round must then succeed; a dead party is still noticed, only later.
PARTY_TIMEOUT = 90.0
#: Children of killed components, left running by the kill (cleaned up with the parties).
ORPHANS: list[psutil.Process] = []


# ---------------------------------------------------------------------- fault-injecting proxy
class PartitionProxy:
    """A TCP relay on 127.0.0.1 to one gateway; :meth:`partition` cuts it, :meth:`heal` restores it.

    While partitioned, live connections are closed and new ones are closed on accept: the peer sees
    the network down (TLS passes through untouched, so mTLS is tested as deployed).
    """

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._partitioned = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name=f"proxy-{target_port}").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._partitioned.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()  # the gateway itself is down (a kill round): the same as a refusal
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.close()
                with self._lock:
                    self._conns.discard(sock)

    def partition(self) -> None:
        """Cut the link: close every live connection and refuse new ones."""
        self._partitioned.set()
        with self._lock:
            conns, self._conns = set(self._conns), set()
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def heal(self) -> None:
        """Let connections through again."""
        self._partitioned.clear()

    def close(self) -> None:
        """Stop relaying."""
        self._closed = True
        self.partition()
        self._listener.close()


# ---------------------------------------------------------------------- the parties
@dataclass
class Chaos:
    fed: LocalFederation
    proxies: dict[str, PartitionProxy]


@contextlib.contextmanager
def chaos_parties(base: Path) -> Iterator[Chaos]:
    """Start the two parties under ``base`` behind their proxies; stop everything on exit."""
    drop = base / "guest-jobs"
    drop.mkdir()
    for name in ("toy2_dsl.json", "toy2_conf.json"):
        shutil.copy(JOBS / name, drop / name)
    fed = create_local_federation(
        base, [GUEST, HOST], jobs_folders={GUEST: drop}, party_timeout=PARTY_TIMEOUT
    )
    # Each party reaches the other only through a proxy in front of that other party's gateway.
    proxies = {pid: PartitionProxy(cfg.ports.gateway) for pid, cfg in fed.parties.items()}
    for pid, cfg in list(fed.parties.items()):
        peers = {other: f"127.0.0.1:{proxies[other].port}" for other in cfg.peers}
        # A task whose supervisor died is found by Airflow after this (default 300 s).
        extra = {**cfg.airflow.extra_env, "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60"}
        # No watchdog: the campaign restarts what it kills itself, after a delay it chooses.
        fed.parties[pid] = replace(
            cfg, peers=peers, airflow=replace(cfg.airflow, extra_env=extra), watchdog=False
        )
        write_party_config(fed.parties[pid], fed.config_paths[pid])
    try:
        fed.init()
        fed.up(wait=300)
        fed.rest(GUEST).wait_dag(DAG)
        yield Chaos(fed, proxies)
    finally:
        fed.down()
        for proxy in proxies.values():
            proxy.close()
        for orphan in ORPHANS:
            with contextlib.suppress(psutil.Error):
                orphan.kill()
