"""The destination gateway's durable message store (plain files, no gRPC).

A message is written to ``tmp/`` while it streams in, then checked (size, checksum), flushed to
disk (see *fsync* below) and atomically renamed to ``messages/<dst party>/<session>/<id>.msg``;
only then does the gateway acknowledge the sender. A crash at any point therefore leaves either
nothing or a complete entry visible; stray temp files are removed when the spool is opened again.

A receiver that is already waiting need not wait for all of that: :meth:`Spool.open_reader` gives
it a reader that follows the temp file as it grows, and that reports the final size and digest
only once the entry is published. The receiver thus decodes while the message still arrives, yet
can never confirm a message that is not complete, verified and durable. If the transfer fails
instead, the reader raises :class:`~fate_airflow.federation.errors.Busy` (retry: the sender re-sends).

An entry stays until its receiver confirms it got the message whole (:meth:`Spool.ack`); it is then
replaced by an empty ``.done`` tombstone so a re-sent copy (same id) is recognised and not delivered
twice. Tombstones and leftovers go with :meth:`Spool.cleanup_session` or age-based :meth:`Spool.gc`.

Quotas: a spool may cap the payload bytes it holds, in total and per sending party. A message
counts from its first frame (at the size its sender declared, or as it grows if it declared none)
until its receiver acknowledges it or its session is cleaned up or expires; one that would go
beyond a quota is refused with :class:`~fate_airflow.federation.errors.QuotaExceeded` before any of
it is written (or, without a declared size, as soon as it crosses the line, its temp file removed).

Entry file layout: the payload as chunk frames (exactly the ``PullFrame`` bytes a pull sends, see
:mod:`fate_airflow.federation.chunks`, so serving an entry copies nothing in Python), JSON footer,
u64 footer length, :data:`ENTRY_MAGIC`. Entries of earlier versions (raw payload, SHA-256, magic
``FASPOOL1``) are still served.

fsync: with ``fsync=True`` (the default) the file and the directory entry are flushed to the disk
before the sender is acknowledged, so an accepted message survives a power cut or kernel crash.
With ``fsync=False`` an accepted message still survives the gateway process dying in any way
(``kill -9`` included): its bytes are in the kernel's page cache, which outlives the process, and
the rename that publishes it is atomic. Only a crash of the machine itself before the kernel wrote
the pages back (Linux: within ~30 s) can then lose it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import struct
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from fate_airflow.core.types import Party
from fate_airflow.federation.chunks import (
    DEFAULT_CHECKSUM,
    DIGEST_SIZE,
    MAX_PREFIX,
    Checksum,
    ChecksumKind,
    chunk_frame,
    chunk_prefix,
    parse_chunk_prefix,
)
from fate_airflow.federation.errors import Busy, MessageTooLarge, ProtocolError, QuotaExceeded

log = logging.getLogger(__name__)

ENTRY_MAGIC = b"FASPOOL2"
#: Magic of entries written by earlier versions: raw payload bytes, SHA-256 digest.
LEGACY_MAGIC = b"FASPOOL1"
_FOOTER_TAIL = struct.Struct("<Q8s")
_TMP_MAX_AGE = 3600.0
#: Bytes between background flushes of a message being received (fsync=True only).
_FLUSH_EVERY = 32 << 20
#: Read size when serving a legacy (raw payload) entry.
_LEGACY_CHUNK = 1 << 20
#: How often a waiting reader re-checks whether its receiver went away.
_POLL = 1.0
#: Bytes of the latest frames a message being received keeps in memory for its live readers.
_RECENT_BYTES = 16 << 20


@dataclass(frozen=True)
class MessageKey:
    """Rendezvous key of one data-plane message (the wire's ``MessageKey``)."""

    session_id: str
    name: str
    tag: str
    src: Party
    dst: Party

    @property
    def message_id(self) -> str:
        """Deterministic id: a re-send of the same message has the same id and is delivered once."""
        return message_id(self)

    def describe(self) -> str:
        """Human-readable form for errors and logs."""
        return f"{self.name!r} tag {self.tag!r} from {self.src} to {self.dst} in session {self.session_id}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form (spool footers)."""
        return {
            "session_id": self.session_id,
            "name": self.name,
            "tag": self.tag,
            "src": self.src.to_dict(),
            "dst": self.dst.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MessageKey:
        """Inverse of :meth:`to_dict`."""
        return cls(
            data["session_id"],
            data["name"],
            data["tag"],
            Party(data["src"]["role"], data["src"]["party_id"]),
            Party(data["dst"]["role"], data["dst"]["party_id"]),
        )


def message_id(key: MessageKey) -> str:
    """SHA-256 (hex, 40 chars) over the key's fields, separated by a byte no field may contain."""
    fields = (
        key.session_id,
        key.name,
        key.tag,
        key.src.role,
        key.src.party_id,
        key.dst.role,
        key.dst.party_id,
    )
    return hashlib.sha256("\x1f".join(fields).encode("utf-8")).hexdigest()[:40]


def _session_dir_name(session_id: str) -> str:
    # Session ids contain arbitrary job/task names; hash them into a safe, fixed-length name.
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class SpoolEntry:
    """A complete, durable message in the spool.

    :param size: payload bytes.
    :param checksum: how :attr:`digest` was computed.
    :param framed: the payload is stored as chunk frames (False: an entry of an earlier version,
        stored raw).
    :param data_bytes: length of the payload region of the file (frames included).
    """

    path: Path
    key: MessageKey
    message_id: str
    size: int
    checksum: ChecksumKind
    digest: bytes
    received_at: float
    framed: bool = True
    data_bytes: int = 0

    def iter_chunks(self, chunk_size: int) -> Iterator[bytes]:
        """Read the payload back in pieces of at most ``chunk_size`` bytes (diagnostics, tests)."""
        fd = os.open(self.path, os.O_RDONLY)
        reader = _EntryReader(self, fd)
        try:
            for frame in reader.frames(lambda: False):
                prefix, _ = parse_chunk_prefix(frame[:MAX_PREFIX]) or (0, 0)
                view = memoryview(frame)[prefix:]
                for start in range(0, len(view), chunk_size):
                    yield bytes(view[start : start + chunk_size])
        finally:
            reader.close()


class SpoolReader(ABC):
    """A message as its receiver reads it: header facts, the chunk frames, then the final check.

    :attr:`digest` is empty while the message is still arriving; :meth:`final` gives the size and
    digest once :meth:`frames` is exhausted (which, for a message still arriving, happens only after
    it was published). Always :meth:`close` it.
    """

    message_id: str
    size: int
    checksum: ChecksumKind
    digest: bytes

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @abstractmethod
    def frames(self, cancelled: Callable[[], bool]) -> Iterator[bytes]:
        """The payload as serialised chunk frames; stops early once ``cancelled()`` is true.

        :raises Busy: the message's transfer failed while it was being read.
        :raises ProtocolError: the spool file is damaged.
        """

    @abstractmethod
    def final(self) -> tuple[int, bytes]:
        """(size, digest) of the complete message; only valid once :meth:`frames` is exhausted."""

    def close(self) -> None:
        """Release the file (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _read_frames(self, start: int, end: int, name: str) -> Iterator[bytes]:
        # Two reads per frame: its prefix (to learn the length), then the whole frame as one bytes
        # object, which goes to gRPC as it is.
        fd = self._fd
        if fd is None:
            raise ProtocolError("read after close")
        offset = start
        while offset < end:
            parsed = parse_chunk_prefix(os.pread(fd, min(MAX_PREFIX, end - offset), offset))
            if parsed is None or offset + parsed[0] + parsed[1] > end:
                raise ProtocolError(f"spool entry {name} is damaged at byte {offset}")
            length = parsed[0] + parsed[1]
            frame = os.pread(fd, length, offset)
            if len(frame) != length:
                raise ProtocolError(f"spool entry {name} is truncated")
            offset += length
            yield frame


class _EntryReader(SpoolReader):
    """Reads a published entry (the file stays readable even if it is deleted meanwhile)."""

    def __init__(self, entry: SpoolEntry, fd: int) -> None:
        super().__init__(fd)
        self.entry = entry
        self.message_id = entry.message_id
        self.size = entry.size
        self.checksum = entry.checksum
        self.digest = entry.digest

    def frames(self, cancelled: Callable[[], bool]) -> Iterator[bytes]:
        name = self.entry.path.name
        if self.entry.framed:
            yield from self._read_frames(0, self.entry.data_bytes, name)
            return
        fd = self._fd
        assert fd is not None
        for offset in range(0, self.entry.size, _LEGACY_CHUNK):
            data = os.pread(fd, min(_LEGACY_CHUNK, self.entry.size - offset), offset)
            if not data:
                raise ProtocolError(f"spool entry {name} is truncated")
            yield chunk_frame(data)

    def final(self) -> tuple[int, bytes]:
        return self.entry.size, self.entry.digest


class _LiveReader(SpoolReader):
    """Follows a message that is still being written, frame by frame, until it is published."""

    def __init__(self, writer: SpoolWriter, fd: int) -> None:
        super().__init__(fd)
        self._writer = writer
        self.message_id = writer.message_id
        self.size = writer.expected
        self.checksum = writer.checksum
        self.digest = b""

    def frames(self, cancelled: Callable[[], bool]) -> Iterator[bytes]:
        writer = self._writer
        offset = 0
        while True:
            with writer._cond:
                while writer._file_bytes == offset and writer._state == _WRITING:
                    if cancelled():
                        return
                    writer._cond.wait(_POLL)
                end, state = writer._file_bytes, writer._state
                recent = list(writer._recent)
            if state == _ABORTED:
                raise Busy(
                    f"the transfer of message {writer.key.describe()} failed while it was being received; "
                    "retry (its sender re-sends it)"
                )
            if offset == end:  # published and fully read
                return
            # Frames still in memory go out as they are (they are the bytes written to the file);
            # only a reader that fell behind reads back from the file.
            for start, frame in recent:
                if start < offset or start >= end:
                    continue
                if start > offset:
                    yield from self._read_frames(offset, start, writer.message_id)
                yield frame
                offset = start + len(frame)
            if offset < end:
                yield from self._read_frames(offset, end, writer.message_id)
            offset = end

    def final(self) -> tuple[int, bytes]:
        entry = self._writer._entry
        if entry is None:
            raise ProtocolError(f"message {self._writer.key.describe()} is not complete yet")
        return entry.size, entry.digest


_WRITING, _COMMITTED, _ABORTED = "writing", "committed", "aborted"


class SpoolWriter:
    """One incoming message being written to a temp file; :meth:`commit` makes it visible.

    :param size_hint: the size the sender declared (0: unknown). When given, a message of any
        other size is refused, and receivers may read the message while it arrives.
    :param checksum: how the sender computes the digest it sends in its trailer.
    """

    def __init__(
        self,
        spool: Spool,
        key: MessageKey,
        max_bytes: int,
        size_hint: int = 0,
        checksum: ChecksumKind = DEFAULT_CHECKSUM,
    ) -> None:
        self._spool = spool
        self.key = key
        self.message_id = key.message_id
        self._max = max_bytes
        self.expected = size_hint
        self.checksum: ChecksumKind = checksum
        self._checksum = Checksum(checksum)
        self.size = 0
        #: Quota bytes held for this message (its declared size, or what arrived so far).
        self.reserved = size_hint
        self._tmp = spool.root / "tmp" / f"{self.message_id}.{uuid.uuid4().hex}.part"
        # Read-write: live readers read through duplicates of this descriptor.
        self._fd: int | None = os.open(self._tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        self._next_flush = _FLUSH_EVERY
        self._flusher: threading.Thread | None = None
        # Progress shared with live readers: bytes of whole frames in the file, state, entry.
        self._cond = threading.Condition()
        self._file_bytes = 0
        # (file offset, frame) of the latest whole frames, at most _RECENT_BYTES: live readers
        # following closely take them from here instead of reading them back from the file.
        self._recent: deque[tuple[int, bytes]] = deque()
        self._recent_bytes = 0
        self._state = _WRITING
        self._entry: SpoolEntry | None = None

    @property
    def _attachable(self) -> bool:
        return self.expected > 0 and self._fd is not None and self._state == _WRITING

    def write(self, data: bytes | memoryview, frame: bytes | None = None) -> None:
        """Append a chunk of the payload.

        :param frame: the chunk frame holding ``data`` exactly as it is written to the file (what
            :func:`~fate_airflow.federation.chunks.chunk_frame` makes of it), if the caller has it:
            it is kept for a while and handed to live readers without another copy.

        :raises MessageTooLarge: the message grew past the limit (the temp file is removed).
        :raises ProtocolError: it grew past the size its sender declared (likewise).
        """
        fd = self._fd
        if fd is None:
            raise ProtocolError("write after commit/abort")
        length = len(data)
        if self.size + length > self._max:
            self.abort()
            raise MessageTooLarge(f"message {self.key.describe()} exceeds the limit of {self._max} bytes")
        if self.expected and self.size + length > self.expected:
            self.abort()
            raise ProtocolError(
                f"message {self.key.describe()} is larger than the {self.expected} bytes its sender declared"
            )
        if not length:
            return
        if self.size + length > self.reserved:
            try:
                self._spool._reserve(self.key, self.size + length - self.reserved)
            except QuotaExceeded:
                self.abort()
                raise
            self.reserved = self.size + length
        prefix = chunk_prefix(length)
        _write_all(fd, [prefix, data])
        self._checksum.update(data)
        self.size += length
        with self._cond:
            if frame is not None and len(frame) == len(prefix) + length:
                self._recent.append((self._file_bytes, frame))
                self._recent_bytes += len(frame)
                while self._recent_bytes > _RECENT_BYTES and len(self._recent) > 1:
                    self._recent_bytes -= len(self._recent.popleft()[1])
            self._file_bytes += len(prefix) + length
            self._cond.notify_all()
        if self._spool.fsync and self.size >= self._next_flush:
            self._next_flush = self.size + _FLUSH_EVERY
            self._flush_in_background()

    def _flush_in_background(self) -> None:
        # Start writing big messages to disk while they still stream in, so the fsync that must
        # precede the acknowledgement only has the tail left to flush. One flush at a time.
        if self._flusher is not None and self._flusher.is_alive():
            return
        fd = self._fd
        if fd is None:
            return

        def flush() -> None:
            with contextlib.suppress(OSError):
                os.fdatasync(fd)

        self._flusher = threading.Thread(target=flush, name="spool-flush", daemon=True)
        self._flusher.start()

    def _join_flusher(self) -> None:
        if self._flusher is not None:
            self._flusher.join()
            self._flusher = None

    def _close_fd(self) -> None:
        # Under the spool lock: Spool.open_reader duplicates the descriptor under the same lock.
        self._join_flusher()
        with self._spool._cond:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        with self._cond:
            self._recent.clear()  # readers still behind read the rest from the file
            self._recent_bytes = 0

    def commit(self, size: int, digest: bytes) -> SpoolEntry:
        """Verify size and digest, flush (per the spool's fsync policy) and atomically publish.

        :raises ProtocolError: the received bytes do not match what the sender declared.
        """
        fd = self._fd
        if fd is None:
            raise ProtocolError("commit after abort")
        actual = self._checksum.digest()
        if size != self.size or digest != actual or (self.expected and size != self.expected):
            self.abort()
            declared = f"{size}" + (f" (header: {self.expected})" if self.expected else "")
            raise ProtocolError(
                f"message {self.key.describe()} is corrupt: received {self.size} bytes, sender declared "
                f"{declared}, {self.checksum} {'matches' if digest == actual else 'differs'}"
            )
        received_at = time.time()
        footer = json.dumps(
            {
                "key": self.key.to_dict(),
                "message_id": self.message_id,
                "size": self.size,
                "checksum": self.checksum,
                "digest": actual.hex(),
                "data_bytes": self._file_bytes,
                "received_at": received_at,
            },
            separators=(",", ":"),
        ).encode("utf-8")
        _write_all(fd, [footer, _FOOTER_TAIL.pack(len(footer), ENTRY_MAGIC)])
        if self._spool.fsync:
            self._join_flusher()
            os.fdatasync(fd)
        self._close_fd()
        entry = SpoolEntry(
            path=self._spool._paths(self.key)[0],
            key=self.key,
            message_id=self.message_id,
            size=self.size,
            checksum=self.checksum,
            digest=actual,
            received_at=received_at,
            framed=True,
            data_bytes=self._file_bytes,
        )
        self._spool._publish(self, self._tmp, entry)
        return entry

    def abort(self) -> None:
        """Drop the partial message (idempotent); live readers of it fail with Busy."""
        self._close_fd()
        if self._state != _COMMITTED:
            self._tmp.unlink(missing_ok=True)
            with self._cond:
                self._state = _ABORTED
                self._cond.notify_all()
            self._spool._unreserve(self.key.src.party_id, self.reserved)
            self.reserved = 0
        self._spool._release(self)


class Spool:
    """Durable per-gateway message store rooted at ``root``.

    :param root: the spool folder (created if needed).
    :param fsync: flush every accepted message to the disk before acknowledging it (see the module
        docstring for what ``False`` risks).
    :param quota_bytes: most payload bytes held at once, all senders together (None: no limit).
    :param per_peer_quota_bytes: most payload bytes held for messages from any one party (None: no
        limit).
    :param owner: who keeps this spool, for refusals (e.g. ``the gateway of party 10000``).
    """

    def __init__(
        self,
        root: Path,
        fsync: bool = True,
        *,
        quota_bytes: int | None = None,
        per_peer_quota_bytes: int | None = None,
        owner: str = "this spool",
    ) -> None:
        self.root = Path(root)
        self.fsync = fsync
        self.quota_bytes = quota_bytes
        self.per_peer_quota_bytes = per_peer_quota_bytes
        self._owner = owner
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        (self.root / "messages").mkdir(parents=True, exist_ok=True)
        self._cond = threading.Condition()
        self._writers: dict[str, SpoolWriter] = {}
        # Quota accounting (under _cond): bytes held per sending party and in total, and which
        # published entry holds how much for whom (session folder → file name → (party, bytes)).
        self._held: dict[str, int] = {}
        self._held_total = 0
        self._entry_bytes: dict[Path, dict[str, tuple[str, int]]] = {}
        self._recover()

    # -------------------------------------------------------------- paths

    def _dir(self, key: MessageKey) -> Path:
        return self._session_folder(key.dst.party_id, key.session_id)

    def _session_folder(self, dst_party_id: str, session_id: str) -> Path:
        return self.root / "messages" / dst_party_id / _session_dir_name(session_id)

    def _paths(self, key: MessageKey) -> tuple[Path, Path]:
        folder = self._dir(key)
        mid = key.message_id
        return folder / f"{mid}.msg", folder / f"{mid}.done"

    def _recover(self) -> None:
        # No writer survives a restart: every temp file is an interrupted transfer.
        for stale in (self.root / "tmp").iterdir():
            log.info("spool: removing interrupted transfer %s", stale.name)
            stale.unlink(missing_ok=True)
        # What the entries kept from before the restart hold against the quotas.
        for path in (self.root / "messages").glob("*/*/*.msg"):
            try:
                entry = _read_entry(path)
            except (FileNotFoundError, ProtocolError):
                continue
            self._account(path, entry.key.src.party_id, entry.size)

    # -------------------------------------------------------------- quotas

    def usage(self, party_id: str | None = None) -> int:
        """Payload bytes held: for messages from ``party_id``, or in total (None)."""
        with self._cond:
            return self._held_total if party_id is None else self._held.get(party_id, 0)

    def _reserve(self, key: MessageKey, size: int) -> None:
        """Count ``size`` more bytes for ``key``'s sender, or refuse naming the quota it would break."""
        src = key.src.party_id
        with self._cond:
            held = self._held.get(src, 0)
            peer_quota, quota = self.per_peer_quota_bytes, self.quota_bytes
            if peer_quota is not None and held + size > peer_quota:
                raise QuotaExceeded(
                    f"spool quota exceeded at {self._owner}: message {key.describe()} needs {size} more "
                    f"bytes, but party {src} already holds {held} of its {peer_quota} bytes "
                    "(spool.per_peer_quota_bytes); retry once its receivers have taken earlier messages"
                )
            if quota is not None and self._held_total + size > quota:
                raise QuotaExceeded(
                    f"spool quota exceeded at {self._owner}: message {key.describe()} from party {src} "
                    f"needs {size} more bytes, but the spool already holds {self._held_total} of its "
                    f"{quota} bytes (spool.quota_bytes; party {src} holds {held}); retry once receivers "
                    "have taken earlier messages"
                )
            self._held[src] = held + size
            self._held_total += size

    def _unreserve(self, party_id: str, size: int) -> None:
        if not size:
            return
        with self._cond:
            left = self._held.get(party_id, 0) - size
            if left > 0:
                self._held[party_id] = left
            else:
                self._held.pop(party_id, None)
            self._held_total = max(0, self._held_total - size)

    def _account(self, path: Path, party_id: str, size: int) -> None:
        """A published entry at ``path`` holds ``size`` bytes of ``party_id`` (recovery only)."""
        with self._cond:
            self._entry_bytes.setdefault(path.parent, {})[path.name] = (party_id, size)
            self._held[party_id] = self._held.get(party_id, 0) + size
            self._held_total += size

    def _forget(self, path: Path) -> None:
        """The entry at ``path`` is gone: give back what it held."""
        with self._cond:
            folder = self._entry_bytes.get(path.parent)
            item = folder.pop(path.name, None) if folder is not None else None
            if folder is not None and not folder:
                del self._entry_bytes[path.parent]
        if item is not None:
            self._unreserve(*item)

    def _forget_folder(self, folder: Path) -> None:
        """A session folder was deleted: give back what its entries held."""
        with self._cond:
            items = list(self._entry_bytes.pop(folder, {}).values())
        for party_id, size in items:
            self._unreserve(party_id, size)

    # -------------------------------------------------------------- writing

    def begin(
        self,
        key: MessageKey,
        max_bytes: int,
        size_hint: int = 0,
        checksum: ChecksumKind = DEFAULT_CHECKSUM,
    ) -> SpoolWriter | None:
        """Start receiving ``key``; ``None`` when it was already accepted (a re-send to drop).

        :param size_hint: the size the sender declared, or 0 (see :class:`SpoolWriter`).
        :raises Busy: the same message is being received on another stream right now.
        """
        msg, done = self._paths(key)
        with self._cond:
            if msg.exists() or done.exists():
                return None
            if key.message_id in self._writers:
                raise Busy(f"message {key.describe()} is being received already; retry")
            # Before the temp file exists: a refused message leaves nothing behind.
            self._reserve(key, size_hint)
            try:
                writer = SpoolWriter(self, key, max_bytes, size_hint, checksum)
            except BaseException:
                self._unreserve(key.src.party_id, size_hint)
                raise
            self._writers[key.message_id] = writer
            self._cond.notify_all()  # receivers waiting for it may start reading now
        return writer

    def _release(self, writer: SpoolWriter) -> None:
        with self._cond:
            if self._writers.get(writer.message_id) is writer:
                del self._writers[writer.message_id]
            self._cond.notify_all()

    def _publish(self, writer: SpoolWriter, tmp: Path, entry: SpoolEntry) -> None:
        msg = entry.path
        if not msg.parent.is_dir():
            msg.parent.mkdir(parents=True, exist_ok=True)
            if self.fsync:
                _fsync_dir(msg.parent.parent)
        os.replace(tmp, msg)
        with self._cond:
            # The writer's reservation now belongs to the entry, until it is acknowledged or deleted.
            self._entry_bytes.setdefault(msg.parent, {})[msg.name] = (
                writer.key.src.party_id,
                writer.reserved,
            )
            writer.reserved = 0
        if self.fsync:
            _fsync_dir(msg.parent)
        with writer._cond:
            writer._entry = entry
            writer._state = _COMMITTED
            writer._cond.notify_all()
        self._release(writer)

    # -------------------------------------------------------------- reading

    def lookup(self, key: MessageKey) -> SpoolEntry | None:
        """The complete entry for ``key``, if present."""
        msg, _ = self._paths(key)
        try:
            return _read_entry(msg)
        except FileNotFoundError:
            return None

    def open_reader(self, key: MessageKey) -> SpoolReader | None:
        """A reader of ``key``, or None if there is nothing to read yet.

        That is the published entry, or the message while it still arrives if its sender declared
        its size; None when it was not sent yet, or is being published right now.
        """
        with self._cond:
            writer = self._writers.get(key.message_id)
            if writer is not None:
                if writer._attachable:
                    assert writer._fd is not None
                    return _LiveReader(writer, os.dup(writer._fd))
                return None
        msg, _ = self._paths(key)
        try:
            fd = os.open(msg, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            return _EntryReader(_read_entry_fd(fd, msg), fd)
        except BaseException:
            os.close(fd)
            raise

    def wait_reader(
        self, key: MessageKey, timeout: float, cancelled: Callable[[], bool] | None = None
    ) -> SpoolReader | None:
        """Wait up to ``timeout`` seconds until :meth:`open_reader` has something for ``key``."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            reader = self.open_reader(key)
            if reader is not None:
                return reader
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (cancelled is not None and cancelled()):
                return None
            with self._cond:
                # Re-check under the lock so a begin/publish in between is not missed; the cap
                # also notices entries written by another process.
                if not self._readable_locked(key):
                    self._cond.wait(min(remaining, _POLL))

    def _readable_locked(self, key: MessageKey) -> bool:
        writer = self._writers.get(key.message_id)
        if writer is not None:
            return writer._attachable
        return self._paths(key)[0].exists()

    def wait_for(
        self, key: MessageKey, timeout: float, cancelled: Callable[[], bool] | None = None
    ) -> SpoolEntry | None:
        """Wait up to ``timeout`` seconds for ``key`` to be published; ``None`` on timeout or cancel."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            entry = self.lookup(key)
            if entry is not None:
                return entry
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (cancelled is not None and cancelled()):
                return None
            with self._cond:
                if not self._paths(key)[0].exists():
                    self._cond.wait(min(remaining, _POLL))

    # -------------------------------------------------------------- queues (PTP topics)

    def _complete_names(self, folder: Path) -> frozenset[str]:
        try:
            return frozenset(n for n in os.listdir(folder) if n.endswith(".msg"))
        except FileNotFoundError:
            return frozenset()

    def queued(
        self, dst_party_id: str, session_id: str, name: str, limit: int | None = None
    ) -> list[SpoolEntry]:
        """Complete entries of one (destination party, session, name), oldest tag first.

        Messages still arriving are not listed. Used where a name is a queue whose tags give the
        order (the PTP endpoint's topics).

        :param limit: at most this many (the oldest); None: all.
        """
        folder = self._session_folder(dst_party_id, session_id)
        return self._queued(folder, session_id, name, limit)[0]

    def _queued(
        self, folder: Path, session_id: str, name: str, limit: int | None
    ) -> tuple[list[SpoolEntry], frozenset[str]]:
        names = self._complete_names(folder)
        keyed: list[tuple[str, Path]] = []
        for file_name in names:
            key = _cached_key(folder / file_name)
            if key is not None and key.session_id == session_id and key.name == name:
                keyed.append((key.tag, folder / file_name))
        out: list[SpoolEntry] = []
        for _, path in sorted(keyed):
            if limit is not None and len(out) >= limit:
                break
            try:
                out.append(_read_entry(path))
            except (FileNotFoundError, ProtocolError):
                continue  # acknowledged or cleaned up meanwhile, or damaged: not deliverable
        return out, names

    def wait_queued(
        self,
        dst_party_id: str,
        session_id: str,
        name: str,
        timeout: float,
        cancelled: Callable[[], bool] | None = None,
    ) -> SpoolEntry | None:
        """Wait up to ``timeout`` seconds for the oldest entry of :meth:`queued`; None on timeout or cancel."""
        folder = self._session_folder(dst_party_id, session_id)
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            entries, seen = self._queued(folder, session_id, name, 1)
            if entries:
                return entries[0]
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (cancelled is not None and cancelled()):
                return None
            with self._cond:
                # Publishing renames the file before it notifies under this lock: if the folder
                # still lists what we scanned, nothing was published since and the wait cannot
                # miss the notification (the cap notices entries written by another process).
                if self._complete_names(folder) == seen:
                    self._cond.wait(min(remaining, _POLL))

    def delivered(self, key: MessageKey) -> bool:
        """Whether ``key`` was delivered and acknowledged already."""
        return self._paths(key)[1].exists()

    def ack(self, key: MessageKey) -> bool:
        """The receiver has the message: replace the entry with a tombstone. True if it existed."""
        msg, done = self._paths(key)
        if not msg.exists():
            return False
        done.touch()
        msg.unlink(missing_ok=True)
        self._forget(msg)
        return True

    # -------------------------------------------------------------- retention

    def cleanup_session(self, session_id: str, dst_party_id: str | None = None) -> int:
        """Delete every entry and tombstone of ``session_id`` (for one destination party, or all)."""
        removed = 0
        base = self.root / "messages"
        parties = [dst_party_id] if dst_party_id else [p.name for p in base.iterdir() if p.is_dir()]
        for party in parties:
            folder = base / party / _session_dir_name(session_id)
            if folder.is_dir():
                removed += sum(1 for p in folder.iterdir() if p.suffix == ".msg")
                shutil.rmtree(folder, ignore_errors=True)
                self._forget_folder(folder)
        return removed

    def gc(self, max_age: float, now: float | None = None) -> int:
        """Delete sessions untouched for ``max_age`` seconds and temp files older than an hour."""
        now = time.time() if now is None else now
        removed = 0
        for part in (self.root / "tmp").iterdir():
            try:
                if now - part.stat().st_mtime > _TMP_MAX_AGE and part.name.split(".")[0] not in self._writers:
                    part.unlink(missing_ok=True)
            except FileNotFoundError:
                continue
        for party in (self.root / "messages").iterdir():
            for session in party.iterdir() if party.is_dir() else ():
                try:
                    files = list(session.iterdir())
                    newest = max((f.stat().st_mtime for f in files), default=session.stat().st_mtime)
                except FileNotFoundError:
                    continue
                if now - newest > max_age:
                    removed += sum(1 for f in files if f.suffix == ".msg")
                    shutil.rmtree(session, ignore_errors=True)
                    self._forget_folder(session)
        return removed

    def entries(self) -> list[SpoolEntry]:
        """Every complete entry (diagnostics, tests)."""
        out: list[SpoolEntry] = []
        for path in sorted((self.root / "messages").glob("*/*/*.msg")):
            try:
                out.append(_read_entry(path))
            except (FileNotFoundError, ProtocolError):
                continue
        return out


def _write_all(fd: int, parts: Sequence[bytes | memoryview]) -> None:
    """Write ``parts`` in order with as few system calls as possible (no joining copy)."""
    views = [memoryview(p) for p in parts if len(p)]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]


def _read_entry(path: Path) -> SpoolEntry:
    fd = os.open(path, os.O_RDONLY)
    try:
        return _read_entry_fd(fd, path)
    finally:
        os.close(fd)


def _read_entry_fd(fd: int, path: Path) -> SpoolEntry:
    end = os.fstat(fd).st_size
    if end < _FOOTER_TAIL.size:
        raise ProtocolError(f"spool entry {path.name} is truncated")
    length, magic = _FOOTER_TAIL.unpack(os.pread(fd, _FOOTER_TAIL.size, end - _FOOTER_TAIL.size))
    data_bytes = end - _FOOTER_TAIL.size - length
    if magic not in (ENTRY_MAGIC, LEGACY_MAGIC) or data_bytes < 0:
        raise ProtocolError(f"spool entry {path.name} has no valid footer")
    try:
        meta: dict[str, Any] = json.loads(os.pread(fd, length, data_bytes))
        if magic == LEGACY_MAGIC:
            checksum: ChecksumKind = "sha256"
            digest = bytes.fromhex(meta["sha256"])
        else:
            checksum = cast(ChecksumKind, meta["checksum"])
            digest = bytes.fromhex(meta["digest"])
            if checksum not in DIGEST_SIZE or int(meta["data_bytes"]) != data_bytes:
                raise ValueError("inconsistent footer")
        return SpoolEntry(
            path=path,
            key=MessageKey.from_dict(meta["key"]),
            message_id=meta["message_id"],
            size=int(meta["size"]),
            checksum=checksum,
            digest=digest,
            received_at=float(meta["received_at"]),
            framed=magic == ENTRY_MAGIC,
            data_bytes=data_bytes,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ProtocolError(f"spool entry {path.name} has a damaged footer: {exc}") from None


#: Keys of spool entries by message id, so scanning a queue reads each footer once. A message id is
#: a hash of its key, so a cached key stays right for every spool and every re-sent copy.
_KEY_CACHE: dict[str, MessageKey] = {}
_KEY_CACHE_MAX = 1 << 16
_KEY_CACHE_LOCK = threading.Lock()


def _cached_key(path: Path) -> MessageKey | None:
    """The key of the entry at ``path`` (None if it vanished or is damaged)."""
    mid = path.name[: -len(".msg")]
    with _KEY_CACHE_LOCK:
        key = _KEY_CACHE.get(mid)
    if key is not None:
        return key
    try:
        key = _read_entry(path).key
    except (FileNotFoundError, ProtocolError):
        return None
    with _KEY_CACHE_LOCK:
        if len(_KEY_CACHE) >= _KEY_CACHE_MAX:
            _KEY_CACHE.clear()  # crude but bounded; refilling costs one footer read per entry
        _KEY_CACHE[mid] = key
    return key


def _fsync_dir(folder: Path) -> None:
    # The rename itself must survive a power cut, not just the file's content.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = [
    "ENTRY_MAGIC",
    "LEGACY_MAGIC",
    "MessageKey",
    "Spool",
    "SpoolEntry",
    "SpoolReader",
    "SpoolWriter",
    "message_id",
]
