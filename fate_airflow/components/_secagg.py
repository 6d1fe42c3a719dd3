"""Secure aggregation with dropout recovery (Bonawitz et al., CCS 2017, semi-honest server).

One :class:`ClientRound` per client and one :class:`ServerRound` at the aggregator (the arbiter)
compute ``Σ x_u`` over the clients that finish a round, where each ``x_u`` is a vector of integers
modulo ``2**64`` (fixed-point encoded floats, :func:`quantize`). The aggregator only ever sees
``y_u = x_u + PRG(b_u) + Σ_v ±PRG(s_uv)`` — uniformly distributed ring elements — and learns only the
sum. The steps (messages go through the aggregator; it relays and checks counts):

1. **advertise**: each client draws two fresh X25519 key pairs per round, ``c`` (to encrypt shares
   to peers) and ``s`` (for the pairwise masks), and a fresh 32-byte self-mask seed ``b_u``; it
   sends ``c_pk``, ``s_pk`` and a hash commitment to ``b_u``. The aggregator forwards the roster
   ``U1`` of those who answered in time (at least ``t``) to all of them.
2. **share keys**: each client Shamir-shares ``s_sk`` and ``b_u`` ``t``-of-``|U1|`` over the prime
   field ``GF(2**521 − 1)`` and seals each peer's pair of shares with ChaCha20-Poly1305 under
   ``HKDF(X25519(c_sk_u, c_pk_v))``, bound (AAD) to the round, sender and recipient. The aggregator
   relays the ciphertexts of the clients ``U2`` that answered; it cannot open them.
3. **masked input**: each client sends ``y_u``; pairwise masks use
   ``s_uv = HKDF(X25519(s_sk_u, s_pk_v))`` expanded by ChaCha20, added when ``u < v`` and
   subtracted otherwise, so they cancel in the sum over any set that contains both ends.
4. **unmask**: the aggregator names the survivors ``U3`` (sent ``y_u``) and the dropped
   ``U2 − U3``. Each survivor returns its share of ``b_u`` for every survivor and of ``s_sk_u`` for
   every dropped client — never both kinds for one client, since the sets are disjoint and a round
   reveals once. With ``t`` answers the aggregator rebuilds the self masks of survivors and the
   pairwise masks between survivors and dropped clients, and removes them.

Keys and seeds are fresh every round, so a key revealed to remove a dropped client's masks opens
nothing in another round. A step never completes with fewer than ``t`` clients. Not covered (as in
the semi-honest variant of the paper): signatures against an actively malicious aggregator that
lies about the rosters; each client does check the rosters it is given for consistency.

Shamir sharing is implemented here (about 40 lines) rather than taken from a library: the one
maintained option in Python (pycryptodome's ``Crypto.Protocol.SecretSharing``) works over
``GF(2**128)`` on 16-byte secrets only and would add a dependency for two halves of one key; the
arithmetic below is textbook and covered by unit tests (t-of-n reconstructs, t−1 does not).
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

#: Masked vectors live in Z_(2**RING_BITS) (numpy uint64 arithmetic wraps exactly there).
RING_BITS = 64
#: Field of the Shamir shares: the Mersenne prime 2**521 − 1 (holds any 32-byte secret).
SHAMIR_PRIME = (1 << 521) - 1
#: Bytes of an X25519 key, a self-mask seed and a reconstructed secret.
KEY_BYTES = 32
_SHARE_BYTES = (SHAMIR_PRIME.bit_length() + 7) // 8
_NONCE_BYTES = 12
_DOMAIN = b"fate-airflow/secagg/v1/"


class SecAggError(ValueError):
    """A secure-aggregation step cannot go on: too few clients or shares, or a malformed message."""


# ---------------------------------------------------------------------------- fixed point


def quantize(values: np.ndarray, precision: int, headroom_bits: int = 0) -> np.ndarray:
    """``round(x · 2**precision)`` as ring elements (two's complement in ``uint64``).

    :param headroom_bits: bits kept free so that a sum of ``2**headroom_bits`` such vectors cannot
        wrap around (the sum is decoded as a signed value).
    :raises SecAggError: a value is not finite or too large for the ring at this precision.
    """
    x = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise SecAggError("cannot encode a non-finite value (the model diverged?)")
    scaled = np.rint(np.ldexp(x, precision))
    limit = 2.0 ** (RING_BITS - 1 - headroom_bits)
    if scaled.size and float(np.abs(scaled).max()) >= limit:
        raise SecAggError(
            f"value {float(np.abs(x).max()):.6g} is too large for fixed point at 2^-{precision} "
            f"with {headroom_bits} bits of headroom (lower the precision)"
        )
    return scaled.astype(np.int64).astype(np.uint64)


def dequantize(ring: np.ndarray, precision: int) -> np.ndarray:
    """Inverse of :func:`quantize` (ring elements read as signed integers)."""
    signed = np.asarray(ring, dtype=np.uint64).astype(np.int64)
    return np.asarray(np.ldexp(signed.astype(np.float64), -precision), dtype=np.float64)


def headroom_for(clients: int) -> int:
    """Bits of headroom so that ``clients`` encoded vectors sum without overflow."""
    return max(1, math.ceil(math.log2(max(clients, 2))))


# ---------------------------------------------------------------------------- primitives


def _hkdf(secret: bytes, info: bytes, length: int = KEY_BYTES) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=_DOMAIN + info).derive(secret)


def expand(seed: bytes, length: int, label: bytes) -> np.ndarray:
    """``length`` pseudo-random ring elements from ``seed`` (HKDF → ChaCha20 keystream).

    The key is derived per ``label``, so the all-zero nonce is used once per key.
    """
    key = _hkdf(seed, b"prg|" + label)
    encryptor = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()
    stream = encryptor.update(bytes(8 * length))
    return np.frombuffer(stream, dtype="<u8").astype(np.uint64)


@dataclass(frozen=True)
class KeyPair:
    """An X25519 key pair as raw 32-byte strings."""

    private: bytes = field(repr=False)
    public: bytes

    @classmethod
    def generate(cls) -> KeyPair:
        """A fresh key pair from the OS random source."""
        sk = X25519PrivateKey.generate()
        return cls(
            sk.private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            ),
            sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
        )


def public_key_of(private: bytes) -> bytes:
    """The X25519 public key of a raw private key."""
    return (
        X25519PrivateKey.from_private_bytes(private)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


def agree(private: bytes, peer_public: bytes) -> bytes:
    """X25519 shared secret. :raises SecAggError: malformed or low-order peer key."""
    if not isinstance(peer_public, bytes) or len(peer_public) != KEY_BYTES:
        raise SecAggError("malformed X25519 public key")
    try:
        return X25519PrivateKey.from_private_bytes(private).exchange(
            X25519PublicKey.from_public_bytes(peer_public)
        )
    except ValueError as exc:  # cryptography refuses an all-zero result (a low-order point)
        raise SecAggError("unusable X25519 public key (low order)") from exc


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """ChaCha20-Poly1305 with a random nonce: ``nonce ‖ ciphertext ‖ tag``."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return nonce + ChaCha20Poly1305(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Inverse of :func:`seal`. :raises SecAggError: wrong key, tampered data or wrong context."""
    if not isinstance(blob, bytes) or len(blob) < _NONCE_BYTES + 16:
        raise SecAggError("malformed sealed share")
    try:
        return ChaCha20Poly1305(key).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], aad)
    except InvalidTag as exc:
        raise SecAggError("a sealed share does not authenticate (wrong key, sender or round)") from exc


# ---------------------------------------------------------------------------- Shamir over GF(p)


def shamir_split(secret: bytes, xs: Sequence[int], threshold: int) -> dict[int, int]:
    """Shares of ``secret`` at the points ``xs``: any ``threshold`` of them rebuild it.

    A random polynomial of degree ``threshold − 1`` over ``GF(2**521 − 1)`` with the secret as its
    constant term, evaluated at each ``x``.
    """
    if len(secret) > KEY_BYTES:
        raise SecAggError(f"secret longer than {KEY_BYTES} bytes")
    if len(set(xs)) != len(xs) or any(not 0 < x < SHAMIR_PRIME for x in xs):
        raise SecAggError("share points must be distinct and non-zero")
    if not 1 <= threshold <= len(xs):
        raise SecAggError(f"threshold {threshold} is not between 1 and the {len(xs)} shares")
    coeffs = [int.from_bytes(secret, "big")] + [secrets.randbelow(SHAMIR_PRIME) for _ in range(threshold - 1)]
    out = {}
    for x in xs:
        y = 0
        for c in reversed(coeffs):  # Horner
            y = (y * x + c) % SHAMIR_PRIME
        out[x] = y
    return out


def lagrange_at_zero(points: Sequence[tuple[int, int]]) -> int:
    """The value at 0 of the polynomial through ``points`` (distinct x) over ``GF(2**521 − 1)``."""
    p = SHAMIR_PRIME
    total = 0
    for i, (xi, yi) in enumerate(points):
        num, den = 1, 1
        for j, (xj, _) in enumerate(points):
            if i != j:
                num = num * (-xj) % p
                den = den * (xi - xj) % p
        total = (total + yi * num * pow(den, -1, p)) % p
    return total


def shamir_combine(shares: Mapping[int, int], threshold: int) -> bytes:
    """Rebuild a :data:`KEY_BYTES` secret from at least ``threshold`` shares ``{x: y}``.

    :raises SecAggError: fewer than ``threshold`` shares, or shares of no such secret.
    """
    if len(shares) < threshold:
        raise SecAggError(f"{len(shares)} share(s) cannot rebuild a secret with threshold {threshold}")
    points = sorted(shares.items())[:threshold]
    value = lagrange_at_zero(points)
    if value >= 1 << (8 * KEY_BYTES):
        raise SecAggError("inconsistent shares")
    return value.to_bytes(KEY_BYTES, "big")


# ---------------------------------------------------------------------------- protocol


def _b(text: str) -> bytes:
    return text.encode("utf-8")


def pair_sign(me: str, peer: str) -> int:
    """+1 when ``me`` adds the mask it shares with ``peer``, −1 when it subtracts it."""
    return 1 if me < peer else -1


def _pair_seed(shared: bytes, context: bytes, u: str, v: str) -> bytes:
    lo, hi = sorted((u, v))
    return _hkdf(shared, b"pair|" + context + b"|" + _b(lo) + b"|" + _b(hi))


def _commit(context: bytes, seed: bytes) -> bytes:
    return hashlib.sha256(_DOMAIN + b"commit|" + context + b"|" + seed).digest()


@dataclass(frozen=True)
class Advert:
    """What a client announces at the start of a round (public keys, commitment to ``b_u``)."""

    c_public: bytes
    s_public: bytes
    b_commit: bytes

    def to_wire(self) -> dict[str, bytes]:
        """Federation payload."""
        return {"c_pk": self.c_public, "s_pk": self.s_public, "b_commit": self.b_commit}

    @classmethod
    def from_wire(cls, obj: object, who: str) -> Advert:
        """Parse a payload. :raises SecAggError: malformed."""
        if not isinstance(obj, Mapping):
            raise SecAggError(f"malformed key advertisement from {who}")
        c, s, b = obj.get("c_pk"), obj.get("s_pk"), obj.get("b_commit")
        if not all(isinstance(v, bytes) and len(v) == KEY_BYTES for v in (c, s, b)):
            raise SecAggError(f"malformed key advertisement from {who}")
        assert isinstance(c, bytes) and isinstance(s, bytes) and isinstance(b, bytes)
        return cls(c, s, b)


def _check_roster(roster: Sequence[str], threshold: int, label: str, what: str) -> None:
    if len(set(roster)) != len(roster):
        raise SecAggError(f"{label}: duplicate clients in the {what}")
    if len(roster) < threshold:
        raise SecAggError(
            f"{label}: only {len(roster)} client(s) {what}; the threshold is {threshold}, so the round "
            "cannot complete"
        )


class ClientRound:
    """One client's side of one aggregation round (a new object, with fresh keys, every round).

    :param me: this client's id (the same string the aggregator uses in rosters).
    :param context: binds keys, masks and ciphertexts to the session and round.
    :param threshold: ``t``: shares needed to rebuild a secret, clients needed to finish.
    :param label: names the round in error messages.
    """

    def __init__(self, me: str, context: bytes, threshold: int, label: str = "secure aggregation") -> None:
        if threshold < 2:
            raise SecAggError(f"threshold {threshold} is below 2")
        self.me = me
        self.context = context
        self.threshold = threshold
        self.label = label
        self._c = KeyPair.generate()
        self._s = KeyPair.generate()
        self._b = secrets.token_bytes(KEY_BYTES)
        self._roster: list[str] = []
        self._adverts: dict[str, Advert] = {}
        #: For every client u of U2 (me included): (my share of s_sk_u, my share of b_u).
        self._held: dict[str, tuple[int, int]] = {}
        self._u2: list[str] = []
        self._masked = False
        self._revealed = False

    def advert(self) -> Advert:
        """Step 1: this round's public keys and the commitment to the self-mask seed."""
        return Advert(self._c.public, self._s.public, _commit(self.context, self._b))

    def _x(self, who: str) -> int:
        return self._roster.index(who) + 1

    def _aad(self, sender: str, recipient: str) -> bytes:
        return self.context + b"|share|" + _b(sender) + b"|" + _b(recipient)

    def share_keys(self, roster: Sequence[str], adverts: Mapping[str, Advert]) -> dict[str, bytes]:
        """Step 2: sealed ``(share of s_sk, share of b)`` for every other client of ``roster``.

        :param roster: ``U1`` in the aggregator's order (share points are positions + 1).
        :param adverts: every roster member's advertisement.
        """
        roster = list(roster)
        _check_roster(roster, self.threshold, self.label, "advertised keys")
        if self.me not in roster or set(adverts) != set(roster):
            raise SecAggError(f"{self.label}: inconsistent roster from the aggregator")
        if adverts[self.me] != self.advert():
            raise SecAggError(f"{self.label}: the aggregator altered this client's keys")
        keys = [k for a in adverts.values() for k in (a.c_public, a.s_public)]
        if len(set(keys)) != len(keys):
            raise SecAggError(f"{self.label}: two advertised public keys are equal")
        self._roster, self._adverts = roster, dict(adverts)
        xs = [self._x(v) for v in roster]
        s_shares = shamir_split(self._s.private, xs, self.threshold)
        b_shares = shamir_split(self._b, xs, self.threshold)
        out: dict[str, bytes] = {}
        for v in roster:
            x = self._x(v)
            if v == self.me:
                self._held[v] = (s_shares[x], b_shares[x])
                continue
            key = _hkdf(agree(self._c.private, adverts[v].c_public), b"seal|" + self.context)
            plain = s_shares[x].to_bytes(_SHARE_BYTES, "big") + b_shares[x].to_bytes(_SHARE_BYTES, "big")
            out[v] = seal(key, plain, self._aad(self.me, v))
        return out

    def receive_shares(self, u2: Sequence[str], inbox: Mapping[str, bytes]) -> None:
        """Step 2 (end): open the shares the other clients of ``U2`` sealed to this client."""
        u2 = list(u2)
        _check_roster(u2, self.threshold, self.label, "shared their keys")
        if self.me not in u2 or not set(u2) <= set(self._roster):
            raise SecAggError(f"{self.label}: inconsistent share roster from the aggregator")
        if set(inbox) != set(u2) - {self.me}:
            raise SecAggError(f"{self.label}: the aggregator did not relay every share")
        for u, blob in inbox.items():
            key = _hkdf(agree(self._c.private, self._adverts[u].c_public), b"seal|" + self.context)
            plain = open_sealed(key, blob, self._aad(u, self.me))
            if len(plain) != 2 * _SHARE_BYTES:
                raise SecAggError(f"{self.label}: malformed share from {u}")
            self._held[u] = (
                int.from_bytes(plain[:_SHARE_BYTES], "big"),
                int.from_bytes(plain[_SHARE_BYTES:], "big"),
            )
        self._u2 = u2

    def mask(self, x: np.ndarray) -> np.ndarray:
        """Step 3: ``y = x + PRG(b) + Σ_v ±PRG(s_uv)`` over the other clients of ``U2`` (mod 2**64)."""
        if not self._u2 or self._masked:
            raise SecAggError(f"{self.label}: masking out of order")
        x = np.asarray(x, dtype=np.uint64)
        y: np.ndarray = x + expand(self._b, len(x), b"self|" + self.context)
        for v in self._u2:
            if v == self.me:
                continue
            seed = _pair_seed(agree(self._s.private, self._adverts[v].s_public), self.context, self.me, v)
            m = expand(seed, len(x), b"pair")
            y = y + m if pair_sign(self.me, v) > 0 else y - m
        self._masked = True
        return y

    def reveal(self, survivors: Sequence[str]) -> dict[str, dict[str, int]]:
        """Step 4: shares of ``b_u`` for each survivor and of ``s_sk_u`` for each dropped client.

        Refuses a second call and rosters that are not a subset of ``U2`` with at least ``t``
        clients including this one: a client never hands out both shares of one client.
        """
        survivors = list(survivors)
        _check_roster(survivors, self.threshold, self.label, "sent masked input")
        if self._revealed or not self._masked:
            raise SecAggError(f"{self.label}: unmasking out of order")
        if self.me not in survivors or not set(survivors) <= set(self._u2):
            raise SecAggError(f"{self.label}: inconsistent survivor list from the aggregator")
        self._revealed = True
        dropped = [u for u in self._u2 if u not in survivors]
        return {
            "b": {u: self._held[u][1] for u in survivors},
            "s": {u: self._held[u][0] for u in dropped},
        }


class ServerRound:
    """The aggregator's side of one round: relays, counts, and removes the masks from the sum.

    :param context: as the clients'.
    :param threshold: ``t``.
    :param label: names the round in error messages.
    """

    def __init__(self, context: bytes, threshold: int, label: str = "secure aggregation") -> None:
        if threshold < 2:
            raise SecAggError(f"threshold {threshold} is below 2")
        self.context = context
        self.threshold = threshold
        self.label = label
        self.roster: list[str] = []
        self.adverts: dict[str, Advert] = {}
        self.u2: list[str] = []
        self.survivors: list[str] = []
        self.dropped: list[str] = []
        self._masked: dict[str, np.ndarray] = {}

    def collect_adverts(self, adverts: Mapping[str, Advert]) -> list[str]:
        """Step 1: ``U1`` (sorted ids) from the advertisements that arrived in time."""
        roster = sorted(adverts)
        _check_roster(roster, self.threshold, self.label, "advertised keys")
        self.roster, self.adverts = roster, dict(adverts)
        return roster

    def route_shares(self, sent: Mapping[str, Mapping[str, bytes]]) -> dict[str, dict[str, bytes]]:
        """Step 2: each client's inbox of sealed shares from the clients ``U2`` that sent theirs."""
        u2 = [u for u in self.roster if u in sent]
        _check_roster(u2, self.threshold, self.label, "shared their keys")
        for u in u2:
            if set(sent[u]) != set(self.roster) - {u} or not all(
                isinstance(b, bytes) for b in sent[u].values()
            ):
                raise SecAggError(f"{self.label}: {u} did not seal a share for every other client")
        self.u2 = u2
        return {v: {u: sent[u][v] for u in u2 if u != v} for v in u2}

    def collect_masked(self, masked: Mapping[str, np.ndarray], length: int) -> list[str]:
        """Step 3: ``U3``, the clients of ``U2`` whose masked input arrived (``length`` elements)."""
        for u, y in masked.items():
            if u not in self.u2:
                raise SecAggError(f"{self.label}: masked input from {u}, which did not share its keys")
            if not isinstance(y, np.ndarray) or y.dtype != np.uint64 or y.shape != (length,):
                raise SecAggError(f"{self.label}: malformed masked input from {u}")
        survivors = [u for u in self.u2 if u in masked]
        _check_roster(survivors, self.threshold, self.label, "sent masked input")
        self.survivors = survivors
        self.dropped = [u for u in self.u2 if u not in masked]
        self._masked = {u: masked[u] for u in survivors}
        return survivors

    def unmask(self, reveals: Mapping[str, Mapping[str, Mapping[str, int]]]) -> np.ndarray:
        """Step 4: ``Σ x_u`` over the survivors, from at least ``t`` survivors' shares.

        :param reveals: survivor → ``{"b": {u: share}, "s": {u: share}}`` as sent.
        :raises SecAggError: too few answers, a share of the wrong kind, or shares that rebuild
            a key or seed other than the one committed to in step 1.
        """
        helpers = [v for v in self.survivors if v in reveals]
        _check_roster(helpers, self.threshold, self.label, "sent their unmasking shares")
        b_shares: dict[str, dict[int, int]] = {u: {} for u in self.survivors}
        s_shares: dict[str, dict[int, int]] = {u: {} for u in self.dropped}
        for v in helpers:
            msg = reveals[v]
            b = msg.get("b") if isinstance(msg, Mapping) else None
            s = msg.get("s") if isinstance(msg, Mapping) else None
            if (
                not isinstance(b, Mapping)
                or not isinstance(s, Mapping)
                or set(b) != set(self.survivors)
                or set(s) != set(self.dropped)
            ):
                # Shares of the wrong kind are refused, not stored: the aggregator never keeps both
                # kinds of share for one client.
                raise SecAggError(f"{self.label}: {v} sent unmasking shares for the wrong clients")
            x = self.roster.index(v) + 1
            for u, share in b.items():
                b_shares[u][x] = _field_element(share, v)
            for u, share in s.items():
                s_shares[u][x] = _field_element(share, v)
        length = len(next(iter(self._masked.values())))
        total = np.zeros(length, dtype=np.uint64)
        for u in self.survivors:
            total = total + self._masked[u]
            seed = shamir_combine(b_shares[u], self.threshold)
            if _commit(self.context, seed) != self.adverts[u].b_commit:
                raise SecAggError(f"{self.label}: the self-mask seed of {u} does not match its commitment")
            total = total - expand(seed, length, b"self|" + self.context)
        for u in self.dropped:
            s_sk = shamir_combine(s_shares[u], self.threshold)
            if public_key_of(s_sk) != self.adverts[u].s_public:
                raise SecAggError(f"{self.label}: the rebuilt mask key of {u} does not match its public key")
            for v in self.survivors:
                seed = _pair_seed(agree(s_sk, self.adverts[v].s_public), self.context, v, u)
                m = expand(seed, length, b"pair")
                # survivor v added sign(v, u)·m to its input; take it off again
                total = total - m if pair_sign(v, u) > 0 else total + m
        return total


def _field_element(value: object, who: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < SHAMIR_PRIME:
        raise SecAggError(f"malformed share from {who}")
    return value


__all__ = [
    "KEY_BYTES",
    "RING_BITS",
    "SHAMIR_PRIME",
    "Advert",
    "ClientRound",
    "KeyPair",
    "SecAggError",
    "ServerRound",
    "agree",
    "dequantize",
    "expand",
    "headroom_for",
    "lagrange_at_zero",
    "open_sealed",
    "pair_sign",
    "public_key_of",
    "quantize",
    "seal",
    "shamir_combine",
    "shamir_split",
]
