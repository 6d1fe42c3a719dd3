"""Homo LR over secure aggregation on breast_homo, in-memory federation (every share in a thread).

Covers accuracy against scikit-learn on the pooled rows, predict from the stored model, a host that
dies mid-round (the round completes from the others' shares), a threshold the survivors cannot
meet, what the arbiter can learn from the messages it received, determinism, and parameter errors.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from fate_airflow.components import _secagg
from fate_airflow.components._homo_lr_params import read_homo_config
from fate_airflow.components.api import PartyTaskRequest
from fate_airflow.components.params import Params
from fate_airflow.components.simulate import ShareOutcome, TaskSpec, run_shares
from fate_airflow.core.errors import ComponentError
from fate_airflow.core.types import InputRef, Party
from fate_airflow.federation.api import Federation, FederationSession, Payload
from fate_airflow.federation.inmemory import InMemoryHub, Transfer
from fate_airflow.tracking import ModelKey, ModelStore

from .conftest import ARBITER, GUEST, HOST, HOST2, JOB_ID
from .helpers import DATA, output_frame, put_table, run

PARAMS: dict[str, Any] = {
    "epochs": 20,
    "batch_size": 32,
    "optimizer": {"method": "sgd", "penalty": "l2", "alpha": 0.001, "optimizer_params": {"lr": 0.1}},
    "init_param": {"method": "zeros"},
}
TWO = (GUEST, HOST, ARBITER)
THREE = (GUEST, HOST, HOST2, ARBITER)
CLIENT_IDS = {GUEST: "guest:9999", HOST: "host:10000", HOST2: "host:10001"}


def _breast() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    read = lambda name: pd.read_csv(DATA / f"{name}.csv", dtype={"id": str})  # noqa: E731
    return read("breast_homo_guest"), read("breast_homo_host"), read("breast_homo_test")


def _spec(
    parties: Sequence[Party], tables: dict[Party, str], stage: str = "train", **params: Any
) -> TaskSpec:
    key = "train_data" if stage == "train" else "test_data"
    inputs = tuple(
        InputRef("data", key, "data_warehouse", namespace="experiment", name=name, parties=(party,))
        for party, name in tables.items()
    )
    if stage == "predict":
        inputs += (
            InputRef(
                "model",
                "input_model",
                "model_warehouse",
                producer_task="homo_lr_0",
                output_key="output_model",
            ),
        )
    return TaskSpec(
        "homo_lr_0",
        "homo_lr@1.0.0",
        tuple(parties),
        common={**PARAMS, **params},
        inputs=inputs,
        outputs={"data": ("train_output_data",), "model": ("output_model",)}
        if stage == "train"
        else {"data": ("test_output_data",)},
        stage=stage,
        component="homo_lr",
    )


def _three_clients(data_dirs: dict[str, str]) -> dict[Party, str]:
    g, h, _ = _breast()
    put_table(data_dirs["9999"], "g", g, label="y")
    put_table(data_dirs["10000"], "h1", h.iloc[: len(h) // 2], label="y")
    put_table(data_dirs["10001"], "h2", h.iloc[len(h) // 2 :], label="y")
    return {GUEST: "g", HOST: "h1", HOST2: "h2"}


def _sk_auc(x: np.ndarray, y: np.ndarray) -> float:
    model = LogisticRegression(max_iter=5000).fit(x, y)
    return float(roc_auc_score(y, model.predict_proba(x)[:, 1]))


def _model(data_dirs: dict[str, str], party: Party, version: str = "v") -> Any:
    return ModelStore(data_dirs[party.party_id]).load(
        ModelKey("m", version, party.role, party.party_id, "homo_lr_0")
    )


# ---------------------------------------------------------------------------- accuracy, predict


def test_auc_matches_sklearn_on_pooled_rows_and_predict_reuses_the_model(data_dirs: dict[str, str]) -> None:
    g, h, test = _breast()
    put_table(data_dirs["9999"], "g", g, label="y")
    put_table(data_dirs["10000"], "h", h, label="y")
    put_table(data_dirs["9999"], "g_test", test.iloc[: len(test) // 2], label="y")
    put_table(data_dirs["10000"], "h_test", test.iloc[len(test) // 2 :], label="y")
    out = run(_spec(TWO, {GUEST: "g", HOST: "h"}), data_dirs, model_id="m", model_version="v")
    pred = pd.concat([output_frame(data_dirs, out[p], "train_output_data") for p in (GUEST, HOST)])
    assert list(pred.columns) == ["id", "label", "predict_result", "predict_score", "predict_detail", "type"]
    assert sorted(pred["id"]) == sorted([*g["id"], *h["id"]])
    fed = float(roc_auc_score(pred["label"], pred["predict_score"]))
    pooled = pd.concat([g, h])
    sk = _sk_auc(pooled.drop(columns=["id", "y"]).to_numpy(), pooled["y"].to_numpy())
    print(f"\nbreast_homo pooled train rows: federated AUC {fed:.4f}, sklearn AUC {sk:.4f}")
    assert fed >= sk - 0.01
    # every client holds the same averaged model; the board gets a loss per round from every party
    mg, mh = _model(data_dirs, GUEST), _model(data_dirs, HOST)
    np.testing.assert_array_equal(mg.arrays["weights"], mh.arrays["weights"])
    assert mg.params["intercept"] == mh.params["intercept"]
    assert mg.params["header"] == [f"x{i}" for i in range(30)]
    for party in TWO:
        assert len(out[party].summary["loss_history"]) == 20
    losses = out[ARBITER].summary["loss_history"]
    assert losses == out[GUEST].summary["loss_history"] and losses[-1] < losses[0]
    assert out[ARBITER].summary["clients_per_round"] == [2] * 20
    assert out[ARBITER].summary["secure_aggregation"]["threshold"] == 2

    jp = {"model_id": "m", "model_version": "v"}
    spec = _spec(TWO, {GUEST: "g_test", HOST: "h_test"}, stage="predict")
    res = run(spec, data_dirs, job_id="predict-job", model_id="m", model_version="v", job_parameters=jp)
    assert res[ARBITER].status == "pass"
    scored = pd.concat([output_frame(data_dirs, res[p], "test_output_data") for p in (GUEST, HOST)])
    frame = test.set_index("id").loc[scored["id"]]
    z = frame[mg.params["header"]].to_numpy() @ mg.arrays["weights"] + mg.params["intercept"]
    np.testing.assert_allclose(scored["predict_score"].to_numpy(), 1 / (1 + np.exp(-z)), rtol=1e-12)
    assert (scored["type"] == "predict").all()
    held = float(roc_auc_score(scored["label"], scored["predict_score"]))
    print(f"breast_homo_test held-out rows: federated AUC {held:.4f}")
    assert held > 0.97


def test_fate_1x_homolr_parameters_and_early_stop(data_dirs: dict[str, str]) -> None:
    g, h, _ = _breast()
    put_table(data_dirs["9999"], "g", g, label="y")
    put_table(data_dirs["10000"], "h", h, label="y")
    v1 = {  # FATE 1.x's homo_lr_train_conf.json, with a looser tol so early stopping triggers
        "penalty": "L2",
        "tol": 5e-3,
        "alpha": 0.01,
        "optimizer": "sgd",
        "batch_size": -1,
        "learning_rate": 0.15,
        "init_param": {"init_method": "zeros"},
        "max_iter": 30,
        "early_stop": "diff",
        "encrypt_param": {"method": None},
        "cv_param": {"n_splits": 4, "shuffle": True, "random_seed": 33, "need_cv": False},
        "decay": 1,
        "decay_sqrt": True,
    }
    spec = TaskSpec(
        "homo_lr_0",
        "homo_lr@1.0.0",
        TWO,
        common=v1,
        inputs=_spec(TWO, {GUEST: "g", HOST: "h"}).inputs,
        outputs={"data": ("data",), "model": ("model",)},
        component="HomoLR",
    )
    out = run(spec, data_dirs, model_id="m", model_version="v")
    rounds = out[ARBITER].summary["rounds"]
    assert out[ARBITER].summary["converged"] and rounds < 30
    assert out[GUEST].summary["rounds"] == out[HOST].summary["rounds"] == rounds
    assert out[GUEST].summary["converged"] and out[HOST].metrics["converged"]
    assert out[GUEST].summary["optimizer"] == "sgd" and out[GUEST].summary["batch_size"] == len(g)
    pred = output_frame(data_dirs, out[GUEST])
    assert roc_auc_score(pred["label"], pred["predict_score"]) > 0.95


# ---------------------------------------------------------------------------- dropout


class _Crash(RuntimeError):
    """The simulated host process dying."""


class _DyingFederation(Federation):
    """A party's federation that dies at a chosen message: the share's thread raises there."""

    def __init__(self, inner: Federation, name: str, tag: str, send_first: bool) -> None:
        super().__init__(inner.session)
        self.inner, self.name, self.tag, self.send_first = inner, name, tag, send_first

    def remote(self, obj: Payload, name: str, tag: str, parties: Sequence[Party]) -> None:
        if (name, tag) == (self.name, self.tag):
            if self.send_first:
                self.inner.remote(obj, name, tag, parties)
            raise _Crash(f"{self.session.local} died at {name!r} tag {tag!r}")
        self.inner.remote(obj, name, tag, parties)

    def get(
        self, name: str, tag: str, parties: Sequence[Party], timeout: float | None = None
    ) -> list[Payload]:
        return self.inner.get(name, tag, parties, timeout)

    def close(self) -> None:
        self.inner.close()


@dataclass
class _Recorded:
    me: str
    label: str
    x: np.ndarray
    y: np.ndarray


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[_Recorded]:
    """Every client's encoded update and masked vector (what the test, not the arbiter, sees)."""
    out: list[_Recorded] = []
    original = _secagg.ClientRound.mask

    def mask(self: _secagg.ClientRound, x: np.ndarray) -> np.ndarray:
        y = original(self, x)
        out.append(_Recorded(self.me, self.label, np.array(x, dtype=np.uint64), y.copy()))
        return y

    monkeypatch.setattr(_secagg.ClientRound, "mask", mask)
    return out


def _run_with_death(
    spec: TaskSpec,
    data_dirs: dict[str, str],
    hub: InMemoryHub,
    dies: Party,
    at: tuple[str, str, bool],
) -> dict[Party, ShareOutcome]:
    jp = {"federation_get_timeout": 60.0}
    requests = [
        spec.request(
            p,
            job_id=JOB_ID,
            data_dir=data_dirs[p.party_id],
            model_id="m",
            model_version="v",
            job_parameters=jp,
        )
        for p in spec.parties
    ]

    def federation_for(req: PartyTaskRequest) -> Federation:
        fed = hub.federation(
            FederationSession(req.job_id, req.task_name, req.task_version, req.local, req.parties)
        )
        return _DyingFederation(fed, *at) if req.local == dies else fed

    return run_shares(requests, federation_for, join_timeout=120)


def _unsigned_sum(vectors: Sequence[np.ndarray]) -> np.ndarray:
    return sum(vectors, np.zeros_like(vectors[0]))


@pytest.mark.parametrize(
    ("at", "round_clients"),
    [
        # dies after sharing its keys, before sending its masked input: its pairwise masks are
        # rebuilt from the survivors' shares of its mask key, and its input is left out
        (("secagg_masked", "2", False), 2),
        # dies after sending its masked input, before unmasking: its self mask is rebuilt from the
        # survivors' shares, and its input counts
        (("secagg_reveal", "2", False), 3),
    ],
    ids=["before-masked-input", "after-masked-input"],
)
def test_a_host_dies_mid_round_and_the_round_completes(
    data_dirs: dict[str, str], recorded: list[_Recorded], at: tuple[str, str, bool], round_clients: int
) -> None:
    tables = _three_clients(data_dirs)
    spec = _spec(THREE, tables, epochs=6, secure_aggregate_param={"threshold": 2, "timeout": 5.0})
    hub = InMemoryHub()
    started = time.monotonic()
    out = _run_with_death(spec, data_dirs, hub, HOST2, at)
    assert isinstance(out[HOST2].error, _Crash)
    for party in (GUEST, HOST, ARBITER):
        assert out[party].error is None, out[party].error
    assert time.monotonic() - started < 60
    arb = out[ARBITER].unwrap().summary
    assert arb["dropped"] == {"host:10001": 2}
    assert arb["clients_per_round"] == [3, 3, round_clients, 2, 2, 2]
    assert arb["rounds"] == 6
    np.testing.assert_array_equal(
        _model(data_dirs, GUEST).arrays["weights"], _model(data_dirs, HOST).arrays["weights"]
    )

    # round 2's aggregate is exactly the weighted mean of the inputs that counted
    inputs = {r.me: r.x for r in recorded if r.label == "secure aggregation round 2"}
    assert set(inputs) == set(CLIENT_IDS.values())  # the dying host masked its input (sent or not)
    counted = [inputs[u] for u in sorted(inputs) if round_clients == 3 or u != "host:10001"]
    total = _secagg.dequantize(_unsigned_sum(counted), 24)
    result = next(t for t in hub.log if t.name == "secagg_result" and t.tag == "2" and t.dst == GUEST)
    np.testing.assert_allclose(result.obj["weights"], total[:-2] / total[-1], rtol=0, atol=1e-12)
    assert result.obj["clients"] == round_clients

    # the arbiter asked for one kind of share per client, never both
    reveals = [t for t in hub.log if t.name == "secagg_reveal" and t.tag == "2" and t.dst == ARBITER]
    assert {CLIENT_IDS[t.src] for t in reveals} == {"guest:9999", "host:10000"}
    for t in reveals:
        assert not set(t.obj["b"]) & set(t.obj["s"])
        if round_clients == 2:
            assert set(t.obj["s"]) == {"host:10001"} and set(t.obj["b"]) == {"guest:9999", "host:10000"}
        else:
            assert t.obj["s"] == {} and set(t.obj["b"]) == set(CLIENT_IDS.values())
    # later rounds go on with the two survivors only
    keys3 = {CLIENT_IDS[t.src] for t in hub.log if t.name == "secagg_keys" and t.tag == "3"}
    assert keys3 == {"guest:9999", "host:10000"}


def test_threshold_above_the_survivors_fails_cleanly(data_dirs: dict[str, str]) -> None:
    tables = _three_clients(data_dirs)
    spec = _spec(THREE, tables, epochs=4, secure_aggregate_param={"threshold": 3, "timeout": 5.0})
    started = time.monotonic()
    out = _run_with_death(spec, data_dirs, InMemoryHub(), HOST2, ("secagg_masked", "1", False))
    assert time.monotonic() - started < 30
    assert isinstance(out[HOST2].error, _Crash)
    expected = r"secure aggregation round 1: only 2 client\(s\) sent masked input; the threshold is 3"
    for party in (GUEST, HOST, ARBITER):
        assert isinstance(out[party].error, ComponentError), party
        assert re.search(expected, str(out[party].error)), out[party].error


# ---------------------------------------------------------------------------- what the arbiter learns


def _leaves(obj: object) -> Iterator[object]:
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _leaves(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _leaves(v)
    else:
        yield obj


def test_the_arbiter_sees_only_uniform_ring_elements_and_the_sum(
    data_dirs: dict[str, str], recorded: list[_Recorded]
) -> None:
    tables = _three_clients(data_dirs)
    hub = InMemoryHub()
    run(_spec(THREE, tables, epochs=8), data_dirs, hub=hub, model_id="m", model_version="v")
    to_arbiter: list[Transfer] = [t for t in hub.log if t.dst == ARBITER]
    names = {t.name for t in to_arbiter}
    assert names == {"homo_lr_setup", "secagg_keys", "secagg_shares", "secagg_masked", "secagg_reveal"}
    # 1. the only arrays the arbiter receives are the masked vectors; shares arrive sealed
    for t in to_arbiter:
        for leaf in _leaves(t.obj):
            if isinstance(leaf, np.ndarray):
                assert t.name == "secagg_masked" and leaf.dtype == np.uint64
        if t.name == "secagg_shares":
            assert all(isinstance(b, bytes) and len(b) == 12 + 2 * 66 + 16 for b in t.obj.values())
    masked = {(CLIENT_IDS[t.src], t.tag): t.obj for t in to_arbiter if t.name == "secagg_masked"}
    assert len(masked) == 3 * 8
    by_round: dict[str, list[np.ndarray]] = {}
    for r in recorded:
        tag = r.label.rsplit(" ", 1)[1]
        y = masked[(r.me, tag)]
        np.testing.assert_array_equal(y, r.y)  # what crossed is what the client masked
        by_round.setdefault(tag, []).append(r.x)
    ys = np.concatenate(list(masked.values()))
    xs = np.concatenate([r.x for r in recorded])
    # 2. an encoded update is small as a signed integer; every masked element looks uniform in the ring
    assert np.all(np.abs(xs.astype(np.int64).astype(np.float64)) < 2.0**50)
    assert np.mean(np.abs(ys.astype(np.int64).astype(np.float64)) < 2.0**56) < 0.05
    bits = ((ys[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).mean(axis=0)
    assert np.all(np.abs(bits - 0.5) < 0.1), bits
    # 3. unrelated to the update it hides
    diff = (ys - xs).astype(np.int64).astype(np.float64)
    assert (
        abs(np.corrcoef(ys.astype(np.int64).astype(np.float64), xs.astype(np.int64).astype(np.float64))[0, 1])
        < 0.2
    )
    assert np.mean(np.abs(diff) < 2.0**56) < 0.05
    # 4. only the sum comes out: each round's broadcast is exactly the weighted mean of all inputs
    for t in hub.log:
        if t.name == "secagg_result" and t.dst == GUEST:
            total = _secagg.dequantize(_unsigned_sum(by_round[t.tag]), 24)
            np.testing.assert_allclose(t.obj["weights"], total[:-2] / total[-1], rtol=0, atol=1e-12)
    # 5. the shares relayed through the arbiter were sealed: the share a client later reveals in
    #    clear (its share of a peer's self-mask seed) appears in no relayed blob
    for t in to_arbiter:
        if t.name != "secagg_reveal":
            continue
        for owner, share in t.obj["b"].items():
            if owner == CLIENT_IDS[t.src]:
                continue
            relayed = next(
                s.obj[CLIENT_IDS[t.src]]
                for s in to_arbiter
                if s.name == "secagg_shares" and s.tag == t.tag and CLIENT_IDS[s.src] == owner
            )
            assert share.to_bytes(66, "big") not in relayed


# ---------------------------------------------------------------------------- determinism, parameters


def test_the_same_job_trains_the_same_model(data_dirs: dict[str, str]) -> None:
    # random initial weights and shuffled batches, no seed given: fixed by the task; the masks are
    # fresh randomness every run but cancel exactly in the ring
    tables = _three_clients(data_dirs)
    weights = []
    for version in ("v1", "v2"):
        spec = _spec(THREE, tables, epochs=4, init_param={"method": "random"})
        run(spec, data_dirs, model_id="m", model_version=version)
        weights.append(_model(data_dirs, HOST2, version).arrays["weights"])
    np.testing.assert_array_equal(weights[0], weights[1])
    assert np.any(weights[0] != 0)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"optimizer": {"method": "lbfgs", "optimizer_params": {}}}, "optimizer.method"),
        (
            {"optimizer": {"method": "sgd", "optimizer_params": {"lr": 0.1, "betas": [0.9, 0.9]}}},
            "optimizer.optimizer_params.betas",
        ),
        ({"optimizer": {"method": "sgd", "penalty": "l3", "optimizer_params": {}}}, "optimizer.penalty"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"threshold": 1.5}, "threshold"),
        ({"init_param": {"method": "xavier"}}, "init_param.method"),
        ({"learning_rate_scheduler": {"method": "cosine"}}, "learning_rate_scheduler.method"),
        ({"ovr": True, "label_num": 3}, "ovr"),
        ({"secure_aggregate_param": {"timeout": -1}}, "secure_aggregate_param.timeout"),
        ({"secure_aggregate_param": {"thresold": 2}}, "secure_aggregate_param.thresold"),
        ({"secure_aggregate_param": {"precision": 60}}, "secure_aggregate_param.precision"),
    ],
)
def test_bad_parameters_name_the_field(params: dict[str, Any], field: str) -> None:
    with pytest.raises(ComponentError, match=field.replace(".", r"\.")):
        read_homo_config(Params({**PARAMS, **params}, "homo_lr_0"), "homo_lr")


def test_v1_bad_parameters_name_the_field() -> None:
    with pytest.raises(ComponentError, match="'optimizer' 'sqn'"):
        read_homo_config(Params({"optimizer": "sqn"}, "w"), "HomoLR")
    with pytest.raises(ComponentError, match="'early_stop'"):
        read_homo_config(Params({"early_stop": "never"}, "w"), "HomoLR")
    with pytest.raises(ComponentError, match=r"cv_param\.need_cv"):
        read_homo_config(Params({"cv_param": {"need_cv": True}}, "w"), "HomoLR")


def test_fate_defaults() -> None:
    v2 = read_homo_config(Params({}, "w"), "homo_lr")
    assert (v2.epochs, v2.batch_size, v2.optimizer, v2.learning_rate) == (20, 100, "sgd", 0.01)
    assert (v2.penalty, v2.alpha, v2.init_method, v2.fit_intercept, v2.threshold) == (
        "L2",
        1.0,
        "random_normal",
        True,
        0.5,
    )
    v1 = read_homo_config(Params({}, "w"), "HomoLR")
    assert (v1.epochs, v1.batch_size, v1.optimizer, v1.early_stop, v1.tol) == (100, None, "sgd", "diff", 1e-4)
    assert (v1.aggregate_every, v1.decay, v1.decay_sqrt, v1.init_method) == (1, 1.0, True, "random_uniform")
    assert v2.secagg.threshold_for(2, "w") == 2 and v2.secagg.threshold_for(5, "w") == 3
    with pytest.raises(ComponentError, match=r"secure_aggregate_param\.threshold must be between 2 and"):
        read_homo_config(
            Params({"secure_aggregate_param": {"threshold": 4}}, "w"), "homo_lr"
        ).secagg.threshold_for(3, "w")


def test_a_bad_threshold_fails_every_party(data_dirs: dict[str, str]) -> None:
    tables = _three_clients(data_dirs)
    spec = _spec(THREE, tables, epochs=2, secure_aggregate_param={"threshold": 1})
    with pytest.raises(
        ComponentError,
        match=r"secure_aggregate_param\.threshold must be between 2 and the number of clients \(3\), got 1",
    ):
        run(spec, data_dirs, model_id="m", model_version="v", get_timeout=5.0)


def test_warm_start_is_refused_everywhere(data_dirs: dict[str, str]) -> None:
    g, h, _ = _breast()
    put_table(data_dirs["9999"], "g", g, label="y")
    put_table(data_dirs["10000"], "h", h, label="y")
    spec = _spec(TWO, {GUEST: "g", HOST: "h"})
    spec.inputs += (
        InputRef("model", "warm_start_model", "task", producer_task="x", output_key="output_model"),
    )
    with pytest.raises(ComponentError, match="warm start"):
        run(spec, data_dirs, model_id="m", model_version="v", get_timeout=5.0)
