"""Spool: atomic publication, verification, tombstones, recovery and retention."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from fate_airflow.core.types import Party
from fate_airflow.federation.errors import Busy, MessageTooLarge, ProtocolError
from fate_airflow.federation.spool import MessageKey, Spool

KEY = MessageKey("job_t_0", "grad", "fit.0", Party("guest", "9999"), Party("host", "10000"))


def _write(spool: Spool, key: MessageKey, data: bytes) -> None:
    writer = spool.begin(key, 1 << 20)
    assert writer is not None
    writer.write(data)
    writer.commit(len(data), hashlib.sha256(data).digest())


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
    entry = writer.commit(len(data), hashlib.sha256(data).digest())
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
