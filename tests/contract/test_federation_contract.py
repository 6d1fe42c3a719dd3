"""One contract for every Federation / ControlClient implementation (in-memory and gRPC).

The base class holds the tests; each subclass only says how to build a "world" of parties. The gRPC
world is three real gateways on 127.0.0.1 (ephemeral ports, mutual TLS) with recording command
handlers; the parties are guest 9999, host 10000 (also arbiter) and a second host 10001.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fate_airflow.core.errors import FederationError, FederationTimeout, SchedulingError
from fate_airflow.core.types import Party
from fate_airflow.federation.api import (
    Ack,
    ControlClient,
    CreateJob,
    CreateJobReply,
    Federation,
    FederationSession,
    FetchTaskLog,
    JobDetail,
    JobView,
    PartyTaskView,
    PrepareTask,
    QueryJob,
    ReportTaskStatus,
    RerunJob,
    StopJob,
    TaskLog,
    TaskStartDecision,
    TaskView,
)
from fate_airflow.federation.errors import PayloadError
from fate_airflow.federation.grpc import GatewayServer, GrpcControlClient, GrpcFederation
from fate_airflow.federation.grpc.localnet import (
    client_config,
    free_port,
    gateway_config,
    gateway_document,
    provision,
)
from fate_airflow.federation.inmemory import InMemoryControlNetwork, InMemoryHub

GUEST = Party("guest", "9999")
HOST = Party("host", "10000")
ARBITER = Party("arbiter", "10000")  # same party id as HOST: a multi-role party
HOST2 = Party("host", "10001")
PARTIES = (GUEST, HOST, HOST2, ARBITER)
PARTY_IDS = ("9999", "10000", "10001")


class RecordingHandler:
    """A CommandHandler that records (src_party_id, command) and gives canned replies."""

    def __init__(self, party_id: str) -> None:
        self.party_id = party_id
        self.calls: list[tuple[str, Any]] = []

    def create_job(self, src_party_id: str, cmd: CreateJob) -> CreateJobReply:
        self.calls.append((src_party_id, cmd))
        return CreateJobReply(accepted=True, reason=f"created at {self.party_id}")

    def prepare_task(self, src_party_id: str, cmd: PrepareTask) -> TaskStartDecision:
        self.calls.append((src_party_id, cmd))
        return TaskStartDecision("start", task_version=3)

    def report_task_status(self, src_party_id: str, cmd: ReportTaskStatus) -> Ack:
        self.calls.append((src_party_id, cmd))
        return Ack(True, "recorded")

    def query_job(self, src_party_id: str, cmd: QueryJob) -> JobView:
        self.calls.append((src_party_id, cmd))
        if cmd.job_id == "fail":
            raise SchedulingError("job fail is broken on purpose")
        return JobView(
            job_id=cmd.job_id,
            found=True,
            dag_id="dag",
            status="running",
            initiator_party_id="9999",
            tasks=(
                TaskView(
                    "reader_0",
                    1,
                    "running",
                    (PartyTaskView("10000", ("host", "arbiter"), "success", detail={"rows": 3}),),
                ),
            ),
            detail=JobDetail(started=1_764_700_001.5, parties=(Party("host", "10000"),)),
        )

    def stop_job(self, src_party_id: str, cmd: StopJob) -> Ack:
        self.calls.append((src_party_id, cmd))
        return Ack(True, "stopping")

    def rerun_job(self, src_party_id: str, cmd: RerunJob) -> Ack:
        self.calls.append((src_party_id, cmd))
        return Ack(False, "nothing to rerun")

    def fetch_task_log(self, src_party_id: str, cmd: FetchTaskLog) -> TaskLog:
        self.calls.append((src_party_id, cmd))
        lines = tuple(f"[INFO] line {i} of {cmd.task_name} at {self.party_id}" for i in range(3))
        return TaskLog(self.party_id, True, lines[-cmd.max_lines :], truncated=cmd.max_lines < 3)


class World(ABC):
    """Parties of one test world."""

    handlers: dict[str, RecordingHandler]

    @abstractmethod
    def federation(self, session: FederationSession) -> Federation: ...

    @abstractmethod
    def control(self, party_id: str) -> ControlClient: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release everything."""


class InMemoryWorld(World):
    def __init__(self) -> None:
        self.hub = InMemoryHub()
        self.network = InMemoryControlNetwork()
        self.handlers = {p: RecordingHandler(p) for p in PARTY_IDS}
        for party_id, handler in self.handlers.items():
            self.network.register(party_id, handler)

    def federation(self, session: FederationSession) -> Federation:
        return self.hub.federation(session)

    def control(self, party_id: str) -> ControlClient:
        return self.network.client(party_id)


class GrpcWorld(World):
    def __init__(self, root: Path) -> None:
        self.files = provision(root / "pki", PARTY_IDS)
        ports = {p: free_port() for p in PARTY_IDS}
        self.addresses = {p: f"127.0.0.1:{port}" for p, port in ports.items()}
        self.handlers = {p: RecordingHandler(p) for p in PARTY_IDS}
        self.servers: list[GatewayServer] = []
        for party in PARTY_IDS:
            routes = {other: self.addresses[other] for other in PARTY_IDS if other != party}
            doc = gateway_document(
                party,
                listen=self.addresses[party],
                data_dir=root / f"gw-{party}",
                routes=routes,
                files=self.files,
            )
            server = GatewayServer(gateway_config(doc), handler=self.handlers[party])
            server.start()
            self.servers.append(server)
        self._open: list[Any] = []

    def federation(self, session: FederationSession) -> Federation:
        party = session.local.party_id
        fed = GrpcFederation(
            session, client_config(party, self.addresses[party], self.files, send_timeout=5.0)
        )
        self._open.append(fed)
        return fed

    def control(self, party_id: str) -> ControlClient:
        client = GrpcControlClient(client_config(party_id, self.addresses[party_id], self.files))
        self._open.append(client)
        return client

    def close(self) -> None:
        for item in self._open:
            item.close()
        for server in self.servers:
            server.stop(0)


def _session(job_id: str, version: int = 0, local: Party = GUEST) -> FederationSession:
    return FederationSession(job_id, "hetero_lr_0", version, local, PARTIES)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return (
            isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and bool(np.all(a == b))
        )
    if isinstance(a, np.generic):
        return type(a) is type(b) and a == b
    if isinstance(a, (list, tuple)):
        return (
            type(a) is type(b) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, dict):
        return type(b) is dict and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, float) and a != a:
        return isinstance(b, float) and b != b
    return type(a) is type(b) and a == b


PAYLOADS: list[tuple[str, Any]] = [
    ("none", None),
    ("bools", [True, False]),
    ("small_int", -42),
    ("paillier_int", 3**1300 + 17),  # ~2060-bit ciphertext-sized int
    ("negative_big_int", -(2**4097) + 5),
    ("float", 3.141592653589793),
    ("nan_inf", [float("nan"), float("inf"), -0.0]),
    ("str", "héllo wörld ✓"),
    ("bytes", bytes(range(256)) * 4),
    ("numpy_float", np.linspace(0, 1, 1000).reshape(10, 100)),
    ("numpy_int_bigendian", np.arange(24, dtype=">i4").reshape(2, 3, 4)),
    ("numpy_bool", np.array([True, False, True])),
    ("numpy_empty", np.zeros((0, 3), dtype=np.float32)),
    ("numpy_noncontiguous", np.arange(100.0).reshape(10, 10)[:, ::3]),
    ("numpy_scalars", [np.float32(1.5), np.int64(-7), np.bool_(True), np.complex128(1 + 2j)]),
    ("nested", {"w": [np.ones(3), (1, 2**200)], "meta": {"epoch": 3, "loss": 0.25, "tags": ("a", "b")}}),
    ("empty_containers", [[], (), {}]),
    ("ciphertext_batch", [2**2047 + i for i in range(200)]),
]


class FederationContract:
    """The contract; subclasses provide :meth:`make_world`."""

    __test__ = False

    @abstractmethod
    def make_world(self, root: Path) -> World: ...

    @pytest.fixture(scope="class")
    def world(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
        built = self.make_world(tmp_path_factory.mktemp(type(self).__name__))
        yield built
        built.close()

    @pytest.fixture
    def job(self) -> str:
        return f"job_{uuid.uuid4().hex[:12]}"

    # ------------------------------------------------------------------ data plane

    @pytest.mark.parametrize(("label", "value"), PAYLOADS, ids=[p[0] for p in PAYLOADS])
    def test_roundtrip_every_payload_type(self, world: World, job: str, label: str, value: Any) -> None:
        guest = world.federation(_session(job))
        host = world.federation(_session(job, local=HOST))
        guest.remote(value, label, "0", [HOST])
        [received] = host.get(label, "0", [GUEST], timeout=10)
        assert _equal(value, received), label

    def test_large_array_beyond_grpc_default_limit(self, world: World, job: str) -> None:
        value = np.random.default_rng(0).random((3, 1 << 19))  # 12 MiB > gRPC's 4 MiB default
        world.federation(_session(job)).remote(value, "big", "0", [HOST])
        [received] = world.federation(_session(job, local=HOST)).get("big", "0", [GUEST], timeout=20)
        assert _equal(value, received)

    def test_get_results_follow_parties_order(self, world: World, job: str) -> None:
        world.federation(_session(job, local=HOST)).remote("from 10000", "grad", "1", [GUEST])
        world.federation(_session(job, local=HOST2)).remote("from 10001", "grad", "1", [GUEST])
        guest = world.federation(_session(job))
        assert guest.get("grad", "1", [HOST2, HOST], timeout=10) == ["from 10001", "from 10000"]

    def test_remote_to_several_parties(self, world: World, job: str) -> None:
        world.federation(_session(job)).remote({"k": 1}, "pubkey", "0", [HOST, HOST2, ARBITER])
        for local in (HOST, HOST2, ARBITER):
            assert world.federation(_session(job, local=local)).get("pubkey", "0", [GUEST], timeout=10) == [
                {"k": 1}
            ]

    def test_sessions_never_mix(self, world: World, job: str) -> None:
        world.federation(_session(job, version=0)).remote("v0", "x", "t", [HOST])
        world.federation(_session(job, version=1)).remote("v1", "x", "t", [HOST])
        assert world.federation(_session(job, version=1, local=HOST)).get("x", "t", [GUEST], timeout=10) == [
            "v1"
        ]
        assert world.federation(_session(job, version=0, local=HOST)).get("x", "t", [GUEST], timeout=10) == [
            "v0"
        ]
        with pytest.raises(FederationTimeout):
            world.federation(_session(job, version=2, local=HOST)).get("x", "t", [GUEST], timeout=0.3)

    def test_get_timeout_names_party_name_and_tag(self, world: World, job: str) -> None:
        host = world.federation(_session(job, local=HOST))
        with pytest.raises(FederationTimeout) as info:
            host.get("never_sent", "iter.7", [GUEST], timeout=0.5)
        message = str(info.value)
        assert "guest:9999" in message and "never_sent" in message and "iter.7" in message
        assert (info.value.party, info.value.name, info.value.tag) == ("guest:9999", "never_sent", "iter.7")

    def test_timeout_names_the_missing_party_among_several(self, world: World, job: str) -> None:
        world.federation(_session(job, local=HOST)).remote(1, "g", "0", [GUEST])
        with pytest.raises(FederationTimeout) as info:
            world.federation(_session(job)).get("g", "0", [HOST, HOST2], timeout=0.5)
        assert info.value.party == "host:10001"

    def test_duplicate_send_is_an_error(self, world: World, job: str) -> None:
        guest = world.federation(_session(job))
        guest.remote(1, "dup", "0", [HOST])
        with pytest.raises(FederationError, match="duplicate"):
            guest.remote(2, "dup", "0", [HOST])
        assert world.federation(_session(job, local=HOST)).get("dup", "0", [GUEST], timeout=10) == [1]

    @pytest.mark.parametrize(
        "value",
        [{1, 2}, object(), {1: "int key"}, np.array(["text"]), np.array([None], dtype=object), [lambda: 0]],
        ids=["set", "object", "int_key", "str_array", "object_array", "function"],
    )
    def test_unsupported_payload_refused_before_sending(self, world: World, job: str, value: Any) -> None:
        guest = world.federation(_session(job))
        with pytest.raises(PayloadError, match=r"cannot send|only str keys|dtype"):
            guest.remote(value, "bad", "0", [HOST])
        with pytest.raises(FederationTimeout):
            world.federation(_session(job, local=HOST)).get("bad", "0", [GUEST], timeout=0.3)
        guest.remote("fine", "bad", "0", [HOST])  # nothing was recorded as sent

    def test_multi_role_party_talks_to_itself(self, world: World, job: str) -> None:
        host = world.federation(_session(job, local=HOST))
        arbiter = world.federation(_session(job, local=ARBITER))
        host.remote("to arbiter", "m", "0", [ARBITER])
        arbiter.remote("to host", "m", "0", [HOST])
        assert arbiter.get("m", "0", [HOST], timeout=10) == ["to arbiter"]
        assert host.get("m", "0", [ARBITER], timeout=10) == ["to host"]

    def test_a_message_is_received_once(self, world: World, job: str) -> None:
        world.federation(_session(job)).remote("once", "o", "0", [HOST])
        host = world.federation(_session(job, local=HOST))
        assert host.get("o", "0", [GUEST], timeout=10) == ["once"]
        with pytest.raises(FederationTimeout):
            host.get("o", "0", [GUEST], timeout=0.3)

    def test_cleanup_drops_undelivered_messages(self, world: World, job: str) -> None:
        world.federation(_session(job)).remote("stale", "s", "0", [HOST])
        host = world.federation(_session(job, local=HOST))
        assert host.cleanup() == 1
        with pytest.raises(FederationTimeout):
            host.get("s", "0", [GUEST], timeout=0.3)

    # ------------------------------------------------------------------ control plane

    @pytest.mark.parametrize(
        ("cmd", "expected"),
        [
            (
                CreateJob("j1", "dag_1", "9999", {"tasks": [{"name": "reader_0"}]}, {"k": [1, 2]}),
                CreateJobReply(True, "created at 10000"),
            ),
            (PrepareTask("j1", "reader_0", "10000"), TaskStartDecision("start", task_version=3)),
            (
                ReportTaskStatus("j1", "reader_0", 3, "9999", "failed", "boom", {"metrics": {"auc": 0.5}}),
                Ack(True, "recorded"),
            ),
            (StopJob("j1", "canceled", "user asked"), Ack(True, "stopping")),
            (RerunJob("j1", ("reader_0", "lr_0")), Ack(False, "nothing to rerun")),
            (
                FetchTaskLog("j1", "lr_0", max_lines=2),
                TaskLog(
                    "10000",
                    True,
                    ("[INFO] line 1 of lr_0 at 10000", "[INFO] line 2 of lr_0 at 10000"),
                    "",
                    True,
                ),
            ),
        ],
        ids=["create_job", "prepare_task", "report_task_status", "stop_job", "rerun_job", "fetch_task_log"],
    )
    def test_control_commands_round_trip(self, world: World, cmd: Any, expected: Any) -> None:
        handler = world.handlers["10000"]
        before = len(handler.calls)
        assert world.control("9999").call("10000", cmd) == expected
        assert handler.calls[before:] == [("9999", cmd)]  # src = the authenticated caller

    def test_query_job_round_trip(self, world: World) -> None:
        view = world.control("10001").call("10000", QueryJob("j2"))
        assert isinstance(view, JobView)
        assert view.tasks[0].parties[0] == PartyTaskView(
            "10000", ("host", "arbiter"), "success", detail={"rows": 3}
        )
        assert view.detail == JobDetail(started=1_764_700_001.5, parties=(Party("host", "10000"),))
        assert world.handlers["10000"].calls[-1] == ("10001", QueryJob("j2"))

    def test_command_to_own_party(self, world: World) -> None:
        world.control("9999").call("9999", StopJob("j3", "failed"))
        assert world.handlers["9999"].calls[-1] == ("9999", StopJob("j3", "failed"))

    def test_handler_error_arrives_as_the_same_error(self, world: World) -> None:
        with pytest.raises(SchedulingError, match="broken on purpose"):
            world.control("9999").call("10000", QueryJob("fail"))

    def test_unknown_party_is_an_error_naming_it(self, world: World) -> None:
        with pytest.raises(FederationError, match="77777"):
            world.control("9999").call("77777", QueryJob("x"))
        with pytest.raises(FederationError, match="77777"):
            world.control("9999").ping("77777")

    def test_ping(self, world: World) -> None:
        assert world.control("9999").ping("10001") >= 0.0


class TestInMemoryFederation(FederationContract):
    __test__ = True

    def make_world(self, root: Path) -> World:
        return InMemoryWorld()


class TestGrpcFederation(FederationContract):
    __test__ = True

    def make_world(self, root: Path) -> World:
        return GrpcWorld(root)
