from __future__ import annotations

import functools
import operator
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import billiard  # type: ignore[import-untyped]
import pytest

from fate_airflow.storage.computing import (
    ComputingAborted,
    ProcessPoolComputing,
    SerialComputing,
    choose_computing,
    default_computing,
    split_even,
)


def _square_all(part: Sequence[int]) -> list[int]:
    return [x * x for x in part]


def _pids(part: Sequence[int], pause: float) -> list[int]:
    time.sleep(pause)
    return [os.getpid() for _ in part]


def _slow(part: Sequence[int]) -> list[int]:
    time.sleep(0.5)
    return list(part)


def _add(x: int, y: int) -> int:
    return x + y


def test_split_even() -> None:
    assert split_even(list(range(10)), 3) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert split_even([1, 2], 8) == [[1], [2]]
    assert split_even([], 4) == []


@pytest.mark.parametrize("engine", [SerialComputing(), default_computing()], ids=["serial", "pool"])
def test_engines_agree(engine: SerialComputing | ProcessPoolComputing) -> None:
    items = list(range(1000))
    assert engine.map(_square_all, items) == [x * x for x in items]
    table = engine.parallelize(items, partitions=7)
    assert len(table.partitions) == 7 and table.count() == 1000
    assert table.map_partitions(_square_all).collect() == [x * x for x in items]
    assert table.map_values(functools.partial(operator.mul, 3)).collect() == [3 * x for x in items]
    assert table.reduce(_add, sum) == sum(items)


def test_pool_uses_every_core() -> None:
    pool = default_computing()
    assert pool.cores == (os.cpu_count() or 1)
    pids = set(
        pool.map(functools.partial(_pids, pause=0.2), list(range(pool.cores * 2)), partitions=pool.cores * 2)
    )
    assert len(pids) == pool.cores
    assert os.getpid() not in pids


def test_abort_cancels_pending_work() -> None:
    abort = threading.Event()
    threading.Timer(0.2, abort.set).start()
    started = time.monotonic()
    with pytest.raises(ComputingAborted):
        default_computing().map(_slow, list(range(40)), abort, partitions=40)
    assert time.monotonic() - started < 3.0
    with pytest.raises(ComputingAborted):
        SerialComputing().map(_slow, [1], abort)


def test_choose_computing() -> None:
    assert isinstance(choose_computing(10, 1000), SerialComputing)
    if (os.cpu_count() or 1) > 1:
        assert isinstance(choose_computing(5000, 1000), ProcessPoolComputing)


def _compute_in_daemon(out: Any) -> None:
    try:
        engine = ProcessPoolComputing(max_workers=2)
        try:
            out.put(
                sorted(x for part in engine.run_partitions(_square_all, [[1, 2], [3]], None) for x in part)
            )
        finally:
            engine.close()
    except BaseException as exc:  # reported to the test, not lost in the child
        out.put(f"{type(exc).__name__}: {exc}")


def test_the_pool_starts_inside_a_celery_prefork_worker_process() -> None:
    # Celery's prefork pool runs tasks in daemonic billiard processes (Airflow forks the task
    # process from one): multiprocessing refuses daemonic parents and billiard's authkey type.
    # spawn: a fork would inherit this process's forkserver handle, which is not its own.
    ctx = billiard.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_compute_in_daemon, args=(out,), daemon=True)
    proc.start()
    try:
        assert out.get(timeout=60) == [1, 4, 9]
    finally:
        proc.join(timeout=30)
    assert proc.exitcode == 0
