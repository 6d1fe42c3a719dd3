"""Hetero LR with real 1024-bit Paillier on breast_hetero (569 rows), in-memory federation.

The main fixture runs FATE's hetero-LR pipeline end to end — reader → data_transform → intersection →
hetero_lr → evaluation — on the training rows, then a predict job on held-back rows, and keeps the
messages of the training task for the privacy tests.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from fate_airflow.components import paillier
from fate_airflow.components.api import PartyTaskResult
from fate_airflow.components.simulate import TaskSpec
from fate_airflow.core.errors import ComponentError
from fate_airflow.core.types import InputRef, Party
from fate_airflow.federation.inmemory import InMemoryHub, Transfer
from fate_airflow.storage import SerialComputing
from fate_airflow.tracking import ModelKey, ModelStore

from .conftest import ARBITER, GUEST, HOST, HOST2
from .helpers import DATA, edge, output_frame, put_table, run

MODEL_ID = "arbiter-10000#guest-9999#host-10000#model"
TRAIN_JOB = "train-job"
LR_PARAMS: dict[str, Any] = {
    "penalty": "L2",
    "alpha": 0.01,
    "optimizer": "nesterov_momentum_sgd",
    "learning_rate": 0.15,
    "decay": 0,
    "batch_size": -1,
    "max_iter": 12,
    "early_stop": "diff",
    "tol": 1e-4,
    "init_param": {"init_method": "zeros"},
    "encrypt_param": {"key_length": 1024},
}
PARTIES = (GUEST, HOST, ARBITER)


def _breast() -> tuple[pd.DataFrame, pd.DataFrame]:
    g = pd.read_csv(DATA / "breast_hetero_guest.csv", dtype={"id": str})
    h = pd.read_csv(DATA / "breast_hetero_host.csv", dtype={"id": str})
    return g, h


def _split(ids: list[str]) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(2026)
    held = set(rng.choice(ids, size=len(ids) // 5, replace=False).tolist())
    return [i for i in ids if i not in held], sorted(held)


def _sk_auc(x: np.ndarray, y: np.ndarray) -> float:
    model = LogisticRegression(max_iter=5000).fit(x, y)
    return float(roc_auc_score(y, model.predict_proba(x)[:, 1]))


def _pipeline_specs(guest_table: str, host_table: str, stage: str = "train") -> list[TaskSpec]:
    """FATE's hetero_lr_normal DSL (1.x output names), as tasks."""
    model_in = stage == "predict"
    reader = TaskSpec(
        "reader_0",
        "reader@1.0.0",
        (GUEST, HOST),
        parameters={
            GUEST: {"table": {"name": guest_table, "namespace": "experiment"}},
            HOST: {"table": {"name": host_table, "namespace": "experiment"}},
        },
        outputs={"data": ("data",)},
        component="Reader",
    )
    dt_inputs: tuple[InputRef, ...] = (edge("reader_0"),)
    if model_in:
        dt_inputs += (
            InputRef(
                "model", "model", "model_warehouse", producer_task="data_transform_0", output_key="model"
            ),
        )
    dt = TaskSpec(
        "data_transform_0",
        "data_transform@1.0.0",
        (GUEST, HOST),
        parameters={GUEST: {"with_label": True}, HOST: {"with_label": False}},
        common={"output_format": "dense"},
        inputs=dt_inputs,
        outputs={"data": ("data",), "model": ("model",)},
        stage=stage,
        component="DataTransform",
    )
    psi = TaskSpec(
        "intersection_0",
        "intersection@1.0.0",
        (GUEST, HOST),
        common={"intersect_method": "rsa"},
        inputs=(edge("data_transform_0"),),
        outputs={"data": ("data",)},
        component="Intersection",
    )
    lr_inputs: tuple[InputRef, ...] = (edge("intersection_0", "test_data" if model_in else "train_data"),)
    if model_in:
        lr_inputs += (
            InputRef("model", "model", "model_warehouse", producer_task="hetero_lr_0", output_key="model"),
        )
    lr = TaskSpec(
        "hetero_lr_0",
        "hetero_lr@1.0.0",
        PARTIES,
        common=LR_PARAMS,
        inputs=lr_inputs,
        outputs={"data": ("data",), "model": ("model",)} if not model_in else {"data": ("data",)},
        stage=stage,
        component="HeteroLR",
    )
    ev = TaskSpec(
        "evaluation_0",
        "evaluation@1.0.0",
        PARTIES,
        common={"eval_type": "binary"},
        inputs=(edge("hetero_lr_0"),),
        component="Evaluation",
    )
    return [reader, dt, psi, lr, ev]


@dataclass
class BreastRun:
    data_dirs: dict[str, str]
    train_ids: list[str]
    held_ids: list[str]
    guest: pd.DataFrame
    host: pd.DataFrame
    results: dict[str, dict[Party, PartyTaskResult]] = field(default_factory=dict)
    predict: dict[str, dict[Party, PartyTaskResult]] = field(default_factory=dict)
    lr_messages: list[Transfer] = field(default_factory=list)
    keypair: paillier.Keypair | None = None


@pytest.fixture(scope="module")
def breast(tmp_path_factory: pytest.TempPathFactory) -> BreastRun:
    base: Path = tmp_path_factory.mktemp("breast")
    data_dirs = {pid: str(base / pid) for pid in ("9999", "10000")}
    g, h = _breast()
    train_ids, held_ids = _split(g["id"].tolist())
    # guest: training rows only; host: every row (the intersection drops the held-back ones)
    put_table(data_dirs["9999"], "breast_hetero_guest", g[g["id"].isin(train_ids)].reset_index(drop=True))
    put_table(data_dirs["10000"], "breast_hetero_host", h)
    put_table(data_dirs["9999"], "breast_hetero_guest_test", g[g["id"].isin(held_ids)].reset_index(drop=True))
    state = BreastRun(data_dirs, train_ids, held_ids, g, h)
    keys: list[paillier.Keypair] = []
    original = paillier.Keypair.generate

    def capture(kind: paillier.CipherKind, key_length: int) -> paillier.Keypair:
        kp = original(kind, key_length)
        keys.append(kp)
        return kp

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(paillier.Keypair, "generate", staticmethod(capture))
        for spec in _pipeline_specs("breast_hetero_guest", "breast_hetero_host"):
            hub = InMemoryHub()
            state.results[spec.task_name] = run(
                spec, data_dirs, hub=hub, job_id=TRAIN_JOB, model_id=MODEL_ID, model_version=TRAIN_JOB
            )
            if spec.task_name == "hetero_lr_0":
                state.lr_messages = list(hub.log)
    state.keypair = keys[0]
    jp = {"model_id": MODEL_ID, "model_version": TRAIN_JOB}
    for spec in _pipeline_specs("breast_hetero_guest_test", "breast_hetero_host", stage="predict"):
        state.predict[spec.task_name] = run(
            spec,
            data_dirs,
            job_id="predict-job",
            model_id=MODEL_ID,
            model_version=TRAIN_JOB,
            job_parameters=jp,
        )
    return state


def test_auc_matches_sklearn_on_joined_features(breast: BreastRun) -> None:
    lr = breast.results["hetero_lr_0"]
    assert lr[GUEST].summary["cipher"] == "paillier" and lr[GUEST].summary["key_length"] == 1024
    assert lr[HOST].summary["cipher"] == "paillier" and lr[ARBITER].summary["key_length"] == 1024
    pred = output_frame(breast.data_dirs, lr[GUEST])
    assert sorted(pred["id"]) == sorted(breast.train_ids)
    assert list(pred.columns) == ["id", "label", "predict_result", "predict_score", "predict_detail", "type"]
    fed_auc = float(roc_auc_score(pred["label"], pred["predict_score"]))
    joined = breast.guest.merge(breast.host, on="id").set_index("id").loc[sorted(breast.train_ids)]
    sk = _sk_auc(joined.drop(columns=["y"]).to_numpy(), joined["y"].to_numpy())
    print(f"\nbreast train rows: federated AUC {fed_auc:.4f}, sklearn joined AUC {sk:.4f}")
    assert fed_auc >= sk - 0.01
    metrics = breast.results["evaluation_0"][GUEST].metrics
    assert metrics["auc"] == pytest.approx(fed_auc)
    assert metrics["ks"] > 0.8
    assert breast.results["evaluation_0"][HOST].status == "pass"
    assert breast.results["evaluation_0"][ARBITER].status == "pass"
    # the host and arbiter have no data output; their shares still succeeded
    assert "data" not in lr[HOST].outputs and lr[HOST].status == "success"


def test_models_saved_at_every_party(breast: BreastRun) -> None:
    for party in PARTIES:
        key = ModelKey(MODEL_ID, TRAIN_JOB, party.role, party.party_id, "hetero_lr_0")
        model = ModelStore(breast.data_dirs[party.party_id]).load(key)
        assert model.meta["cipher"] == "paillier"
        if party == GUEST:
            assert model.params["header"] == [f"x{i}" for i in range(10)]
            assert "intercept" in model.params
        if party == HOST:
            assert model.params["header"] == [f"x{i}" for i in range(20)]
            assert "intercept" not in model.params


def test_predict_reproduces_scores_from_stored_weights(breast: BreastRun) -> None:
    out = breast.predict["hetero_lr_0"]
    pred = output_frame(breast.data_dirs, out[GUEST]).set_index("id")
    assert sorted(pred.index) == breast.held_ids
    assert out[ARBITER].status == "pass"
    store_g = ModelStore(breast.data_dirs["9999"])
    store_h = ModelStore(breast.data_dirs["10000"])
    mg = store_g.load(ModelKey(MODEL_ID, TRAIN_JOB, "guest", "9999", "hetero_lr_0"))
    mh = store_h.load(ModelKey(MODEL_ID, TRAIN_JOB, "host", "10000", "hetero_lr_0"))
    g = breast.guest.set_index("id").loc[breast.held_ids]
    h = breast.host.set_index("id").loc[breast.held_ids]
    z = g[mg.params["header"]].to_numpy() @ mg.arrays["weights"] + mg.params["intercept"]
    z += h[mh.params["header"]].to_numpy() @ mh.arrays["weights"]
    expected = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(pred.loc[breast.held_ids, "predict_score"].to_numpy(), expected, rtol=1e-12)
    assert (pred["type"] == "predict").all()
    held_auc = breast.predict["evaluation_0"][GUEST].metrics["auc"]
    print(f"\nbreast held-back rows: federated model AUC {held_auc:.4f}")
    assert held_auc > 0.95


def _ct_ok(c: int, n: int) -> bool:
    return 0 < c < n * n and math.gcd(c, n) == 1 and c.bit_length() > 2 * n.bit_length() - 64


def test_privacy_on_the_wire(breast: BreastRun) -> None:
    kp = breast.keypair
    assert kp is not None and kp.public.kind == "paillier"
    n = kp.public.n
    he = paillier.HE(kp.public, SerialComputing())
    g = breast.guest.set_index("id").loc[sorted(breast.train_ids)]
    labels = g["y"].to_numpy(dtype=np.float64)
    raw_columns = [g[c].to_numpy(dtype=np.float64) for c in g.columns] + [
        breast.host.set_index("id").loc[sorted(breast.train_ids)][c].to_numpy(dtype=np.float64)
        for c in breast.host.columns
        if c != "id"
    ]
    to_host = {
        "paillier_pubkey",
        "data_align",
        "batch_info",
        "fore_gradient",
        "host_optim_gradient",
        "converge_flag",
    }
    seen: set[str] = set()
    for t in breast.lr_messages:
        # raw features and labels never leave their party, in any message
        for leaf in _leaves(t.obj):
            if isinstance(leaf, np.ndarray) and leaf.dtype.kind == "f" and leaf.size == len(labels):
                assert not any(np.allclose(leaf, col) for col in raw_columns), t.name
        if t.dst.role != "host":
            continue
        seen.add(t.name)
        assert t.name in to_host, f"unexpected message {t.name} to the host"
        if t.name == "paillier_pubkey":
            assert t.obj == {"kind": "paillier", "n": n}
        elif t.name == "fore_gradient":
            assert t.obj["cipher"] == "paillier"
            cts = he.unpack(t.obj["ct"], t.obj["count"], "fore gradient")
            assert len(cts) == len(labels) and all(_ct_ok(c, n) for c in cts)
            assert len(set(cts)) == len(cts)
            # with the arbiter's key these are 4d = u - 2y: the residual the host must not see in clear
            plain = paillier.decode(kp.decrypt(cts[:20]), t.obj["exp"], n)
            assert np.all(np.abs(plain) < 50)
        elif t.name == "host_optim_gradient":
            width = (n.bit_length() + 7) // 8
            values = [int.from_bytes(t.obj[i : i + width], "big") for i in range(0, len(t.obj), width)]
            assert len(values) == 20
            # masked with uniform values mod n: nothing like a gradient (|g| < 100 → |encoded| < 2^53)
            assert all(v.bit_length() > n.bit_length() - 40 and n - v > 2**200 for v in values)
        elif t.name == "converge_flag":
            assert set(t.obj) == {"stop", "converged"} and all(isinstance(v, bool) for v in t.obj.values())
        elif t.name == "batch_info":
            assert [b.tolist() for b in t.obj["batches"]] == [list(range(len(labels)))]
        elif t.name == "data_align":
            assert set(t.obj) == {"count", "digest"}
    assert seen == to_host
    # the arbiter only ever receives ciphertexts from guest and host (never plaintext gradients)
    for t in breast.lr_messages:
        if t.dst.role == "arbiter" and t.name in ("guest_gradient", "host_gradient"):
            cts = he.unpack(t.obj["ct"], t.obj["count"], t.name)
            assert all(_ct_ok(c, n) for c in cts)
        if t.src.role == "host" and t.name == "host_forward":
            cts = he.unpack(t.obj["forward"]["ct"], t.obj["forward"]["count"], t.name)
            assert all(_ct_ok(c, n) for c in cts)


def _leaves(obj: object) -> Iterator[object]:
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _leaves(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _leaves(v)
    else:
        yield obj


def _lr_spec(parties: tuple[Party, ...], tables: dict[Party, str], **overrides: Any) -> TaskSpec:
    return TaskSpec(
        "hetero_lr_0",
        "hetero_lr@1.0.0",
        parties,
        common={**LR_PARAMS, **overrides},
        inputs=tuple(
            InputRef(
                "data", "train_data", "data_warehouse", namespace="experiment", name=name, parties=(party,)
            )
            for party, name in tables.items()
        ),
        outputs={"data": ("data",), "model": ("model",)},
    )


def test_two_hosts(tmp_path: Path, data_dirs: dict[str, str]) -> None:
    g, h = _breast()
    put_table(data_dirs["9999"], "g", g, label="y")
    put_table(data_dirs["10000"], "h1", h[["id", *[f"x{i}" for i in range(10)]]])
    put_table(data_dirs["10001"], "h2", h[["id", *[f"x{i}" for i in range(10, 20)]]])
    spec = _lr_spec(
        (GUEST, HOST, HOST2, ARBITER),
        {GUEST: "g", HOST: "h1", HOST2: "h2"},
        max_iter=10,
        early_stop="weight_diff",
    )
    out = run(spec, data_dirs, model_id="m", model_version="v")
    pred = output_frame(data_dirs, out[GUEST])
    fed = float(roc_auc_score(pred["label"], pred["predict_score"]))
    joined = g.merge(h, on="id")
    sk = _sk_auc(joined.drop(columns=["id", "y"]).to_numpy(), joined["y"].to_numpy())
    print(f"\nbreast 2 hosts: federated AUC {fed:.4f}, sklearn joined AUC {sk:.4f}")
    assert fed >= sk - 0.01
    assert out[HOST2].summary["cipher"] == "paillier"
    assert out[GUEST].summary["iterations"] >= 1


def test_host_features_really_count(data_dirs: dict[str, str]) -> None:
    g, h = _breast()
    joined = g.merge(h, on="id", suffixes=("_g", "_h"))
    features = [c for c in joined.columns if c not in ("id", "y")]
    y = joined["y"].to_numpy()
    # the guest keeps the two weakest single features
    single = {c: abs(roc_auc_score(y, joined[c]) - 0.5) for c in features}
    weak = sorted(single, key=single.get)[:2]  # type: ignore[arg-type]
    strong = [c for c in features if c not in weak]
    put_table(data_dirs["9999"], "g", joined[["id", "y", *weak]], label="y")
    put_table(data_dirs["10000"], "h", joined[["id", *strong]])
    guest_only = _sk_auc(joined[weak].to_numpy(), y)
    joined_auc = _sk_auc(joined[features].to_numpy(), y)
    out = run(_lr_spec(PARTIES, {GUEST: "g", HOST: "h"}), data_dirs, model_id="m", model_version="v")
    pred = output_frame(data_dirs, out[GUEST])
    fed = float(roc_auc_score(pred["label"], pred["predict_score"]))
    print(
        f"\nweak guest {weak}: guest-only AUC {guest_only:.4f}, federated {fed:.4f}, joined sklearn {joined_auc:.4f}"
    )
    assert guest_only < joined_auc - 0.15
    assert fed >= joined_auc - 0.01


def test_plaintext_cipher_only_on_explicit_request(data_dirs: dict[str, str]) -> None:
    g, h = _breast()
    put_table(data_dirs["9999"], "g", g, label="y")
    put_table(data_dirs["10000"], "h", h)
    debug = {"encrypt_param": {"method": "plaintext_debug", "key_length": 1024}, "max_iter": 3}
    out = run(_lr_spec(PARTIES, {GUEST: "g", HOST: "h"}, **debug), data_dirs, model_id="m", model_version="v")
    assert {out[p].summary["cipher"] for p in PARTIES} == {"plaintext_debug"}
    assert paillier.cipher_from_params(_params({"encrypt_param": {"method": None}}), "x") == (
        "paillier",
        1024,
    )
    assert paillier.cipher_from_params(_params({"he_param": {"kind": "mock"}}), "x")[0] == "plaintext_debug"
    assert paillier.cipher_from_params(
        _params({"he_param": {"kind": "paillier", "key_length": 2048}}), "x"
    ) == ("paillier", 2048)


def test_host_refuses_to_run_unencrypted_when_it_asked_for_paillier(data_dirs: dict[str, str]) -> None:
    g, h = _breast()
    put_table(data_dirs["9999"], "g", g, label="y")
    put_table(data_dirs["10000"], "h", h)
    spec = _lr_spec(PARTIES, {GUEST: "g", HOST: "h"}, max_iter=2)
    plain = {"encrypt_param": {"method": "plaintext_debug"}}
    spec.parameters = {GUEST: plain, ARBITER: plain}
    with pytest.raises(ComponentError, match="ask for 'paillier'"):
        run(spec, data_dirs, model_id="m", model_version="v", get_timeout=2.0)


def test_unaligned_rows_are_refused(data_dirs: dict[str, str]) -> None:
    g, h = _breast()
    put_table(data_dirs["9999"], "g", g, label="y")
    put_table(data_dirs["10000"], "h", h.iloc[:500])
    spec = _lr_spec(PARTIES, {GUEST: "g", HOST: "h"}, encrypt_param={"method": "plaintext_debug"})
    with pytest.raises(ComponentError, match="run intersection"):
        run(spec, data_dirs, model_id="m", model_version="v", get_timeout=2.0)


@pytest.mark.parametrize(
    ("optimizer", "batch_size", "init"),
    [
        ("rmsprop", 100, "random_uniform"),
        ("adam", 200, "zeros"),
        ("adagrad", 64, "random_normal"),
        ("sgd", -1, "zeros"),
        ("sqn", -1, "zeros"),
    ],
)
def test_optimizers_and_mini_batches(
    data_dirs: dict[str, str], optimizer: str, batch_size: int, init: str
) -> None:
    g, h = _breast()
    put_table(data_dirs["9999"], "g", g, label="y")
    put_table(data_dirs["10000"], "h", h)
    spec = _lr_spec(
        PARTIES,
        {GUEST: "g", HOST: "h"},
        optimizer=optimizer,
        batch_size=batch_size,
        max_iter=4,
        learning_rate=0.1,
        encrypt_param={"method": "plaintext_debug"},
        init_param={"init_method": init, "random_seed": 1},
    )
    out = run(spec, data_dirs, model_id="m", model_version="v")
    pred = output_frame(data_dirs, out[GUEST])
    assert roc_auc_score(pred["label"], pred["predict_score"]) > 0.9
    if optimizer == "sqn":
        assert any("not implemented; using sgd" in w for w in out[GUEST].summary["warnings"])
    assert out[GUEST].summary["batch_size"] == (569 if batch_size == -1 else batch_size)


def test_v2_parameters(data_dirs: dict[str, str]) -> None:
    g, h = _breast()
    put_table(data_dirs["9999"], "g", g, label="y")
    put_table(data_dirs["10000"], "h", h)
    v2 = {
        "epochs": 3,
        "batch_size": None,
        "optimizer": {"method": "adam", "penalty": "l2", "alpha": 0.001, "optimizer_params": {"lr": 0.1}},
        "learning_rate_scheduler": {"method": "constant", "scheduler_params": {"factor": 1.0}},
        "he_param": {"kind": "mock", "key_length": 1024},
        "init_param": {"method": "zeros", "fit_intercept": True},
        "early_stop": "diff",
        "tol": 0.0001,
    }
    spec = TaskSpec(
        "lr_0",
        "hetero_lr@1.0.0",
        PARTIES,
        common=v2,
        inputs=(
            InputRef(
                "data", "train_data", "data_warehouse", namespace="experiment", name="g", parties=(GUEST,)
            ),
            InputRef(
                "data", "train_data", "data_warehouse", namespace="experiment", name="h", parties=(HOST,)
            ),
        ),
        outputs={
            "data": ("train_output_data", "test_output_data", "cv_output_datas"),
            "model": ("output_model",),
        },
        component="coordinated_lr",
    )
    out = run(spec, data_dirs, model_id="m", model_version="v")
    assert set(out[GUEST].outputs) == {"train_output_data", "output_model"}
    assert out[GUEST].summary["iterations"] == 3
    assert out[GUEST].summary["optimizer"] == "adam"


def _params(raw: dict[str, Any]) -> Any:
    from fate_airflow.components.params import Params

    return Params(raw, "test")


def test_the_same_job_trains_the_same_model_without_a_seed(data_dirs: dict[str, str]) -> None:
    # Random initial weights and shuffled mini-batches, no random_seed given: the seed comes from the
    # task, so two runs agree to the bit (they differed before: AUC 0.9919 vs 0.9803 in two demos).
    g, h = _breast()
    put_table(data_dirs["9999"], "g", g, label="y")
    put_table(data_dirs["10000"], "h", h)
    scores = []
    for version in ("v1", "v2"):
        spec = _lr_spec(
            PARTIES,
            {GUEST: "g", HOST: "h"},
            batch_size=64,
            max_iter=3,
            learning_rate=0.15,
            encrypt_param={"method": "plaintext_debug"},
            init_param={"init_method": "random_uniform"},
        )
        out = run(spec, data_dirs, model_id="m", model_version=version)
        scores.append(output_frame(data_dirs, out[GUEST])["predict_score"].to_numpy())
    np.testing.assert_array_equal(scores[0], scores[1])
