"""Hetero SecureBoost building blocks: FATE's binning, packing, encrypted histograms, gains, traversal."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fate_airflow.components import paillier
from fate_airflow.components._sbt_core import (
    FlatTree,
    SplitRules,
    advance,
    bin_features,
    bucketize,
    candidate_index,
    flat_tree,
    goss_mask,
    plain_histograms,
    split_points,
)
from fate_airflow.components._sbt_crypto import HistogramBuilder, KeyOwner, PackLayout
from fate_airflow.core.errors import ComponentError
from fate_airflow.storage import SerialComputing, default_computing


@pytest.fixture(scope="module")
def keypair() -> paillier.Keypair:
    return paillier.Keypair.generate("paillier", 1024)


def test_split_points_follow_fates_quantile_summary() -> None:
    # FATE's GKSummary docstring: 1..10 queried at [0.1, 0.2, 0.7, 0.8] gives [1, 2, 7, 8]
    values = np.arange(1.0, 11.0)
    assert split_points(values, 10).tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    # quantiles at i/4: ranks ⌊q·n⌋ − 1 (at least 0) of the sorted values, de-duplicated
    assert split_points(values, 4).tolist() == [1, 2, 5, 7]
    assert split_points(np.array([0, 0, 0, 1, 1.0]), 32).tolist() == [0, 1]
    # a value's bin is the first split point >= it; the last point counts as +inf
    assert bucketize(np.array([1, 2, 2.5, 5, 6, 7, 8, 100.0]), np.array([1, 2, 5, 7.0])).tolist() == [
        0, 1, 2, 2, 3, 3, 3, 3,
    ]  # fmt: skip


def test_candidates_skip_each_features_last_bin() -> None:
    feats, bids = candidate_index(np.array([3, 1, 2]))
    assert list(zip(feats.tolist(), bids.tolist(), strict=True)) == [(0, 0), (0, 1), (2, 0)]


def test_pack_layout_fits_the_key_and_round_trips() -> None:
    rng = np.random.default_rng(1)
    g = rng.uniform(-1, 1, 1000)
    h = rng.uniform(0, 0.25, 1000)
    layout = PackLayout.plan(g, h, 1024, compress=True, where="t")
    assert layout.width * layout.per_ct <= 1022 and layout.per_ct >= 6
    plain = layout.pack(g, h)
    # the sum of packed rows is the packed (Σg, Σh, count): no carries between fields
    total = dataclasses.replace(layout, per_ct=1).unpack([sum(plain)], 1)
    assert total[0][0] == pytest.approx(g.sum(), abs=1e-12)
    assert total[1][0] == pytest.approx(h.sum(), abs=1e-12)
    assert total[2][0] == 1000
    keep = np.zeros(1000, dtype=bool)
    keep[:10] = True
    dropped = dataclasses.replace(layout, per_ct=1).unpack([sum(layout.pack(g, h, keep))], 1)
    assert dropped[0][0] == pytest.approx(g[:10].sum(), abs=1e-12) and dropped[2][0] == 10
    with pytest.raises(ComponentError, match="longer key"):
        PackLayout.plan(g, h, 128, compress=True, where="t")
    with pytest.raises(ComponentError, match="does not fit"):
        PackLayout.from_wire({**layout.to_wire(), "per_ct": 99}, 1024)


def _plain_cumulative(hist: np.ndarray, n_bins: np.ndarray) -> np.ndarray:
    feats, bids = candidate_index(n_bins)
    return np.cumsum(hist, axis=2)[:, feats, bids]


@pytest.mark.parametrize("pool", [False, True])
def test_encrypted_histograms_equal_plaintext_ones(keypair: paillier.Keypair, pool: bool) -> None:
    rng = np.random.default_rng(7)
    n = 300
    x = np.column_stack([
        rng.normal(size=n),
        rng.integers(0, 3, size=n).astype(float),  # skewed: one bin holds most rows
        np.where(rng.random(n) < 0.8, 0.0, rng.normal(size=n)),
    ])  # fmt: skip
    binned = bin_features(x, 8)
    g = rng.uniform(-1, 1, n)
    h = rng.uniform(0, 0.25, n)
    keep = rng.random(n) < 0.7  # a GOSS-like sample: dropped rows are encrypted zeros
    slots = rng.integers(0, 2, size=n)
    computing = default_computing() if pool else SerialComputing()
    owner = KeyOwner(keypair, computing, None)
    layout = PackLayout.plan(g, h, owner.key_bits, compress=True, where="t")
    cts = owner.encrypt(layout.pack(g, h, keep))
    builder = HistogramBuilder(keypair.public, computing, None)
    width = binned.width
    if pool:  # force the pool path on this small input
        import fate_airflow.components._sbt_crypto as crypto

        old = crypto.MIN_PARALLEL_CELLS
        crypto.MIN_PARALLEL_CELLS = 1
    try:
        hists = builder.histograms(cts, binned.bins, slots, 2, width)
    finally:
        if pool:
            crypto.MIN_PARALLEL_CELLS = old
    w = keep.astype(float)
    pg, ph, pc = plain_histograms(binned.bins, slots, 2, width, [g * w, h * w, w])
    expect = [_plain_cumulative(a, binned.n_bins) for a in (pg, ph, pc)]
    one = dataclasses.replace(layout, per_ct=1)
    for s in range(2):
        cands = builder.cumulative(hists[s], binned.n_bins, width)
        got = one.unpack(keypair.decrypt(cands), len(cands))
        for got_v, exp_v in zip(got, expect, strict=True):
            np.testing.assert_allclose(got_v, exp_v[s], atol=1e-12)
        # compression: several candidates per ciphertext decode to the same values; every sealed
        # ciphertext is re-randomised (never the product of the guest's own ciphertexts)
        packed = builder.seal([cands], layout)[0]
        assert len(packed) == -(-len(cands) // layout.per_ct)
        again = layout.unpack(owner.decrypt(packed), len(cands))
        for a, b in zip(again, got, strict=True):
            np.testing.assert_array_equal(a, b)
        single = builder.seal([cands[:1]], layout)[0]
        assert single[0] != cands[0] and keypair.decrypt(single) == keypair.decrypt(cands[:1])
    # histogram subtraction: (slot 0 + slot 1) − slot 1 = slot 0, exactly (the same group elements)
    both = builder.histograms(cts, binned.bins, np.zeros(n, dtype=np.int64), 1, width)[0]
    assert builder.subtract(both, hists[1]) == hists[0]
    assert builder.ops.inversions == 1 and owner.ops.encryptions == n


def test_plaintext_debug_cipher_runs_the_same_arithmetic() -> None:
    kp = paillier.Keypair.generate("plaintext_debug", 1024)
    rng = np.random.default_rng(3)
    n = 50
    binned = bin_features(rng.normal(size=(n, 2)), 4)
    g, h = rng.uniform(-1, 1, n), rng.uniform(0, 0.25, n)
    owner = KeyOwner(kp, SerialComputing(), None)
    layout = PackLayout.plan(g, h, owner.key_bits, compress=True, where="t")
    builder = HistogramBuilder(kp.public, SerialComputing(), None)
    hist = builder.histograms(
        owner.encrypt(layout.pack(g, h)), binned.bins, np.zeros(n, dtype=np.int64), 1, binned.width
    )
    cands = builder.cumulative(hist[0], binned.n_bins, binned.width)
    got = layout.unpack(owner.decrypt(builder.seal([cands], layout)[0]), len(cands))
    pg, ph, pc = plain_histograms(
        binned.bins, np.zeros(n, dtype=np.int64), 1, binned.width, [g, h, np.ones(n)]
    )
    np.testing.assert_allclose(got[0], _plain_cumulative(pg, binned.n_bins)[0], atol=1e-12)
    np.testing.assert_allclose(got[1], _plain_cumulative(ph, binned.n_bins)[0], atol=1e-12)
    np.testing.assert_array_equal(got[2], _plain_cumulative(pc, binned.n_bins)[0])


def test_gain_rules_are_fates() -> None:
    rules = SplitRules(l1=0.0, l2=0.1, min_impurity_split=0.01, min_leaf_node=1, min_child_weight=1.0)
    lg = np.array([[-2.0, -1.0, -3.0]])
    lh = np.array([[2.0, 0.5, 4.0]])
    lc = np.array([[5.0, 2.0, 9.0]])
    g_sum, h_sum, c_sum = np.array([-3.0]), np.array([5.0]), np.array([10.0])
    gains = rules.gains(lg, lh, lc, g_sum, h_sum, c_sum)

    def score(g: float, h: float) -> float:
        return g * g / (h + 0.1)

    assert gains[0, 0] == pytest.approx(score(-2, 2) + score(-1, 3) - score(-3, 5), abs=1e-9)
    assert gains[0, 1] == -np.inf  # left hessian 0.5 < min_child_weight
    assert gains[0, 2] == pytest.approx(score(-3, 4) + score(0, 1) - score(-3, 5), abs=1e-9)
    assert rules.node_weight(-2.0, 2.0) == pytest.approx(2 / 2.1, abs=1e-10)
    l1 = SplitRules(l1=0.5)
    assert l1.node_weight(-2.0, 2.0) == pytest.approx(1.5 / 2.1, abs=1e-10)
    assert l1.node_weight(0.3, 2.0) == 0.0


def test_goss_keeps_the_largest_gradients_and_a_random_rest() -> None:
    g = np.arange(100, dtype=float)
    mask = goss_mask(g, 0.2, 0.1, np.random.default_rng(0))
    assert mask.sum() == 30 and mask[80:].all() and mask[:80].sum() == 10


def test_traversal_stops_at_another_partys_split() -> None:
    nodes = [
        {"nid": 0, "sitename": "guest_9999", "fid": "a", "bid": 0.5, "is_leaf": False, "l": 1, "r": 2},
        {"nid": 1, "sitename": "host_10000", "fid": None, "bid": None, "is_leaf": False, "l": 3, "r": 4},
        {"nid": 2, "sitename": "guest_9999", "is_leaf": True, "weight": 0.7, "l": -1, "r": -1},
        {"nid": 3, "sitename": "guest_9999", "is_leaf": True, "weight": -0.1, "l": -1, "r": -1},
        {"nid": 4, "sitename": "guest_9999", "is_leaf": True, "weight": 0.2, "l": -1, "r": -1},
    ]
    tree: FlatTree = flat_tree(nodes, "guest_9999", {"a": 0}, "t")
    x = np.array([[0.1], [0.9], [0.5 + 1e-9]])
    pos = advance(tree, np.zeros(3, dtype=np.int64), x)
    assert pos.tolist() == [1, -3, 1]  # row 0 waits for the host; row 1 reached leaf 2; ties go left
    host_nodes = [dict(nd) for nd in nodes]
    host_nodes[1].update(fid="b", bid=2.0)
    host_tree = flat_tree(host_nodes, "host_10000", {"b": 0}, "t")
    assert advance(host_tree, pos, np.array([[1.0], [0.0], [3.0]])).tolist() == [-4, -3, -5]
    with pytest.raises(ComponentError, match="lacks"):
        flat_tree(host_nodes, "host_10000", {"c": 0}, "t")
