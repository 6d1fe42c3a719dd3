"""Additively homomorphic ciphers for vertical learning: Paillier (``phe`` + gmpy2) and a plaintext debug cipher.

Values are fixed-point integers: a real ``v`` at exponent ``e`` is ``round(v · 2**e) mod n`` (FATE's
``floating_point_precision``, default 23 bits). Working on the raw integers instead of ``phe``'s
``EncryptedNumber`` keeps every exponent under our control, so scalar multiplication by a feature is
a ~30-bit exponentiation instead of a 53-bit-mantissa one (peers.md §C1), and a whole encrypted
``Xᵀ·d`` becomes one multi-exponentiation per feature (Pippenger's bucket method: about
``(bits/w)·(n + 2^(w+1))`` modular multiplications instead of ``n`` exponentiations).

Paillier here is textbook Paillier with ``g = n + 1`` exactly as ``phe`` implements it: keys come from
``phe.paillier.generate_paillier_keypair`` (gmpy2 primes), encryption is ``phe``'s ``raw_encrypt``
(``(1 + m·n) · r^n mod n²`` with a fresh ``r`` from the OS CSPRNG), decryption is ``phe``'s CRT
``raw_decrypt``. Bulk work (encryption, re-randomisation, ``Xᵀ·[[d]]``) runs on the party's computing
pool; the functions it ships are the top-level ``_*_chunk`` functions below.

``plaintext_debug`` (1.x ``encrypt_param.method: "plaintext_debug"``, 2.x ``he_param.kind: "mock"``) runs
the same protocol on unencrypted integers modulo 2**1024 — for debugging only; every task logs and
reports which cipher and key size it used.
"""

from __future__ import annotations

import functools
import math
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import gmpy2
import numpy as np
from phe import paillier

from fate_airflow.core.errors import ComponentError
from fate_airflow.storage.computing import Computing

CipherKind = Literal["paillier", "plaintext_debug"]
PAILLIER: CipherKind = "paillier"
PLAINTEXT: CipherKind = "plaintext_debug"
#: FATE 2.x's ``phe.paillier.minimum_key_size``: shorter keys are refused from a peer.
MIN_KEY_LENGTH = 1024
_PLAINTEXT_MODULUS = 1 << 1024


# ----------------------------------------------------------------------------- pool kernels


def _encrypt_chunk(plaintexts: Sequence[int], n: int) -> list[int]:
    """``phe`` raw encryption (obfuscated) of each integer in [0, n)."""
    public = paillier.PaillierPublicKey(n)
    return [int(public.raw_encrypt(m)) for m in plaintexts]


def _obfuscate_chunk(pairs: Sequence[tuple[int, int]], n: int) -> list[int]:
    """``c · (1 + m·n) · r^n mod n²`` for each (c, m): add a plaintext and re-randomise.

    The fresh ``r^n`` matters: without it the party that encrypted ``c`` could divide it out and
    read ``m``.
    """
    nn = gmpy2.mpz(n)
    nsq = nn * nn
    out = []
    for c, m in pairs:
        r = gmpy2.mpz(secrets.randbelow(n - 1) + 1)
        out.append(int(gmpy2.mpz(c) * ((1 + m * nn) % nsq) % nsq * gmpy2.powmod(r, nn, nsq) % nsq))
    return out


def _window(n_terms: int, bits: int) -> int:
    """Bucket width minimising ``ceil(bits/w) · (n_terms + 2^(w+1))``."""
    best, best_cost = 1, math.inf
    for w in range(1, 17):
        cost = math.ceil(bits / w) * (n_terms + (1 << (w + 1)))
        if cost < best_cost:
            best, best_cost = w, cost
    return best


def _multiexp_unsigned(bases: Sequence[Any], exps: Sequence[int], mod: Any) -> Any:
    """``Π bases[i]^exps[i] mod mod`` for non-negative exponents (Pippenger's bucket method)."""
    terms = [(b, e) for b, e in zip(bases, exps, strict=True) if e]
    if not terms:
        return gmpy2.mpz(1)
    bits = max(e.bit_length() for _, e in terms)
    w = _window(len(terms), bits)
    mask = (1 << w) - 1
    result = gmpy2.mpz(1)
    top = ((bits - 1) // w) * w
    for shift in range(top, -1, -w):
        if shift != top:
            result = gmpy2.powmod(result, 1 << w, mod)
        buckets: list[Any] = [None] * (mask + 1)
        for b, e in terms:
            d = (e >> shift) & mask
            if d:
                cur = buckets[d]
                buckets[d] = b if cur is None else cur * b % mod
        running: Any = None
        acc: Any = None
        for d in range(mask, 0, -1):
            cur = buckets[d]
            if cur is not None:
                running = cur if running is None else running * cur % mod
            if running is not None:
                acc = running if acc is None else acc * running % mod
        if acc is not None:
            result = result * acc % mod
    return result


def _lincomb_chunk(columns: Sequence[Sequence[int]], cts: Sequence[int], n: int) -> list[int]:
    """``Π_i cts[i]^x[i] mod n²`` for each column ``x`` of signed integers (= Enc(Σ x_i·m_i))."""
    nn = gmpy2.mpz(n)
    nsq = nn * nn
    bases = [gmpy2.mpz(c) for c in cts]
    out = []
    for col in columns:
        pos_b, pos_e, neg_b, neg_e = [], [], [], []
        for b, x in zip(bases, col, strict=True):
            if x > 0:
                pos_b.append(b)
                pos_e.append(x)
            elif x < 0:
                neg_b.append(b)
                neg_e.append(-x)
        acc = _multiexp_unsigned(pos_b, pos_e, nsq)
        if neg_b:
            acc = acc * gmpy2.invert(_multiexp_unsigned(neg_b, neg_e, nsq), nsq) % nsq
        out.append(int(acc))
    return out


def _plain_lincomb_chunk(columns: Sequence[Sequence[int]], values: Sequence[int], modulus: int) -> list[int]:
    return [sum(x * v for x, v in zip(col, values, strict=True)) % modulus for col in columns]


# ----------------------------------------------------------------------------- encoding


def encode(values: np.ndarray | Sequence[float], exp: int, modulus: int) -> list[int]:
    """``round(v · 2**exp) mod modulus`` for each value (exact: via Python ints)."""
    arr = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ComponentError("cannot encode NaN or infinite values")
    scaled = np.rint(np.ldexp(arr, exp))
    return [int(v) % modulus for v in scaled.tolist()]


def decode(values: Sequence[int], exp: int, modulus: int) -> np.ndarray:
    """Inverse of :func:`encode` (values above ``modulus // 2`` are negative)."""
    half = modulus // 2
    return np.array(
        [math.ldexp(1.0, -exp) * float(v if v <= half else v - modulus) for v in values], dtype=np.float64
    )


# ----------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class PublicKey:
    """The public side of a cipher, as sent by the arbiter.

    :param kind: ``paillier`` or ``plaintext_debug``.
    :param n: Paillier modulus (for ``plaintext_debug``: the 2**1024 working modulus).
    """

    kind: CipherKind
    n: int

    @property
    def key_length(self) -> int:
        """Bits of ``n`` (what FATE calls the key length)."""
        return self.n.bit_length() if self.kind == PAILLIER else 0

    @property
    def modulus(self) -> int:
        """The plaintext space: values live modulo this."""
        return self.n

    @property
    def ct_modulus(self) -> int:
        """The ciphertext space: ``n²`` for Paillier."""
        return self.n * self.n if self.kind == PAILLIER else self.n

    @property
    def ct_bytes(self) -> int:
        """Fixed width of one serialised ciphertext."""
        return (self.ct_modulus.bit_length() + 7) // 8

    def describe(self) -> str:
        """``paillier 1024-bit`` / ``plaintext_debug (NOT encrypted)``."""
        return (
            f"paillier {self.key_length}-bit" if self.kind == PAILLIER else "plaintext_debug (NOT encrypted)"
        )

    def to_wire(self) -> dict[str, Any]:
        """What the arbiter sends: ``{"kind", "n"}``."""
        return {"kind": self.kind, "n": self.n}

    @classmethod
    def from_wire(
        cls, obj: object, *, expected_kind: CipherKind, min_key_length: int = MIN_KEY_LENGTH
    ) -> PublicKey:
        """Validate a public key received from the arbiter.

        :raises ComponentError: malformed, a cipher other than the one this party's own parameters
            ask for (a peer cannot switch encryption off), or a key shorter than ``min_key_length``.
        """
        if (
            not isinstance(obj, dict)
            or not isinstance(obj.get("n"), int)
            or obj.get("kind") not in (PAILLIER, PLAINTEXT)
        ):
            raise ComponentError("malformed public key from the arbiter")
        kind: CipherKind = obj["kind"]
        if kind != expected_kind:
            raise ComponentError(
                f"the arbiter uses cipher {kind!r} but this party's parameters ask for {expected_kind!r}"
            )
        n = int(obj["n"])
        if kind == PAILLIER:
            if n.bit_length() < min_key_length or n % 2 == 0:
                raise ComponentError(
                    f"refusing a {n.bit_length()}-bit Paillier key (minimum {min_key_length})"
                )
        elif n != _PLAINTEXT_MODULUS:
            raise ComponentError("unexpected modulus for the plaintext debug cipher")
        return cls(kind, n)


@dataclass(frozen=True)
class Keypair:
    """Public key plus the means to decrypt (held by the arbiter only)."""

    public: PublicKey
    _private: Any = field(default=None, repr=False)

    @classmethod
    def generate(cls, kind: CipherKind, key_length: int) -> Keypair:
        """A fresh keypair (``phe.paillier.generate_paillier_keypair`` for Paillier)."""
        if kind == PLAINTEXT:
            return cls(PublicKey(PLAINTEXT, _PLAINTEXT_MODULUS))
        if key_length < MIN_KEY_LENGTH:
            raise ComponentError(f"key_length {key_length} is below the minimum {MIN_KEY_LENGTH}")
        public, private = paillier.generate_paillier_keypair(n_length=key_length)
        return cls(PublicKey(PAILLIER, int(public.n)), private)

    def decrypt(self, cts: Sequence[int]) -> list[int]:
        """Raw decryption: the integers mod ``n`` (CRT, ``phe``)."""
        if self.public.kind == PLAINTEXT:
            return [int(c) % self.public.n for c in cts]
        return [int(self._private.raw_decrypt(int(c))) for c in cts]


# ----------------------------------------------------------------------------- operations


@dataclass
class OpCounts:
    """Homomorphic operations performed (the bench compares them with the per-op rates)."""

    encryptions: int = 0
    obfuscations: int = 0
    scalar_muls: int = 0
    additions: int = 0
    decryptions: int = 0

    def as_dict(self) -> dict[str, int]:
        """JSON form."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class EncVector:
    """Ciphertexts of fixed-point values at one exponent."""

    cts: list[int]
    exp: int

    def __len__(self) -> int:
        return len(self.cts)


class HE:
    """Homomorphic operations under one public key, using a computing engine for bulk work.

    :param min_parallel: below this many items an operation runs in-process.
    """

    def __init__(
        self,
        key: PublicKey,
        computing: Computing,
        abort: threading.Event | None = None,
        min_parallel: int = 64,
    ) -> None:
        self.key = key
        self.computing = computing
        self.abort = abort
        self.min_parallel = min_parallel
        self.counts = OpCounts()
        self._lock = threading.Lock()

    @property
    def paillier(self) -> bool:
        """Whether values are really encrypted."""
        return self.key.kind == PAILLIER

    def _map(self, fn: Any, items: Sequence[Any]) -> list[Any]:
        if len(items) < self.min_parallel:
            return list(fn(items))
        return self.computing.map(fn, items, self.abort)

    def _count(self, **kw: int) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self.counts, k, getattr(self.counts, k) + v)

    def encrypt(self, values: np.ndarray | Sequence[float], exp: int) -> EncVector:
        """Encrypt real values at ``exp`` (fresh randomness for each)."""
        ints = encode(values, exp, self.key.modulus)
        self._count(encryptions=len(ints))
        if not self.paillier:
            return EncVector(ints, exp)
        return EncVector(self._map(functools.partial(_encrypt_chunk, n=self.key.n), ints), exp)

    def add_plain_rerandomize(self, vec: EncVector, values: np.ndarray | Sequence[float]) -> EncVector:
        """``[[v + p]]`` with fresh randomness (safe to send back to whoever encrypted ``vec``)."""
        ints = encode(values, vec.exp, self.key.modulus)
        if len(ints) != len(vec):
            raise ComponentError("length mismatch in add_plain_rerandomize")
        self._count(obfuscations=len(ints), additions=len(ints))
        if not self.paillier:
            return EncVector(
                [(c + m) % self.key.modulus for c, m in zip(vec.cts, ints, strict=True)], vec.exp
            )
        pairs = list(zip(vec.cts, ints, strict=True))
        return EncVector(self._map(functools.partial(_obfuscate_chunk, n=self.key.n), pairs), vec.exp)

    def add(self, a: EncVector, b: EncVector) -> EncVector:
        """Element-wise ``[[a + b]]`` (exponents must match)."""
        if a.exp != b.exp or len(a) != len(b):
            raise ComponentError("cannot add encrypted vectors of different exponent or length")
        self._count(additions=len(a))
        mod = self.key.ct_modulus
        if not self.paillier:
            return EncVector([(x + y) % mod for x, y in zip(a.cts, b.cts, strict=True)], a.exp)
        return EncVector([int(gmpy2.mpz(x) * y % mod) for x, y in zip(a.cts, b.cts, strict=True)], a.exp)

    def add_plain_scalar(self, ct: int, value: float, exp: int) -> int:
        """``[[v + value]]`` for one ciphertext at ``exp`` (no re-randomisation: for the key holder only)."""
        m = encode([value], exp, self.key.modulus)[0]
        return self.add_raw(ct, m)

    def add_raw(self, ct: int, m: int) -> int:
        """``[[v + m]]`` for an already-encoded integer ``m`` (masks)."""
        self._count(additions=1)
        if not self.paillier:
            return (ct + m) % self.key.modulus
        nsq = self.key.ct_modulus
        return int(gmpy2.mpz(ct) * ((1 + m * self.key.n) % nsq) % nsq)

    def mul_scalar(self, ct: int, k: int) -> int:
        """``[[k · v]]`` for a signed integer ``k``."""
        self._count(scalar_muls=1)
        if not self.paillier:
            return ct * k % self.key.modulus
        nsq = self.key.ct_modulus
        if k < 0:
            return int(gmpy2.powmod(gmpy2.invert(gmpy2.mpz(ct), nsq), -k, nsq))
        return int(gmpy2.powmod(gmpy2.mpz(ct), k, nsq))

    def add_ct(self, a: int, b: int) -> int:
        """``[[x + y]]`` for two single ciphertexts."""
        self._count(additions=1)
        return (
            (a + b) % self.key.modulus if not self.paillier else int(gmpy2.mpz(a) * b % self.key.ct_modulus)
        )

    def sum(self, vec: EncVector) -> int:
        """``[[Σ v]]``."""
        return self.linear_combination(vec, [[1] * len(vec)])[0]

    def linear_combination(self, vec: EncVector, columns: Sequence[Sequence[int]]) -> list[int]:
        """``[[Σ_i x_i · v_i]]`` for each column ``x`` of signed integers (``Xᵀ·[[v]]``)."""
        n_rows = len(vec)
        for col in columns:
            if len(col) != n_rows:
                raise ComponentError("column length does not match the encrypted vector")
        self._count(scalar_muls=n_rows * len(columns), additions=n_rows * len(columns))
        if not self.paillier:
            return _plain_lincomb_chunk(columns, vec.cts, self.key.modulus)
        if n_rows * len(columns) < 4 * self.min_parallel or len(columns) == 1:
            return _lincomb_chunk(columns, vec.cts, self.key.n)
        # one task per group of columns; each ships the ciphertexts once
        groups = min(len(columns), 2 * self.computing.cores)
        bounds = np.linspace(0, len(columns), groups + 1).astype(int)
        parts = [list(columns[bounds[i] : bounds[i + 1]]) for i in range(groups) if bounds[i + 1] > bounds[i]]
        fn = functools.partial(_lincomb_group, cts=list(vec.cts), n=self.key.n)
        results = self.computing.run_partitions(fn, parts, self.abort)
        return [ct for part in results for ct in part]

    # ------------------------------------------------------------------ wire

    def pack(self, cts: Sequence[int]) -> bytes:
        """Ciphertexts as fixed-width big-endian bytes."""
        width = self.key.ct_bytes
        return b"".join(int(c).to_bytes(width, "big") for c in cts)

    def unpack(self, blob: object, count: int, what: str) -> list[int]:
        """Parse ``count`` ciphertexts from a peer, checking each is in range.

        :raises ComponentError: wrong type or size, or a value outside the ciphertext space.
        """
        width = self.key.ct_bytes
        if not isinstance(blob, (bytes, bytearray)) or len(blob) != width * count:
            raise ComponentError(f"malformed {what}: expected {count} ciphertexts of {width} bytes")
        mod = self.key.ct_modulus
        out = [int.from_bytes(blob[i : i + width], "big") for i in range(0, len(blob), width)]
        if self.paillier and any(c <= 0 or c >= mod for c in out):
            raise ComponentError(f"malformed {what}: ciphertext out of range")
        return out

    def vec_to_wire(self, vec: EncVector) -> dict[str, Any]:
        """``{"cipher", "exp", "count", "ct"}`` — what crosses parties."""
        return {"cipher": self.key.kind, "exp": vec.exp, "count": len(vec), "ct": self.pack(vec.cts)}

    def vec_from_wire(self, obj: object, what: str, count: int | None = None) -> EncVector:
        """Inverse of :meth:`vec_to_wire`, validated."""
        if not isinstance(obj, dict) or obj.get("cipher") != self.key.kind:
            raise ComponentError(f"malformed {what}: not a {self.key.kind} vector")
        n = obj.get("count")
        exp = obj.get("exp")
        if not isinstance(n, int) or not isinstance(exp, int) or n < 0 or (count is not None and n != count):
            raise ComponentError(f"malformed {what}: bad count or exponent")
        return EncVector(self.unpack(obj.get("ct"), n, what), exp)


def _lincomb_group(columns: Sequence[Sequence[int]], cts: Sequence[int], n: int) -> list[int]:
    """Pool task: one group of columns against all ciphertexts."""
    return _lincomb_chunk(columns, cts, n)


def random_masks(count: int, modulus: int) -> list[int]:
    """Uniform masks in ``[0, modulus)``: ``v + r mod n`` is uniform whatever ``v`` is."""
    return [secrets.randbelow(modulus) for _ in range(count)]


def cipher_from_params(params: Any, where: str) -> tuple[CipherKind, int]:
    """The cipher kind and key length asked for by 1.x ``encrypt_param`` or 2.x ``he_param``.

    Paillier unless the conf opts in to the debug cipher explicitly (``encrypt_param.method:
    "plaintext_debug"`` or ``he_param.kind: "mock"``/``"plaintext_debug"``). FATE's ``method: null``
    (homo LR examples) still means Paillier here.
    """
    key_length = int(params.get("encrypt_param.key_length", "he_param.key_length", default=1024))
    method = params.get("encrypt_param.method", default=None)
    kind = params.get("he_param.kind", default=None)
    chosen = str(kind if kind is not None else (method if method is not None else "paillier")).lower()
    if chosen in ("paillier", "ipcl_paillier", "phe"):
        return PAILLIER, key_length
    if chosen in ("plaintext_debug", "mock", "plaintext"):
        return PLAINTEXT, key_length
    raise ComponentError(
        f"{where}: cipher {chosen!r} is not supported (paillier, or plaintext_debug for debugging)"
    )


__all__ = [
    "HE",
    "MIN_KEY_LENGTH",
    "PAILLIER",
    "PLAINTEXT",
    "CipherKind",
    "EncVector",
    "Keypair",
    "OpCounts",
    "PublicKey",
    "cipher_from_params",
    "decode",
    "encode",
    "random_masks",
]
