"""Payload codec: round trips, streaming/zero-copy, refusals, and malformed peer input."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import pytest

from fate_airflow.federation import payload
from fate_airflow.federation.errors import PayloadError

VALUES = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    2**63,
    -(2**63) - 1,
    2**2048 + 12345,
    -(3**2000),
    1.5,
    float("inf"),
    "",
    "ünïcode ✓",
    b"",
    b"\x00\xff" * 100,
    [1, "a", None],
    (1, (2, (3,))),
    {"a": {"b": [1.0, 2.0]}, "": 0},
    np.float16(0.5),
    np.uint64(2**64 - 1),
    np.complex64(1 - 1j),
]


@pytest.mark.parametrize("value", VALUES, ids=[repr(v)[:30] for v in VALUES])
def test_round_trip_keeps_value_and_type(value: object) -> None:
    decoded = payload.decode(payload.encode(value))
    assert type(decoded) is type(value)
    assert decoded == value


@pytest.mark.parametrize("dtype", sorted(payload.ALLOWED_DTYPES))
def test_every_allowed_dtype_round_trips(dtype: str) -> None:
    array = (np.arange(12) % 2).astype(dtype).reshape(3, 4)
    decoded = payload.decode(payload.encode(array))
    assert decoded.dtype == array.dtype and decoded.shape == (3, 4)
    np.testing.assert_array_equal(decoded, array)


def test_measure_equals_encoded_size() -> None:
    value = {"w": np.ones((7, 3)), "ct": [2**2048] * 3, "s": "x" * 5000}
    assert payload.measure(value) == len(payload.encode(value))


def test_chunks_are_bounded_and_array_data_is_not_copied() -> None:
    array = np.arange(1 << 18, dtype=np.float64)  # 2 MiB
    chunks = list(payload.iter_encode(array, chunk_size=64 << 10))
    assert max(len(c) for c in chunks) <= 64 << 10
    views = [c for c in chunks if isinstance(c, memoryview)]
    assert views, "big array data should come out as views"
    assert all(np.shares_memory(np.frombuffer(v, dtype=np.uint8), array) for v in views)
    decoded = payload.decode_stream(chunks, sum(len(c) for c in chunks))
    np.testing.assert_array_equal(decoded, array)


def test_decoding_accepts_arbitrary_chunk_boundaries() -> None:
    value = {"a": np.arange(100, dtype=np.int32), "b": [2**300, "text", b"raw"]}
    data = payload.encode(value)
    rng = random.Random(0)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(data)), 10))
        pieces = [data[i:j] for i, j in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        decoded = payload.decode_stream(pieces, len(data))
        np.testing.assert_array_equal(decoded["a"], value["a"])
        assert decoded["b"] == value["b"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({1, 2}, "builtins.set"),
        ({"ok": [object()]}, r"payload\['ok'\]\[0\]"),
        ({1: 2}, "only str keys"),
        (np.array(["a"]), "dtype"),
        (np.array([1], dtype=object), "dtype"),
        (np.zeros(1, dtype=[("a", "i4")]), "dtype"),
        (np.datetime64("2024-01-01"), "dtype"),
        (bytearray(b"x"), "bytearray"),
    ],
)
def test_unsupported_values_are_refused_with_the_path(value: object, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        payload.measure(value)


def test_nesting_limit() -> None:
    deep: list[object] = []
    for _ in range(payload.MAX_DEPTH + 2):
        deep = [deep]
    with pytest.raises(PayloadError, match="nested deeper"):
        payload.encode(deep)


def test_every_truncation_is_a_clear_error() -> None:
    data = payload.encode({"a": [1, 2**100, "s", b"b", np.arange(3.0), np.int8(3)], "t": (None, True)})
    for end in range(len(data)):
        with pytest.raises(PayloadError, match="malformed payload"):
            payload.decode(data[:end])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"XXXX", "bad magic"),
        (payload.MAGIC + b"Q", "unknown type tag"),
        (payload.MAGIC + b"NN", "trailing bytes"),
        (payload.MAGIC + b"a\x03|O8\x00", "not allowed"),  # object dtype smuggled in
        (payload.MAGIC + b"a\x03<f8\x01" + b"\xff" * 8, "needs"),  # 2^64 elements: refused before allocating
        (payload.MAGIC + b"l" + b"\xff" * 8, "needs"),
        (payload.MAGIC + b"s\x02\x00\x00\x00\x00\x00\x00\x00\xff\xfe", "utf-8"),
        (payload.MAGIC + b"m\x01\x00\x00\x00\x00\x00\x00\x00i" + b"\x00" * 8 + b"N", "key is not a str"),
        (payload.MAGIC + b"a\x03|b1\x01\x01\x00\x00\x00\x00\x00\x00\x00\x07", "bool array"),
        (payload.MAGIC + b"l\x01\x00\x00\x00\x00\x00\x00\x00" * 70 + b"N", "nested deeper"),
    ],
)
def test_malformed_input_is_rejected(data: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        payload.decode(data)


def test_random_garbage_never_escapes_as_another_error() -> None:
    rng = random.Random(42)
    for _ in range(2000):
        blob = payload.MAGIC + bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 40)))
        with contextlib.suppress(PayloadError):
            payload.decode(blob)
