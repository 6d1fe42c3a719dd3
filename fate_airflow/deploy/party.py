"""One party on one machine: its configuration, its Airflow home and its processes.

A party = one Airflow instance (api-server, scheduler, dag-processor, triggerer) + one federation
gateway with the party service. Everything lives under the party's ``home`` folder, so several
parties run side by side and deleting the folder removes a party::

    <home>/airflow/          AIRFLOW_HOME: metadata DB (SQLite by default), logs, passwords
    <home>/pki/              party CA, gateway and client certificates
    <home>/data/             tables, artifacts, models (the party's storage), spool, job store
    <home>/jobs/             the drop folder (unless ``jobs_folder`` says otherwise)
    <home>/received/         plans of jobs created here by other parties' initiators
    <home>/run/              pid files and process logs
    <home>/gateway.yaml      generated gateway configuration
    <home>/party.env         the environment of this party's Airflow (``source`` it to use the CLI)

The party config file (YAML or JSON; relative paths are relative to the file)::

    party_id: "9999"
    home: "9999"                      # default: the config file's folder / party_id
    host: 127.0.0.1                   # where this party's services listen
    ports: {api: 28080, gateway: 29370, worker_log: 28793, trigger_log: 28794, ptp: 29390}
                                      # ptp: the gateway's party-internal endpoint on a loopback host
    internal_endpoint: null           # the gateway's party-internal endpoint (FATE's PTP for FATE
                                      # components, the native services for this party's workers):
                                      # default host:ports.ptp on a loopback host, else none; or
                                      # unix:/path (a socket the gateway and workers share, e.g. on
                                      # a volume of the party's containers)
    worker_endpoint: internal         # how workers reach the gateway: internal (plaintext, when an
                                      # internal endpoint exists) or mtls (workers on other hosts)
    peers: {"10000": "127.0.0.1:29371"}       # party id -> gateway address
    peer_ca_certs: ["../10000/pki/ca/ca.crt"] # CA certificates of the peers (exchange them once)
    insecure: false                   # true = plaintext gateways, local demos only
    allowed_initiators: ["9999"]      # who may create jobs here (default: any peer)
    readable_tables: ["experiment.*"] # tables jobs may read here
    party_timeout: 30                 # seconds a peer may be silent during a job
    listen: null                      # gateway bind address if not host:ports.gateway (e.g. 0.0.0.0:9370)
    api_url: null                     # how the party service reaches its api-server, if not host:ports.api
    cert_hosts: []                    # extra DNS names/IPs in the gateway certificate (e.g. a container name)
    airflow:                          # production: PostgreSQL + Celery/Kubernetes executors
      executor: LocalExecutor
      sql_alchemy_conn: null          # default sqlite:///<home>/airflow/airflow.db
      parallelism: 4
      extra_env: {}                   # any AIRFLOW__SECTION__KEY settings
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias, get_args

import psutil
import requests

from fate_airflow.core.errors import ConfigError, SchedulingError
from fate_airflow.core.files import write_secret
from fate_airflow.core.types import validate_party_id
from fate_airflow.federation.config import check_ptp_listen, is_loopback_host, read_document
from fate_airflow.federation.pki import init_ca, issue_certificate

log = logging.getLogger(__name__)

#: The repository's DAG folder (the loader that turns job files into DAGs).
REPO_DAGS = Path(__file__).resolve().parents[2] / "dags"

AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
#: The Celery executor's worker (a party process only when the party runs that executor).
CELERY_WORKER = "celery-worker"
#: How a party's workers reach its gateway: its party-internal endpoint (plaintext, same host or
#: shared socket) or its mTLS endpoint (workers on other hosts).
WorkerEndpoint: TypeAlias = Literal["internal", "mtls"]
GATEWAY_PROCESS = "gateway"
#: The process that restarts the party's other processes when one dies (``party watch``).
WATCHDOG_PROCESS = "watchdog"


@dataclass(frozen=True)
class Ports:
    """TCP ports of one party (all on :attr:`PartyConfig.host`)."""

    api: int = 28080
    gateway: int = 29370
    worker_log: int = 28793
    trigger_log: int = 28794
    #: The gateway's PTP endpoint, where FATE's own components (pyfate, "osx" federation) connect.
    ptp: int = 29390
    #: FATE-Flow's client API (FATE's ``pipeline`` SDK and ``flow`` CLI; FATE-Flow itself uses 9380).
    flow: int = 29380


@dataclass(frozen=True)
class AirflowSettings:
    """How the party's Airflow runs. The defaults are the embedded single-machine setup."""

    executor: str = "LocalExecutor"
    sql_alchemy_conn: str | None = None
    parallelism: int = 4
    extra_env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PartyConfig:
    """A party's configuration (see the module docstring for the file format)."""

    party_id: str
    home: Path
    host: str = "127.0.0.1"
    ports: Ports = field(default_factory=Ports)
    peers: Mapping[str, str] = field(default_factory=dict)
    peer_ca_certs: tuple[Path, ...] = ()
    insecure: bool = False
    allowed_initiators: tuple[str, ...] | None = None
    readable_tables: tuple[str, ...] = ("*",)
    party_timeout: float = 30.0
    jobs_folder: Path | None = None
    airflow: AirflowSettings = field(default_factory=AirflowSettings)
    dags_folder: Path = REPO_DAGS
    api_url_override: str | None = None
    listen: str | None = None
    cert_hosts: tuple[str, ...] = ()
    internal_endpoint: str | None = None
    worker_endpoint: WorkerEndpoint = "internal"
    #: Address FATE-Flow's client API listens on (clients off loopback must authenticate).
    flow_api_listen: str = "127.0.0.1"
    #: JSON file of app id → app token for FATE-Flow's client signature (None: ``<home>/flow_apps.json``).
    flow_api_apps_file: Path | None = None
    #: Whether ``party up`` starts a watchdog that restarts any of the party's processes that dies
    #: (an Airflow scheduler killed by a locked SQLite database, the gateway by the OOM killer).
    #: Turn it off where systemd, Kubernetes or compose restart them instead.
    watchdog: bool = True

    # ------------------------------------------------------------------ paths
    @property
    def airflow_home(self) -> Path:
        """AIRFLOW_HOME of this party."""
        return self.home / "airflow"

    @property
    def pki_dir(self) -> Path:
        """Certificates and keys."""
        return self.home / "pki"

    @property
    def ca_cert(self) -> Path:
        """This party's CA certificate (give it to the peers)."""
        return self.pki_dir / "ca" / "ca.crt"

    @property
    def data_dir(self) -> Path:
        """The party's storage: tables, artifacts, models, spool, job store."""
        return self.home / "data"

    @property
    def provider_dir(self) -> Path:
        """The party's component providers: ``registry.json`` and, by default, their environments."""
        return self.home / "providers"

    @property
    def drop_folder(self) -> Path:
        """Where job files are dropped."""
        return self.jobs_folder or self.home / "jobs"

    @property
    def received_folder(self) -> Path:
        """Where plans received from initiators are kept."""
        return self.home / "received"

    @property
    def run_dir(self) -> Path:
        """Pid files and process logs."""
        return self.home / "run"

    @property
    def gateway_config_path(self) -> Path:
        """Generated gateway configuration."""
        return self.home / "gateway.yaml"

    @property
    def api_url(self) -> str:
        """The Airflow api-server (UI and REST) as this party's own services reach it."""
        return self.api_url_override or f"http://{self.host}:{self.ports.api}"

    @property
    def flow_api_url(self) -> str:
        """Base URL of the party's FATE-Flow client API (what ``flow init``/``pipeline init`` take)."""
        host = "127.0.0.1" if self.flow_api_listen in ("0.0.0.0", "::") else self.flow_api_listen
        return f"http://{host}:{self.ports.flow}"

    @property
    def flow_apps_path(self) -> Path:
        """The app id → token file of FATE-Flow's client signature."""
        return self.flow_api_apps_file or self.home / "flow_apps.json"

    @property
    def gateway_address(self) -> str:
        """Where this party's gateway listens."""
        return f"{self.host}:{self.ports.gateway}"

    @property
    def ptp_address(self) -> str | None:
        """The gateway's party-internal endpoint (FATE's PTP service and the native worker services).

        ``internal_endpoint`` if given (``unix:/path`` or a loopback ``host:port``), else
        ``host:ports.ptp`` when the host is loopback, else None. The endpoint is plaintext and
        unauthenticated, so it only exists where nothing but the party's own processes can reach
        it (a party on a container network gets one only as a unix socket on a volume shared by
        its gateway and worker containers).
        """
        if self.internal_endpoint is not None:
            return self.internal_endpoint
        return f"{self.host}:{self.ports.ptp}" if is_loopback_host(self.host) else None

    @property
    def worker_internal_address(self) -> str | None:
        """The endpoint the party's workers use instead of the gateway's mTLS one, if any."""
        return self.ptp_address if self.worker_endpoint == "internal" else None

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base_dir: Path) -> PartyConfig:
        """Build from a parsed document; relative paths resolve against ``base_dir``."""
        known = {
            "party_id", "home", "host", "ports", "peers", "peer_ca_certs", "insecure", "allowed_initiators",
            "readable_tables", "party_timeout", "jobs_folder", "airflow", "dags_folder", "api_url", "listen",
            "cert_hosts", "internal_endpoint", "worker_endpoint", "flow_api", "watchdog",
        }  # fmt: skip
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        try:
            party_id = validate_party_id(data.get("party_id"))
        except ValueError as exc:
            raise ConfigError(f"party_id: {exc}") from None

        def path(value: Any, name: str) -> Path:
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{name}: expected a path, got {value!r}")
            p = Path(value).expanduser()
            return p if p.is_absolute() else (base_dir / p).resolve()

        ports_raw = data.get("ports") or {}
        if not isinstance(ports_raw, Mapping):
            raise ConfigError("ports: expected a mapping")
        bad = sorted(set(ports_raw) - {"api", "gateway", "worker_log", "trigger_log", "ptp", "flow"})
        if bad:
            raise ConfigError(f"ports: unknown port(s) {', '.join(bad)}")
        for key, value in ports_raw.items():
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
                raise ConfigError(f"ports.{key}: expected a port number, got {value!r}")
        peers_raw = data.get("peers") or {}
        if not isinstance(peers_raw, Mapping):
            raise ConfigError("peers: expected a mapping of party id to host:port")
        peers: dict[str, str] = {}
        for pid, addr in peers_raw.items():
            try:
                peers[validate_party_id(pid)] = str(addr)
            except ValueError as exc:
                raise ConfigError(f"peers.{pid}: {exc}") from None
            if ":" not in str(addr):
                raise ConfigError(f"peers.{pid}: expected host:port, got {addr!r}")
        allowed = data.get("allowed_initiators")
        if allowed is not None and not isinstance(allowed, list):
            raise ConfigError("allowed_initiators: expected a list of party ids")
        internal = data.get("internal_endpoint")
        if internal is not None:
            internal = check_ptp_listen(internal, "internal_endpoint")
            if internal.startswith("unix:") and not internal.startswith("unix:/"):
                internal = f"unix:{(base_dir / internal[len('unix:') :]).resolve()}"
        worker_endpoint = data.get("worker_endpoint", "internal")
        if worker_endpoint not in get_args(WorkerEndpoint):
            raise ConfigError(f"worker_endpoint: expected internal or mtls, got {worker_endpoint!r}")
        flow_raw = data.get("flow_api") or {}
        if not isinstance(flow_raw, Mapping):
            raise ConfigError("flow_api: expected a mapping (listen, apps_file)")
        bad = sorted(set(flow_raw) - {"listen", "apps_file"})
        if bad:
            raise ConfigError(f"flow_api: unknown field(s) {', '.join(bad)}")
        af_raw = data.get("airflow") or {}
        if not isinstance(af_raw, Mapping):
            raise ConfigError("airflow: expected a mapping")
        bad = sorted(set(af_raw) - {"executor", "sql_alchemy_conn", "parallelism", "extra_env"})
        if bad:
            raise ConfigError(f"airflow: unknown field(s) {', '.join(bad)}")
        if str(af_raw.get("executor", "")).rsplit(".", 1)[-1] == "CeleryExecutor":
            if not str(af_raw.get("sql_alchemy_conn") or "").startswith(("postgresql", "mysql")):
                raise ConfigError(
                    "airflow.sql_alchemy_conn: the CeleryExecutor needs a PostgreSQL or MySQL metadata "
                    "database (workers on other hosts share it), e.g. postgresql+psycopg2://user:pw@db/airflow"
                )
            if not (af_raw.get("extra_env") or {}).get("AIRFLOW__CELERY__BROKER_URL"):
                raise ConfigError(
                    "airflow.extra_env.AIRFLOW__CELERY__BROKER_URL: the CeleryExecutor needs a broker, "
                    "e.g. redis://127.0.0.1:6379/0"
                )
        return cls(
            party_id=party_id,
            home=path(data["home"], "home") if data.get("home") else (base_dir / party_id).resolve(),
            host=str(data.get("host", "127.0.0.1")),
            ports=Ports(**ports_raw),
            peers=peers,
            peer_ca_certs=tuple(path(p, "peer_ca_certs") for p in data.get("peer_ca_certs") or ()),
            insecure=bool(data.get("insecure", False)),
            allowed_initiators=None if allowed is None else tuple(str(a) for a in allowed),
            readable_tables=tuple(str(t) for t in data.get("readable_tables") or ("*",)),
            party_timeout=float(data.get("party_timeout", 30.0)),
            jobs_folder=path(data["jobs_folder"], "jobs_folder") if data.get("jobs_folder") else None,
            airflow=AirflowSettings(
                executor=str(af_raw.get("executor", "LocalExecutor")),
                sql_alchemy_conn=af_raw.get("sql_alchemy_conn"),
                parallelism=int(af_raw.get("parallelism", 4)),
                extra_env={str(k): str(v) for k, v in (af_raw.get("extra_env") or {}).items()},
            ),
            dags_folder=path(data["dags_folder"], "dags_folder") if data.get("dags_folder") else REPO_DAGS,
            api_url_override=str(data["api_url"]) if data.get("api_url") else None,
            listen=str(data["listen"]) if data.get("listen") else None,
            cert_hosts=tuple(str(h) for h in data.get("cert_hosts") or ()),
            internal_endpoint=internal,
            worker_endpoint=worker_endpoint,
            flow_api_listen=str(flow_raw.get("listen") or "127.0.0.1"),
            flow_api_apps_file=path(flow_raw["apps_file"], "flow_api.apps_file")
            if flow_raw.get("apps_file")
            else None,
            watchdog=bool(data.get("watchdog", True)),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML form (absolute paths)."""
        return {
            "party_id": self.party_id,
            "home": str(self.home),
            "host": self.host,
            "ports": {
                "api": self.ports.api,
                "gateway": self.ports.gateway,
                "worker_log": self.ports.worker_log,
                "trigger_log": self.ports.trigger_log,
                "ptp": self.ports.ptp,
                "flow": self.ports.flow,
            },
            "peers": dict(self.peers),
            "peer_ca_certs": [str(p) for p in self.peer_ca_certs],
            "insecure": self.insecure,
            "allowed_initiators": None if self.allowed_initiators is None else list(self.allowed_initiators),
            "readable_tables": list(self.readable_tables),
            "party_timeout": self.party_timeout,
            "jobs_folder": str(self.jobs_folder) if self.jobs_folder else None,
            "airflow": {
                "executor": self.airflow.executor,
                "sql_alchemy_conn": self.airflow.sql_alchemy_conn,
                "parallelism": self.airflow.parallelism,
                "extra_env": dict(self.airflow.extra_env),
            },
            "dags_folder": str(self.dags_folder),
            "api_url": self.api_url_override,
            "listen": self.listen,
            "cert_hosts": list(self.cert_hosts),
            "internal_endpoint": self.internal_endpoint,
            "worker_endpoint": self.worker_endpoint,
            "flow_api": {
                "listen": self.flow_api_listen,
                **({"apps_file": str(self.flow_api_apps_file)} if self.flow_api_apps_file else {}),
            },
            "watchdog": self.watchdog,
        }


def load_party_config(path: Path | str) -> PartyConfig:
    """Load a party config file; errors name the file and the field."""
    doc, base = read_document(path)
    try:
        return PartyConfig.from_dict(doc, base)
    except ConfigError as exc:
        raise ConfigError(f"{Path(path).name}: {exc}") from None


def write_party_config(cfg: PartyConfig, path: Path) -> Path:
    """Write ``cfg`` as JSON (readable by :func:`load_party_config`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: v for k, v in cfg.to_dict().items() if v is not None}, indent=2))
    return path


# ---------------------------------------------------------------------- secrets and environment
def party_secrets(cfg: PartyConfig) -> dict[str, str]:
    """Per-party generated secrets, created once and kept in ``<home>/secrets.json`` (mode 600)."""
    path = cfg.home / "secrets.json"
    if path.exists():
        data: dict[str, str] = json.loads(path.read_text())
        return data
    data = {
        "admin_password": secrets.token_urlsafe(12),
        "jwt_secret": secrets.token_urlsafe(32),
        "api_secret_key": secrets.token_urlsafe(32),
    }
    write_secret(path, json.dumps(data, indent=2))
    return data


def job_store_url(cfg: PartyConfig) -> str:
    """Where the party service keeps its jobs.

    In the party's Airflow metadata DB when that is PostgreSQL (one database to back up and
    replicate), else in a SQLite file beside the party's data (the embedded default).
    """
    conn = cfg.airflow.sql_alchemy_conn or ""
    if conn.startswith("postgresql"):
        return conn
    return f"sqlite:///{cfg.data_dir / 'jobs.db'}"


def admin_credentials(cfg: PartyConfig) -> tuple[str, str]:
    """User name and password of the party's Airflow admin."""
    return "admin", party_secrets(cfg)["admin_password"]


def client_config_dict(cfg: PartyConfig) -> dict[str, Any]:
    """The gateway-client settings of this party's workers (also the connection's extra).

    Workers on the gateway's host (or sharing its socket) use its party-internal endpoint unless
    ``worker_endpoint: mtls``; the certificates stay in the settings, so a worker on another host
    only has to drop ``internal_address`` to use the mTLS endpoint.
    """
    data: dict[str, Any] = {"party_id": cfg.party_id}
    if cfg.worker_internal_address is not None:
        data["internal_address"] = cfg.worker_internal_address
    if cfg.insecure:
        data["insecure"] = True
    else:
        data.update(
            {
                "ca_cert": str(cfg.pki_dir / "client" / "ca.crt"),
                "client_cert": str(cfg.pki_dir / "client" / "client.crt"),
                "client_key": str(cfg.pki_dir / "client" / "client.key"),
            }
        )
    return data


def airflow_env(cfg: PartyConfig) -> dict[str, str]:
    """Environment of every Airflow process of this party (airflow3.md §2.3: all ports and URLs)."""
    sec = party_secrets(cfg)
    api = cfg.api_url
    db = cfg.airflow.sql_alchemy_conn or f"sqlite:///{cfg.airflow_home / 'airflow.db'}"
    conn = {
        "conn_type": "fate",
        "host": cfg.host,
        "port": cfg.ports.gateway,
        "extra": client_config_dict(cfg),
    }
    env = {
        "AIRFLOW_HOME": str(cfg.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(cfg.dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTOR": cfg.airflow.executor,
        "AIRFLOW__CORE__PARALLELISM": str(cfg.airflow.parallelism),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db,
        "AIRFLOW__API__HOST": cfg.host,
        "AIRFLOW__API__PORT": str(cfg.ports.api),
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": sec["api_secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": sec["jwt_secret"],
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(cfg.ports.worker_log),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(cfg.ports.trigger_log),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(cfg.airflow_home / "passwords.json"),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(cfg.airflow_home / "bundles"),
        # A federated job waits on its peers at every step; the default 1 s scheduler nap adds up.
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.3",
        "AIRFLOW__TRIGGERER__DEFAULT_CAPACITY": "200",
        "AIRFLOW__FATE__PARTY_ID": cfg.party_id,
        "AIRFLOW__FATE__DATA_DIR": str(cfg.data_dir),
        "AIRFLOW__FATE__PROVIDER_DIR": str(cfg.provider_dir),
        "AIRFLOW__FATE__JOBS_FOLDER": str(cfg.drop_folder),
        "AIRFLOW__FATE__RECEIVED_FOLDER": str(cfg.received_folder),
        "AIRFLOW_CONN_FATE_DEFAULT": json.dumps(conn),
        "FATE_AIRFLOW_DATA_DIR": str(cfg.data_dir),
        "PYTHONWARNINGS": "ignore",
        "NO_PROXY": "*",
    }
    if cfg.ptp_address is not None:
        # What a FATE task's `federation: {type: osx, metadata: {host, port}}` points at.
        env["AIRFLOW__FATE__PTP_ADDRESS"] = cfg.ptp_address
    if cfg.airflow.executor.rsplit(".", 1)[-1] == "CeleryExecutor":
        # The worker runs as many tasks at once as the party's Airflow may (a federated task holds
        # its slot while it waits for its peers); results go to the metadata DB unless set.
        env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = str(cfg.airflow.parallelism)
        env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + db
    if db.startswith("sqlite"):
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"] = "fate_airflow.deploy.sqlite.CONNECT_ARGS"
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC"] = "fate_airflow.deploy.sqlite.CONNECT_ARGS"
    env.update(cfg.airflow.extra_env)
    return env


def gateway_config_dict(cfg: PartyConfig) -> dict[str, Any]:
    """The gateway configuration of this party (see :mod:`fate_airflow.federation.config`)."""
    doc: dict[str, Any] = {
        "party_id": cfg.party_id,
        "listen": cfg.listen or cfg.gateway_address,
        "data_dir": str(cfg.data_dir / "gateway"),
        "routes": dict(cfg.peers),
    }
    if cfg.ptp_address is not None:
        doc["ptp_listen"] = cfg.ptp_address
    if cfg.insecure:
        doc["insecure"] = True
    else:
        doc["tls"] = {
            "ca_cert": str(cfg.ca_cert),
            "cert": str(cfg.pki_dir / "gateway" / "gateway.crt"),
            "key": str(cfg.pki_dir / "gateway" / "gateway.key"),
            "peer_ca_certs": [str(p) for p in cfg.peer_ca_certs],
        }
    return doc


# ---------------------------------------------------------------------- init
def init_party(cfg: PartyConfig, *, migrate: bool = True) -> None:
    """Prepare the party's home: folders, certificates, gateway config, Airflow DB (idempotent)."""
    for folder in (cfg.airflow_home, cfg.data_dir, cfg.drop_folder, cfg.received_folder, cfg.run_dir):
        folder.mkdir(parents=True, exist_ok=True)
    user, password = admin_credentials(cfg)
    write_secret(cfg.airflow_home / "passwords.json", json.dumps({user: password}))
    if not cfg.insecure:
        if not cfg.ca_cert.exists():
            init_ca(cfg.party_id, cfg.ca_cert.parent)
        hosts = sorted({cfg.host, "127.0.0.1", "localhost", *cfg.cert_hosts})
        if not (cfg.pki_dir / "gateway" / "gateway.crt").exists():
            issue_certificate(
                cfg.ca_cert.parent, cfg.party_id, "gateway", cfg.pki_dir / "gateway", hosts=hosts
            )
        if not (cfg.pki_dir / "client" / "client.crt").exists():
            issue_certificate(cfg.ca_cert.parent, cfg.party_id, "client", cfg.pki_dir / "client")
    cfg.gateway_config_path.write_text(json.dumps(gateway_config_dict(cfg), indent=2))
    env = airflow_env(cfg)
    # `source party.env` gives a shell this party's Airflow, with the project's `airflow` on PATH.
    bin_dir = _shell_quote(str(Path(sys.executable).parent))
    # It holds the JWT and API secrets of the party's Airflow: owner-only, like secrets.json.
    write_secret(
        cfg.home / "party.env",
        "".join(f"export {k}={_shell_quote(v)}\n" for k, v in sorted(env.items()))
        + f'export PATH={bin_dir}:"$PATH"\n',
    )
    if migrate:
        _run_airflow(cfg, ["db", "migrate"], timeout=300)


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def _airflow_bin() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def _run_airflow(cfg: PartyConfig, args: list[str], *, timeout: float) -> None:
    env = {**os.environ, **airflow_env(cfg)}
    log = cfg.run_dir / f"airflow-{'-'.join(args)}.log"
    with log.open("w") as out:
        proc = subprocess.run(
            [_airflow_bin(), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    if proc.returncode != 0:
        raise SchedulingError(f"party {cfg.party_id}: `airflow {' '.join(args)}` failed (see {log})")


# ---------------------------------------------------------------------- processes
def _pid_file(cfg: PartyConfig, name: str) -> Path:
    return cfg.run_dir / f"{name}.pid"


def _alive(pid: int) -> bool:
    # Reap our own exited children first: a zombie still answers kill(pid, 0).
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        proc = psutil.Process(pid)
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def airflow_processes(cfg: PartyConfig) -> dict[str, list[str]]:
    """The party's Airflow processes: name → ``airflow`` sub-command.

    The Celery executor runs tasks in a worker of its own (``airflow celery worker``), which also
    serves their logs; the other executors run them from the scheduler.
    """
    out = {name: [name] for name in AIRFLOW_COMPONENTS}
    if cfg.airflow.executor.rsplit(".", 1)[-1] == "CeleryExecutor":
        out[CELERY_WORKER] = ["celery", "worker"]
    return out


def process_pids(cfg: PartyConfig) -> dict[str, int | None]:
    """Component name → pid if it is running."""
    out: dict[str, int | None] = {}
    for name in (*airflow_processes(cfg), GATEWAY_PROCESS):
        path = _pid_file(cfg, name)
        pid = int(path.read_text()) if path.exists() else None
        out[name] = pid if pid is not None and _alive(pid) else None
    return out


def _spawn(cfg: PartyConfig, name: str, argv: list[str], env: Mapping[str, str]) -> int:
    log = (cfg.run_dir / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        argv,
        env=dict(env),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    _pid_file(cfg, name).write_text(str(proc.pid))
    return proc.pid


def start_party(cfg: PartyConfig, config_path: Path, *, wait: float = 180.0) -> None:
    """Start the party's Airflow components and gateway, then wait until all are healthy."""
    running = process_pids(cfg)
    env = {**os.environ, **airflow_env(cfg)}
    fate_bin = str(Path(sys.executable).with_name("fate-airflow"))
    if running[GATEWAY_PROCESS] is None:
        _spawn(cfg, GATEWAY_PROCESS, [fate_bin, "party", "serve", "--config", str(config_path)], env)
    for comp, command in airflow_processes(cfg).items():
        if running[comp] is None:
            _spawn(cfg, comp, [_airflow_bin(), *command], env)
    wait_healthy(cfg, timeout=wait)
    if cfg.watchdog and not _watchdog_alive(cfg):
        _spawn(cfg, WATCHDOG_PROCESS, [fate_bin, "party", "watch", "--config", str(config_path)], env)


def _watchdog_alive(cfg: PartyConfig) -> bool:
    path = _pid_file(cfg, WATCHDOG_PROCESS)
    return path.exists() and _alive(int(path.read_text()))


def watch_once(cfg: PartyConfig, config_path: Path) -> list[str]:
    """Restart the party's processes that died since they were started; returns their names.

    Only processes with a pid file count: ``party down`` removes the files (after stopping this
    watchdog), so a deliberate stop is never undone.
    """
    env = {**os.environ, **airflow_env(cfg)}
    fate_bin = str(Path(sys.executable).with_name("fate-airflow"))
    restarted = []
    for name, pid in process_pids(cfg).items():
        if pid is not None or not _pid_file(cfg, name).exists():
            continue
        if name == GATEWAY_PROCESS:
            argv = [fate_bin, "party", "serve", "--config", str(config_path)]
        else:
            argv = [_airflow_bin(), *airflow_processes(cfg)[name]]
        _spawn(cfg, name, argv, env)
        restarted.append(name)
    return restarted


def watch_party(cfg: PartyConfig, config_path: Path, stop: threading.Event, interval: float = 2.0) -> None:
    """Run :func:`watch_once` every ``interval`` seconds until ``stop`` is set (``party watch``)."""
    while not stop.wait(interval):
        try:
            for name in watch_once(cfg, config_path):
                log.warning("party %s: %s had died; restarted it", cfg.party_id, name)
        except Exception:  # the watchdog must outlive whatever one pass hits
            log.exception("party %s: watchdog pass failed", cfg.party_id)


def airflow_health(cfg: PartyConfig) -> dict[str, str]:
    """Component → status from ``/api/v2/monitor/health`` ({} if the api-server does not answer)."""
    try:
        resp = requests.get(f"{cfg.api_url}/api/v2/monitor/health", timeout=3)
        data = resp.json()
    except (requests.RequestException, ValueError):
        return {}
    out: dict[str, str] = {}
    for comp in ("metadatabase", "scheduler", "triggerer", "dag_processor"):
        entry = data.get(comp) or {}
        out[comp] = str(entry.get("status") or "unknown")
    return out


def wait_healthy(cfg: PartyConfig, *, timeout: float) -> None:
    """Block until Airflow reports every component healthy and the gateway answers."""
    from fate_airflow.deploy.gateway_client import gateway_alive

    deadline = time.monotonic() + timeout
    last: dict[str, str] = {}
    gw = False
    while time.monotonic() < deadline:
        dead = [name for name, pid in process_pids(cfg).items() if pid is None]
        if dead:
            raise SchedulingError(
                f"party {cfg.party_id}: {', '.join(dead)} exited during start-up (logs in {cfg.run_dir})"
            )
        last = airflow_health(cfg)
        gw = gateway_alive(cfg)
        if gw and last and all(v == "healthy" for v in last.values()):
            return
        time.sleep(1.0)
    raise SchedulingError(
        f"party {cfg.party_id} not healthy after {timeout:.0f} s: airflow {last or 'not answering'}, "
        f"gateway {'up' if gw else 'not answering'} (logs in {cfg.run_dir})"
    )


def stop_party(cfg: PartyConfig, *, timeout: float = 15.0) -> list[str]:
    """SIGTERM every component (then SIGKILL whatever is left); returns the names that were running."""
    # The watchdog first: it would restart what is being stopped.
    watchdog = _pid_file(cfg, WATCHDOG_PROCESS)
    if watchdog.exists():
        wpid = int(watchdog.read_text())
        with contextlib.suppress(ProcessLookupError):
            os.kill(wpid, signal.SIGKILL)
        _alive(wpid)
        watchdog.unlink(missing_ok=True)
    pids = {name: pid for name, pid in process_pids(cfg).items() if pid is not None}
    # Collected before signalling: once a component exits, its children are re-parented to init.
    procs = party_processes(cfg)
    for pid in pids.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for pid in pids.values():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    for pid in pids.values():
        _alive(pid)  # reap our own children
    for name in pids:
        _pid_file(cfg, name).unlink(missing_ok=True)
    return sorted(pids)


def party_processes(cfg: PartyConfig) -> list[psutil.Process]:
    """Every process of this party: its components, everything they started, and stray tasks.

    Airflow starts each task's supervisor in a process group of its own (and renames its processes,
    which hides their environment), so the party is its components' process trees plus any process
    whose environment still names the party's AIRFLOW_HOME.
    """
    found: dict[int, psutil.Process] = {}
    for pid in process_pids(cfg).values():
        if pid is None:
            continue
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                found[proc.pid] = proc
    home = str(cfg.airflow_home)
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error):
            if proc.pid != os.getpid() and proc.environ().get("AIRFLOW_HOME") == home:
                found.setdefault(proc.pid, proc)
    return list(found.values())


def kill_party(cfg: PartyConfig) -> None:
    """SIGKILL every process of the party at once (fault tests: a party whose machine dies)."""
    for proc in party_processes(cfg):
        with contextlib.suppress(psutil.Error):
            proc.kill()


__all__ = [
    "AIRFLOW_COMPONENTS",
    "CELERY_WORKER",
    "AirflowSettings",
    "PartyConfig",
    "Ports",
    "WorkerEndpoint",
    "admin_credentials",
    "airflow_env",
    "airflow_health",
    "airflow_processes",
    "client_config_dict",
    "gateway_config_dict",
    "init_party",
    "kill_party",
    "load_party_config",
    "party_processes",
    "process_pids",
    "start_party",
    "stop_party",
    "wait_healthy",
    "watch_once",
    "watch_party",
    "write_party_config",
]
