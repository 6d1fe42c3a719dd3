"""The production path without Docker: a party on PostgreSQL with the Celery executor and Redis.

The guest runs Airflow on a PostgreSQL metadata database (Debian's server, started by the harness)
with the CeleryExecutor (Redis broker, ``airflow celery worker``); the host is the embedded default
(SQLite, LocalExecutor). A real federated job (reader, data transform, ECDH PSI, hetero LR with
Paillier, evaluation) runs between them. docker-compose.yaml stays the by-hand deployment check.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from fate_airflow.deploy.localfed import LocalFederation, create_local_federation
from fate_airflow.deploy.party import CELERY_WORKER, AirflowSettings, job_store_url, process_pids
from fate_airflow.storage.tables import TableStore
from fate_airflow.storage.upload import UploadSpec, upload
from tests.conftest import FATE_EXAMPLES, REPO_ROOT
from tests.integration.services import postgres_server, redis_server

GUEST, HOST = "9999", "10000"
JOBS = REPO_ROOT / "tests" / "fixtures" / "jobs"


def _put(fed: LocalFederation, party: str, csv: str, name: str, label: str | None) -> None:
    upload(
        TableStore.local(fed.parties[party].data_dir),
        UploadSpec(
            file=FATE_EXAMPLES / "data" / csv,
            namespace="itest",
            name=name,
            id_column="id",
            label_column=label,
        ),
        overwrite=True,
    )


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalFederation, str, str]]:
    with postgres_server() as pg_url, redis_server() as redis_url:
        base: Path = tmp_path_factory.mktemp("production")
        drop = base / "guest-jobs"
        drop.mkdir()
        for name in ("lr2_dsl.json", "lr2_conf.json"):
            shutil.copy(JOBS / name, drop / name)
        celery = AirflowSettings(
            executor="CeleryExecutor",
            sql_alchemy_conn=pg_url,
            parallelism=4,
            extra_env={"AIRFLOW__CELERY__BROKER_URL": redis_url},
        )
        fed = create_local_federation(
            base, [GUEST, HOST], jobs_folders={GUEST: drop}, party_timeout=10.0, airflow={GUEST: celery}
        )
        try:
            fed.init()
            fed.up(wait=300)
            _put(fed, GUEST, "breast_hetero_mini_guest.csv", "breast_hetero_mini_guest", "y")
            _put(fed, HOST, "breast_hetero_mini_host.csv", "breast_hetero_mini_host", None)
            fed.rest(GUEST).wait_dag("lr2")
            yield fed, pg_url, redis_url
        finally:
            fed.down()


def test_a_postgres_celery_party_runs_a_federated_job_with_an_embedded_party(
    prod: tuple[LocalFederation, str, str],
) -> None:
    fed, pg_url, redis_url = prod
    guest = fed.parties[GUEST]
    assert job_store_url(guest) == pg_url
    assert process_pids(guest)[CELERY_WORKER] is not None
    job = fed.rest(GUEST).trigger("lr2")
    view = fed.wait_job(job, timeout=420)
    assert view.status == "success", view.reason
    assert [t.status for t in view.tasks] == ["success"] * 5
    assert fed.rest(GUEST).run_state("lr2", job) in ("success", "running")

    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            # The guest's Airflow ran the job on PostgreSQL; a Celery task id marks each try that
            # went through the broker to the worker (the LocalExecutor leaves it empty).
            rows = conn.execute(
                sa.text(
                    "select task_id, state, external_executor_id from task_instance "
                    "where dag_id = 'lr2' and run_id = :r"
                ),
                {"r": job},
            ).all()
            assert sorted(r[0] for r in rows) == sorted(t.task_name for t in view.tasks)
            assert all(r[1] == "success" and r[2] for r in rows), rows
            # The party service keeps its jobs in the same database.
            jobs = conn.execute(sa.text("select status from fate_job where job_id = :r"), {"r": job}).all()
            assert [r[0] for r in jobs] == ["success"]
    finally:
        engine.dispose()
    assert redis.Redis.from_url(redis_url).info("stats")["total_commands_processed"] > 0
