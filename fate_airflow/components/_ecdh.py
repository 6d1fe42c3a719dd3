"""Curve25519 primitives for ECDH PSI (worker-side functions for the computing pool).

Hash to curve: ``SHA-512(domain ‖ len(salt) ‖ salt ‖ id)``, first 32 bytes → libsodium
``crypto_core_ed25519_from_uniform`` (Elligator 2 onto edwards25519, cofactor cleared, so the point
lies in the prime-order subgroup) → its Montgomery u-coordinate ``(1 + y) / (1 - y) mod p``. This is
the shape of FATE 2.x's ``EdwardsPoint::hash_from_bytes::<Sha512>(id).to_montgomery()``; the
birational map is done with gmpy2 rather than ``crypto_sign_ed25519_pk_to_curve25519``, whose
subgroup check would cost as much as a scalar multiplication (peers.md §C2 measured that path).

Blinding: X25519 (libsodium ``crypto_scalarmult``, i.e. the Montgomery ladder with a clamped
32-byte secret). ``X(a, X(b, P)) == X(b, X(a, P))``, which is what the protocol needs. A peer's
point that multiplies to the all-zero value (a low-order point) is rejected.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import gmpy2
import nacl.bindings as sodium
import nacl.exceptions

P25519 = (1 << 255) - 19
_MASK255 = (1 << 255) - 1
DOMAIN = b"fate-airflow/psi/curve25519/v1"
POINT_BYTES = 32


class BadPointError(ValueError):
    """A peer's point is not usable (wrong size or low order)."""


def hash_to_point(identifier: bytes, salt: bytes = b"") -> bytes:
    """The Montgomery u-coordinate (32 bytes, little endian) of the hashed point of ``identifier``."""
    digest = hashlib.sha512(DOMAIN + len(salt).to_bytes(4, "little") + salt + identifier).digest()
    edwards = sodium.crypto_core_ed25519_from_uniform(digest[:32])
    y = int.from_bytes(edwards, "little") & _MASK255
    denominator = (1 - y) % P25519
    if denominator == 0:  # the identity: from_uniform never returns it for a hash output in practice
        raise BadPointError("hash mapped to the identity point")
    u = (1 + y) * int(gmpy2.invert(denominator, P25519)) % P25519
    return u.to_bytes(32, "little")


def _mult(scalar: bytes, point: bytes) -> bytes:
    if len(point) != POINT_BYTES:
        raise BadPointError(f"expected a {POINT_BYTES}-byte point, got {len(point)} bytes")
    try:
        return bytes(sodium.crypto_scalarmult(scalar, point))
    except (RuntimeError, nacl.exceptions.CryptoError) as exc:
        raise BadPointError("low-order point") from exc


def blind_ids(ids: Sequence[str], scalar: bytes, salt: bytes = b"") -> list[bytes]:
    """``scalar · H(id)`` for each id (hash to curve + one scalar multiplication)."""
    return [_mult(scalar, hash_to_point(i.encode("utf-8"), salt)) for i in ids]


def hash_ids(ids: Sequence[str], salt: bytes = b"") -> list[bytes]:
    """``H(id)`` for each id (when one hashed set is blinded under several keys)."""
    return [hash_to_point(i.encode("utf-8"), salt) for i in ids]


def reblind(points: Sequence[bytes], scalar: bytes) -> list[bytes]:
    """``scalar · P`` for each point (the second, commuting blinding)."""
    return [_mult(scalar, p) for p in points]


__all__ = ["DOMAIN", "POINT_BYTES", "BadPointError", "blind_ids", "hash_ids", "hash_to_point", "reblind"]
