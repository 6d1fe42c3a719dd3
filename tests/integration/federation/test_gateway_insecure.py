"""Plaintext gateways (``insecure: true``, local demos only): same behaviour, claimed identities."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from fate_airflow.core.types import Party
from fate_airflow.federation.api import Ack, FederationSession, StopJob
from fate_airflow.federation.grpc import GatewayServer, GrpcControlClient, GrpcFederation
from fate_airflow.federation.grpc.localnet import client_config, free_port, gateway_config, gateway_document

GUEST, HOST = Party("guest", "9999"), Party("host", "10000")


class Stopper:
    def __init__(self) -> None:
        self.calls: list[tuple[str, StopJob]] = []

    def stop_job(self, src_party_id: str, cmd: StopJob) -> Ack:
        self.calls.append((src_party_id, cmd))
        return Ack()


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Stopper]]:
    root: Path = tmp_path_factory.mktemp("insecure")
    addr = {p: f"127.0.0.1:{free_port()}" for p in ("9999", "10000")}
    handler = Stopper()
    servers = [
        GatewayServer(
            gateway_config(
                gateway_document(
                    party,
                    listen=addr[party],
                    data_dir=root / party,
                    routes={other: addr[other]},
                    insecure=True,
                )
            ),
            handler=handler if party == "10000" else None,
        )
        for party, other in (("9999", "10000"), ("10000", "9999"))
    ]
    for server in servers:
        server.start()
    yield addr, handler
    for server in servers:
        server.stop(0)


@pytest.mark.timeout(30)
def test_insecure_gateways_move_data_and_commands(plain: tuple[dict[str, str], Stopper]) -> None:
    addr, handler = plain
    session = FederationSession("j", "t", 0, GUEST, (GUEST, HOST))
    guest = GrpcFederation(session, client_config("9999", addr["9999"]))
    host = GrpcFederation(session.with_local(HOST), client_config("10000", addr["10000"]))
    guest.remote([1, 2**100], "x", "0", [HOST])
    assert host.get("x", "0", [GUEST], timeout=10) == [[1, 2**100]]
    client = GrpcControlClient(client_config("9999", addr["9999"]))
    assert client.call("10000", StopJob("j", "canceled")) == Ack()
    assert handler.calls == [("9999", StopJob("j", "canceled"))]
    for closable in (guest, host, client):
        closable.close()


@pytest.mark.timeout(30)
def test_insecure_gateway_still_requires_a_claimed_party(plain: tuple[dict[str, str], Stopper]) -> None:
    addr, _ = plain
    channel = grpc.insecure_channel(addr["9999"])
    with pytest.raises(grpc.RpcError) as info:
        channel.unary_unary("/fate_airflow.federation.v1.Control/Ping")(b"", timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    channel.close()
