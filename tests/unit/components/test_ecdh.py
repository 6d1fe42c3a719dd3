from __future__ import annotations

import os

import nacl.bindings as sodium
import pytest

from fate_airflow.components import _ecdh


def test_hash_to_point_is_a_curve25519_point_of_the_prime_subgroup() -> None:
    digest_point = _ecdh.hash_to_point(b"id-1")
    assert len(digest_point) == 32
    assert _ecdh.hash_to_point(b"id-1") == digest_point
    assert _ecdh.hash_to_point(b"id-2") != digest_point
    assert _ecdh.hash_to_point(b"id-1", salt=b"s") != digest_point
    # libsodium's own Edwards→Montgomery conversion (with its subgroup check) agrees
    import hashlib

    h = hashlib.sha512(_ecdh.DOMAIN + (0).to_bytes(4, "little") + b"id-1").digest()
    edwards = sodium.crypto_core_ed25519_from_uniform(h[:32])
    assert sodium.crypto_core_ed25519_is_valid_point(edwards)
    assert sodium.crypto_sign_ed25519_pk_to_curve25519(edwards) == digest_point


def test_blinding_commutes() -> None:
    a, b = os.urandom(32), os.urandom(32)
    ids = [f"user-{i}" for i in range(20)]
    ab = _ecdh.reblind(_ecdh.blind_ids(ids, a), b)
    ba = _ecdh.reblind(_ecdh.blind_ids(ids, b), a)
    assert ab == ba
    assert len(set(ab)) == len(ids)
    assert _ecdh.reblind(_ecdh.hash_ids(ids), a) == _ecdh.blind_ids(ids, a)


def test_bad_points_are_rejected() -> None:
    with pytest.raises(_ecdh.BadPointError, match="32-byte"):
        _ecdh.reblind([b"short"], os.urandom(32))
    with pytest.raises(_ecdh.BadPointError, match="low-order"):
        _ecdh.reblind([bytes(32)], os.urandom(32))
