"""The Airflow REST client's handling of transient failures, against a loopback HTTP server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fate_airflow.core.errors import SchedulingError
from fate_airflow.deploy.airflow_rest import AirflowRestClient, AirflowRestEngine

DB_ERROR = {"detail": {"reason": "Database error", "statement": "hidden", "message": "Serious error"}}


class FakeAirflow(ThreadingHTTPServer):
    """Answers ``/auth/token`` and fails the first ``failures`` API calls with Airflow's 500."""

    def __init__(self, failures: int, status: int = 500) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.failures = failures
        self.status = status
        #: Seconds the failing answers take (longer than the client's timeout: a read timeout).
        self.stall = 0.0
        self.calls: list[tuple[str, str]] = []


class _Handler(BaseHTTPRequestHandler):
    server: FakeAirflow

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path == "/auth/token":
            self._answer(201, {"access_token": "t"})
            return
        self.server.calls.append((self.command, self.path))
        if self.server.failures > 0:
            self.server.failures -= 1
            if self.server.stall:
                time.sleep(self.server.stall)
            self._answer(self.server.status, DB_ERROR)
            return
        self._answer(200, {"state": "failed", "dag_run_id": "r1"})

    do_GET = do_POST = do_PATCH = _handle


@pytest.fixture
def airflow() -> Iterator[FakeAirflow]:
    server = FakeAirflow(failures=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def client(server: FakeAirflow, timeout: float = 5) -> AirflowRestClient:
    host, port = server.server_address[:2]
    return AirflowRestClient(f"http://{host!s}:{port}", "admin", "admin", timeout=timeout)


def test_an_idempotent_request_survives_a_busy_database(airflow: FakeAirflow) -> None:
    airflow.failures = 2
    resp = client(airflow).request("PATCH", "/api/v2/dags/d/dagRuns/r1", ok=(200,), json={"state": "failed"})
    assert resp.status_code == 200
    assert airflow.calls == [("PATCH", "/api/v2/dags/d/dagRuns/r1")] * 3


def test_a_post_is_not_repeated_and_the_error_names_the_call(airflow: FakeAirflow) -> None:
    airflow.failures = 1
    with pytest.raises(SchedulingError, match=r"POST /api/v2/dags/d/dagRuns: HTTP 500: .*Database error"):
        client(airflow).trigger("d")
    assert airflow.calls == [("POST", "/api/v2/dags/d/dagRuns")]


def test_retries_are_bounded(airflow: FakeAirflow) -> None:
    airflow.failures = 10
    airflow.status = 503
    with pytest.raises(SchedulingError, match="HTTP 503"):
        client(airflow).run_state("d", "r1")
    assert len(airflow.calls) == 4


def test_creating_a_named_run_is_repeated_since_it_cannot_run_twice(
    airflow: FakeAirflow, tmp_path: Path
) -> None:
    airflow.failures = 1
    host, port = airflow.server_address[:2]
    engine = AirflowRestEngine(f"http://{host!s}:{port}", "admin", "admin", tmp_path)
    engine.create_run("d", "r1", {})
    assert airflow.calls == [
        ("POST", "/api/v2/dags/d/dagRuns"),
        ("POST", "/api/v2/dags/d/dagRuns"),
        ("PATCH", "/api/v2/dags/d"),
    ]


def test_an_idempotent_request_outlives_an_api_server_too_busy_to_answer_in_time(
    airflow: FakeAirflow,
) -> None:
    # Seen with three jobs created at once: the api-server's SQLite was locked by DAG parsing and a
    # party refused a job because creating its run timed out.
    airflow.failures, airflow.stall = 1, 1.0
    resp = client(airflow, timeout=0.3).request("GET", "/api/v2/dags/d/dagRuns/r1", ok=(200,))
    assert resp.status_code == 200
    assert len(airflow.calls) == 2


def test_a_post_that_timed_out_is_not_repeated(airflow: FakeAirflow) -> None:
    airflow.failures, airflow.stall = 1, 1.0
    with pytest.raises(SchedulingError, match="unreachable"):
        client(airflow, timeout=0.3).trigger("d")
    time.sleep(1.0)
    assert airflow.calls == [("POST", "/api/v2/dags/d/dagRuns")]
