"""Party configuration: loading, errors naming fields, the Airflow environment and gateway config."""

from __future__ import annotations

import importlib
import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from fate_airflow.cli.party import build_service, up_message
from fate_airflow.core.errors import ConfigError
from fate_airflow.deploy.party import (
    PartyConfig,
    airflow_env,
    airflow_processes,
    gateway_config_dict,
    init_party,
    job_store_url,
    load_party_config,
    party_secrets,
    write_party_config,
)
from fate_airflow.federation.config import GatewayConfig, load_gateway_config
from tests.conftest import REPO_ROOT


def write(tmp_path: Path, doc: dict[str, object]) -> Path:
    path = tmp_path / "party.json"
    path.write_text(json.dumps(doc))
    return path


def test_config_round_trips_and_resolves_relative_paths(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"party_id": "9999", "home": "h", "peers": {"10000": "127.0.0.1:29371"}, "ports": {"api": 1234}},
    )
    cfg = load_party_config(path)
    assert cfg.home == (tmp_path / "h").resolve()
    assert cfg.ports.api == 1234
    assert cfg.api_url == "http://127.0.0.1:1234"
    again = load_party_config(write_party_config(cfg, tmp_path / "copy.json"))
    assert again == cfg


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"party_id": "99/99"}, "party.json: party_id: invalid party id '99/99'"),
        ({"party_id": "1", "ports": {"api": "x"}}, "party.json: ports.api: expected a port number, got 'x'"),
        ({"party_id": "1", "ports": {"web": 1}}, "party.json: ports: unknown port(s) web"),
        (
            {"party_id": "1", "peers": {"2": "nohost"}},
            "party.json: peers.2: expected host:port, got 'nohost'",
        ),
        ({"party_id": "1", "colour": "red"}, "party.json: unknown field(s) colour"),
        (
            {"party_id": "1", "airflow": {"executor": "X", "cpu": 3}},
            "party.json: airflow: unknown field(s) cpu",
        ),
        (
            {"party_id": "1", "airflow": {"executor": "CeleryExecutor"}},
            "party.json: airflow.sql_alchemy_conn: the CeleryExecutor needs a PostgreSQL or MySQL",
        ),
        (
            {
                "party_id": "1",
                "airflow": {"executor": "CeleryExecutor", "sql_alchemy_conn": "postgresql://db/airflow"},
            },
            "party.json: airflow.extra_env.AIRFLOW__CELERY__BROKER_URL: the CeleryExecutor needs a broker",
        ),
    ],
)
def test_bad_configs_name_the_field(tmp_path: Path, doc: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_party_config(write(tmp_path, doc))
    assert str(err.value).startswith(message)


def test_airflow_env_sets_every_port_and_url_per_party(tmp_path: Path) -> None:
    cfg = PartyConfig.from_dict(
        {
            "party_id": "10000",
            "ports": {"api": 28180, "worker_log": 28893, "trigger_log": 28894, "gateway": 29471},
        },
        tmp_path,
    )
    env = airflow_env(cfg)
    # airflow3.md §2.3: changing only the port sends tasks to another party's execution API.
    assert env["AIRFLOW__API__PORT"] == "28180"
    assert env["AIRFLOW__API__BASE_URL"] == "http://127.0.0.1:28180"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:28180/execution/"
    assert env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] == "28893"
    assert env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] == "28894"
    assert env["AIRFLOW__FATE__PARTY_ID"] == "10000"
    conn = json.loads(env["AIRFLOW_CONN_FATE_DEFAULT"])
    assert (conn["conn_type"], conn["port"], conn["extra"]["party_id"]) == ("fate", 29471, "10000")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite:///")


def test_a_celery_party_runs_a_worker_sized_to_its_parallelism(tmp_path: Path) -> None:
    cfg = PartyConfig.from_dict(
        {
            "party_id": "9999",
            "airflow": {
                "executor": "CeleryExecutor",
                "sql_alchemy_conn": "postgresql+psycopg2://airflow@127.0.0.1:5432/airflow",
                "parallelism": 6,
                "extra_env": {"AIRFLOW__CELERY__BROKER_URL": "redis://127.0.0.1:6379/0"},
            },
        },
        tmp_path,
    )
    assert airflow_processes(cfg)["celery-worker"] == ["celery", "worker"]
    env = airflow_env(cfg)
    assert env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == "6"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+postgresql+psycopg2://airflow@127.0.0.1:5432/airflow"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6379/0"
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS" not in env
    assert "celery-worker" not in airflow_processes(PartyConfig.from_dict({"party_id": "1"}, tmp_path))


def test_a_quarter_of_the_gateways_threads_may_hold_long_polls(tmp_path: Path) -> None:
    path = write(tmp_path, {"party_id": "9999"})
    cfg = load_party_config(path)
    init_party(cfg, migrate=False)
    service = build_service(cfg, path, gateway_threads=40)
    try:
        assert service.policy.max_held_calls == 10
        # The allowlists are re-read before each job creation; the hold budget stays.
        assert service._policy_source is not None and service._policy_source().max_held_calls == 10
    finally:
        service.stop()


def _resolve(dotted: str) -> object:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_sqlite_parties_wait_for_the_write_lock_instead_of_failing(tmp_path: Path) -> None:
    env = airflow_env(PartyConfig.from_dict({"party_id": "9999"}, tmp_path))
    for key in (
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC",
    ):
        args = _resolve(env[key])
        assert isinstance(args, dict)
        # What Airflow does with the dict: pass it to the driver's connect().
        with closing(sqlite3.connect(tmp_path / "probe.db", **args)) as conn:
            assert conn.execute("pragma busy_timeout").fetchone()[0] >= 30_000
    pg = PartyConfig.from_dict(
        {"party_id": "9999", "airflow": {"sql_alchemy_conn": "postgresql+psycopg2://a:b@db/airflow"}},
        tmp_path,
    )
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS" not in airflow_env(pg)


def test_init_writes_certificates_and_a_loadable_gateway_config(tmp_path: Path) -> None:
    peer = PartyConfig.from_dict({"party_id": "10000"}, tmp_path)
    init_party(peer, migrate=False)
    cfg = PartyConfig.from_dict(
        {"party_id": "9999", "peers": {"10000": "127.0.0.1:1"}, "peer_ca_certs": [str(peer.ca_cert)]},
        tmp_path,
    )
    init_party(cfg, migrate=False)
    gw = load_gateway_config(cfg.gateway_config_path)
    assert isinstance(gw, GatewayConfig)
    assert gw.party_ids == ("9999",)
    assert gw.tls is not None and gw.tls.peer_ca_certs == (peer.ca_cert,)
    assert (cfg.pki_dir / "client" / "client.crt").exists()
    assert "export AIRFLOW_HOME=" in (cfg.home / "party.env").read_text()
    assert oct((cfg.home / "secrets.json").stat().st_mode & 0o777) == "0o600"


def test_every_file_holding_a_secret_is_owner_only_even_under_umask_0(tmp_path: Path) -> None:
    cfg = PartyConfig.from_dict({"party_id": "9999"}, tmp_path)
    old_umask = os.umask(0)
    try:
        init_party(cfg, migrate=False)
    finally:
        os.umask(old_umask)
    env = (cfg.home / "party.env").read_text()
    assert party_secrets(cfg)["jwt_secret"] in env  # why party.env is a secret too
    for path in (cfg.home / "secrets.json", cfg.home / "party.env", cfg.airflow_home / "passwords.json"):
        assert path.stat().st_mode & 0o777 == 0o600, path
    keys = list(cfg.pki_dir.rglob("*.key")) + list(cfg.ca_cert.parent.glob("*.key"))
    assert keys and all(k.stat().st_mode & 0o777 == 0o600 for k in keys)


def test_compose_party_configs_match_the_compose_file() -> None:
    compose = YAML(typ="safe").load((REPO_ROOT / "docker-compose.yaml").read_text())
    services = compose["services"]
    for name, pid in (("guest", "9999"), ("host", "10000")):
        cfg = load_party_config(REPO_ROOT / "deploy" / "compose" / f"{name}.yaml")
        assert cfg.party_id == pid
        assert cfg.airflow.executor == "CeleryExecutor"
        assert cfg.api_url == f"http://{name}-api:8080"
        gw = gateway_config_dict(cfg)
        assert gw["listen"] == "0.0.0.0:9370"
        for peer, address in gw["routes"].items():
            assert address.split(":")[0] in services, peer
        assert f"{name}-gateway" in services and f"{name}-worker" in services
        assert f"deploy/compose/{name}.yaml" in services[f"{name}-gateway"]["command"]


def test_party_up_names_the_password_file_and_prints_the_password_only_when_asked(tmp_path: Path) -> None:
    cfg = PartyConfig.from_dict({"party_id": "9999"}, tmp_path)
    password = party_secrets(cfg)["admin_password"]
    quiet = up_message(cfg)
    assert password not in quiet
    assert str(cfg.home / "secrets.json") in quiet
    assert f"admin / {password}" in up_message(cfg, show_password=True)


def test_the_job_store_is_the_metadata_db_when_that_is_postgresql(tmp_path: Path) -> None:
    embedded = PartyConfig.from_dict({"party_id": "9999"}, tmp_path)
    assert job_store_url(embedded) == f"sqlite:///{embedded.data_dir / 'jobs.db'}"
    conn = "postgresql+psycopg2://airflow:secret@db:5432/airflow"
    production = PartyConfig.from_dict({"party_id": "9999", "airflow": {"sql_alchemy_conn": conn}}, tmp_path)
    assert job_store_url(production) == conn


def test_job_query_events_print_one_line_per_event_in_utc() -> None:
    from fate_airflow.cli.job import format_events

    text = format_events(
        [
            {"at": 1_764_700_000.25, "kind": "started", "party_id": "", "task_name": "lr_0", "version": 1, "message": "9999, 10000"},
            {"at": 1_764_700_009.5, "kind": "ended", "party_id": "9999", "task_name": "", "version": -1, "message": "success: all tasks"},
        ]
    )  # fmt: skip
    lines = text.splitlines()
    assert lines[0] == "timeline:"
    assert lines[1].split() == ["2025-12-02", "18:26:40.250", "started", "lr_0", "v1", "9999,", "10000"]
    assert "party 9999" in lines[2] and lines[2].endswith("success: all tasks")
