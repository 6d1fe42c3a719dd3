"""Data-path primitives shared by the client, the gateway and the spool: chunk frames and checksums.

Chunk frames carry the bulk of every transfer, so they are framed and parsed by hand: a chunk is
field 2 (wire type LEN) of both ``PushFrame`` and ``PullFrame``, i.e. the bytes ``0x12``,
varint(length), data. Building one costs a single copy, parsing one is a zero-copy view, and the
spool stores messages as the very frames a pull sends, so serving a message costs no copy in
Python at all.

The end-to-end checksum is CRC-32 (zlib): TLS protects every hop, so the check only has to catch
a gateway or a spool file that lost or changed bytes, and CRC-32 does that at several GB/s where
SHA-256 (still accepted from older senders) costs about three times as much CPU per pass.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Literal, TypeAlias

#: The protobuf tag of a ``chunk`` field (field 2, wire type 2) in PushFrame and PullFrame.
CHUNK_TAG = 0x12
#: Longest prefix of a chunk frame: the tag plus a 10-byte varint.
MAX_PREFIX = 11

ChecksumKind: TypeAlias = Literal["crc32", "sha256"]
#: What senders compute (older senders used SHA-256; receivers accept both).
DEFAULT_CHECKSUM: ChecksumKind = "crc32"
#: Digest length of each checksum kind.
DIGEST_SIZE: dict[ChecksumKind, int] = {"crc32": 4, "sha256": 32}


def varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def chunk_prefix(length: int) -> bytes:
    """The bytes in front of ``length`` data bytes in a chunk frame."""
    return bytes((CHUNK_TAG,)) + varint(length)


def chunk_frame(data: bytes | memoryview) -> bytes:
    """Serialised ``PushFrame``/``PullFrame`` holding one chunk (one copy of ``data``)."""
    return b"".join((chunk_prefix(len(data)), data))


def parse_chunk_prefix(head: bytes | memoryview) -> tuple[int, int] | None:
    """(prefix length, data length) of the chunk frame starting ``head``; None if it is not one.

    Non-minimal varints are accepted (protobuf accepts them too).
    """
    if not head or head[0] != CHUNK_TAG:
        return None
    length = shift = 0
    pos = 1
    while pos < len(head) and pos < MAX_PREFIX:
        byte = head[pos]
        length |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return pos, length
        shift += 7
    return None


def chunk_data(raw: bytes) -> memoryview | None:
    """A zero-copy view of the data of ``raw`` if it is exactly one chunk frame, else None."""
    parsed = parse_chunk_prefix(raw[:MAX_PREFIX])
    if parsed is None:
        return None
    pos, length = parsed
    if pos + length != len(raw):
        return None
    return memoryview(raw)[pos:]


class Checksum:
    """Running checksum of a payload; :meth:`digest` may be called at any time.

    Both kinds release the GIL on large buffers, so checksumming overlaps with gRPC's threads.
    """

    def __init__(self, kind: ChecksumKind = DEFAULT_CHECKSUM) -> None:
        if kind not in DIGEST_SIZE:
            raise ValueError(f"unknown checksum {kind!r}")
        self.kind: ChecksumKind = kind
        self._crc = 0
        self._sha = hashlib.sha256() if kind == "sha256" else None

    def update(self, data: bytes | memoryview) -> None:
        """Add the next bytes of the payload."""
        if self._sha is not None:
            self._sha.update(data)
        else:
            self._crc = zlib.crc32(data, self._crc)

    def digest(self) -> bytes:
        """The digest of everything added so far."""
        if self._sha is not None:
            return self._sha.digest()
        return self._crc.to_bytes(4, "big")


__all__ = [
    "CHUNK_TAG",
    "DEFAULT_CHECKSUM",
    "DIGEST_SIZE",
    "MAX_PREFIX",
    "Checksum",
    "ChecksumKind",
    "chunk_data",
    "chunk_frame",
    "chunk_prefix",
    "parse_chunk_prefix",
    "varint",
]
