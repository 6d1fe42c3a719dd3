"""Several parties on one machine: the embedded default of ``make demo``, integration tests, benches.

Each party gets its own folder, ports, CA, Airflow (SQLite + LocalExecutor) and gateway; every party
trusts the others' CAs and routes to their gateways directly on 127.0.0.1.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from fate_airflow.core.errors import SchedulingError
from fate_airflow.deploy.airflow_rest import AirflowRestClient
from fate_airflow.deploy.gateway_client import control_client
from fate_airflow.deploy.party import (
    AirflowSettings,
    PartyConfig,
    Ports,
    admin_credentials,
    init_party,
    load_party_config,
    start_party,
    stop_party,
    write_party_config,
)
from fate_airflow.federation.api import JobView, QueryJob

_END = ("success", "failed", "canceled", "timeout")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 for services that bind them later.

    The ports come from below the kernel's ephemeral range: a port taken from inside it can be
    grabbed as the source port of any outgoing connection before the service binds it (seen here:
    an api-server failing with "address already in use").
    """
    low, _ = _ephemeral_range()
    candidates = list(range(20000, max(low, 20001)))
    random.SystemRandom().shuffle(candidates)
    found: list[int] = []
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    raise SchedulingError(f"no {count} free ports below the ephemeral range ({low})")


@dataclass
class LocalFederation:
    """Party configs of a local multi-party setup, keyed by party id (first = the initiator)."""

    base: Path
    parties: dict[str, PartyConfig]
    config_paths: dict[str, Path] = field(default_factory=dict)

    @property
    def initiator(self) -> PartyConfig:
        """The first party (the guest that triggers jobs)."""
        return next(iter(self.parties.values()))

    # ------------------------------------------------------------------ lifecycle
    def _each(self, fn: Callable[[str], None]) -> None:
        errors: list[BaseException] = []

        def run(pid: str) -> None:
            try:
                fn(pid)
            except BaseException as exc:  # reported together below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(pid,)) for pid in self.parties]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def init(self) -> None:
        """Initialise every party (certificates first, so each can trust the others' CAs)."""
        self._each(lambda pid: init_party(self.parties[pid], migrate=True))

    def up(self, *, wait: float = 300.0) -> None:
        """Start every party and wait until all are healthy."""
        self._each(lambda pid: start_party(self.parties[pid], self.config_paths[pid], wait=wait))

    def down(self) -> None:
        """Stop every party."""

        def stop(pid: str) -> None:
            stop_party(self.parties[pid])

        self._each(stop)

    # ------------------------------------------------------------------ jobs
    def rest(self, party_id: str) -> AirflowRestClient:
        """A REST client of ``party_id``'s Airflow."""
        cfg = self.parties[party_id]
        user, password = admin_credentials(cfg)
        return AirflowRestClient(cfg.api_url, user, password, timeout=30.0)

    def job_view(self, party_id: str, job_id: str, *, with_events: bool = False) -> JobView:
        """The job as ``party_id``'s service sees it (with its timeline in ``detail["events"]`` if asked)."""
        client = control_client(self.parties[party_id])
        try:
            return client.ask(party_id, QueryJob(job_id, with_events=with_events))
        finally:
            client.close()

    def wait_job(
        self, job_id: str, *, timeout: float, on_change: Callable[[JobView], None] | None = None
    ) -> JobView:
        """Poll the initiator until the job ended (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        last = ""
        view = JobView(job_id, found=False)
        while time.monotonic() < deadline:
            try:
                view = self.job_view(self.initiator.party_id, job_id)
            except Exception:
                time.sleep(1.0)
                continue
            digest = json.dumps([view.status, [(t.task_name, t.status, t.task_version) for t in view.tasks]])
            if digest != last and on_change is not None:
                on_change(view)
            last = digest
            if view.found and view.status in _END:
                return view
            time.sleep(0.5)
        raise SchedulingError(
            f"job {job_id} did not end within {timeout:.0f} s (last status {view.status or 'unknown'})"
        )


def create_local_federation(
    base: Path,
    party_ids: Sequence[str],
    *,
    insecure: bool = False,
    allowed_initiators: Mapping[str, Sequence[str] | None] | None = None,
    party_timeout: float = 30.0,
    jobs_folders: Mapping[str, Path] | None = None,
    airflow: Mapping[str, AirflowSettings] | None = None,
) -> LocalFederation:
    """Write party configs for ``party_ids`` under ``base`` (reusing existing configs and ports).

    ``airflow`` gives a party other Airflow settings than the embedded default (e.g. PostgreSQL
    and the Celery executor).
    """
    base.mkdir(parents=True, exist_ok=True)
    paths = {pid: base / pid / "party.json" for pid in party_ids}
    existing = {pid: load_party_config(p) for pid, p in paths.items() if p.exists()}
    ports: dict[str, Ports] = {}
    for pid in party_ids:
        if pid in existing:
            ports[pid] = existing[pid].ports
            if ports[pid].ptp == Ports.ptp:
                # A config written before the PTP port existed: every party would get the default.
                ports[pid] = replace(ports[pid], ptp=free_ports(1)[0])
            if ports[pid].flow == Ports.flow:
                ports[pid] = replace(ports[pid], flow=free_ports(1)[0])
        else:
            api, gw, wl, tl, ptp, flow = free_ports(6)
            ports[pid] = Ports(api=api, gateway=gw, worker_log=wl, trigger_log=tl, ptp=ptp, flow=flow)
    configs: dict[str, PartyConfig] = {}
    for pid in party_ids:
        home = base / pid
        peers = {other: f"127.0.0.1:{ports[other].gateway}" for other in party_ids if other != pid}
        allowed = (allowed_initiators or {}).get(pid, [party_ids[0]])
        cfg = PartyConfig(
            party_id=pid,
            home=home,
            ports=ports[pid],
            peers=peers,
            peer_ca_certs=()
            if insecure
            else tuple(base / other / "pki" / "ca" / "ca.crt" for other in peers),
            insecure=insecure,
            allowed_initiators=None if allowed is None else tuple(allowed),
            readable_tables=("*",),
            party_timeout=party_timeout,
            jobs_folder=(jobs_folders or {}).get(pid),
            airflow=(airflow or {}).get(pid, AirflowSettings()),
        )
        write_party_config(cfg, paths[pid])
        configs[pid] = cfg
    return LocalFederation(base, configs, paths)


__all__ = ["LocalFederation", "create_local_federation", "free_ports"]
