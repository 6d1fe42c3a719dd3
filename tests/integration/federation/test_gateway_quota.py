"""Spool quotas of a real gateway: per-peer and total limits, clear refusals, space given back.

Guest 9999, host 10000 and arbiter 10001 run as gateway processes (mTLS, 127.0.0.1, ephemeral
ports). The host's spool holds at most :data:`PER_PEER` bytes from any one party and
:data:`TOTAL` in all; the guest also serves FATE's PTP endpoint, whose pushes are counted the same.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from fedgw_support import ARBITER, GUEST, HOST, PARTIES, Net, gateway_mesh

from fate_airflow.federation import payload
from fate_airflow.federation.errors import QuotaExceeded
from fate_airflow.federation.grpc.localnet import free_port
from fate_airflow.federation.grpc.status import status_of
from fate_airflow.federation.ptp import CODE_KEY, CODE_TOO_LARGE
from fate_airflow.proto.ptp import osx_pb2, osx_pb2_grpc

MiB = 1 << 20
PER_PEER = 3 * MiB
TOTAL = 5 * MiB


@pytest.fixture(scope="module")
def quota_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    extra = {
        HOST.party_id: {
            "spool": {"quota_bytes": TOTAL, "per_peer_quota_bytes": PER_PEER},
            "limits": {"max_message_bytes": 2 * MiB},
        },
        GUEST.party_id: {"ptp_listen": f"127.0.0.1:{free_port()}"},
    }
    with gateway_mesh(tmp_path_factory.mktemp("quota"), [p.party_id for p in PARTIES], extra) as mesh:
        yield mesh


def _array(nbytes: int) -> np.ndarray:
    """An array whose encoded payload is exactly ``nbytes`` long."""
    value = np.zeros(0, dtype=np.uint8)
    value = np.zeros(nbytes - payload.measure(value), dtype=np.uint8)
    assert payload.measure(value) == nbytes
    return value


def _host_spool(net: Net) -> tuple[list[Path], list[Path]]:
    spool = net.gateways[HOST.party_id].data_dir / "spool"
    return sorted((spool / "messages").glob("*/*/*.msg")), sorted((spool / "tmp").iterdir())


def _ptp_push(net: Net, session: str, body: bytes) -> None:
    address = net.documents[GUEST.party_id]["ptp_listen"]
    channel = grpc.insecure_channel(address)
    try:
        stub = osx_pb2_grpc.PrivateTransferTransportStub(channel)
        head = json.dumps({"message_id": "obj", "correlation_id": "0"}).encode()
        metadata = [
            ("x-ptp-session-id", session),
            ("x-ptp-from-node-id", GUEST.party_id),
            ("x-ptp-target-node-id", HOST.party_id),
            ("x-ptp-trace-id", uuid.uuid4().hex),
        ]
        topic = f"{session}-guest-{GUEST.party_id}-host-{HOST.party_id}-obj"
        message = osx_pb2.Message(head=head, body=body).SerializeToString()
        stub.push(osx_pb2.PushInbound(topic=topic, payload=message), metadata=metadata, timeout=60)
    finally:
        channel.close()


@pytest.mark.timeout(120)
def test_spool_quotas_refuse_clearly_keep_nothing_and_free_space_when_consumed(quota_net: Net) -> None:
    job = f"job_{uuid.uuid4().hex[:10]}"
    guest, host, arbiter = (quota_net.federation(job, p) for p in (GUEST, HOST, ARBITER))
    try:
        guest.remote(_array(2 * MiB), "a", "0", [HOST])
        guest.remote(_array(1 * MiB), "b", "0", [HOST])  # the guest's whole share
        with pytest.raises(QuotaExceeded) as per_peer:
            guest.remote(_array(1024), "c", "0", [HOST])
        assert status_of(per_peer.value) == grpc.StatusCode.RESOURCE_EXHAUSTED
        text = str(per_peer.value)
        assert "gateway of party 10000" in text and "party 9999 already holds" in text
        assert f"{PER_PEER} of its {PER_PEER} bytes (spool.per_peer_quota_bytes)" in text
        entries, temps = _host_spool(quota_net)
        assert len(entries) == 2 and temps == []  # nothing of the refused message was written

        arbiter.remote(_array(2 * MiB), "d", "0", [HOST])  # the spool is now full: 5 MiB
        with pytest.raises(QuotaExceeded, match=rf"{TOTAL} of its {TOTAL} bytes \(spool.quota_bytes"):
            arbiter.remote(_array(1024), "e", "0", [HOST])

        # A FATE component's PTP push (through the guest's gateway) is counted and refused alike.
        with pytest.raises(grpc.RpcError) as ptp:
            _ptp_push(quota_net, f"{job}_psi_0", b"x" * 1024)
        assert ptp.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "spool.per_peer_quota_bytes" in (ptp.value.details() or "")
        assert dict(ptp.value.trailing_metadata() or ()).get(CODE_KEY) == CODE_TOO_LARGE  # type: ignore[attr-defined]
        entries, temps = _host_spool(quota_net)
        assert len(entries) == 3 and temps == []

        # The receiver takes a message: its space comes back and the refused ones now go through.
        assert payload.measure(host.get("a", "0", [GUEST], timeout=30)[0]) == 2 * MiB
        guest.remote(_array(1024), "c", "0", [HOST])
        _ptp_push(quota_net, f"{job}_psi_0", b"x" * 1024)
        arbiter.remote(_array(1024), "e", "0", [HOST])
        assert [payload.measure(v) for v in host.get("c", "0", [GUEST], timeout=30)] == [1024]
        # Cleaning up the session gives back the rest.
        assert host.cleanup() >= 3
        guest.remote(_array(2 * MiB), "f", "0", [HOST])
        assert payload.measure(host.get("f", "0", [GUEST], timeout=30)[0]) == 2 * MiB
    finally:
        for fed in (guest, host, arbiter):
            fed.close()
