"""Workers on their gateway's party-internal endpoint: plaintext, local only, the gateway's rules intact.

Guest 9999 and host 10000 run as gateway processes with mTLS between them; the guest's
party-internal endpoint is a unix socket, the host's a loopback TCP port (``ptp_listen``). Workers
use :attr:`GatewayClientConfig.internal_address`; one test keeps a worker on the mTLS endpoint, as
a worker on another host would be.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from fedgw_support import GUEST, HOST, Net, gateway_mesh

from fate_airflow.core.errors import FederationError
from fate_airflow.core.types import Party
from fate_airflow.federation.api import FederationSession
from fate_airflow.federation.errors import MessageTooLarge, PermissionDenied
from fate_airflow.federation.grpc import GrpcControlClient, GrpcFederation
from fate_airflow.federation.grpc.doctor import check_client
from fate_airflow.federation.grpc.localnet import free_port
from fate_airflow.federation.serde import push_header_frame
from fate_airflow.federation.spool import MessageKey

MiB = 1 << 20
TWO = (GUEST, HOST)
#: The host accepts messages up to this size, so the limit is tested cheaply over the internal hop.
HOST_MAX_MESSAGE = 16 * MiB
PING = "/fate_airflow.federation.v1.Control/Ping"
PUSH = "/fate_airflow.federation.v1.Transfer/Push"


@pytest.fixture(scope="module")
def internal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    # Unix socket paths must stay under ~100 bytes: a short folder of their own.
    sockets = Path(tempfile.mkdtemp(prefix="fa-int-", dir="/tmp"))
    extra = {
        GUEST.party_id: {"ptp_listen": f"unix:{sockets}/9999/gw.sock", "log_level": "INFO"},
        HOST.party_id: {
            "ptp_listen": f"127.0.0.1:{free_port()}",
            "limits": {"max_message_bytes": HOST_MAX_MESSAGE},
            "log_level": "INFO",
        },
    }
    try:
        with gateway_mesh(
            tmp_path_factory.mktemp("internal-endpoint"), [p.party_id for p in TWO], extra
        ) as mesh:
            yield mesh
    finally:
        shutil.rmtree(sockets, ignore_errors=True)


def _internal_address(net: Net, party_id: str) -> str:
    address = net.documents[party_id]["ptp_listen"]
    assert isinstance(address, str)
    return address


def _federation(net: Net, job: str, local: Party, *, internal: bool = True) -> GrpcFederation:
    session = FederationSession(job, "task", 0, local, TWO)
    extra = {"internal_address": _internal_address(net, local.party_id)} if internal else {}
    return GrpcFederation(session, net.client(local.party_id, **extra))


def _job() -> str:
    return f"job_{uuid.uuid4().hex[:10]}"


@pytest.mark.timeout(90)
def test_workers_on_internal_endpoints_exchange_data_and_commands(internal: Net) -> None:
    job = _job()
    guest, host = _federation(internal, job, GUEST), _federation(internal, job, HOST)
    try:
        values = np.random.default_rng(1).random(3 * MiB // 8)  # several chunks
        guest.remote({"x": values, "n": 2**2048 + 1}, "fore_gradient", "0", [HOST])
        [got] = host.get("fore_gradient", "0", [GUEST], timeout=30)
        np.testing.assert_array_equal(got["x"], values)
        assert got["n"] == 2**2048 + 1
        host.remote([1, 2, 3], "reply", "0", [GUEST])
        assert guest.get("reply", "0", [HOST], timeout=30) == [[1, 2, 3]]
    finally:
        guest.close()
        host.close()
    control = GrpcControlClient(
        internal.client(GUEST.party_id, internal_address=_internal_address(internal, GUEST.party_id))
    )
    try:
        assert control.ping(GUEST.party_id) >= 0
        assert control.ping(HOST.party_id) >= 0  # forwarded over mTLS to the host's gateway
    finally:
        control.close()


@pytest.mark.timeout(90)
def test_a_worker_on_another_host_still_uses_mtls(internal: Net) -> None:
    job = _job()
    remote_worker = _federation(internal, job, GUEST, internal=False)
    host = _federation(internal, job, HOST)
    try:
        remote_worker.remote(np.arange(10.0), "w", "0", [HOST])
        np.testing.assert_array_equal(host.get("w", "0", [GUEST], timeout=30)[0], np.arange(10.0))
        host.remote("back", "w", "1", [GUEST])
        assert remote_worker.get("w", "1", [HOST], timeout=30) == ["back"]
    finally:
        remote_worker.close()
        host.close()


def _raw_internal_channel(net: Net, party_id: str) -> grpc.Channel:
    return grpc.insecure_channel(_internal_address(net, party_id))


@pytest.mark.timeout(90)
def test_internal_endpoint_keeps_the_gateways_rules(internal: Net) -> None:
    guest_sock = _internal_address(internal, GUEST.party_id)
    # A party the gateway does not serve cannot speak through its internal endpoint.
    session = FederationSession(_job(), "task", 0, HOST, TWO)
    stranger = GrpcFederation(session, internal.client(HOST.party_id, internal_address=guest_sock))
    try:
        with pytest.raises(PermissionDenied, match=r"party 10000 .* is not served by this gateway"):
            stranger.remote(1, "x", "0", [GUEST])
    finally:
        stranger.close()
    channel = _raw_internal_channel(internal, GUEST.party_id)
    try:
        ping = channel.unary_unary(PING)
        with pytest.raises(grpc.RpcError) as unnamed:
            ping(b"", timeout=10)
        assert unnamed.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "x-fate-party-id header missing" in (unnamed.value.details() or "")
        with pytest.raises(grpc.RpcError) as as_gateway:
            ping(b"", metadata=(("x-fate-party-id", "9999"), ("x-fate-peer-kind", "gateway")), timeout=10)
        assert as_gateway.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # Speaking as the gateway's own party, it still cannot send as another party.
        forged = MessageKey(_job(), "x", "0", HOST, GUEST)
        push = channel.stream_unary(PUSH)
        with pytest.raises(grpc.RpcError) as as_other:
            push(iter([push_header_frame(forged, 1)]), metadata=(("x-fate-party-id", "9999"),), timeout=10)
        assert as_other.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "cannot send as party 10000" in (as_other.value.details() or "")
    finally:
        channel.close()
    # The destination's size limit applies to what comes in over an internal endpoint.
    sender = _federation(internal, _job(), GUEST)
    try:
        with pytest.raises(MessageTooLarge, match=str(HOST_MAX_MESSAGE)):
            sender.remote(np.zeros(HOST_MAX_MESSAGE // 8 + 1), "big", "0", [HOST])
    finally:
        sender.close()


@pytest.mark.timeout(120)
def test_kill9_of_the_receiving_gateway_loses_nothing_sent_over_internal_endpoints(internal: Net) -> None:
    job = _job()
    guest = _federation(internal, job, GUEST)
    values = np.random.default_rng(2).random(2 * MiB // 8)
    try:
        guest.remote(values, "durable", "0", [HOST])
    finally:
        guest.close()
    gateway = internal.gateways[HOST.party_id]
    gateway.kill9()
    gateway.start()
    host = _federation(internal, job, HOST)
    try:
        np.testing.assert_array_equal(host.get("durable", "0", [GUEST], timeout=60)[0], values)
    except FederationError as exc:  # pragma: no cover - diagnostics for a failure
        raise AssertionError(f"{exc}\n{gateway.log_text()[-3000:]}") from None
    finally:
        host.close()


@pytest.mark.timeout(60)
def test_federation_check_follows_the_internal_endpoint(internal: Net) -> None:
    sock = _internal_address(internal, GUEST.party_id)
    results = check_client(internal.client(GUEST.party_id, internal_address=sock), peers=[HOST.party_id])
    assert [r.ok for r in results] == [True, True], results
    assert "party-internal unix socket" in results[0].detail and results[0].address == sock
    missing = f"unix:{Path(sock[len('unix:') :]).parent}/nothing.sock"
    [failed] = check_client(internal.client(GUEST.party_id, internal_address=missing))
    assert not failed.ok and "no socket at" in failed.detail
