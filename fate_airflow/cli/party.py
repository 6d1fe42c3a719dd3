"""``fate-airflow party``: prepare, start, stop and inspect one party (Airflow + gateway).

``party serve`` is the gateway process of a party: the federation gateway with the party service
(FATE-Flow's scheduler for this party) as its command handler. ``party up`` starts it together with
the party's Airflow components.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

from fate_airflow.core.errors import ConfigError
from fate_airflow.core.providers import party_providers
from fate_airflow.deploy.airflow_rest import AirflowRestEngine
from fate_airflow.deploy.flow_api import Authenticator, FlowApi, FlowApiServer, create_app
from fate_airflow.deploy.flow_api.server import load_apps
from fate_airflow.deploy.gateway_client import gateway_alive
from fate_airflow.deploy.party import (
    PartyConfig,
    admin_credentials,
    airflow_health,
    init_party,
    job_store_url,
    load_party_config,
    party_secrets,
    process_pids,
    start_party,
    stop_party,
    watch_party,
)
from fate_airflow.deploy.watch import DropFolderWatcher
from fate_airflow.federation.config import load_gateway_config
from fate_airflow.federation.grpc.server import GatewayServer
from fate_airflow.scheduler.service import PartyPolicy, PartyService
from fate_airflow.scheduler.store import JobStore

ENV_CONFIG = "FATE_AIRFLOW_PARTY_CONFIG"


def config_path(args: argparse.Namespace) -> Path:
    """``--config`` or ``$FATE_AIRFLOW_PARTY_CONFIG``."""
    value = getattr(args, "config", None) or os.environ.get(ENV_CONFIG)
    if not value:
        raise ConfigError(f"give --config PARTY_CONFIG (or set {ENV_CONFIG})")
    return Path(value)


def load(args: argparse.Namespace) -> PartyConfig:
    """The party config named on the command line."""
    return load_party_config(config_path(args))


def build_engine(cfg: PartyConfig) -> AirflowRestEngine:
    """This party's Airflow, driven over REST as the admin user."""
    user, password = admin_credentials(cfg)
    return AirflowRestEngine(
        cfg.api_url,
        user,
        password,
        cfg.received_folder,
        secret_key=party_secrets(cfg)["api_secret_key"],
    )


def build_service(
    cfg: PartyConfig, path: Path, engine: AirflowRestEngine | None = None, *, gateway_threads: int = 64
) -> PartyService:
    """The party service wired to this party's Airflow (REST) and job store.

    Its allowlists are re-read from the config file at ``path`` before every job creation.
    ``gateway_threads`` is the gateway's RPC thread pool: a quarter of it may hold long polls.
    """
    engine = engine or build_engine(cfg)
    store = JobStore(job_store_url(cfg))
    held = max(1, gateway_threads // 4)
    return PartyService(
        cfg.party_id,
        store,
        engine,
        policy_of(cfg, held),
        policy_source=lambda: policy_of(load_party_config(path), held),
    )


def policy_of(cfg: PartyConfig, max_held_calls: int = 16) -> PartyPolicy:
    """The scheduling policy in a party config (long polls: see :class:`PartyPolicy`)."""
    installed = party_providers(cfg.provider_dir) or []
    return PartyPolicy(
        max_held_calls=max_held_calls,
        allowed_initiators=cfg.allowed_initiators,
        readable_tables=cfg.readable_tables,
        party_timeout=cfg.party_timeout,
        providers=tuple(p.ref for p in installed),
        # The other parties are assumed to run at least as many tasks at once as this one.
        max_running_slots=cfg.airflow.parallelism,
    )


def _init(args: argparse.Namespace) -> int:
    cfg = load(args)
    init_party(cfg, migrate=not args.no_migrate)
    print(f"party {cfg.party_id} initialised in {cfg.home}")
    print(f"  drop job files into {cfg.drop_folder}")
    print(
        f"  give your peers this CA certificate: {cfg.ca_cert}"
        if not cfg.insecure
        else "  (plaintext gateway)"
    )
    return 0


def _up(args: argparse.Namespace) -> int:
    cfg = load(args)
    init_party(cfg, migrate=True)
    start_party(cfg, config_path(args).resolve(), wait=args.wait)
    print(up_message(cfg, show_password=args.show_password))
    return 0


def up_message(cfg: PartyConfig, *, show_password: bool = False) -> str:
    """What ``party up`` prints: where the party answers and how to log in."""
    user, password = admin_credentials(cfg)
    # Terminal output ends up in scrollback, CI logs and screen shares: the password only on request.
    login = f"{user} / {password}" if show_password else f"{user}, password in {cfg.home / 'secrets.json'}"
    return (
        f"party {cfg.party_id} is up: UI {cfg.api_url} (login {login}); gateway {cfg.gateway_address}; "
        f"FATE-Flow API {cfg.flow_api_url}"
    )


def _down(args: argparse.Namespace) -> int:
    cfg = load(args)
    stopped = stop_party(cfg)
    print(f"party {cfg.party_id}: stopped {', '.join(stopped) or 'nothing (not running)'}")
    return 0


def _status(args: argparse.Namespace) -> int:
    cfg = load(args)
    pids = process_pids(cfg)
    health = airflow_health(cfg)
    gw = gateway_alive(cfg)
    report: dict[str, Any] = {
        "party_id": cfg.party_id,
        "ui": cfg.api_url,
        "gateway": cfg.gateway_address,
        "flow_api": cfg.flow_api_url,
        "processes": pids,
        "airflow": health or "not answering",
        "gateway_alive": gw,
    }
    ok = gw and bool(health) and all(v == "healthy" for v in health.values())
    report["healthy"] = ok
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


def _serve(args: argparse.Namespace) -> int:
    cfg = load(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    gateway_config = load_gateway_config(cfg.gateway_config_path)
    engine = build_engine(cfg)
    service = build_service(cfg, config_path(args), engine, gateway_threads=gateway_config.limits.max_workers)
    server = GatewayServer(gateway_config, handler=service)
    server.start()
    service.attach_control(server.local_control_client())
    service.start()
    flow_api = FlowApi(cfg, engine, server.local_control_client(), service.store)
    auth = Authenticator(lambda: load_apps(cfg.flow_apps_path), cfg.api_url)
    flow_server = FlowApiServer(create_app(flow_api, auth), cfg.flow_api_listen, cfg.ports.flow)
    flow_server.start()
    watcher = DropFolderWatcher(cfg.drop_folder, engine.request_reparse)
    watcher.start()
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    logging.getLogger(__name__).info("party %s serving on port %s", cfg.party_id, server.port)
    stop.wait()
    watcher.stop()
    flow_server.stop()
    service.stop()
    server.stop(5.0)
    return 0


def _watch(args: argparse.Namespace) -> int:
    cfg = load(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    watch_party(cfg, config_path(args).resolve(), stop)
    return 0


def register(subparsers: Any) -> None:
    """Add the ``party`` command group."""
    party = subparsers.add_parser("party", help="prepare, start and stop one party (Airflow + gateway)")
    sub = party.add_subparsers(dest="party_command", metavar="COMMAND")
    sub.required = True

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", help=f"party config file (default: ${ENV_CONFIG})")
        return p

    p = with_config(sub.add_parser("init", help="prepare the party's home, certificates and Airflow DB"))
    p.add_argument("--no-migrate", action="store_true", help="skip `airflow db migrate`")
    p.set_defaults(func=_init)
    p = with_config(sub.add_parser("up", help="start Airflow and the gateway; wait until healthy"))
    p.add_argument("--wait", type=float, default=240.0, help="seconds to wait for health")
    p.add_argument("--show-password", action="store_true", help="print the Airflow admin password too")
    p.set_defaults(func=_up)
    with_config(sub.add_parser("down", help="stop the party cleanly")).set_defaults(func=_down)
    with_config(sub.add_parser("status", help="health of the party's processes")).set_defaults(func=_status)
    with_config(
        sub.add_parser("serve", help="run the gateway with the party service (used by `up`)")
    ).set_defaults(func=_serve)
    with_config(
        sub.add_parser("watch", help="restart the party's processes when one dies (started by `up`)")
    ).set_defaults(func=_watch)
