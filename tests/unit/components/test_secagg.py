"""Secure-aggregation primitives: Shamir t-of-n, sealed shares, mask cancellation, dropout recovery."""

from __future__ import annotations

import itertools
import secrets

import numpy as np
import pytest

from fate_airflow.components import _secagg as sa

CTX = b"job|homo_lr_0|1|0"


def test_shamir_rebuilds_from_any_t_of_n_and_not_from_t_minus_1() -> None:
    secret = secrets.token_bytes(sa.KEY_BYTES)
    xs = [1, 2, 3, 4, 5]
    shares = sa.shamir_split(secret, xs, threshold=3)
    assert set(shares) == set(xs)
    for subset in itertools.combinations(xs, 3):
        assert sa.shamir_combine({x: shares[x] for x in subset}, 3) == secret
    assert sa.shamir_combine(shares, 3) == secret  # more than t is fine
    for subset in itertools.combinations(xs, 2):
        part = {x: shares[x] for x in subset}
        with pytest.raises(sa.SecAggError, match="2 share"):
            sa.shamir_combine(part, 3)
        # interpolating t−1 points gives a value unrelated to the secret
        assert sa.lagrange_at_zero(sorted(part.items())) != int.from_bytes(secret, "big")


def test_shamir_rejects_bad_arguments() -> None:
    with pytest.raises(sa.SecAggError, match="threshold"):
        sa.shamir_split(b"x" * 32, [1, 2], threshold=3)
    with pytest.raises(sa.SecAggError, match="distinct"):
        sa.shamir_split(b"x" * 32, [1, 1, 2], threshold=2)
    with pytest.raises(sa.SecAggError, match="longer"):
        sa.shamir_split(b"x" * 33, [1, 2], threshold=2)


def test_fixed_point_round_trip_and_overflow() -> None:
    x = np.array([0.0, -1.5, 3.25, -1e6, 1e-7])
    enc = sa.quantize(x, 24, headroom_bits=2)
    assert enc.dtype == np.uint64
    np.testing.assert_allclose(sa.dequantize(enc, 24), x, atol=2**-24)
    # the sum of encodings decodes to the sum (two's complement in the ring)
    np.testing.assert_allclose(sa.dequantize(enc + enc + enc, 24), 3 * x, atol=3 * 2**-24)
    with pytest.raises(sa.SecAggError, match="too large"):
        sa.quantize(np.array([2.0**40]), 24, headroom_bits=2)
    with pytest.raises(sa.SecAggError, match="non-finite"):
        sa.quantize(np.array([np.nan]), 24)


def test_sealed_shares_open_only_for_the_recipient_in_context() -> None:
    a, b, eve = sa.KeyPair.generate(), sa.KeyPair.generate(), sa.KeyPair.generate()
    k_ab = sa.agree(a.private, b.public)
    assert k_ab == sa.agree(b.private, a.public)
    blob = sa.seal(k_ab, b"share", b"ctx|a|b")
    assert sa.open_sealed(sa.agree(b.private, a.public), blob, b"ctx|a|b") == b"share"
    with pytest.raises(sa.SecAggError, match="authenticate"):
        sa.open_sealed(sa.agree(eve.private, a.public), blob, b"ctx|a|b")
    with pytest.raises(sa.SecAggError, match="authenticate"):
        sa.open_sealed(k_ab, blob, b"ctx|a|eve")  # relayed to the wrong recipient
    with pytest.raises(sa.SecAggError, match="low order"):
        sa.agree(a.private, bytes(32))


def _setup(ids: list[str], t: int) -> tuple[dict[str, sa.ClientRound], sa.ServerRound]:
    clients = {u: sa.ClientRound(u, CTX, t) for u in ids}
    server = sa.ServerRound(CTX, t)
    roster = server.collect_adverts({u: c.advert() for u, c in clients.items()})
    sent = {u: clients[u].share_keys(roster, server.adverts) for u in roster}
    inboxes = server.route_shares(sent)
    for u in server.u2:
        clients[u].receive_shares(server.u2, inboxes[u])
    return clients, server


def _inputs(ids: list[str], length: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {u: sa.quantize(rng.normal(0, 100, length), 24, 3) for u in ids}


def test_pairwise_masks_cancel_in_the_sum() -> None:
    ids = ["guest:9999", "host:10000", "host:10001", "host:10002"]
    clients, _ = _setup(ids, 3)
    x = _inputs(ids)
    y = {u: clients[u].mask(x[u]) for u in ids}
    total = sum((y[u] for u in ids), np.zeros(8, dtype=np.uint64))
    # remove only the self masks: what is left is exactly Σx (the pairwise masks cancelled)
    for u in ids:
        total = total - sa.expand(clients[u]._b, 8, b"self|" + CTX)
    assert np.array_equal(total, sum((x[u] for u in ids), np.zeros(8, dtype=np.uint64)))
    assert sa.pair_sign("guest:9999", "host:10000") == -sa.pair_sign("host:10000", "guest:9999")


def test_full_round_recovers_exactly_the_sum() -> None:
    ids = ["guest:9999", "host:10000", "host:10001"]
    clients, server = _setup(ids, 2)
    x = _inputs(ids)
    survivors = server.collect_masked({u: clients[u].mask(x[u]) for u in ids}, 8)
    total = server.unmask({u: clients[u].reveal(survivors) for u in survivors})
    assert np.array_equal(total, x[ids[0]] + x[ids[1]] + x[ids[2]])
    assert server.dropped == []


def test_dropout_before_masked_input_is_recovered_from_shares() -> None:
    ids = ["guest:9999", "host:10000", "host:10001"]
    clients, server = _setup(ids, 2)
    x = _inputs(ids)
    alive = ids[:2]  # host:10001 shared its keys, then vanished
    survivors = server.collect_masked({u: clients[u].mask(x[u]) for u in alive}, 8)
    assert server.dropped == ["host:10001"]
    reveals = {u: clients[u].reveal(survivors) for u in survivors}
    for r in reveals.values():  # never both kinds of share for one client
        assert set(r["b"]) == set(alive) and set(r["s"]) == {"host:10001"}
    total = server.unmask(reveals)
    assert np.array_equal(total, x[ids[0]] + x[ids[1]])


def test_dropout_after_masked_input_still_counts_the_input() -> None:
    ids = ["guest:9999", "host:10000", "host:10001"]
    clients, server = _setup(ids, 2)
    x = _inputs(ids)
    survivors = server.collect_masked({u: clients[u].mask(x[u]) for u in ids}, 8)
    # host:10001 dies before unmasking; two of three shares rebuild its self mask
    total = server.unmask({u: clients[u].reveal(survivors) for u in ids[:2]})
    assert np.array_equal(total, x[ids[0]] + x[ids[1]] + x[ids[2]])


def test_too_few_clients_fails_naming_the_count() -> None:
    ids = ["guest:9999", "host:10000", "host:10001"]
    clients, server = _setup(ids, 3)
    x = _inputs(ids)
    with pytest.raises(sa.SecAggError, match=r"only 2 client\(s\) sent masked input; the threshold is 3"):
        server.collect_masked({u: clients[u].mask(x[u]) for u in ids[:2]}, 8)
    clients, server = _setup(ids, 2)
    survivors = server.collect_masked({u: clients[u].mask(x[u]) for u in ids}, 8)
    with pytest.raises(sa.SecAggError, match="only 1 client"):
        server.unmask({ids[0]: clients[ids[0]].reveal(survivors)})


def test_clients_refuse_to_reveal_twice_or_for_an_inconsistent_roster() -> None:
    ids = ["guest:9999", "host:10000", "host:10001"]
    clients, _ = _setup(ids, 2)
    x = _inputs(ids)
    for u in ids:
        clients[u].mask(x[u])
    c = clients["guest:9999"]
    with pytest.raises(sa.SecAggError, match="inconsistent survivor"):
        c.reveal(["guest:9999", "host:10000", "host:99999"])
    c.reveal(["guest:9999", "host:10000"])
    # a second request (e.g. "host:10000 dropped after all") would hand over both kinds of share
    with pytest.raises(sa.SecAggError, match="out of order"):
        c.reveal(["guest:9999", "host:10001"])


def test_server_refuses_shares_of_the_wrong_kind() -> None:
    ids = ["guest:9999", "host:10000", "host:10001"]
    clients, server = _setup(ids, 2)
    x = _inputs(ids)
    survivors = server.collect_masked({u: clients[u].mask(x[u]) for u in ids[:2]}, 8)
    reveals = {u: clients[u].reveal(survivors) for u in survivors}
    bad = {"b": dict(reveals[ids[0]]["b"]), "s": {**reveals[ids[0]]["s"], ids[1]: 5}}
    with pytest.raises(sa.SecAggError, match="wrong clients"):
        server.unmask({ids[0]: bad, ids[1]: reveals[ids[1]]})


def test_a_tampered_share_is_detected() -> None:
    ids = ["guest:9999", "host:10000", "host:10001"]
    clients, server = _setup(ids, 2)
    x = _inputs(ids)
    survivors = server.collect_masked({u: clients[u].mask(x[u]) for u in ids[:2]}, 8)
    reveals = {u: clients[u].reveal(survivors) for u in survivors}
    reveals[ids[0]]["s"]["host:10001"] += 1
    with pytest.raises(sa.SecAggError, match="does not match its public key"):
        server.unmask(reveals)


def test_masked_vectors_look_uniform() -> None:
    ids = [f"host:{i}" for i in range(4)]
    clients, _ = _setup(ids, 3)
    x = {u: np.zeros(4096, dtype=np.uint64) for u in ids}  # the worst case: all-zero inputs
    y = np.concatenate([clients[u].mask(x[u]) for u in ids])
    bits = (y[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)
    freq = bits.mean(axis=0)
    assert np.all(np.abs(freq - 0.5) < 0.02), freq
    small = np.abs(y.astype(np.int64).astype(np.float64)) < 2.0**56
    assert small.mean() < 0.02  # uniform: 1/128 expected; an encoded update: all of them


def test_rosters_are_checked_by_the_client() -> None:
    ids = ["guest:9999", "host:10000", "host:10001"]
    clients = {u: sa.ClientRound(u, CTX, 2) for u in ids}
    adverts = {u: c.advert() for u, c in clients.items()}
    with pytest.raises(sa.SecAggError, match="altered"):
        clients[ids[0]].share_keys(ids, {**adverts, ids[0]: adverts[ids[1]]})
    with pytest.raises(sa.SecAggError, match="threshold is 2"):
        clients[ids[0]].share_keys(ids[:1], {ids[0]: adverts[ids[0]]})
    with pytest.raises(sa.SecAggError, match="below 2"):
        sa.ClientRound("x", CTX, 1)
