"""Typed, safe serialisation of the objects components send to each other.

Never pickle: a peer's bytes are only ever *parsed* into a closed set of types, so malformed or
hostile input can at worst raise :class:`~fate_airflow.federation.errors.PayloadError`.

Supported values: ``None``, ``bool``, ``int`` of any size (Paillier ciphertexts are ~2048-bit
ints), ``float``, ``str``, ``bytes``, numpy scalars and arrays of bool/integer/float/complex dtype,
and ``list`` / ``tuple`` / ``dict`` (``str`` keys) of these, nested up to :data:`MAX_DEPTH` levels.
Subclasses of ``int``/``float``/``str`` (enums) travel as their base type.

Wire format (little-endian)::

    payload  := MAGIC value
    value    := 'N' | 'T' | 'F'
              | 'i' int64 | 'I' u32 len, signed two's-complement bytes
              | 'd' float64 | 's' u64 len, utf-8 | 'b' u64 len, bytes
              | 'g' dtype, itemsize bytes                       (numpy scalar)
              | 'a' dtype, u8 ndim, ndim * u64 shape, C-order data  (numpy array)
              | 'l' u64 n, n*value | 't' u64 n, n*value | 'm' u64 n, n*('s' str, value)
    dtype    := u8 len, ascii numpy dtype string from a fixed allow-list ('<f8', '|b1', ...)

Encoding streams: :func:`iter_encode` yields chunks of at most ``chunk_size`` bytes and hands out
array and bytes data as zero-copy memoryview slices, so a 1 GiB array is never copied whole.
:func:`decode_stream` consumes chunks and writes array data straight into the result array.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import Any, cast

import numpy as np

from fate_airflow.federation.api import Payload
from fate_airflow.federation.errors import PayloadError

MAGIC = b"FAP\x01"
#: Default chunk size of an encoded stream.
DEFAULT_CHUNK_SIZE = 1 << 20
#: Deepest nesting of lists/tuples/dicts accepted in either direction.
MAX_DEPTH = 64

_INT64 = struct.Struct("<q")
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_F64 = struct.Struct("<d")
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def _allowed_dtypes() -> dict[str, np.dtype[Any]]:
    names = (
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    )
    table: dict[str, np.dtype[Any]] = {}
    for name in names:
        for order in "<>":
            dtype = np.dtype(name).newbyteorder(cast(Any, order))
            table[dtype.str] = dtype
    return table


#: Numpy dtypes that may cross a party, keyed by ``dtype.str``; object/void/str dtypes never do.
ALLOWED_DTYPES = _allowed_dtypes()


# ----------------------------------------------------------------------------- encoding


def _dtype_token(dtype: np.dtype[Any], where: str) -> bytes:
    code = dtype.str
    if code not in ALLOWED_DTYPES:
        raise PayloadError(f"{where}: numpy dtype {dtype} cannot be sent (only bool/int/uint/float/complex)")
    raw = code.encode("ascii")
    return bytes((len(raw),)) + raw


def _tokens(obj: object, where: str, depth: int) -> Iterator[bytes | memoryview]:
    """Yield the encoding of ``obj`` as small header bytes and zero-copy data views."""
    if depth > MAX_DEPTH:
        raise PayloadError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if obj is None:
        yield b"N"
    elif obj is True or obj is False:
        yield b"T" if obj else b"F"
    elif isinstance(obj, np.generic):
        # numpy scalars first: np.float64 is also a float, np.bool_ is not a bool.
        token = _dtype_token(obj.dtype, where)
        yield b"g" + token + np.asarray(obj).tobytes()
    elif isinstance(obj, int):
        value = int(obj)
        if _INT64_MIN <= value <= _INT64_MAX:
            yield b"i" + _INT64.pack(value)
        else:
            length = (value.bit_length() + 8) // 8  # +1 bit for the sign
            yield b"I" + _U32.pack(length) + value.to_bytes(length, "little", signed=True)
    elif isinstance(obj, float):
        yield b"d" + _F64.pack(obj)
    elif isinstance(obj, str):
        raw = str(obj).encode("utf-8", errors="strict")
        yield b"s" + _U64.pack(len(raw))
        yield raw
    elif isinstance(obj, bytes):
        yield b"b" + _U64.pack(len(obj))
        yield memoryview(obj)
    elif isinstance(obj, np.ndarray):
        token = _dtype_token(obj.dtype, where)
        if obj.ndim > 255:
            raise PayloadError(f"{where}: arrays of more than 255 dimensions cannot be sent")
        header = b"a" + token + bytes((obj.ndim,)) + b"".join(_U64.pack(n) for n in obj.shape)
        yield header
        if obj.size:
            # Only non-C-contiguous arrays (slices, transposes) are copied, once, here.
            contiguous = np.ascontiguousarray(obj)
            yield contiguous.reshape(-1).view(np.uint8).data
    elif isinstance(obj, (list, tuple)):
        kind = b"l" if isinstance(obj, list) else b"t"
        yield kind + _U64.pack(len(obj))
        for i, item in enumerate(obj):
            yield from _tokens(item, f"{where}[{i}]", depth + 1)
    elif isinstance(obj, dict):
        yield b"m" + _U64.pack(len(obj))
        for key, item in obj.items():
            if not isinstance(key, str):
                raise PayloadError(f"{where}: dict key {key!r} is a {type(key).__name__}; only str keys")
            raw = str(key).encode("utf-8")
            yield b"s" + _U64.pack(len(raw))
            yield raw
            yield from _tokens(item, f"{where}[{key!r}]", depth + 1)
    else:
        raise PayloadError(
            f"{where}: cannot send a {type(obj).__module__}.{type(obj).__qualname__}; supported: None, "
            "bool, int, float, str, bytes, numpy arrays/scalars of numeric dtype, list/tuple/dict of these"
        )


def measure(obj: Payload) -> int:
    """Validate ``obj`` and return its encoded size in bytes, without copying any array data.

    :raises PayloadError: naming the path of the first unsupported value, e.g. ``payload[2]['w']``.
    """
    return len(MAGIC) + sum(len(t) for t in _tokens(obj, "payload", 0))


def iter_encode(obj: Payload, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes | memoryview]:
    """Encode ``obj`` as a stream of chunks of at most ``chunk_size`` bytes.

    Large data come out as memoryview slices of the caller's own buffers; do not mutate ``obj``
    until the stream is consumed.
    """
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    out = bytearray(MAGIC)
    for token in _tokens(obj, "payload", 0):
        view = memoryview(token)
        if len(out) + len(view) <= chunk_size:
            out += view
            continue
        if out:
            take = chunk_size - len(out)
            out += view[:take]
            view = view[take:]
            yield bytes(out)
            out = bytearray()
        while len(view) >= chunk_size:
            yield view[:chunk_size]
            view = view[chunk_size:]
        out += view
    if out:
        yield bytes(out)


def encode(obj: Payload) -> bytes:
    """Encode ``obj`` into one bytes object (small payloads, tests)."""
    return b"".join(iter_encode(obj))


# ----------------------------------------------------------------------------- decoding


class _Reader:
    """Exact reads over a stream of chunks, refusing to read past the declared payload size."""

    def __init__(self, chunks: Iterable[bytes | memoryview], size: int) -> None:
        self._chunks = iter(chunks)
        self._view = memoryview(b"")
        self._pos = 0
        self.consumed = 0
        self.size = size

    @property
    def remaining(self) -> int:
        return self.size - self.consumed

    def _need(self, n: int, what: str) -> None:
        if n < 0 or n > self.remaining:
            raise PayloadError(
                f"malformed payload: {what} needs {n} bytes but only {self.remaining} remain "
                f"(at byte {self.consumed})"
            )

    def _fill(self) -> bool:
        for chunk in self._chunks:
            if len(chunk):
                self._view = memoryview(chunk)
                self._pos = 0
                return True
        return False

    def read(self, n: int, what: str) -> bytes:
        self._need(n, what)
        parts: list[bytes] = []
        want = n
        while want:
            if self._pos >= len(self._view) and not self._fill():
                raise PayloadError(f"malformed payload: truncated while reading {what}")
            take = min(want, len(self._view) - self._pos)
            parts.append(bytes(self._view[self._pos : self._pos + take]))
            self._pos += take
            want -= take
        self.consumed += n
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readinto(self, target: memoryview, what: str) -> None:
        n = len(target)
        self._need(n, what)
        done = 0
        while done < n:
            if self._pos >= len(self._view) and not self._fill():
                raise PayloadError(f"malformed payload: truncated while reading {what}")
            take = min(n - done, len(self._view) - self._pos)
            target[done : done + take] = self._view[self._pos : self._pos + take]
            self._pos += take
            done += take
        self.consumed += n

    def at_end(self) -> bool:
        if self._pos < len(self._view):
            return False
        return not self._fill()

    def u8(self, what: str) -> int:
        return self.read(1, what)[0]

    def u64(self, what: str) -> int:
        value: int = _U64.unpack(self.read(8, what))[0]
        return value


def _read_dtype(reader: _Reader) -> np.dtype[Any]:
    length = reader.u8("dtype length")
    code = reader.read(length, "dtype").decode("ascii", errors="replace")
    dtype = ALLOWED_DTYPES.get(code)
    if dtype is None:
        raise PayloadError(f"malformed payload: dtype {code!r} is not allowed")
    return dtype


def _read_str(reader: _Reader, what: str) -> str:
    raw = reader.read(reader.u64(f"{what} length"), what)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"malformed payload: {what} is not valid utf-8 ({exc.reason})") from None


def _read_value(reader: _Reader, depth: int) -> Payload:
    if depth > MAX_DEPTH:
        raise PayloadError(f"malformed payload: nested deeper than {MAX_DEPTH} levels")
    tag = reader.read(1, "type tag")
    if tag == b"N":
        return None
    if tag == b"T":
        return True
    if tag == b"F":
        return False
    if tag == b"i":
        return _INT64.unpack(reader.read(8, "int"))[0]
    if tag == b"I":
        length = _U32.unpack(reader.read(4, "big int length"))[0]
        return int.from_bytes(reader.read(length, "big int"), "little", signed=True)
    if tag == b"d":
        return _F64.unpack(reader.read(8, "float"))[0]
    if tag == b"s":
        return _read_str(reader, "str")
    if tag == b"b":
        return reader.read(reader.u64("bytes length"), "bytes")
    if tag == b"g":
        dtype = _read_dtype(reader)
        return np.frombuffer(reader.read(dtype.itemsize, "numpy scalar"), dtype=dtype)[0]
    if tag == b"a":
        dtype = _read_dtype(reader)
        ndim = reader.u8("array ndim")
        shape = tuple(reader.u64("array dimension") for _ in range(ndim))
        count = 1
        for dim in shape:
            count *= dim
        nbytes = count * dtype.itemsize
        reader._need(nbytes, f"array {shape} {dtype}")  # before allocating anything
        array: np.ndarray[Any, Any] = np.empty(shape, dtype=dtype)
        if nbytes:
            flat = array.reshape(-1).view(np.uint8)
            reader.readinto(flat.data, "array data")
            if dtype.kind == "b" and int(flat.max()) > 1:
                raise PayloadError("malformed payload: bool array holds values other than 0/1")
        return array
    if tag in (b"l", b"t"):
        count = reader.u64("sequence length")
        reader._need(count, "sequence items")  # every item takes at least one byte
        items = [_read_value(reader, depth + 1) for _ in range(count)]
        return items if tag == b"l" else tuple(items)
    if tag == b"m":
        count = reader.u64("dict length")
        reader._need(count * 2, "dict items")
        out: dict[str, Payload] = {}
        for _ in range(count):
            if reader.read(1, "dict key tag") != b"s":
                raise PayloadError("malformed payload: dict key is not a str")
            key = _read_str(reader, "dict key")
            out[key] = _read_value(reader, depth + 1)
        return out
    raise PayloadError(f"malformed payload: unknown type tag {tag!r} at byte {reader.consumed - 1}")


def decode_stream(chunks: Iterable[bytes | memoryview], size: int) -> Payload:
    """Decode a payload of exactly ``size`` bytes arriving as ``chunks``.

    :raises PayloadError: the bytes are not a valid payload (wrong magic, unknown tag, bad dtype,
        lengths past ``size``, trailing bytes...). Nothing is ever executed or imported.
    """
    reader = _Reader(chunks, size)
    if reader.read(len(MAGIC), "magic") != MAGIC:
        raise PayloadError("malformed payload: bad magic (not a fate-airflow payload, or another version)")
    value = _read_value(reader, 0)
    if reader.remaining or not reader.at_end():
        raise PayloadError("malformed payload: trailing bytes after the value")
    return value


def decode(data: bytes | memoryview) -> Payload:
    """Decode a payload held in one buffer."""
    return decode_stream([data], len(data))


__all__ = [
    "ALLOWED_DTYPES",
    "DEFAULT_CHUNK_SIZE",
    "MAGIC",
    "MAX_DEPTH",
    "PayloadError",
    "decode",
    "decode_stream",
    "encode",
    "iter_encode",
    "measure",
]
