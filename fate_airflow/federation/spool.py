"""The destination gateway's durable message store (plain files, no gRPC).

A message is written to ``tmp/`` while it streams in, then checked (size, SHA-256), fsynced and
atomically renamed to ``messages/<dst party>/<session>/<message id>.msg``; only then does the
gateway acknowledge the sender. A crash at any point therefore leaves either nothing or a complete
entry visible; stray temp files are removed when the spool is opened again.

An entry stays until its receiver confirms it got the message whole (:meth:`Spool.ack`); it is then
replaced by an empty ``.done`` tombstone so a re-sent copy (same id) is recognised and not delivered
twice. Tombstones and leftovers go with :meth:`Spool.cleanup_session` or age-based :meth:`Spool.gc`.

Entry file layout: payload bytes, JSON footer, u64 footer length, :data:`ENTRY_MAGIC`.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fate_airflow.core.types import Party
from fate_airflow.federation.errors import Busy, MessageTooLarge, ProtocolError

log = logging.getLogger(__name__)

ENTRY_MAGIC = b"FASPOOL1"
_FOOTER_TAIL = struct.Struct("<Q8s")
_TMP_MAX_AGE = 3600.0
#: Bytes between background flushes of a message being received.
_FLUSH_EVERY = 32 << 20


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
    """A complete, durable message in the spool."""

    path: Path
    key: MessageKey
    message_id: str
    size: int
    sha256: bytes
    received_at: float

    def iter_chunks(self, chunk_size: int) -> Iterator[bytes]:
        """Read the payload back in chunks of at most ``chunk_size`` bytes."""
        with self.path.open("rb", buffering=0) as fh:
            left = self.size
            while left:
                data = fh.read(min(chunk_size, left))
                if not data:
                    raise ProtocolError(f"spool entry {self.path.name} is truncated")
                left -= len(data)
                yield data


class SpoolWriter:
    """One incoming message being written to a temp file; :meth:`commit` makes it visible."""

    def __init__(self, spool: Spool, key: MessageKey, max_bytes: int) -> None:
        self._spool = spool
        self.key = key
        self.message_id = key.message_id
        self._max = max_bytes
        self._hash = hashlib.sha256()
        self.size = 0
        self._tmp = spool.root / "tmp" / f"{self.message_id}.{uuid.uuid4().hex}.part"
        self._fd: int | None = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._next_flush = _FLUSH_EVERY
        self._flusher: threading.Thread | None = None

    def write(self, data: bytes | memoryview) -> None:
        """Append a chunk.

        :raises MessageTooLarge: the message grew past the limit (the temp file is removed).
        """
        if self._fd is None:
            raise ProtocolError("write after commit/abort")
        if self.size + len(data) > self._max:
            self.abort()
            raise MessageTooLarge(f"message {self.key.describe()} exceeds the limit of {self._max} bytes")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._hash.update(data)
        self.size += len(data)
        if self.size >= self._next_flush:
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
            with contextlib.suppress(OSError):  # the fd may be closed by commit/abort meanwhile
                os.fdatasync(fd)

        self._flusher = threading.Thread(target=flush, name="spool-flush", daemon=True)
        self._flusher.start()

    def _join_flusher(self) -> None:
        if self._flusher is not None:
            self._flusher.join()
            self._flusher = None

    def commit(self, size: int, sha256: bytes) -> SpoolEntry:
        """Verify size and digest, fsync, and atomically publish the entry.

        :raises ProtocolError: the received bytes do not match what the sender declared.
        """
        if self._fd is None:
            raise ProtocolError("commit after abort")
        if size != self.size or sha256 != self._hash.digest():
            self.abort()
            raise ProtocolError(
                f"message {self.key.describe()} is corrupt: received {self.size} bytes, sender declared "
                f"{size}, digest {'matches' if sha256 == self._hash.digest() else 'differs'}"
            )
        received_at = time.time()
        footer = json.dumps(
            {
                "key": self.key.to_dict(),
                "message_id": self.message_id,
                "size": self.size,
                "sha256": self._hash.hexdigest(),
                "received_at": received_at,
            },
            separators=(",", ":"),
        ).encode("utf-8")
        os.write(self._fd, footer + _FOOTER_TAIL.pack(len(footer), ENTRY_MAGIC))
        self._join_flusher()
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        return self._spool._publish(self, self._tmp, received_at, self._hash.digest())

    def abort(self) -> None:
        """Drop the partial message (idempotent)."""
        self._join_flusher()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._tmp.unlink(missing_ok=True)
        self._spool._release(self.message_id)


class Spool:
    """Durable per-gateway message store rooted at ``root``.

    :param root: the spool folder (created if needed).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        (self.root / "messages").mkdir(parents=True, exist_ok=True)
        self._cond = threading.Condition()
        self._inflight: set[str] = set()
        self._recover()

    # -------------------------------------------------------------- paths

    def _dir(self, key: MessageKey) -> Path:
        return self.root / "messages" / key.dst.party_id / _session_dir_name(key.session_id)

    def _paths(self, key: MessageKey) -> tuple[Path, Path]:
        folder = self._dir(key)
        mid = key.message_id
        return folder / f"{mid}.msg", folder / f"{mid}.done"

    def _recover(self) -> None:
        # No writer survives a restart: every temp file is an interrupted transfer.
        for stale in (self.root / "tmp").iterdir():
            log.info("spool: removing interrupted transfer %s", stale.name)
            stale.unlink(missing_ok=True)

    # -------------------------------------------------------------- writing

    def begin(self, key: MessageKey, max_bytes: int) -> SpoolWriter | None:
        """Start receiving ``key``; ``None`` when it was already accepted (a re-send to drop).

        :raises Busy: the same message is being received on another stream right now.
        """
        msg, done = self._paths(key)
        with self._cond:
            if msg.exists() or done.exists():
                return None
            if key.message_id in self._inflight:
                raise Busy(f"message {key.describe()} is being received already; retry")
            self._inflight.add(key.message_id)
        try:
            return SpoolWriter(self, key, max_bytes)
        except OSError:
            self._release(key.message_id)
            raise

    def _release(self, mid: str) -> None:
        with self._cond:
            self._inflight.discard(mid)

    def _publish(self, writer: SpoolWriter, tmp: Path, received_at: float, digest: bytes) -> SpoolEntry:
        msg, _ = self._paths(writer.key)
        if not msg.parent.is_dir():
            msg.parent.mkdir(parents=True, exist_ok=True)
            _fsync_dir(msg.parent.parent)
        os.replace(tmp, msg)
        _fsync_dir(msg.parent)
        entry = SpoolEntry(msg, writer.key, writer.message_id, writer.size, digest, received_at)
        with self._cond:
            self._inflight.discard(writer.message_id)
            self._cond.notify_all()
        return entry

    # -------------------------------------------------------------- reading

    def lookup(self, key: MessageKey) -> SpoolEntry | None:
        """The complete entry for ``key``, if present."""
        msg, _ = self._paths(key)
        try:
            return _read_entry(msg)
        except FileNotFoundError:
            return None

    def wait_for(
        self, key: MessageKey, timeout: float, cancelled: Callable[[], bool] | None = None
    ) -> SpoolEntry | None:
        """Wait up to ``timeout`` seconds for ``key`` to arrive; ``None`` on timeout or cancel."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            entry = self.lookup(key)
            if entry is not None:
                return entry
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (cancelled is not None and cancelled()):
                return None
            with self._cond:
                # Re-check under the lock so a publish between lookup and wait is not missed;
                # the 1 s cap also notices entries written by another process.
                if not self._paths(key)[0].exists():
                    self._cond.wait(min(remaining, 1.0))

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
        return removed

    def gc(self, max_age: float, now: float | None = None) -> int:
        """Delete sessions untouched for ``max_age`` seconds and temp files older than an hour."""
        now = time.time() if now is None else now
        removed = 0
        for part in (self.root / "tmp").iterdir():
            try:
                if (
                    now - part.stat().st_mtime > _TMP_MAX_AGE
                    and part.name.split(".")[0] not in self._inflight
                ):
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


def _read_entry(path: Path) -> SpoolEntry:
    with path.open("rb") as fh:
        end = fh.seek(0, os.SEEK_END)
        if end < _FOOTER_TAIL.size:
            raise ProtocolError(f"spool entry {path.name} is truncated")
        fh.seek(end - _FOOTER_TAIL.size)
        length, magic = _FOOTER_TAIL.unpack(fh.read(_FOOTER_TAIL.size))
        if magic != ENTRY_MAGIC or length > end - _FOOTER_TAIL.size:
            raise ProtocolError(f"spool entry {path.name} has no valid footer")
        fh.seek(end - _FOOTER_TAIL.size - length)
        meta = json.loads(fh.read(length))
    return SpoolEntry(
        path=path,
        key=MessageKey.from_dict(meta["key"]),
        message_id=meta["message_id"],
        size=int(meta["size"]),
        sha256=bytes.fromhex(meta["sha256"]),
        received_at=float(meta["received_at"]),
    )


def _fsync_dir(folder: Path) -> None:
    # The rename itself must survive a power cut, not just the file's content.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["ENTRY_MAGIC", "MessageKey", "Spool", "SpoolEntry", "SpoolWriter", "message_id"]
