from __future__ import annotations

import math
import secrets

import gmpy2
import numpy as np
import pytest

from fate_airflow.components import paillier
from fate_airflow.components.paillier import HE, Keypair, PublicKey, decode, encode
from fate_airflow.core.errors import ComponentError
from fate_airflow.storage import SerialComputing, default_computing


@pytest.fixture(scope="module")
def keypair() -> Keypair:
    return Keypair.generate("paillier", 1024)


def test_encode_decode_round_trip() -> None:
    values = np.array([0.0, 1.5, -2.25, 1e-6, -123456.789])
    n = (1 << 1024) - 5
    assert np.allclose(decode(encode(values, 23, n), 23, n), values, atol=2**-23)
    with pytest.raises(ComponentError):
        encode([float("nan")], 23, n)


def test_multiexp_matches_naive(keypair: Keypair) -> None:
    n = keypair.public.n
    nsq = n * n
    cts = paillier._encrypt_chunk([secrets.randbelow(n) for _ in range(50)], n)
    cols = [[secrets.randbelow(1 << 30) - (1 << 29) for _ in range(50)] for _ in range(3)]
    got = paillier._lincomb_chunk(cols, cts, n)
    for col, value in zip(cols, got, strict=True):
        naive = 1
        for c, x in zip(cts, col, strict=True):
            naive = naive * (pow(c, x, nsq) if x >= 0 else pow(int(gmpy2.invert(c, nsq)), -x, nsq)) % nsq
        assert value == naive


@pytest.mark.parametrize("engine", ["serial", "pool"])
def test_homomorphic_ops_decrypt_correctly(keypair: Keypair, engine: str) -> None:
    computing = SerialComputing() if engine == "serial" else default_computing()
    he = HE(keypair.public, computing, min_parallel=8)
    rng = np.random.default_rng(1)
    d = rng.normal(size=100)
    x = rng.normal(size=(100, 4))
    vec = he.encrypt(d, 23)
    n = keypair.public.n
    assert all(math.gcd(c, n) == 1 and c.bit_length() > 1900 for c in vec.cts)
    cols = [[int(v) for v in np.rint(x[:, j] * 2**23)] for j in range(4)]
    got = decode(keypair.decrypt(he.linear_combination(vec, cols)), 46, n)
    np.testing.assert_allclose(got, x.T @ d, atol=1e-4)
    rerand = he.add_plain_rerandomize(vec, d)
    assert not set(rerand.cts) & set(vec.cts)
    np.testing.assert_allclose(decode(keypair.decrypt(rerand.cts), 23, n), 2 * d, atol=1e-6)
    assert decode(keypair.decrypt([he.sum(vec)]), 23, n)[0] == pytest.approx(d.sum(), abs=1e-4)
    assert decode(keypair.decrypt([he.mul_scalar(vec.cts[0], -3)]), 23, n)[0] == pytest.approx(
        -3 * d[0], abs=1e-6
    )
    assert he.counts.encryptions == 100 and he.counts.obfuscations == 100


def test_masks_hide_values(keypair: Keypair) -> None:
    he = HE(keypair.public, SerialComputing())
    n = keypair.public.n
    ct = he.encrypt([0.5], 23).cts[0]
    mask = paillier.random_masks(1, n)[0]
    masked = keypair.decrypt([he.add_raw(ct, mask)])[0]
    assert (masked - mask) % n == encode([0.5], 23, n)[0]


def test_wire_validation(keypair: Keypair) -> None:
    he = HE(keypair.public, SerialComputing())
    vec = he.encrypt([1.0, 2.0], 10)
    wire = he.vec_to_wire(vec)
    assert he.vec_from_wire(wire, "x", 2) == vec
    with pytest.raises(ComponentError, match="malformed"):
        he.vec_from_wire({**wire, "count": 3}, "x")
    with pytest.raises(ComponentError, match="out of range"):
        he.unpack(b"\x00" * keypair.public.ct_bytes, 1, "x")
    with pytest.raises(ComponentError, match="not a paillier vector"):
        he.vec_from_wire({**wire, "cipher": "plaintext_debug"}, "x")


def test_public_key_checks(keypair: Keypair) -> None:
    wire = keypair.public.to_wire()
    assert PublicKey.from_wire(wire, expected_kind="paillier") == keypair.public
    with pytest.raises(ComponentError, match="ask for 'plaintext_debug'"):
        PublicKey.from_wire(wire, expected_kind="plaintext_debug")
    with pytest.raises(ComponentError, match="refusing a 512-bit"):
        PublicKey.from_wire({"kind": "paillier", "n": (1 << 511) + 1}, expected_kind="paillier")
    with pytest.raises(ComponentError, match="below the minimum"):
        Keypair.generate("paillier", 512)
    assert keypair.public.describe() == "paillier 1024-bit"


def test_plaintext_debug_cipher_runs_the_same_arithmetic() -> None:
    kp = Keypair.generate("plaintext_debug", 1024)
    he = HE(kp.public, SerialComputing())
    vec = he.encrypt([1.5, -2.0], 23)
    assert decode(kp.decrypt([he.sum(vec)]), 23, kp.public.n)[0] == pytest.approx(-0.5)
    assert kp.public.describe() == "plaintext_debug (NOT encrypted)"
