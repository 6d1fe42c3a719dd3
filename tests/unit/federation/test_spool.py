"""Spool: atomic publication, verification, tombstones, recovery and retention."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from fate_airflow.core.types import Party
from fate_airflow.federation.chunks import Checksum
from fate_airflow.federation.errors import Busy, MessageTooLarge, ProtocolError, QuotaExceeded
from fate_airflow.federation.spool import MessageKey, Spool, SpoolReader

KEY = MessageKey("job_t_0", "grad", "fit.0", Party("guest", "9999"), Party("host", "10000"))


def _digest(data: bytes) -> bytes:
    checksum = Checksum()
    checksum.update(data)
    return checksum.digest()


def _write(spool: Spool, key: MessageKey, data: bytes) -> None:
    writer = spool.begin(key, 1 << 20)
    assert writer is not None
    writer.write(data)
    writer.commit(len(data), _digest(data))


def test_message_id_is_deterministic_and_key_sensitive() -> None:
    assert (
        KEY.message_id
        == MessageKey(*[getattr(KEY, f) for f in ("session_id", "name", "tag", "src", "dst")]).message_id
    )
    other = MessageKey("job_t_1", "grad", "fit.0", KEY.src, KEY.dst)
    assert KEY.message_id != other.message_id
    # Field boundaries matter: ("a_b", "c") and ("a", "b_c") must not collide.
    assert (
        MessageKey("s", "a_b", "c", KEY.src, KEY.dst).message_id
        != MessageKey("s", "a", "b_c", KEY.src, KEY.dst).message_id
    )


def test_entry_is_invisible_until_committed(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    writer = spool.begin(KEY, 1 << 20)
    assert writer is not None
    writer.write(b"half of it")
    assert spool.lookup(KEY) is None
    assert list((tmp_path / "tmp").iterdir())
    data = b"half of it"
    entry = writer.commit(len(data), _digest(data))
    assert spool.lookup(KEY) == entry
    assert b"".join(entry.iter_chunks(3)) == data
    assert not list((tmp_path / "tmp").iterdir())


def test_corrupt_or_oversized_message_leaves_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    writer = spool.begin(KEY, 1 << 20)
    assert writer is not None
    writer.write(b"abc")
    with pytest.raises(ProtocolError, match="corrupt"):
        writer.commit(3, b"\0" * 32)
    writer = spool.begin(KEY, 10)
    assert writer is not None
    with pytest.raises(MessageTooLarge):
        writer.write(b"x" * 11)
    assert spool.lookup(KEY) is None
    assert not list((tmp_path / "tmp").iterdir())
    assert not list((tmp_path / "messages").rglob("*.msg"))


def test_crash_mid_write_is_cleaned_on_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    writer = spool.begin(KEY, 1 << 20)
    assert writer is not None
    writer.write(b"partial")  # the process "dies" here: no commit, no abort
    reopened = Spool(tmp_path)
    assert reopened.lookup(KEY) is None
    assert not list((tmp_path / "tmp").iterdir())
    _write(reopened, KEY, b"full")
    assert reopened.lookup(KEY) is not None


def test_committed_entry_survives_reopen(tmp_path: Path) -> None:
    _write(Spool(tmp_path), KEY, b"durable")
    entry = Spool(tmp_path).lookup(KEY)
    assert entry is not None and entry.size == 7 and entry.key == KEY


def test_resend_is_dropped_before_and_after_ack(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    _write(spool, KEY, b"once")
    assert spool.begin(KEY, 1 << 20) is None
    assert spool.ack(KEY)
    assert spool.lookup(KEY) is None and spool.delivered(KEY)
    assert spool.begin(KEY, 1 << 20) is None  # the tombstone remembers it
    assert not spool.ack(KEY)


def test_concurrent_receive_of_the_same_message_is_busy(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    first = spool.begin(KEY, 1 << 20)
    assert first is not None
    with pytest.raises(Busy):
        spool.begin(KEY, 1 << 20)
    first.abort()
    assert spool.begin(KEY, 1 << 20) is not None


def test_wait_for_wakes_up_on_publish(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    threading.Timer(0.2, _write, (spool, KEY, b"late")).start()
    start = time.monotonic()
    entry = spool.wait_for(KEY, 5.0)
    assert entry is not None and time.monotonic() - start < 2.0
    other = MessageKey("x", "y", "z", KEY.src, KEY.dst)
    assert spool.wait_for(other, 0.1) is None
    assert spool.wait_for(other, 30.0, cancelled=lambda: True) is None


def test_cleanup_session_and_age_gc(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    other_session = MessageKey("job_t_1", "grad", "fit.0", KEY.src, KEY.dst)
    _write(spool, KEY, b"a")
    _write(spool, other_session, b"b")
    assert spool.cleanup_session(KEY.session_id, "10000") == 1
    assert spool.lookup(KEY) is None and spool.lookup(other_session) is not None
    assert spool.gc(max_age=3600) == 0
    old = time.time() - 7200
    for path in (tmp_path / "messages").rglob("*"):
        os.utime(path, (old, old))
    assert spool.gc(max_age=3600) == 1
    assert spool.entries() == []


# ------------------------------------------------------------------------- checksums and layout


def test_sha256_senders_are_still_accepted(tmp_path: Path) -> None:
    import hashlib

    spool = Spool(tmp_path)
    writer = spool.begin(KEY, 1 << 20, checksum="sha256")
    assert writer is not None
    writer.write(b"old sender")
    with pytest.raises(ProtocolError, match="sha256 differs"):
        writer.commit(10, _digest(b"old sender"))  # a CRC is not a SHA-256
    writer = spool.begin(KEY, 1 << 20, checksum="sha256")
    assert writer is not None
    writer.write(b"old sender")
    writer.commit(10, hashlib.sha256(b"old sender").digest())
    entry = Spool(tmp_path).lookup(KEY)
    assert entry is not None and entry.checksum == "sha256"
    assert entry.digest == hashlib.sha256(b"old sender").digest()


def test_entries_store_the_frames_a_pull_sends(tmp_path: Path) -> None:
    from fate_airflow.federation.serde import parse_pull_frame

    spool = Spool(tmp_path)
    writer = spool.begin(KEY, 1 << 20)
    assert writer is not None
    for part in (b"abc", b"", b"d" * 300):
        writer.write(part)
    writer.commit(303, _digest(b"abc" + b"d" * 300))
    reader = spool.open_reader(KEY)
    assert reader is not None
    try:
        frames = list(reader.frames(lambda: False))
        assert [bytes(parse_pull_frame(f)) for f in frames] == [b"abc", b"d" * 300]  # type: ignore[arg-type]
        assert reader.final() == (303, _digest(b"abc" + b"d" * 300))
    finally:
        reader.close()


def test_entries_of_the_previous_version_are_served(tmp_path: Path) -> None:
    """Raw payload + SHA-256 footer (magic FASPOOL1), as gateways wrote them before the CRC change."""
    import hashlib
    import json
    import struct

    from fate_airflow.federation.serde import parse_pull_frame

    spool = Spool(tmp_path)
    data = bytes(range(256)) * 5000  # > one legacy read
    msg, _ = spool._paths(KEY)
    msg.parent.mkdir(parents=True)
    footer = json.dumps(
        {
            "key": KEY.to_dict(),
            "message_id": KEY.message_id,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "received_at": time.time(),
        }
    ).encode()
    msg.write_bytes(data + footer + struct.pack("<Q8s", len(footer), b"FASPOOL1"))
    entry = spool.lookup(KEY)
    assert entry is not None and entry.checksum == "sha256" and not entry.framed
    assert b"".join(entry.iter_chunks(1000)) == data
    reader = spool.open_reader(KEY)
    assert reader is not None
    try:
        chunks = [bytes(parse_pull_frame(f)) for f in reader.frames(lambda: False)]  # type: ignore[arg-type]
        assert b"".join(chunks) == data
        assert reader.final() == (len(data), hashlib.sha256(data).digest())
    finally:
        reader.close()


def test_damaged_entry_is_a_clear_error(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    _write(spool, KEY, b"x" * 100)
    msg, _ = spool._paths(KEY)
    raw = bytearray(msg.read_bytes())
    raw[0] = 0x7F  # the first frame's tag
    msg.write_bytes(bytes(raw))
    reader = spool.open_reader(KEY)
    assert reader is not None
    with pytest.raises(ProtocolError, match="damaged"):
        list(reader.frames(lambda: False))
    reader.close()
    msg.write_bytes(b"not an entry at all")
    with pytest.raises(ProtocolError, match="no valid footer"):
        spool.open_reader(KEY)


def test_declared_size_is_enforced(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    writer = spool.begin(KEY, 1 << 20, size_hint=4)
    assert writer is not None
    writer.write(b"abc")
    with pytest.raises(ProtocolError, match="larger than the 4 bytes its sender declared"):
        writer.write(b"de")
    writer = spool.begin(KEY, 1 << 20, size_hint=4)
    assert writer is not None
    writer.write(b"abc")
    with pytest.raises(ProtocolError, match=r"declared 3 \(header: 4\)"):
        writer.commit(3, _digest(b"abc"))
    assert spool.lookup(KEY) is None
    assert not list((tmp_path / "tmp").iterdir())


# ------------------------------------------------------------------------- reading while spooling


def _collect(reader_frames: list[bytes], reader: SpoolReader, done: threading.Event) -> None:
    try:
        for frame in reader.frames(lambda: False):
            reader_frames.append(frame)
    finally:
        done.set()


def test_live_reader_streams_while_spooling_and_ends_only_once_published(tmp_path: Path) -> None:
    from fate_airflow.federation.serde import parse_pull_frame

    spool = Spool(tmp_path)
    parts = [bytes([i]) * 1000 for i in range(5)]
    data = b"".join(parts)
    writer = spool.begin(KEY, 1 << 20, size_hint=len(data))
    assert writer is not None
    reader = spool.open_reader(KEY)
    assert reader is not None and reader.size == len(data) and reader.digest == b""
    frames: list[bytes] = []
    done = threading.Event()
    thread = threading.Thread(target=_collect, args=(frames, reader, done))
    thread.start()
    for part in parts:
        writer.write(part)
    deadline = time.monotonic() + 30
    while len(frames) < len(parts) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(frames) == len(parts)  # every byte was readable before the commit...
    assert not done.wait(0.2)  # ...but the reader does not end before the entry is published
    assert spool.lookup(KEY) is None
    writer.commit(len(data), _digest(data))
    assert done.wait(30)
    thread.join()
    assert b"".join(bytes(parse_pull_frame(f)) for f in frames) == data  # type: ignore[arg-type]
    assert reader.final() == (len(data), _digest(data))
    reader.close()


def test_live_reader_of_a_failed_transfer_raises_busy(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    writer = spool.begin(KEY, 1 << 20, size_hint=10)
    assert writer is not None
    writer.write(b"12345")
    reader = spool.open_reader(KEY)
    assert reader is not None
    frames = reader.frames(lambda: False)
    assert next(frames)
    writer.write(b"67890")
    with pytest.raises(ProtocolError, match="corrupt"):
        writer.commit(10, b"\0\0\0\0")
    with pytest.raises(Busy, match="failed while it was being received"):
        next(frames)
    reader.close()
    assert spool.lookup(KEY) is None and spool.open_reader(KEY) is None
    assert not list((tmp_path / "tmp").iterdir())


def test_waiting_reader_attaches_as_soon_as_the_message_starts(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    writers = []

    def start() -> None:
        writer = spool.begin(KEY, 1 << 20, size_hint=3)
        assert writer is not None
        writers.append(writer)

    threading.Timer(0.2, start).start()
    reader = spool.wait_reader(KEY, 30.0)
    assert reader is not None and reader.size == 3 and writers
    assert spool.lookup(KEY) is None  # still being written: read live
    writers[0].abort()
    reader.close()


def test_message_of_unknown_size_is_read_only_once_published(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    writer = spool.begin(KEY, 1 << 20)  # size_hint 0: nothing to check the stream against early
    assert writer is not None
    writer.write(b"abc")
    assert spool.open_reader(KEY) is None
    assert spool.wait_reader(KEY, 0.1) is None
    threading.Timer(0.2, writer.commit, (3, _digest(b"abc"))).start()
    reader = spool.wait_reader(KEY, 30.0)
    assert reader is not None and reader.digest == _digest(b"abc")
    reader.close()


def test_cancelled_live_reader_stops(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    writer = spool.begin(KEY, 1 << 20, size_hint=10)
    assert writer is not None
    reader = spool.open_reader(KEY)
    assert reader is not None
    assert list(reader.frames(lambda: True)) == []
    reader.close()
    writer.abort()


# ------------------------------------------------------------------------- crash and fsync


_CRASHING_WRITER = """
import os, sys
from fate_airflow.core.types import Party
from fate_airflow.federation.spool import MessageKey, Spool
key = MessageKey("job_t_0", "grad", "fit.0", Party("guest", "9999"), Party("host", "10000"))
writer = Spool(sys.argv[1]).begin(key, 1 << 30, size_hint=8 << 20)
writer.write(b"x" * (4 << 20))
print("half", flush=True)
sys.stdin.read()
"""


def test_kill9_mid_spool_leaves_no_visible_entry(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_WRITER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"half\n"
        assert list((tmp_path / "tmp").iterdir())
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    assert not list((tmp_path / "messages").rglob("*.msg"))
    spool = Spool(tmp_path)  # the restarted gateway
    assert spool.lookup(KEY) is None and spool.open_reader(KEY) is None and spool.entries() == []
    assert not list((tmp_path / "tmp").iterdir())
    _write(spool, KEY, b"re-sent")  # the sender's retry is accepted
    assert spool.lookup(KEY) is not None


@pytest.mark.parametrize("fsync", [True, False])
def test_fsync_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool) -> None:
    calls: list[str] = []
    real_fsync, real_fdatasync = os.fsync, os.fdatasync

    def counting_fsync(fd: int) -> None:
        calls.append("fsync")
        real_fsync(fd)

    def counting_fdatasync(fd: int) -> None:
        calls.append("fdatasync")
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    monkeypatch.setattr(os, "fdatasync", counting_fdatasync)
    spool = Spool(tmp_path, fsync=fsync)
    _write(spool, KEY, b"payload")
    if fsync:
        # The data, the new session folder's parent and the folder holding the renamed entry.
        assert calls == ["fdatasync", "fsync", "fsync"]
    else:
        assert calls == []
    # Either way the entry is complete for a new process (the page cache outlives the writer).
    entry = Spool(tmp_path).lookup(KEY)
    assert entry is not None and b"".join(entry.iter_chunks(4)) == b"payload"


# ------------------------------------------------------------------------- quotas


def _begin(spool: Spool, key: MessageKey, data: bytes, *, declare: bool = True) -> None:
    writer = spool.begin(key, 1 << 20, len(data) if declare else 0)
    assert writer is not None
    writer.write(data)
    writer.commit(len(data), _digest(data))


def _key(tag: str, src: str = "9999", session: str = "job_t_0") -> MessageKey:
    return MessageKey(session, "grad", tag, Party("guest" if src == "9999" else "arbiter", src), KEY.dst)


def test_per_peer_quota_refuses_before_writing_and_names_party_quota_and_usage(tmp_path: Path) -> None:
    spool = Spool(tmp_path, quota_bytes=1000, per_peer_quota_bytes=600, owner="the gateway of party 10000")
    _begin(spool, _key("0"), b"x" * 400)
    assert spool.usage("9999") == 400 and spool.usage() == 400
    with pytest.raises(QuotaExceeded) as refused:
        spool.begin(_key("1"), 1 << 20, 300)
    message = str(refused.value)
    for part in ("the gateway of party 10000", "party 9999", "400 of its 600", "per_peer_quota_bytes", "300"):
        assert part in message
    # Nothing of the refused message exists, and it holds nothing.
    assert not list((tmp_path / "tmp").iterdir()) and spool.lookup(_key("1")) is None
    assert spool.usage("9999") == 400
    # Another party still has room of its own, up to the total.
    _begin(spool, _key("2", src="10001"), b"y" * 500)
    with pytest.raises(QuotaExceeded, match=r"900 of its 1000 bytes \(spool.quota_bytes"):
        spool.begin(_key("3", src="10002"), 1 << 20, 101)
    assert spool.usage() == 900


def test_message_of_unknown_size_is_refused_when_it_crosses_the_quota(tmp_path: Path) -> None:
    spool = Spool(tmp_path, quota_bytes=1000, per_peer_quota_bytes=1000)
    writer = spool.begin(KEY, 1 << 20)  # no declared size: counted as it arrives
    assert writer is not None
    writer.write(b"a" * 600)
    assert spool.usage("9999") == 600
    with pytest.raises(QuotaExceeded, match="per_peer_quota_bytes"):
        writer.write(b"b" * 500)
    assert not list((tmp_path / "tmp").iterdir()) and spool.lookup(KEY) is None
    assert spool.usage() == 0
    _begin(spool, KEY, b"c" * 1000, declare=False)  # exactly the quota fits
    assert spool.usage() == 1000


def test_space_comes_back_on_ack_abort_cleanup_gc_and_is_counted_after_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path, quota_bytes=100, per_peer_quota_bytes=100)
    _begin(spool, _key("0"), b"a" * 60)
    assert spool.ack(_key("0")) and spool.usage() == 0
    writer = spool.begin(_key("1"), 1 << 20, 70)
    assert writer is not None and spool.usage() == 70  # an arriving message holds its declared size
    writer.write(b"b" * 10)
    writer.abort()
    assert spool.usage() == 0
    _begin(spool, _key("2"), b"c" * 40)
    _begin(spool, _key("3", session="job_t_1"), b"d" * 50)
    # A restarted gateway counts what its spool still holds.
    again = Spool(tmp_path, quota_bytes=100, per_peer_quota_bytes=100)
    assert again.usage("9999") == 90
    with pytest.raises(QuotaExceeded):
        again.begin(_key("4"), 1 << 20, 11)
    assert again.cleanup_session("job_t_0", "10000") == 1 and again.usage() == 50
    old = time.time() - 7200
    for path in (tmp_path / "messages").rglob("*"):
        os.utime(path, (old, old))
    assert again.gc(max_age=3600) == 1 and again.usage() == 0
    _begin(again, _key("5"), b"e" * 100)
    assert again.usage() == 100


def test_resend_of_an_accepted_message_is_not_counted_twice(tmp_path: Path) -> None:
    spool = Spool(tmp_path, quota_bytes=100, per_peer_quota_bytes=100)
    _begin(spool, KEY, b"a" * 80)
    assert spool.begin(KEY, 1 << 20, 80) is None  # the re-send is dropped, not refused
    assert spool.usage() == 80


def test_live_reader_gets_recent_frames_from_memory_and_older_ones_from_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fate_airflow.federation import spool as spool_module
    from fate_airflow.federation.chunks import chunk_frame

    monkeypatch.setattr(spool_module, "_RECENT_BYTES", 3100)  # three frames of 1003 bytes
    spool = Spool(tmp_path)
    parts = [bytes([i]) * 1000 for i in range(6)]
    frames = [chunk_frame(p) for p in parts]
    data = b"".join(parts)
    writer = spool.begin(KEY, 1 << 20, size_hint=len(data))
    assert writer is not None
    for part, frame in zip(parts, frames, strict=True):
        writer.write(memoryview(frame)[len(frame) - len(part) :], frame)
    reader = spool.open_reader(KEY)
    assert reader is not None
    got = reader.frames(lambda: False)
    # A reader that fell behind reads the older frames back from the file...
    early = [next(got) for _ in range(3)]
    assert early == frames[:3] and all(a is not b for a, b in zip(early, frames, strict=False))
    # ...and takes the frames still kept in memory as they are, without a copy.
    later = [next(got) for _ in range(3)]
    assert later == frames[3:] and all(a is b for a, b in zip(later, frames[3:], strict=True))
    writer.commit(len(data), _digest(data))
    assert list(got) == []
    assert reader.final() == (len(data), _digest(data))
    reader.close()
