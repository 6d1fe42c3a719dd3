"""Gateways with ``spool.fsync: never`` (mTLS, separate processes): still durable against kill -9.

Skipping the flushes only gives up durability against a crash of the machine; the page cache
outlives the gateway process, so an accepted message must survive ``kill -9`` of the receiving
gateway exactly as with the default policy.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest
from fedgw_support import GUEST, HOST, GatewayProcess, gateway_mesh

from fate_airflow.core.errors import FederationTimeout
from fate_airflow.federation.api import FederationSession
from fate_airflow.federation.grpc import GrpcFederation
from fate_airflow.federation.grpc.localnet import (
    PartyFiles,
    client_config,
)


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, GatewayProcess], dict[str, PartyFiles]]]:
    ids = (GUEST.party_id, HOST.party_id)
    never = {"spool": {"fsync": "never"}}
    with gateway_mesh(tmp_path_factory.mktemp("nofsync"), ids, dict.fromkeys(ids, never)) as mesh:
        yield mesh.gateways, mesh.files


@pytest.mark.timeout(120)
def test_kill9_between_send_and_get_without_fsync(
    pair: tuple[dict[str, GatewayProcess], dict[str, PartyFiles]],
) -> None:
    gateways, files = pair
    session = FederationSession(f"job_{uuid.uuid4().hex[:10]}", "task", 0, GUEST, (GUEST, HOST))
    guest = GrpcFederation(session, client_config("9999", gateways["9999"].address, files))
    value = np.random.default_rng(5).random(5 * (1 << 20) // 8)
    guest.remote(value, "w", "0", [HOST])
    guest.remote({"small": 1}, "s", "0", [HOST])
    gateways["10000"].kill9()
    gateways["10000"].start()
    host = GrpcFederation(session.with_local(HOST), client_config("10000", gateways["10000"].address, files))
    try:
        np.testing.assert_array_equal(host.get("w", "0", [GUEST], timeout=30)[0], value)
        assert host.get("s", "0", [GUEST], timeout=30) == [{"small": 1}]
        retried = GrpcFederation(session, client_config("9999", gateways["9999"].address, files))
        retried.remote(value, "w", "0", [HOST])
        retried.close()
        with pytest.raises(FederationTimeout):  # the re-send was dropped: delivered once
            host.get("w", "0", [GUEST], timeout=1)
    finally:
        guest.close()
        host.close()
