"""Hetero LR (and PSI before it) over real gRPC gateways: two parties, mutual TLS, 1024-bit Paillier.

Party 9999 is the guest; party 10000 is host and arbiter. Each share runs in its own thread with its
own :class:`~fate_airflow.federation.grpc.GrpcFederation` talking to its own party's gateway, exactly as
the scheduler's runner does. The trained model must equal, to the last bit of the fixed-point
arithmetic, the model of the same job run over the in-memory federation with the plaintext debug
cipher: the transport and the encryption change nothing but privacy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from fate_airflow.components.api import PartyTaskRequest
from fate_airflow.components.simulate import TaskSpec, run_shares, simulate
from fate_airflow.core.types import InputRef, Party
from fate_airflow.federation.api import Federation, FederationSession
from fate_airflow.federation.grpc import GatewayServer, GrpcFederation
from fate_airflow.federation.grpc.localnet import (
    client_config,
    free_port,
    gateway_config,
    gateway_document,
    provision,
)
from fate_airflow.storage import ArtifactStore, Table, TableStore
from fate_airflow.tracking import ModelKey, ModelStore
from tests.conftest import FATE_EXAMPLES

DATA = FATE_EXAMPLES / "data"
GUEST, HOST, ARBITER = Party("guest", "9999"), Party("host", "10000"), Party("arbiter", "10000")
PARTY_IDS = ("9999", "10000")
LR = {
    "penalty": "L2",
    "alpha": 0.01,
    "optimizer": "nesterov_momentum_sgd",
    "learning_rate": 0.15,
    "decay": 0,
    "batch_size": -1,
    "max_iter": 5,
    "init_param": {"init_method": "zeros"},
    "encrypt_param": {"key_length": 1024},
}


class Gateways:
    """Two mTLS gateways on loopback; ``ptp`` also opens each one's party-internal PTP endpoint."""

    def __init__(self, root: Path, *, ptp: bool = False) -> None:
        self.files = provision(root / "pki", PARTY_IDS)
        self.addresses = {p: f"127.0.0.1:{free_port()}" for p in PARTY_IDS}
        self.servers: list[GatewayServer] = []
        for party in PARTY_IDS:
            routes = {o: self.addresses[o] for o in PARTY_IDS if o != party}
            doc = gateway_document(
                party,
                listen=self.addresses[party],
                data_dir=root / f"gw-{party}",
                routes=routes,
                files=self.files,
            )
            if ptp:
                doc["ptp_listen"] = "127.0.0.1:0"
            server = GatewayServer(gateway_config(doc))
            server.start()
            self.servers.append(server)

    def ptp(self, party_id: str) -> str:
        address = self.servers[PARTY_IDS.index(party_id)].ptp_address
        assert address is not None
        return address

    def federation(self, request: PartyTaskRequest) -> Federation:
        session = FederationSession(
            request.job_id, request.task_name, request.task_version, request.local, request.parties
        )
        pid = request.local.party_id
        return GrpcFederation(session, client_config(pid, self.addresses[pid], self.files))

    def close(self) -> None:
        for server in self.servers:
            server.stop(0)


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateways]:
    gw = Gateways(tmp_path_factory.mktemp("gateways"))
    yield gw
    gw.close()


def _over_grpc(gw: Gateways, spec: TaskSpec, data_dirs: dict[str, str], **kw: Any) -> dict[Party, Any]:
    requests = [
        spec.request(
            p,
            job_id=kw.get("job_id", "grpc-job"),
            data_dir=data_dirs[p.party_id],
            model_id="m",
            model_version="v",
        )
        for p in spec.parties
    ]
    out = run_shares(requests, gw.federation)
    for outcome in out.values():
        if outcome.error is not None:
            raise outcome.error
    return {p: o.unwrap() for p, o in out.items()}


def _tables(root: Path) -> dict[str, str]:
    dirs = {pid: str(root / pid) for pid in PARTY_IDS}
    g = pd.read_csv(DATA / "breast_hetero_guest.csv", dtype={"id": str}).iloc[:450]
    h = pd.read_csv(DATA / "breast_hetero_host.csv", dtype={"id": str})
    TableStore.local(dirs["9999"]).write(
        "experiment", "g", Table.from_frame(g, id_column="id", label_column="y")
    )
    TableStore.local(dirs["10000"]).write("experiment", "h", Table.from_frame(h, id_column="id"))
    return dirs


def _specs(lr_params: dict[str, Any]) -> tuple[TaskSpec, TaskSpec]:
    psi = TaskSpec(
        "intersection_0",
        "intersection@1.0.0",
        (GUEST, HOST),
        inputs=(
            InputRef("data", "data", "data_warehouse", namespace="experiment", name="g", parties=(GUEST,)),
            InputRef("data", "data", "data_warehouse", namespace="experiment", name="h", parties=(HOST,)),
        ),
        outputs={"data": ("data",)},
    )
    lr = TaskSpec(
        "hetero_lr_0",
        "hetero_lr@1.0.0",
        (GUEST, HOST, ARBITER),
        common=lr_params,
        inputs=(InputRef("data", "train_data", "task", producer_task="intersection_0", output_key="data"),),
        outputs={"data": ("data",), "model": ("model",)},
    )
    return psi, lr


def test_psi_and_hetero_lr_over_grpc_gateways(gateways: Gateways, tmp_path: Path) -> None:
    dirs = _tables(tmp_path / "grpc")
    psi, lr = _specs(LR)
    psi_out = _over_grpc(gateways, psi, dirs)
    assert psi_out[GUEST].metrics["intersect_count"] == 450
    out = _over_grpc(gateways, lr, dirs)
    for party in (GUEST, HOST, ARBITER):
        assert out[party].summary["cipher"] == "paillier"
        assert out[party].summary["key_length"] == 1024
    pred = ArtifactStore.local(dirs["9999"]).read_data(out[GUEST].outputs["data"]).frame
    auc = roc_auc_score(pred["label"], pred["predict_score"])
    assert auc > 0.97

    # the same job in memory with the plaintext debug cipher gives the very same model
    plain_dirs = _tables(tmp_path / "plain")
    psi_p, lr_p = _specs({**LR, "encrypt_param": {"method": "plaintext_debug"}})
    simulate(psi_p, job_id="grpc-job", data_dirs=plain_dirs)
    plain = simulate(lr_p, job_id="grpc-job", data_dirs=plain_dirs, model_id="m", model_version="v")
    assert plain[GUEST].unwrap().summary["cipher"] == "plaintext_debug"
    for party in (GUEST, HOST):
        key = ModelKey("m", "v", party.role, party.party_id, "hetero_lr_0")
        enc = ModelStore(dirs[party.party_id]).load(key)
        ref = ModelStore(plain_dirs[party.party_id]).load(key)
        np.testing.assert_allclose(enc.arrays["weights"], ref.arrays["weights"], rtol=0, atol=1e-12)
    assert out[GUEST].summary["loss_history"] == pytest.approx(
        plain[GUEST].unwrap().summary["loss_history"], abs=1e-12
    )
