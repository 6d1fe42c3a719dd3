"""FATE's exchange pattern: parties reach each other through a hub gateway that only forwards.

Gateways run in-process (mTLS, 127.0.0.1): guest 9999, host 10000, hub "exchange", plus 10001 (a
peer allowed by the host but not a trusted relay) and 20000 (trusted CA, not allowlisted).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from fate_airflow.core.types import Party
from fate_airflow.federation.api import Ack, FederationSession, JobView, QueryJob, StopJob
from fate_airflow.federation.grpc import GatewayServer, GrpcControlClient, GrpcFederation
from fate_airflow.federation.grpc.doctor import check_gateway
from fate_airflow.federation.grpc.localnet import (
    PartyFiles,
    client_config,
    free_port,
    gateway_config,
    gateway_document,
    provision,
)
from fate_airflow.federation.pki import party_dns_name
from fate_airflow.federation.serde import chunk_frame, push_header_frame, push_trailer_frame
from fate_airflow.federation.spool import MessageKey

GUEST = Party("guest", "9999")
HOST = Party("host", "10000")
HUB = "exchange"


class Recorder:
    """Records control commands with their authenticated source."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def query_job(self, src_party_id: str, cmd: QueryJob) -> JobView:
        self.calls.append((src_party_id, cmd))
        return JobView(cmd.job_id, True, status="running")

    def stop_job(self, src_party_id: str, cmd: StopJob) -> Ack:
        self.calls.append((src_party_id, cmd))
        return Ack()


@dataclass
class HubNet:
    root: Path
    files: dict[str, PartyFiles]
    addresses: dict[str, str]
    servers: dict[str, GatewayServer]
    recorders: dict[str, Recorder]

    def federation(self, job: str, local: Party) -> GrpcFederation:
        session = FederationSession(job, "t", 0, local, (GUEST, HOST))
        return GrpcFederation(
            session, client_config(local.party_id, self.addresses[local.party_id], self.files)
        )


@pytest.fixture(scope="module")
def hubnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubNet]:
    root = tmp_path_factory.mktemp("hub")
    ids = ["9999", "10000", HUB, "10001", "20000"]
    files = provision(root / "pki", ids)
    addr = {p: f"127.0.0.1:{free_port()}" for p in ids}
    via_hub = {"address": addr[HUB], "via": HUB}
    docs = {
        # The guest names its peer explicitly, reached through the hub.
        "9999": gateway_document(
            "9999",
            listen=addr["9999"],
            data_dir=root / "g",
            routes={"10000": via_hub},
            trusted_relays=[HUB],  # a `via` alone does not make the hub's word trusted
            files=files,
        ),
        # The host uses a default route to the hub and lists who may reach it.
        "10000": gateway_document(
            "10000",
            listen=addr["10000"],
            data_dir=root / "h",
            routes={"*": via_hub, "10001": addr["10001"]},
            allow=["9999", "10001"],
            trusted_relays=[HUB],
            files=files,
        ),
        # The hub only forwards: no handler, and no party of its own takes part in jobs.
        HUB: gateway_document(
            HUB,
            listen=addr[HUB],
            data_dir=root / "x",
            routes={"9999": addr["9999"], "10000": addr["10000"]},
            files=files,
        ),
        "10001": gateway_document(
            "10001", listen=addr["10001"], data_dir=root / "c", routes={"10000": addr["10000"]}, files=files
        ),
        "20000": gateway_document(
            "20000", listen=addr["20000"], data_dir=root / "d", routes={"10000": addr["10000"]}, files=files
        ),
    }
    recorders = {"9999": Recorder(), "10000": Recorder()}
    servers = {p: GatewayServer(gateway_config(d), handler=recorders.get(p)) for p, d in docs.items()}
    for server in servers.values():
        server.start()
    yield HubNet(root, files, addr, servers, recorders)
    for server in servers.values():
        server.stop(0)


@pytest.mark.timeout(60)
def test_data_and_commands_cross_the_hub(hubnet: HubNet) -> None:
    job = f"job_{uuid.uuid4().hex[:8]}"
    guest, host = hubnet.federation(job, GUEST), hubnet.federation(job, HOST)
    value = np.arange(3 << 18, dtype=np.float64)  # 6 MiB: several chunks through two hops
    guest.remote(value, "x", "0", [HOST])
    np.testing.assert_array_equal(host.get("x", "0", [GUEST], timeout=20)[0], value)
    host.remote({"back": 2**1500}, "y", "0", [GUEST])
    assert guest.get("y", "0", [HOST], timeout=20) == [{"back": 2**1500}]
    # The hub spooled nothing: it streams through.
    assert hubnet.servers[HUB].spool.entries() == []

    client = GrpcControlClient(client_config("9999", hubnet.addresses["9999"], hubnet.files))
    assert client.call("10000", QueryJob(job)) == JobView(job, True, status="running")
    # The host's handler sees the origin party, vouched for by the trusted hub — not the hub.
    assert hubnet.recorders["10000"].calls[-1] == ("9999", QueryJob(job))
    assert client.ping("10000") >= 0
    client.close()
    # And the local control client of a gateway (the scheduler's) works through the hub as well.
    local = hubnet.servers["10000"].local_control_client()
    assert local.call("9999", StopJob(job, "canceled")) == Ack()
    assert hubnet.recorders["9999"].calls[-1] == ("10000", StopJob(job, "canceled"))
    guest.close()
    host.close()


def _gateway_channel(hubnet: HubNet, as_party: str, to_party: str) -> grpc.Channel:
    """A channel to ``to_party``'s gateway presenting ``as_party``'s *gateway* certificate."""
    own = hubnet.files[as_party]
    creds = grpc.ssl_channel_credentials(
        root_certificates=hubnet.files[to_party].ca_cert.read_bytes(),
        private_key=own.gateway_key.read_bytes(),
        certificate_chain=own.gateway_cert.read_bytes(),
    )
    return grpc.secure_channel(
        hubnet.addresses[to_party],
        creds,
        options=[("grpc.ssl_target_name_override", party_dns_name(to_party))],
    )


@pytest.mark.timeout(60)
def test_only_trusted_relays_may_speak_for_other_parties(hubnet: HubNet) -> None:
    key = MessageKey("s", "forged", "0", GUEST, HOST)
    frames = [push_header_frame(key, 1), chunk_frame(b"x"), push_trailer_frame(1, b"\0" * 32)]
    channel = _gateway_channel(hubnet, "10001", "10000")
    push = channel.stream_unary("/fate_airflow.federation.v1.Transfer/Push")
    with pytest.raises(grpc.RpcError) as info:
        push(iter(frames), metadata=(("x-fate-origin-party", "9999"),), timeout=10)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "not a trusted relay" in (info.value.details() or "")
    with pytest.raises(grpc.RpcError) as info:
        push(iter(frames), timeout=10)  # without the header it speaks for itself, but src says 9999
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "cannot send as party 9999" in (info.value.details() or "")
    channel.close()


@pytest.mark.timeout(60)
def test_peer_outside_the_allowlist_is_refused_and_the_doctor_says_so(hubnet: HubNet) -> None:
    channel = _gateway_channel(hubnet, "20000", "10000")
    ping = channel.unary_unary("/fate_airflow.federation.v1.Control/Ping")
    with pytest.raises(grpc.RpcError) as info:
        ping(b"", timeout=10)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "party 20000 is not in this gateway's allowlist" in (info.value.details() or "")
    channel.close()
    [result] = check_gateway(hubnet.servers["20000"].config, timeout=3)
    assert not result.ok and "the peer refused us" in result.detail, result.line()
    ok = check_gateway(hubnet.servers["9999"].config, timeout=3)
    assert [r.ok for r in ok] == [True], [r.line() for r in ok]


@pytest.mark.timeout(60)
async def test_async_control_client_never_blocks_and_maps_errors(hubnet: HubNet) -> None:
    import asyncio

    from fate_airflow.federation.errors import NoRoute
    from fate_airflow.federation.grpc import AsyncGrpcControlClient

    client = AsyncGrpcControlClient(client_config("9999", hubnet.addresses["9999"], hubnet.files))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    background = asyncio.create_task(ticker())
    try:
        replies = await asyncio.gather(*(client.call("10000", QueryJob(f"j{i}")) for i in range(20)))
        assert [r.job_id for r in replies] == [f"j{i}" for i in range(20)]
        assert await client.ping("10000") >= 0
        with pytest.raises(NoRoute, match="77777"):
            await client.call("77777", QueryJob("x"))
    finally:
        background.cancel()
        await client.close()
    assert ticks > 0
    assert (
        hubnet.recorders["10000"].calls[-1] == ("9999", QueryJob("j19"))
        or (
            "9999",
            QueryJob("j19"),
        )
        in hubnet.recorders["10000"].calls
    )


@pytest.mark.timeout(30)
def test_health_service_answers_serving(hubnet: HubNet) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    files = hubnet.files["9999"]
    channel = grpc.secure_channel(
        hubnet.addresses["9999"],
        grpc.ssl_channel_credentials(
            files.ca_cert.read_bytes(), files.client_key.read_bytes(), files.client_cert.read_bytes()
        ),
        options=[("grpc.ssl_target_name_override", party_dns_name("9999"))],
    )
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "fate_airflow.federation.v1.Transfer", "fate_airflow.federation.v1.Control"):
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    channel.close()
