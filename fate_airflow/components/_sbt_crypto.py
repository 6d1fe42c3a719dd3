"""Encrypted histograms for hetero SecureBoost: g/h packing, histogram building, subtraction, compression.

The guest holds the Paillier key (FATE 2.x SecureBoost has no arbiter). Per tree it encrypts one
**packed plaintext per row** (FATE's ``gh_pack``)::

    m = g' · 2^(wh+wc)  +  h' · 2^wc  +  c        g' = round(g·2^P) + OFF,  h' = round(h·2^P),  c = 1

with ``P = 52`` fractional bits (FATE's ``FIX_POINT_PRECISION``), ``OFF`` an integer offset making every
``g'`` non-negative, and the field widths ``wg, wh, wc`` wide enough for a sum over every row, so that a
homomorphic sum of rows is the packed triple of sums (Σg', Σh', count) without carries. Unlike FATE the
row count ``c`` is inside the ciphertext, so a host sends nothing but ciphertexts. A GOSS-dropped row is
encrypted as 0: the host cannot tell which rows were sampled (FATE sends only the sampled rows, which
tells the host the rows of largest gradient).

A host, knowing only the public key, builds per-node, per-feature, per-bin sums of those ciphertexts
(one modular multiplication per row and feature, on every core); a feature's most populated bin is not
summed but recovered from the node total by one division (saves work on skewed features). With
``hist_sub`` only the smaller child of each split is summed; the sibling is ``parent / child``
(Montgomery's batch inversion: one inversion per node). Bins become cumulative "left" sums, one per split
candidate (FATE's ``i_chunking_cumsum``), shuffled with a fresh secret permutation per node, and
**compressed**: ``k = (key_bits − 2) // (wg + wh + wc)`` candidates go into one ciphertext by Horner's
rule with ``c^(2^W)`` shifts (FATE's ``split_info_pack``), so the guest decrypts ``k`` times fewer
ciphertexts — and **re-randomised** with a fresh ``r^n``: the guest knows the randomness of every row's
ciphertext, so an un-randomised product over a bin of few rows would tell it which rows those are.

``plaintext_debug`` runs the same code with integers modulo 2**1024 in place of ciphertexts (addition
for the homomorphic product): for debugging and fast tests only.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import itertools
import math
import secrets
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import gmpy2
import numpy as np
from phe import paillier as phe_paillier

from fate_airflow.components.paillier import PAILLIER, Keypair, PublicKey
from fate_airflow.core.errors import ComponentError
from fate_airflow.storage.computing import Computing

#: FATE's FIX_POINT_PRECISION: fractional bits of g and h.
PRECISION = 52
#: Rows × features below which a histogram is summed in-process (the pool costs more to feed).
MIN_PARALLEL_CELLS = 20_000


@dataclass
class SBTOps:
    """Homomorphic operations done by one party (the bench turns them into predicted time)."""

    encryptions: int = 0
    decryptions: int = 0
    hist_additions: int = 0
    subtraction_additions: int = 0
    inversions: int = 0
    cumsum_additions: int = 0
    compress_shifts: int = 0
    rerandomizations: int = 0
    ciphertexts_sent: int = 0

    def as_dict(self) -> dict[str, int]:
        """JSON form."""
        return asdict(self)

    def add(self, other: SBTOps) -> None:
        """Accumulate ``other`` into this."""
        for k, v in other.as_dict().items():
            setattr(self, k, getattr(self, k) + v)


# ----------------------------------------------------------------------------- packing


@dataclass(frozen=True)
class PackLayout:
    """How g, h and the row count share one plaintext, and how many candidates share one ciphertext.

    :param offset: the integer added to every ``round(g·2^P)`` (so packed fields are non-negative).
    :param wg: bits of the Σg' field; ``wh``, ``wc`` likewise for Σh' and the count.
    :param per_ct: split candidates per compressed ciphertext (1 without compression).
    """

    precision: int
    offset: int
    wg: int
    wh: int
    wc: int
    per_ct: int

    @property
    def width(self) -> int:
        """Bits of one packed (Σg', Σh', count) triple."""
        return self.wg + self.wh + self.wc

    @classmethod
    def plan(cls, g: np.ndarray, h: np.ndarray, key_bits: int, compress: bool, where: str) -> PackLayout:
        """The layout for this tree's g and h (rows that GOSS drops are included: bounds only grow)."""
        n = max(len(g), 1)
        g_int = np.rint(np.ldexp(np.asarray(g, dtype=np.float64), PRECISION))
        h_int = np.rint(np.ldexp(np.asarray(h, dtype=np.float64), PRECISION))
        if len(h_int) and float(h_int.min()) < 0:
            raise ComponentError(f"{where}: negative hessians cannot be packed")
        offset = int(max(0.0, -float(g_int.min()))) if len(g_int) else 0
        g_max = int(float(g_int.max())) + offset if len(g_int) else 0
        h_max = int(float(h_int.max())) if len(h_int) else 0
        # every field must hold a sum over all rows; +1 bit of safety as FATE
        wg = (n * max(g_max, 1)).bit_length() + 1
        wh = (n * max(h_max, 1)).bit_length() + 1
        wc = n.bit_length() + 1
        width = wg + wh + wc
        capacity = key_bits - 2
        if width > capacity:
            raise ComponentError(
                f"{where}: g, h and the count of {n} rows need {width} bits, more than a {key_bits}-bit "
                "plaintext holds; use a longer key (he_param.key_length)"
            )
        return cls(PRECISION, offset, wg, wh, wc, capacity // width if compress else 1)

    def pack(self, g: np.ndarray, h: np.ndarray, keep: np.ndarray | None = None) -> list[int]:
        """One plaintext integer per row (0 for rows not in ``keep``)."""
        g_int = np.rint(np.ldexp(np.asarray(g, dtype=np.float64), self.precision)).tolist()
        h_int = np.rint(np.ldexp(np.asarray(h, dtype=np.float64), self.precision)).tolist()
        kept = [True] * len(g_int) if keep is None else keep.tolist()
        sg, sh = self.wh + self.wc, self.wc
        off = self.offset
        return [
            ((int(a) + off) << sg) | (int(b) << sh) | 1 if k else 0
            for a, b, k in zip(g_int, h_int, kept, strict=True)
        ]

    def unpack(self, plains: Sequence[int], count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Decrypted compressed ciphertexts → (Σg, Σh, count) per candidate, ``count`` candidates."""
        w = self.width
        mask_w = (1 << w) - 1
        mask_h = (1 << self.wh) - 1
        mask_c = (1 << self.wc) - 1
        g = np.empty(count)
        h = np.empty(count)
        c = np.empty(count)
        scale = math.ldexp(1.0, -self.precision)
        i = 0
        for m in plains:
            for _ in range(self.per_ct):
                if i == count:
                    break
                triple = m & mask_w
                m >>= w
                cnt = triple & mask_c
                h_sum = (triple >> self.wc) & mask_h
                g_sum = (triple >> (self.wc + self.wh)) - self.offset * cnt
                g[i] = g_sum * scale
                h[i] = h_sum * scale
                c[i] = cnt
                i += 1
        if i != count:
            raise ComponentError(f"expected {count} split candidates, decoded {i}")
        return g, h, c

    def to_wire(self) -> dict[str, int]:
        """What the guest sends the hosts."""
        return asdict(self)

    @classmethod
    def from_wire(cls, obj: object, key_bits: int) -> PackLayout:
        """Validate a layout received from the guest (fits the key, positive widths)."""
        names = ("precision", "offset", "wg", "wh", "wc", "per_ct")
        if not isinstance(obj, dict) or not all(isinstance(obj.get(k), int) for k in names):
            raise ComponentError("malformed packing layout from the guest")
        layout = cls(**{k: int(obj[k]) for k in names})
        if min(layout.wg, layout.wh, layout.wc, layout.per_ct) < 1 or layout.offset < 0:
            raise ComponentError("malformed packing layout from the guest")
        if layout.width * layout.per_ct > key_bits - 2:
            raise ComponentError("the guest's packing layout does not fit the key")
        return layout


# ----------------------------------------------------------------------------- pool kernels


def _encrypt_crt_chunk(plains: Sequence[int], n: int, p: int, q: int) -> list[int]:
    """Paillier encryption by the key owner: ``(1 + m·n) · r^n mod n²`` with ``r^n`` by CRT over p², q².

    The key owner may use the factors: ``r^n`` costs two half-size exponentiations instead of one
    full-size one (about 1.6× faster than ``phe``'s ``raw_encrypt``), with the same fresh random ``r``.
    """
    nn, pp, qq = gmpy2.mpz(n), gmpy2.mpz(p), gmpy2.mpz(q)
    nsq = nn * nn
    p2, q2 = pp * pp, qq * qq
    ep, eq = nn % (pp * (pp - 1)), nn % (qq * (qq - 1))
    q2_inv = gmpy2.invert(q2, p2)
    out = []
    for m in plains:
        r = gmpy2.mpz(secrets.randbelow(n - 1) + 1)
        a = gmpy2.powmod(r, ep, p2)
        b = gmpy2.powmod(r, eq, q2)
        rn = b + ((a - b) * q2_inv % p2) * q2
        out.append(int((1 + m * nn) % nsq * rn % nsq))
    return out


def _decrypt_crt_chunk(cts: Sequence[int], n: int, p: int, q: int) -> list[int]:
    """``phe``'s CRT raw decryption."""
    private = phe_paillier.PaillierPrivateKey(phe_paillier.PaillierPublicKey(n), p, q)
    return [int(private.raw_decrypt(int(c))) for c in cts]


def _hist_chunk(
    bins: np.ndarray,
    cts: Sequence[int],
    slots: np.ndarray,
    n_slots: int,
    width: int,
    totals: Sequence[int],
    mod: int,
    plain: bool,
) -> list[int]:
    """Per (slot, feature, bin) sums of ``cts`` for the feature columns in ``bins``.

    Returns a flat list indexed ``(slot · features + f) · width + bin``. Each feature's most populated bin
    per slot is not summed: it is ``total / Π(other bins)`` (one inversion instead of many products).
    """
    m = gmpy2.mpz(mod)
    c = [int(x) for x in cts] if plain else [gmpy2.mpz(x) for x in cts]
    _n_rows, n_feat = bins.shape
    one: Any = 0 if plain else gmpy2.mpz(1)
    out: list[Any] = [one] * (n_slots * n_feat * width)
    slot_base = slots.astype(np.int64) * width
    for j in range(n_feat):
        col = bins[:, j].astype(np.int64)
        key = slot_base + col
        counts = np.bincount(key, minlength=n_slots * width).reshape(n_slots, width)
        skip = counts.argmax(axis=1)
        rows = np.flatnonzero(col != skip[slots])
        keys = key[rows]
        order = np.argsort(keys, kind="stable")
        rows_sorted = rows[order].tolist()
        keys_sorted = keys[order]
        if len(keys_sorted):
            starts = np.flatnonzero(np.r_[True, keys_sorted[1:] != keys_sorted[:-1]])
            ends = np.r_[starts[1:], len(keys_sorted)]
            for s, e, k in zip(starts.tolist(), ends.tolist(), keys_sorted[starts].tolist(), strict=True):
                acc = c[rows_sorted[s]]
                if plain:
                    for r in rows_sorted[s + 1 : e]:
                        acc = acc + c[r]
                    acc %= mod
                else:
                    for r in rows_sorted[s + 1 : e]:
                        acc = acc * c[r] % m
                slot, b = divmod(k, width)
                out[(slot * n_feat + j) * width + b] = acc
        for slot in range(n_slots):
            b_skip = int(skip[slot])
            if counts[slot, b_skip] == 0:
                continue
            base = (slot * n_feat + j) * width
            if plain:
                others = sum(out[base + b] for b in range(width) if b != b_skip)
                out[base + b_skip] = (int(totals[slot]) - others) % mod
            else:
                prod = gmpy2.mpz(1)
                for b in range(width):
                    if b != b_skip:
                        prod = prod * out[base + b] % m
                out[base + b_skip] = gmpy2.mpz(totals[slot]) * gmpy2.invert(prod, m) % m
    return [int(v) for v in out]


def _seal_chunk(groups: Sequence[Sequence[int]], shift: int, n: int, plain: bool) -> list[int]:
    """Compress each group into one ciphertext and re-randomise it.

    Compression is Horner's rule, ``c0 + c1·2^W + c2·2^2W + …`` (``c^(2^W)`` is a shift under Paillier).
    Re-randomising (``· r^n`` with a fresh ``r``) matters: a product of the guest's own ciphertexts is a
    product of randomness the guest knows, so for a bin of a few rows it could tell *which* rows are in
    the bin — the order of the host's feature values. With fresh randomness it learns only the sums.
    """
    nn = gmpy2.mpz(n)
    m = nn if plain else nn * nn
    e = gmpy2.mpz(1) << shift
    out = []
    for group in groups:
        acc = gmpy2.mpz(group[-1])
        for ct in reversed(group[:-1]):
            acc = ((acc << shift) + ct) % m if plain else gmpy2.powmod(acc, e, m) * ct % m
        if not plain:
            r = gmpy2.mpz(secrets.randbelow(n - 1) + 1)
            acc = acc * gmpy2.powmod(r, nn, m) % m
        out.append(int(acc))
    return out


# ----------------------------------------------------------------------------- parties


def _chunks(n: int, parts: int) -> list[tuple[int, int]]:
    bounds = np.linspace(0, n, max(1, min(parts, n)) + 1).astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]


class KeyOwner:
    """The guest's side: encrypt packed rows, decrypt compressed histograms (on the computing pool)."""

    def __init__(self, keypair: Keypair, computing: Computing, abort: threading.Event | None) -> None:
        self.keypair = keypair
        self.key = keypair.public
        self.computing = computing
        self.abort = abort
        self.ops = SBTOps()
        self.key_bits = self.key.n.bit_length() if self.key.kind == PAILLIER else 1024

    def _factors(self) -> tuple[int, int]:
        # The phe private key keeps the primes; they never leave this party (only its own pool workers).
        private = self.keypair._private
        return int(private.p), int(private.q)

    def encrypt(self, plains: Sequence[int]) -> list[int]:
        """Encrypt packed plaintexts (fresh randomness each)."""
        self.ops.encryptions += len(plains)
        if self.key.kind != PAILLIER:
            return [int(m) % self.key.n for m in plains]
        p, q = self._factors()
        fn = functools.partial(_encrypt_crt_chunk, n=self.key.n, p=p, q=q)
        if len(plains) < 64:
            return fn(plains)
        return self.computing.map(fn, list(plains), self.abort)

    def decrypt(self, cts: Sequence[int]) -> list[int]:
        """Decrypt to the plaintext integers."""
        self.ops.decryptions += len(cts)
        if self.key.kind != PAILLIER:
            return [int(c) % self.key.n for c in cts]
        p, q = self._factors()
        fn = functools.partial(_decrypt_crt_chunk, n=self.key.n, p=p, q=q)
        if len(cts) < 32:
            return fn(cts)
        return self.computing.map(fn, list(cts), self.abort)


class HistogramBuilder:
    """A host's side: encrypted histograms under the guest's public key.

    Histograms are kept per node as flat lists indexed ``f · width + bin``.
    """

    def __init__(self, key: PublicKey, computing: Computing, abort: threading.Event | None) -> None:
        self.key = key
        self.plain = key.kind != PAILLIER
        self.mod = key.ct_modulus
        self.computing = computing
        self.abort = abort
        self.ops = SBTOps()
        self.key_bits = key.n.bit_length() if not self.plain else 1024

    @property
    def one(self) -> int:
        """The encryption of nothing (the empty sum)."""
        return 0 if self.plain else 1

    def _mul(self, a: int, b: int) -> int:
        return (a + b) % self.mod if self.plain else int(gmpy2.mpz(a) * b % self.mod)

    def total(self, cts: Sequence[int], rows: np.ndarray) -> int:
        """The sum of ``cts`` over ``rows``."""
        self.ops.hist_additions += max(len(rows) - 1, 0)
        if self.plain:
            return sum(int(cts[r]) for r in rows.tolist()) % self.mod
        m = gmpy2.mpz(self.mod)
        acc = gmpy2.mpz(1)
        for r in rows.tolist():
            acc = acc * cts[r] % m
        return int(acc)

    def histograms(
        self, cts: Sequence[int], bins: np.ndarray, slots: np.ndarray, n_slots: int, width: int
    ) -> list[list[int]]:
        """Per slot, the flat ``features × width`` histogram of the rows in ``bins``/``cts``/``slots``.

        ``cts`` are the rows' ciphertexts in the same order as ``bins`` rows.
        """
        n_rows, n_feat = bins.shape
        totals = [self.total(cts, np.flatnonzero(slots == s)) for s in range(n_slots)]
        self.ops.hist_additions += n_rows * n_feat
        fn = functools.partial(
            _hist_chunk,
            cts=list(cts),
            slots=slots,
            n_slots=n_slots,
            width=width,
            totals=totals,
            mod=self.mod,
            plain=self.plain,
        )
        if n_rows * n_feat < MIN_PARALLEL_CELLS or self.computing.cores == 1 or n_feat == 1:
            flat = fn(bins)
            chunks = [(0, n_feat)]
            parts = [flat]
        else:
            chunks = _chunks(n_feat, 2 * self.computing.cores)
            columns: list[Any] = [np.ascontiguousarray(bins[:, a:b]) for a, b in chunks]
            parts = self.computing.run_partitions(fn, columns, self.abort)
        out = [[self.one] * (n_feat * width) for _ in range(n_slots)]
        for (a, b), part in zip(chunks, parts, strict=True):
            k = b - a
            for s in range(n_slots):
                src = part[s * k * width : (s + 1) * k * width]
                out[s][a * width : b * width] = src
        return out

    def subtract(self, parent: Sequence[int], child: Sequence[int]) -> list[int]:
        """``parent − child`` bin by bin (Montgomery's batch inversion: one inversion in all)."""
        if self.plain:
            self.ops.subtraction_additions += len(child)
            return [(int(a) - int(b)) % self.mod for a, b in zip(parent, child, strict=True)]
        m = gmpy2.mpz(self.mod)
        prefix = []
        acc = gmpy2.mpz(1)
        for v in child:
            acc = acc * v % m
            prefix.append(acc)
        inv = gmpy2.invert(acc, m)
        out: list[int] = [0] * len(child)
        for i in range(len(child) - 1, -1, -1):
            inv_i = inv * (prefix[i - 1] if i else 1) % m
            inv = inv * child[i] % m
            out[i] = int(gmpy2.mpz(parent[i]) * inv_i % m)
        self.ops.inversions += 1
        self.ops.subtraction_additions += 4 * len(child)
        return out

    def cumulative(self, hist: Sequence[int], n_bins: np.ndarray, width: int) -> list[int]:
        """Left sums for every candidate (feature order; bins ``0 … n_bins − 2``)."""
        out: list[int] = []
        for f, nb in enumerate(n_bins.tolist()):
            if nb < 2:
                continue
            acc = hist[f * width]
            out.append(acc)
            for b in range(1, nb - 1):
                acc = self._mul(acc, hist[f * width + b])
                out.append(acc)
        self.ops.cumsum_additions += max(len(out) - len(n_bins), 0)
        return out

    def seal(self, per_node: Sequence[Sequence[int]], layout: PackLayout) -> list[list[int]]:
        """Compress each node's candidates, ``layout.per_ct`` per ciphertext, and re-randomise them.

        One pool call for the whole layer; a ciphertext never mixes two nodes.
        """
        k = layout.per_ct
        groups: list[list[int]] = []
        owners: list[int] = []
        for i, cts in enumerate(per_node):
            for j in range(0, len(cts), k):
                groups.append(list(cts[j : j + k]))
                owners.append(i)
        self.ops.compress_shifts += sum(len(g) - 1 for g in groups)
        self.ops.rerandomizations += 0 if self.plain else len(groups)
        fn = functools.partial(_seal_chunk, shift=layout.width, n=self.key.n, plain=self.plain)
        sealed = (
            fn(groups)
            if len(groups) < 16 or self.computing.cores == 1
            else self.computing.map(fn, groups, self.abort)
        )
        out: list[list[int]] = [[] for _ in per_node]
        for i, ct in zip(owners, sealed, strict=True):
            out[i].append(ct)
        return out

    def pack_bytes(self, cts: Sequence[int]) -> bytes:
        """Ciphertexts as fixed-width bytes (what crosses to the guest)."""
        self.ops.ciphertexts_sent += len(cts)
        width = self.key.ct_bytes
        return b"".join(int(c).to_bytes(width, "big") for c in cts)


def unpack_bytes(key: PublicKey, blob: object, count: int, what: str) -> list[int]:
    """Parse ``count`` ciphertexts from a peer, each checked to lie in the ciphertext space."""
    width = key.ct_bytes
    if not isinstance(blob, (bytes, bytearray)) or len(blob) != width * count:
        raise ComponentError(f"malformed {what}: expected {count} ciphertexts of {width} bytes")
    mod = key.ct_modulus
    out = [int.from_bytes(blob[i : i + width], "big") for i in range(0, len(blob), width)]
    if key.kind == PAILLIER and any(c <= 0 or c >= mod for c in out):
        raise ComponentError(f"malformed {what}: ciphertext out of range")
    return out


def pack_bytes(key: PublicKey, cts: Sequence[int]) -> bytes:
    """Ciphertexts as fixed-width big-endian bytes."""
    width = key.ct_bytes
    return b"".join(int(c).to_bytes(width, "big") for c in cts)


def secret_permutation(size: int, key: bytes, label: str) -> np.ndarray:
    """A permutation drawn from ``HMAC(key, label)``.

    Unpredictable without the party's ``key`` (the guest must not predict it), and the same for the
    same key and label (deterministic runs).
    """
    seed = hmac.new(key, label.encode(), hashlib.sha256).digest()
    return np.random.default_rng(int.from_bytes(seed, "big")).permutation(size)


__all__ = [
    "MIN_PARALLEL_CELLS",
    "PRECISION",
    "HistogramBuilder",
    "KeyOwner",
    "PackLayout",
    "SBTOps",
    "pack_bytes",
    "secret_permutation",
    "unpack_bytes",
]
