"""FATE 2.2's own components (the FATE provider) over real gateways, next to native components.

Guest 9999 and host 10000 each run their share in the FATE provider's environment (real pyfate),
federating through their own gateway's PTP endpoint; the gateways talk mutual TLS to each other.
Native PSI feeds FATE components and native evaluation scores FATE's predictions, so the data
bridges both ways are exercised. Expected values are FATE 2.2 standalone's on the same jobs
(../shared/reference/fate22-results.md).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from fate_airflow.components.simulate import TaskSpec, run_shares
from fate_airflow.core.errors import ComponentError
from fate_airflow.core.types import InputRef, Party
from fate_airflow.storage import ArtifactStore, TableStore
from fate_airflow.tracking import ModelKey, ModelStore
from tests.conftest import FATE_EXAMPLES
from tests.integration.components.test_components_grpc import Gateways

DATA = FATE_EXAMPLES / "data"
GUEST, HOST = Party("guest", "9999"), Party("host", "10000")
PARTY_IDS = ("9999", "10000")
FATE = "fate:2.2.0"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateways]:
    gw = Gateways(tmp_path_factory.mktemp("gateways"), ptp=True)
    yield gw
    gw.close()


def _run(
    gw: Gateways,
    spec: TaskSpec,
    dirs: dict[str, str],
    provider_dir: Path,
    *,
    provider: str = FATE,
    abort: threading.Event | None = None,
) -> dict[Party, object]:
    requests = [
        dataclasses.replace(
            spec.request(
                p, job_id=dirs["job_id"], data_dir=dirs[p.party_id], model_id="m", model_version="v"
            ),
            provider=provider,
            provider_dir=str(provider_dir),
            ptp_address=gw.ptp(p.party_id),
        )
        for p in spec.parties
    ]
    out = run_shares(requests, gw.federation, abort=abort)
    for outcome in out.values():
        if outcome.error is not None:
            raise outcome.error
    return {p: o.unwrap() for p, o in out.items()}


PSI = TaskSpec(
    "psi_0",
    "intersection@1.0.0",
    (GUEST, HOST),
    component="psi",
    inputs=(
        InputRef(
            "data",
            "input_data",
            "data_warehouse",
            namespace="experiment",
            name="breast_hetero_guest",
            parties=(GUEST,),
        ),
        InputRef(
            "data",
            "input_data",
            "data_warehouse",
            namespace="experiment",
            name="breast_hetero_host",
            parties=(HOST,),
        ),
    ),
    outputs={"data": ("output_data",)},
    stage="default",
)


def _from_psi(key: str) -> tuple[InputRef, ...]:
    return (InputRef("data", key, "task", producer_task="psi_0", output_key="output_data"),)


def test_native_psi_then_fate_statistics_match_fate(
    gateways: Gateways, data_dirs: dict[str, str], fate_provider_dir: Path
) -> None:
    _run(gateways, PSI, data_dirs, fate_provider_dir, provider="native")
    stats = TaskSpec(
        "statistics_0",
        "statistics@1.0.0",
        (GUEST, HOST),
        component="statistics",
        common={
            "metrics": ["mean", "std", "0%", "25%", "median", "75%", "100%", "missing_ratio"],
            "bias": True,
        },
        inputs=_from_psi("input_data"),
        outputs={"model": ("output_model",)},
        stage="default",
    )
    out = _run(gateways, stats, data_dirs, fate_provider_dir)
    for party, (lo, hi) in {GUEST: (-1.726901, 4.094189), HOST: (-2.029648, 3.971288)}.items():
        assert out[party].summary["provider"] == FATE  # type: ignore[attr-defined]
        model = ModelStore(data_dirs[party.party_id]).load(
            ModelKey("m", "v", party.role, party.party_id, "statistics_0")
        )
        x0 = model.params["fate_models"]["output_model"]["data"]["metrics_summary"]["x0"]
        assert x0["0%"] == pytest.approx(lo, abs=1e-6)
        assert x0["100%"] == pytest.approx(hi, abs=1e-6)
    guest_x0 = ModelStore(data_dirs["9999"]).load(ModelKey("m", "v", "guest", "9999", "statistics_0"))
    assert guest_x0.params["fate_models"]["output_model"]["data"]["metrics_summary"]["x0"][
        "std"
    ] == pytest.approx(1.000880, abs=1e-6)


def test_fate_secureboost_between_native_psi_and_native_evaluation(
    gateways: Gateways, data_dirs: dict[str, str], fate_provider_dir: Path
) -> None:
    _run(gateways, PSI, data_dirs, fate_provider_dir, provider="native")
    sbt = TaskSpec(
        "sbt_0",
        "hetero_secureboost@1.0.0",
        (GUEST, HOST),
        component="hetero_secureboost",
        common={"num_trees": 3, "max_depth": 3},
        inputs=_from_psi("train_data"),
        outputs={"data": ("train_output_data",), "model": ("output_model",)},
    )
    out = _run(gateways, sbt, data_dirs, fate_provider_dir)
    guest = out[GUEST]
    loss = guest.metrics["fate_metrics"][0]  # type: ignore[attr-defined]
    assert loss["name"] == "sbt_loss" and len(loss["data"]) == 3  # one point per tree
    pred = ArtifactStore.local(data_dirs["9999"]).read_data(guest.outputs["train_output_data"])  # type: ignore[attr-defined]
    assert "fate_artifact" in pred.meta.extra
    evaluation = TaskSpec(
        "eval_0",
        "evaluation@1.0.0",
        (GUEST,),
        component="evaluation",
        common={"metrics": ["auc"]},
        inputs=(
            InputRef("data", "input_datas", "task", producer_task="sbt_0", output_key="train_output_data"),
        ),
        outputs={"metric": ("metric",)},
        stage="default",
    )
    metrics = _run(gateways, evaluation, data_dirs, fate_provider_dir, provider="native")[GUEST].metrics  # type: ignore[attr-defined]
    # FATE 2.2 standalone on reader → psi → hetero_secureboost(3 trees, depth 3) → evaluation.
    assert metrics["auc"] == pytest.approx(0.995858, abs=1e-6)
    assert metrics["ks"] == pytest.approx(0.954891, abs=1e-6)
    host_model = ModelStore(data_dirs["10000"]).load(ModelKey("m", "v", "host", "10000", "sbt_0"))
    assert json.dumps(host_model.params["fate_models"])  # the host keeps its own split points

    # The model moves: each party exports its share and imports it into another data dir, where a
    # later predict job loads it (model_warehouse) and scores the same rows exactly as training did.
    predict_dirs = {"job_id": data_dirs["job_id"] + "-predict"}
    for party in (GUEST, HOST):
        old, new = data_dirs[party.party_id], f"{data_dirs[party.party_id]}-elsewhere"
        key = ModelKey("m", "v", party.role, party.party_id, "sbt_0")
        exported = ModelStore(old).export(key.party_model_id, "v", Path(old).parent)
        ModelStore(new).import_zip(exported)
        for table in TableStore.local(old).list():
            TableStore.local(new).write(
                table.namespace, table.name, TableStore.local(old).read(table.namespace, table.name)
            )
        predict_dirs[party.party_id] = new
    _run(gateways, PSI, predict_dirs, fate_provider_dir, provider="native")
    predict = dataclasses.replace(
        sbt,
        inputs=(
            *_from_psi("test_data"),
            InputRef(
                "model",
                "input_model",
                "model_warehouse",
                producer_task="sbt_0",
                output_key="output_model",
                model_id="m",
                model_version="v",
            ),
        ),
        outputs={"data": ("test_output_data",)},
        stage="predict",
    )
    scored = _run(gateways, predict, predict_dirs, fate_provider_dir)[GUEST]
    assert scored.summary["provider"] == FATE  # type: ignore[attr-defined]
    again = ArtifactStore.local(predict_dirs["9999"]).read_data(scored.outputs["test_output_data"])  # type: ignore[attr-defined]
    trained = pred.frame.set_index(pred.frame.columns[0])["predict_score"].sort_index()
    predicted = again.frame.set_index(again.frame.columns[0])["predict_score"].sort_index()
    assert len(predicted) == 569
    assert predicted.to_numpy() == pytest.approx(trained.to_numpy(), abs=1e-9)


def _fate_processes(under: str) -> list[psutil.Process]:
    """FATE task processes whose files are under ``under`` (other runs may have their own)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = [str(part) for part in proc.info.get("cmdline") or []]
        if any(part.endswith("fate_task.py") for part in cmdline) and any(under in c for c in cmdline):
            found.append(proc)
    return found


def test_abort_kills_the_fate_process_tree(
    gateways: Gateways, data_dirs: dict[str, str], fate_provider_dir: Path
) -> None:
    _run(gateways, PSI, data_dirs, fate_provider_dir, provider="native")
    sbt = TaskSpec(
        "sbt_long",
        "hetero_secureboost@1.0.0",
        (GUEST, HOST),
        component="hetero_secureboost",
        common={"num_trees": 200, "max_depth": 5},
        inputs=_from_psi("train_data"),
        outputs={"data": ("train_output_data",), "model": ("output_model",)},
    )
    abort = threading.Event()
    threading.Timer(8.0, abort.set).start()
    started = time.monotonic()
    with pytest.raises(ComponentError, match="aborted"):
        _run(gateways, sbt, data_dirs, fate_provider_dir, abort=abort)
    assert time.monotonic() - started < 60
    deadline = time.monotonic() + 10
    under = str(Path(data_dirs["9999"]).parent)
    while _fate_processes(under) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _fate_processes(under) == []


def test_missing_provider_is_a_clear_error(
    gateways: Gateways, data_dirs: dict[str, str], tmp_path: Path
) -> None:
    _run(gateways, PSI, data_dirs, tmp_path, provider="native")
    stats = TaskSpec(
        "statistics_0", "statistics@1.0.0", (GUEST,), component="statistics", inputs=_from_psi("input_data")
    )
    with pytest.raises(ComponentError, match=r"provider fate:2\.2\.0 is not installed at party 9999"):
        _run(gateways, stats, data_dirs, tmp_path / "empty")
