"""Get while spooling: a waiting receiver reads a message while it arrives, and never too early.

Drives :class:`GatewayCore` directly (no sockets), with a push stream the test releases frame by
frame, so the ordering guarantees are checked deterministically.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fate_airflow.core.types import Party
from fate_airflow.federation import payload
from fate_airflow.federation.chunks import Checksum
from fate_airflow.federation.config import GatewayConfig, Route
from fate_airflow.federation.errors import Busy, PayloadError, ProtocolError
from fate_airflow.federation.grpc.auth import Caller
from fate_airflow.federation.grpc.client import _read_message
from fate_airflow.federation.grpc.handlers import GatewayCore, PushResult
from fate_airflow.federation.grpc.peers import Peers
from fate_airflow.federation.serde import (
    TrailerInfo,
    chunk_frame,
    parse_pull_frame,
    pull_header_frame,
    pull_trailer_frame,
    push_header_frame,
    push_trailer_frame,
)
from fate_airflow.federation.spool import MessageKey, Spool

KEY = MessageKey("job_t_0", "w", "0", Party("guest", "9999"), Party("host", "10000"))
SENDER = Caller("9999", "gateway", "test-peer")
RECEIVER = Caller("10000", "client", "test-client")
_END = object()


@pytest.fixture
def core(tmp_path: Path) -> Iterator[GatewayCore]:
    config = GatewayConfig(
        party_ids=("10000",),
        listen="127.0.0.1:0",
        data_dir=tmp_path,
        insecure=True,
        routes={"9999": Route("127.0.0.1:1", "9999")},
    )
    peers = Peers(config, None)
    yield GatewayCore(config, Spool(config.spool_dir), peers, None)
    peers.close()


class Push:
    """A push running in a thread, fed frame by frame by the test."""

    def __init__(self, core: GatewayCore) -> None:
        self._frames: queue.Queue[Any] = queue.Queue()
        self.result: PushResult | bytes | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(core,))
        self._thread.start()

    def _iter(self) -> Iterator[bytes]:
        while (frame := self._frames.get()) is not _END:
            yield frame

    def _run(self, core: GatewayCore) -> None:
        try:
            self.result = core.push(SENDER, None, 0, self._iter(), 30.0)
        except BaseException as exc:
            self.error = exc

    def send(self, *frames: bytes) -> None:
        for frame in frames:
            self._frames.put(frame)

    def finish(self) -> None:
        self._frames.put(_END)
        self._thread.join(30)

    def alive(self) -> bool:
        return self._thread.is_alive()


class Pull:
    """A pull running in a thread, recording the frames it got so far."""

    def __init__(self, core: GatewayCore, wait: float = 30.0) -> None:
        self.frames: list[bytes] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(core, wait))
        self._thread.start()

    def _run(self, core: GatewayCore, wait: float) -> None:
        try:
            for frame in core.pull(RECEIVER, KEY, wait, lambda: False):
                self.frames.append(frame)
        except BaseException as exc:
            self.error = exc

    def wait_frames(self, count: int) -> None:
        deadline = time.monotonic() + 30
        while len(self.frames) < count and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.01)
        assert len(self.frames) >= count, f"got {len(self.frames)} frames, wanted {count}"

    def join(self) -> None:
        self._thread.join(30)
        assert not self._thread.is_alive()

    def done(self) -> bool:
        return not self._thread.is_alive()


def _encoded(value: Any) -> tuple[list[bytes], bytes, int]:
    chunks = [bytes(c) for c in payload.iter_encode(value, 64 << 10)]
    checksum = Checksum()
    for chunk in chunks:
        checksum.update(chunk)
    return chunks, checksum.digest(), sum(len(c) for c in chunks)


def test_waiting_receiver_streams_the_message_before_it_is_complete(core: GatewayCore) -> None:
    value = np.arange(100_000, dtype=np.float64)  # 800 kB: 13 chunks of 64 KiB
    chunks, digest, size = _encoded(value)
    pull = Pull(core)
    push = Push(core)
    push.send(push_header_frame(KEY, size), *(chunk_frame(c) for c in chunks))
    pull.wait_frames(1 + len(chunks))  # header and every chunk, while the push is still open
    assert push.alive() and core.spool.lookup(KEY) is None
    time.sleep(0.2)
    assert not pull.done() and len(pull.frames) == 1 + len(chunks)  # but no trailer yet
    push.send(push_trailer_frame(size, digest))
    push.finish()
    assert push.error is None and isinstance(push.result, PushResult)
    pull.join()
    assert pull.error is None
    assert parse_pull_frame(pull.frames[-1]) == TrailerInfo(size, digest)
    obj, message_id = _read_message(iter(pull.frames))
    np.testing.assert_array_equal(obj, value)
    assert message_id == KEY.message_id
    assert core.spool.lookup(KEY) is not None  # the receiver acknowledges separately


def test_streamed_message_that_fails_ends_the_pull_with_busy(core: GatewayCore) -> None:
    chunks, _, size = _encoded(np.ones(50_000))
    pull = Pull(core)
    push = Push(core)
    push.send(push_header_frame(KEY, size), *(chunk_frame(c) for c in chunks[:3]))
    pull.wait_frames(4)
    push.send(push_trailer_frame(size, b"\0\0\0\0"))  # too short and a wrong checksum
    push.finish()
    assert isinstance(push.error, ProtocolError)
    pull.join()
    assert isinstance(pull.error, Busy) and "retry" in str(pull.error)
    assert not any(isinstance(parse_pull_frame(f), TrailerInfo) for f in pull.frames)
    assert core.spool.lookup(KEY) is None
    # The sender's retry goes through and a new pull receives it whole.
    chunks, digest, size = _encoded(np.ones(50_000))
    push = Push(core)
    push.send(
        push_header_frame(KEY, size), *(chunk_frame(c) for c in chunks), push_trailer_frame(size, digest)
    )
    push.finish()
    assert push.error is None
    frames = list(core.pull(RECEIVER, KEY, 1.0, lambda: False))
    np.testing.assert_array_equal(_read_message(iter(frames))[0], np.ones(50_000))


def test_message_without_declared_size_is_streamed_only_once_complete(core: GatewayCore) -> None:
    chunks, digest, size = _encoded("x" * 200_000)
    pull = Pull(core)
    push = Push(core)
    push.send(push_header_frame(KEY, 0), *(chunk_frame(c) for c in chunks))
    time.sleep(0.3)
    assert pull.frames == []
    push.send(push_trailer_frame(size, digest))
    push.finish()
    pull.join()
    assert _read_message(iter(pull.frames))[0] == "x" * 200_000


def test_receiver_checks_size_and_checksum() -> None:
    chunks, digest, size = _encoded([1, 2, 3])
    body = [chunk_frame(c) for c in chunks]
    good = [pull_header_frame("id", size, b""), *body]
    assert _read_message(iter([*good, pull_trailer_frame(size, digest)]))[0] == [1, 2, 3]
    with pytest.raises(PayloadError, match="crc32 check"):
        _read_message(iter([*good, pull_trailer_frame(size, b"\0\0\0\0")]))
    with pytest.raises(ProtocolError, match="ended before its trailer"):
        _read_message(iter(good))
    with pytest.raises(ProtocolError, match="frames after the pull trailer"):
        _read_message(iter([*good, pull_trailer_frame(size, digest), body[0]]))
    # An older gateway: digest in the header, no trailer.
    assert _read_message(iter([pull_header_frame("id", size, digest), *body]))[0] == [1, 2, 3]
