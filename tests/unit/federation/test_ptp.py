"""The gateway's PTP endpoint (FATE's "osx" transport), over real gRPC between two mTLS gateways.

Guest 9999 and host 10000 each run an in-process :class:`GatewayServer` with ``ptp_listen`` on an
ephemeral loopback port; the tests speak the generated ``org.ppc.ptp`` stub to them, as pyfate does.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from fate_airflow.core.errors import ConfigError
from fate_airflow.core.types import Party
from fate_airflow.federation.chunks import Checksum
from fate_airflow.federation.config import GatewayConfig, check_ptp_listen
from fate_airflow.federation.errors import ProtocolError
from fate_airflow.federation.grpc import GatewayServer
from fate_airflow.federation.grpc.localnet import (
    PartyFiles,
    free_port,
    gateway_config,
    gateway_document,
    provision,
)
from fate_airflow.federation.ptp import (
    CODE_KEY,
    CODE_NOT_FOUND,
    CODE_SUCCESS,
    CODE_TIMEOUT,
    OrderingTags,
    parse_topic,
    pop_wait_seconds,
)
from fate_airflow.federation.spool import MessageKey, Spool
from fate_airflow.proto.ptp import osx_pb2, osx_pb2_grpc

GUEST, HOST = "9999", "10000"
#: The host's gateway accepts small messages only, to test the size limit cheaply.
HOST_MAX_MESSAGE = 1 << 20


@dataclass
class Pair:
    """Two gateways and how to (re)start them."""

    root: Path
    files: dict[str, PartyFiles]
    listen: dict[str, str]
    servers: dict[str, GatewayServer]

    def config(self, party: str) -> GatewayConfig:
        other = HOST if party == GUEST else GUEST
        extra: dict[str, Any] = {"ptp_listen": "127.0.0.1:0", "spool": {"fsync": "never"}}
        if party == HOST:
            extra["limits"] = {"max_message_bytes": HOST_MAX_MESSAGE}
        return gateway_config(
            gateway_document(
                party,
                listen=self.listen[party],
                data_dir=self.root / f"gw-{party}",
                routes={other: self.listen[other]},
                files=self.files,
                **extra,
            )
        )

    def start(self, party: str) -> GatewayServer:
        server = GatewayServer(self.config(party))
        server.start()
        self.servers[party] = server
        return server

    def stub(self, party: str) -> osx_pb2_grpc.PrivateTransferTransportStub:
        address = self.servers[party].ptp_address
        assert address is not None
        return osx_pb2_grpc.PrivateTransferTransportStub(grpc.insecure_channel(address))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PartyFiles]:
    return provision(tmp_path_factory.mktemp("ptp-pki"), [GUEST, HOST])


@contextmanager
def _pair(root: Path, files: dict[str, PartyFiles]) -> Iterator[Pair]:
    pair = Pair(root, files, {p: f"127.0.0.1:{free_port()}" for p in (GUEST, HOST)}, {})
    try:
        pair.start(GUEST)
        pair.start(HOST)
        yield pair
    finally:
        for server in pair.servers.values():
            server.stop(0)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, pki: dict[str, PartyFiles]) -> Iterator[Pair]:
    with _pair(tmp_path_factory.mktemp("ptp"), pki) as started:
        yield started


_sessions = iter(range(1_000_000))


@pytest.fixture
def session() -> str:
    """A fresh federation id per test (ids with '_' and '-' as FATE-Flow makes them)."""
    return f"202611290800{next(_sessions):04d}_psi-0_0"


def topic(
    session: str, src: str, dst: str, suffix: str = "obj", src_role: str = "guest", dst_role: str = "host"
) -> str:
    return f"{session}-{src_role}-{src}-{dst_role}-{dst}-{suffix}"


def message(name: str, tag: str, body: bytes) -> bytes:
    """A pyfate ``osx.Message`` as ``_send_obj`` builds it."""
    head = {"content_type": "text/plain", "app_id": HOST, "message_id": name, "correlation_id": tag}
    return bytes(osx_pb2.Message(head=json.dumps(head).encode(), body=body).SerializeToString())


def push(
    stub: osx_pb2_grpc.PrivateTransferTransportStub,
    session: str,
    name: str,
    payload: bytes,
    *,
    src: str = GUEST,
    dst: str = HOST,
    trace: str = "1764403200_42",
) -> osx_pb2.TransportOutbound:
    metadata = [
        ("x-ptp-trace-id", trace),
        ("x-ptp-session-id", session),
        ("x-ptp-target-node-id", dst),
        ("x-ptp-from-node-id", src),
        ("x-ptp-tech-provider-code", "FATE"),
    ]
    reply: osx_pb2.TransportOutbound = stub.push(
        osx_pb2.PushInbound(topic=name, payload=payload), metadata=metadata, timeout=30
    )
    return reply


def pop(
    stub: osx_pb2_grpc.PrivateTransferTransportStub,
    session: str,
    name: str,
    *,
    party: str = HOST,
    timeout_ms: int = 10_000,
) -> osx_pb2.TransportOutbound:
    metadata = [("x-ptp-session-id", session), ("x-ptp-from-node-id", party), ("x-ptp-trace-id", "t")]
    reply: osx_pb2.TransportOutbound = stub.pop(
        osx_pb2.PopInbound(topic=name, timeout=timeout_ms), metadata=metadata, timeout=60
    )
    return reply


def refusal(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


def ptp_code(err: grpc.RpcError) -> str | None:
    return dict(err.trailing_metadata() or ()).get(CODE_KEY)  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- pure logic


def test_topics_split_even_with_dashes_in_ids_and_suffixes() -> None:
    parsed = parse_topic(
        "j-1_t-guest-9999-host-10000-w-3", "j-1_t", src_party_id="9999", dst_party_id="10000"
    )
    assert (parsed.src, parsed.dst, parsed.suffix) == (Party("guest", "9999"), Party("host", "10000"), "w-3")
    dashed = parse_topic("s-host-a-b-arbiter-c-d-e", "s", src_party_id="a-b", dst_party_id="c-d")
    assert (dashed.src, dashed.dst, dashed.suffix) == (Party("host", "a-b"), Party("arbiter", "c-d"), "e")
    with pytest.raises(ProtocolError, match="does not belong to session 'other'"):
        parse_topic("s-guest-1-host-2-x", "other")
    with pytest.raises(ProtocolError, match="not of the form"):
        parse_topic("s-guest-1-host-2-", "s")


def test_ordering_tags_increase_and_compare_as_strings() -> None:
    tags = OrderingTags()
    drawn = [tags.next() for _ in range(1000)]
    assert drawn == sorted(drawn) and len(set(drawn)) == 1000
    assert all(len(t) == OrderingTags.WIDTH for t in drawn)
    assert int(drawn[0]) >= time.time_ns() - 10**10  # based on the clock: survives a restart


def test_pop_wait_is_milliseconds_capped_by_the_deadline() -> None:
    assert pop_wait_seconds(1500, None) == 1.5
    assert pop_wait_seconds(36_000_000, None) == 36_000.0  # pyfate's default: 10 h
    assert pop_wait_seconds(0, None) > 0
    assert pop_wait_seconds(60_000, 2.0) < 2.0


@pytest.mark.parametrize(
    "listen", ["127.0.0.1:9390", "localhost:9390", "[::1]:9390", "127.0.0.2:1", "unix:/tmp/p.sock"]
)
def test_ptp_listen_accepts_loopback_and_unix_sockets(listen: str) -> None:
    assert check_ptp_listen(listen) == listen


@pytest.mark.parametrize("listen", ["0.0.0.0:9390", "10.0.0.2:9390", "[::]:9390", "gateway:9390", "unix:"])
def test_ptp_listen_on_a_reachable_address_is_refused(tmp_path: Path, listen: str) -> None:
    doc = gateway_document(GUEST, listen="127.0.0.1:0", data_dir=tmp_path, routes={}, insecure=True)
    with pytest.raises(ConfigError, match=r"^ptp_listen: "):
        GatewayConfig.from_dict({**doc, "ptp_listen": listen})


def test_relative_unix_socket_resolves_against_the_config_file(tmp_path: Path) -> None:
    doc = gateway_document(GUEST, listen="127.0.0.1:0", data_dir="d", routes={}, insecure=True)
    config = GatewayConfig.from_dict({**doc, "ptp_listen": "unix:run/ptp.sock"}, tmp_path)
    assert config.ptp_listen == f"unix:{tmp_path / 'run' / 'ptp.sock'}"


def _spool_put(spool: Spool, key: MessageKey, data: bytes) -> None:
    writer = spool.begin(key, 1 << 20, len(data))
    assert writer is not None
    writer.write(data)
    checksum = Checksum(writer.checksum)
    checksum.update(data)
    writer.commit(len(data), checksum.digest())


def test_spool_queue_is_ordered_by_tag_and_wakes_a_waiter(tmp_path: Path) -> None:
    spool = Spool(tmp_path, fsync=False)
    src, dst = Party("guest", GUEST), Party("host", HOST)

    def key(tag: str, name: str = "q") -> MessageKey:
        return MessageKey("s", name, tag, src, dst)

    for tag in ("0003", "0001", "0002"):
        _spool_put(spool, key(tag), tag.encode())
    _spool_put(spool, key("0000", "other"), b"another queue")
    assert [e.key.tag for e in spool.queued(HOST, "s", "q")] == ["0001", "0002", "0003"]
    assert [e.key.tag for e in spool.queued(HOST, "s", "q", limit=1)] == ["0001"]
    assert spool.queued(GUEST, "s", "q") == [] and spool.queued(HOST, "t", "q") == []
    assert spool.wait_queued(HOST, "s", "empty", 0.2) is None
    later = threading.Timer(0.3, lambda: _spool_put(spool, key("0009", "late"), b"late"))
    later.start()
    start = time.monotonic()
    entry = spool.wait_queued(HOST, "s", "late", 10.0)
    assert entry is not None and entry.key.tag == "0009"
    assert time.monotonic() - start < 0.9  # woken by the publication, not by the 1 s poll
    later.join()


# ----------------------------------------------------------------------------- over gRPC


@pytest.mark.timeout(60)
def test_push_at_guest_pops_at_host(pair: Pair, session: str) -> None:
    name = topic(session, GUEST, HOST)
    payload = message("w", "0", b"\x00\x01 opaque pickled bytes")
    reply = push(pair.stub(GUEST), session, name, payload)
    assert reply.code == CODE_SUCCESS, reply.message
    got = pop(pair.stub(HOST), session, name)
    assert (got.code, got.payload) == (CODE_SUCCESS, payload)
    # Taken: the queue is empty again (and the spool holds only the tombstone).
    again = pop(pair.stub(HOST), session, name, timeout_ms=300)
    assert again.code == CODE_TIMEOUT and not again.payload
    assert not pair.servers[HOST].spool.queued(HOST, session, name)


@pytest.mark.timeout(60)
def test_fifo_per_topic_with_a_waiting_receiver(pair: Pair, session: str) -> None:
    name = topic(session, GUEST, HOST, "table-0")
    payloads = [message("t", "0", f"chunk {i}".encode() * (i + 1)) for i in range(50)]
    received: list[bytes] = []

    def receive() -> None:
        stub = pair.stub(HOST)
        for _ in payloads:
            reply = pop(stub, session, name)
            assert reply.code == CODE_SUCCESS, reply.message
            received.append(reply.payload)

    receiver = threading.Thread(target=receive)
    receiver.start()  # waits before anything was pushed
    start = time.monotonic()
    sender = pair.stub(GUEST)
    for i, payload in enumerate(payloads):
        assert push(sender, session, name, payload, trace=f"t_{i}").code == CODE_SUCCESS
    receiver.join(30)
    assert received == payloads
    # A waiting pop is woken by the arrival, not by polling (50 polls would take ~50 s).
    assert time.monotonic() - start < 20


@pytest.mark.timeout(60)
def test_pop_times_out_with_the_ptp_timeout_code(pair: Pair, session: str) -> None:
    name = topic(session, GUEST, HOST, "never")
    start = time.monotonic()
    reply = pop(pair.stub(HOST), session, name, timeout_ms=500)
    waited = time.monotonic() - start
    assert reply.code == CODE_TIMEOUT and not reply.payload
    assert "no message on topic" in reply.message and name in reply.message
    assert 0.4 < waited < 5


@pytest.mark.timeout(60)
def test_pop_honours_the_grpc_deadline(pair: Pair, session: str) -> None:
    name = topic(session, GUEST, HOST, "never")
    metadata = [("x-ptp-session-id", session), ("x-ptp-from-node-id", HOST)]
    start = time.monotonic()
    reply = pair.stub(HOST).pop(
        osx_pb2.PopInbound(topic=name, timeout=60_000), metadata=metadata, timeout=1.5
    )
    assert reply.code == CODE_TIMEOUT
    assert time.monotonic() - start < 1.5


@pytest.mark.timeout(60)
def test_a_retried_push_is_delivered_once(pair: Pair, session: str) -> None:
    name = topic(session, GUEST, HOST)
    payload = message("w", "1", b"once")
    for _ in range(2):  # same trace id and bytes: the client re-sent after losing the reply
        assert push(pair.stub(GUEST), session, name, payload, trace="1764403200_7").code == CODE_SUCCESS
    assert pop(pair.stub(HOST), session, name).payload == payload
    assert pop(pair.stub(HOST), session, name, timeout_ms=300).code == CODE_TIMEOUT


@pytest.mark.timeout(60)
def test_peek_does_not_take_the_message(pair: Pair, session: str) -> None:
    name = topic(session, GUEST, HOST)
    stub = pair.stub(HOST)
    metadata = [("x-ptp-session-id", session), ("x-ptp-from-node-id", HOST)]
    assert stub.peek(osx_pb2.PeekInbound(topic=name), metadata=metadata).code == CODE_NOT_FOUND
    payload = message("p", "0", b"peeked")
    push(pair.stub(GUEST), session, name, payload)
    assert stub.peek(osx_pb2.PeekInbound(topic=name), metadata=metadata).payload == payload
    assert pop(stub, session, name).payload == payload


@pytest.mark.timeout(60)
def test_a_component_can_only_push_as_its_own_party(pair: Pair, session: str) -> None:
    stub = pair.stub(GUEST)
    # x-ptp-from-node-id names a party this gateway does not serve.
    err = refusal(lambda: push(stub, session, topic(session, HOST, GUEST), b"x", src=HOST, dst=GUEST))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert "party 10000" in err.details() and "not served by this gateway" in err.details()  # type: ignore[attr-defined]
    assert ptp_code(err) == "E0000000403"
    # The topic claims another sender than the caller.
    err = refusal(lambda: push(stub, session, topic(session, "8888", HOST), b"x"))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert "party 8888 as its sender" in err.details() and "party 9999" in err.details()  # type: ignore[attr-defined]
    # The topic's destination disagrees with x-ptp-target-node-id.
    err = refusal(lambda: push(stub, session, topic(session, GUEST, "10001"), b"x"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "party 10001" in err.details() and "says party 10000" in err.details()  # type: ignore[attr-defined]
    # The topic belongs to another session.
    err = refusal(lambda: push(stub, session, topic("other", GUEST, HOST), b"x"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert f"does not belong to session {session!r}" in err.details()  # type: ignore[attr-defined]


@pytest.mark.timeout(60)
def test_a_component_can_only_pop_its_own_partys_messages(pair: Pair, session: str) -> None:
    # At the host's gateway, as the host, a topic addressed to the guest.
    err = refusal(
        lambda: pop(pair.stub(HOST), session, topic(session, HOST, GUEST, src_role="host", dst_role="guest"))
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert "addressed to party 9999" in err.details() and "party 10000" in err.details()  # type: ignore[attr-defined]
    # At the host's gateway, claiming to be the guest.
    err = refusal(lambda: pop(pair.stub(HOST), session, topic(session, HOST, GUEST), party=GUEST))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert "party 9999" in err.details() and "not served" in err.details()  # type: ignore[attr-defined]
    # No session header at all.
    err = refusal(
        lambda: pair.stub(HOST).pop(osx_pb2.PopInbound(topic="x"), metadata=[("x-ptp-from-node-id", HOST)])
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "x-ptp-session-id" in err.details()  # type: ignore[attr-defined]


@pytest.mark.timeout(60)
def test_unroutable_and_oversized_pushes_are_refused_clearly(pair: Pair, session: str) -> None:
    err = refusal(lambda: push(pair.stub(GUEST), session, topic(session, GUEST, "10001"), b"x", dst="10001"))
    assert err.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    assert "no route to party 10001" in err.details()  # type: ignore[attr-defined]
    big = b"\x00" * (HOST_MAX_MESSAGE + 1)
    # Refused by the destination gateway's limit, after travelling there...
    err = refusal(lambda: push(pair.stub(GUEST), session, topic(session, GUEST, HOST), big))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    assert "party 10000 accepts at most" in err.details() and ptp_code(err) == "E0000000413"  # type: ignore[attr-defined]
    # ...or at once by the sender's own gateway.
    err = refusal(
        lambda: push(
            pair.stub(HOST),
            session,
            topic(session, HOST, GUEST, src_role="host", dst_role="guest"),
            big,
            src=HOST,
            dst=GUEST,
        )
    )
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    assert "limits.max_message_bytes" in err.details() and ptp_code(err) == "E0000000413"  # type: ignore[attr-defined]


@pytest.mark.timeout(60)
def test_release_drops_the_session_and_ends_pops(pair: Pair, session: str) -> None:
    name = topic(session, GUEST, HOST)
    push(pair.stub(GUEST), session, name, message("w", "0", b"left over"))
    stub = pair.stub(HOST)
    # pyfate's own release names no party: nothing is dropped (other roles may still be reading).
    anonymous = stub.release(osx_pb2.ReleaseInbound(), metadata=[("x-ptp-session-id", session)])
    assert anonymous.code == CODE_SUCCESS and "nothing dropped" in anonymous.message
    assert pair.servers[HOST].spool.queued(HOST, session, name)
    # A waiting pop of the session ends as soon as the party releases it.
    waiting: list[osx_pb2.TransportOutbound] = []
    other = topic(session, GUEST, HOST, "never")
    waiter = threading.Thread(target=lambda: waiting.append(pop(stub, session, other, timeout_ms=30_000)))
    waiter.start()
    time.sleep(0.3)
    released = stub.release(
        osx_pb2.ReleaseInbound(), metadata=[("x-ptp-session-id", session), ("x-ptp-from-node-id", HOST)]
    )
    assert released.code == CODE_SUCCESS and "1 message(s) dropped" in released.message
    waiter.join(10)
    assert waiting and waiting[0].code == CODE_TIMEOUT and "released" in waiting[0].message
    start = time.monotonic()
    after = pop(stub, session, name, timeout_ms=10_000)
    assert after.code == CODE_TIMEOUT and "released" in after.message
    assert time.monotonic() - start < 2  # at once, not after the timeout


@pytest.mark.timeout(60)
def test_a_message_survives_a_restart_of_the_destination_gateway(
    tmp_path: Path, pki: dict[str, PartyFiles]
) -> None:
    with _pair(tmp_path, pki) as restarted:
        session = "durable_0"
        name = topic(session, GUEST, HOST)
        payload = message("w", "0", b"kept on disk")
        assert push(restarted.stub(GUEST), session, name, payload).code == CODE_SUCCESS
        restarted.servers[HOST].stop(0)
        restarted.start(HOST)  # new process state, same spool folder
        got = pop(restarted.stub(HOST), session, name)
        assert (got.code, got.payload) == (CODE_SUCCESS, payload)


@pytest.mark.timeout(60)
def test_the_endpoint_can_be_a_unix_socket(tmp_path: Path) -> None:
    doc = gateway_document(GUEST, listen="127.0.0.1:0", data_dir=tmp_path / "gw", routes={}, insecure=True)
    socket = tmp_path / "ptp.sock"
    server = GatewayServer(GatewayConfig.from_dict({**doc, "ptp_listen": f"unix:{socket}"}))
    server.start()
    try:
        assert server.ptp_address == f"unix:{socket}" and server.ptp_port == 0
        session = "local_0"
        name = topic(session, GUEST, GUEST, src_role="guest", dst_role="local")
        stub = osx_pb2_grpc.PrivateTransferTransportStub(grpc.insecure_channel(f"unix:{socket}"))
        payload = message("w", "0", b"same party")
        assert push(stub, session, name, payload, dst=GUEST).code == CODE_SUCCESS
        assert pop(stub, session, name, party=GUEST).payload == payload
    finally:
        server.stop(0)


def test_a_gateway_without_ptp_listen_serves_no_endpoint(tmp_path: Path) -> None:
    doc = gateway_document(GUEST, listen="127.0.0.1:0", data_dir=tmp_path / "gw", routes={}, insecure=True)
    server = GatewayServer(gateway_config(doc))
    server.start()
    try:
        assert server.ptp_address is None and server.ptp_port == 0
    finally:
        server.stop(0)
