"""The computing API: partitioned collections and map / mapPartitions / reduce over a worker pool.

Shaped after FATE's computing table (``mapPartitions``, ``reduce``, ``collect``, ``count``; peers.md
§D) so a distributed engine (Ray, Dask, Spark) can implement :class:`Computing` later. Two engines
ship:

* :class:`ProcessPoolComputing` — one process per core (``os.cpu_count()``). Paillier and curve
  arithmetic hold the GIL, so only processes give a component every core. Workers are started by a
  ``forkserver`` (forking a multi-threaded Airflow worker or test process is unsafe).
* :class:`SerialComputing` — in-process, for tiny inputs and tests.

Work is shipped to workers by pickling *top-level functions* (or :func:`functools.partial` of them)
and this party's own data, inside this party's own pool. Nothing received from a peer is ever
unpickled.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing
import os
import sys
import threading
import time
import types
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from functools import reduce as _functools_reduce
from typing import Any, Generic, TypeVar

from fate_airflow.core.errors import FateAirflowError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class ComputingAborted(FateAirflowError):
    """The abort event was set while work was running; pending work was cancelled."""


def split_even(items: Sequence[T], parts: int) -> list[list[T]]:
    """Cut ``items`` into at most ``parts`` contiguous, nearly equal, non-empty chunks (order kept)."""
    n = len(items)
    parts = max(1, min(parts, n))
    if n == 0:
        return []
    base, rem = divmod(n, parts)
    out: list[list[T]] = []
    start = 0
    for i in range(parts):
        size = base + (1 if i < rem else 0)
        out.append(list(items[start : start + size]))
        start += size
    return out


@dataclass(frozen=True)
class Partitioned(Generic[T]):
    """An immutable partitioned collection bound to the engine that made it."""

    partitions: tuple[tuple[T, ...], ...]
    engine: Computing

    def count(self) -> int:
        """Number of elements."""
        return sum(len(p) for p in self.partitions)

    def collect(self) -> list[T]:
        """All elements, partition order kept."""
        return [x for p in self.partitions for x in p]

    def map_partitions(
        self, fn: Callable[[Sequence[T]], Sequence[R]], abort: threading.Event | None = None
    ) -> Partitioned[R]:
        """Apply ``fn`` to each partition (in parallel); each call returns that partition's new elements."""
        results = self.engine.run_partitions(fn, [list(p) for p in self.partitions], abort)
        return Partitioned(tuple(tuple(r) for r in results), self.engine)

    def map_values(self, fn: Callable[[T], R], abort: threading.Event | None = None) -> Partitioned[R]:
        """Apply ``fn`` to every element (in parallel, one partition per task)."""
        return self.map_partitions(_ElementMapper(fn), abort)

    def reduce(self, fn: Callable[[R, R], R], partial: Callable[[Sequence[T]], R]) -> R:
        """Reduce each partition with ``partial`` (in parallel), then fold the partial results with ``fn``.

        :raises ValueError: the collection is empty.
        """
        parts = [list(p) for p in self.partitions if p]
        if not parts:
            raise ValueError("reduce of an empty collection")
        return _functools_reduce(fn, self.engine.run_partitions(partial, parts, None))


class _ElementMapper(Generic[T, R]):
    """Picklable ``lambda part: [fn(x) for x in part]``."""

    def __init__(self, fn: Callable[[T], R]) -> None:
        self.fn = fn

    def __call__(self, part: Sequence[T]) -> list[R]:
        return [self.fn(x) for x in part]


class Computing(ABC):
    """A computing engine: runs functions over partitions of this party's data."""

    #: How many partitions run at once (cores used).
    cores: int

    @abstractmethod
    def run_partitions(
        self, fn: Callable[[Sequence[T]], R], partitions: Sequence[Sequence[T]], abort: threading.Event | None
    ) -> list[R]:
        """``[fn(p) for p in partitions]``, possibly in parallel; results in partition order.

        :raises ComputingAborted: ``abort`` was set before all partitions finished.
        """

    def parallelize(self, items: Iterable[T], partitions: int | None = None) -> Partitioned[T]:
        """Cut ``items`` into ``partitions`` chunks (default: 4 per core, for load balance)."""
        data = list(items)
        parts = split_even(data, partitions or self.default_partitions(len(data)))
        return Partitioned(tuple(tuple(p) for p in parts), self)

    def default_partitions(self, n_items: int) -> int:
        """Partitions for ``n_items`` elements: several per core so uneven chunks still balance."""
        return max(1, min(n_items, 4 * self.cores))

    def map(
        self,
        fn: Callable[[Sequence[T]], Sequence[R]],
        items: Sequence[T],
        abort: threading.Event | None = None,
        partitions: int | None = None,
    ) -> list[R]:
        """Chunk ``items``, apply ``fn`` to each chunk in parallel and concatenate (order kept)."""
        if not items:
            return []
        chunks = split_even(items, partitions or self.default_partitions(len(items)))
        out: list[R] = []
        for res in self.run_partitions(fn, chunks, abort):
            out.extend(res)
        return out

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release workers; the default has none."""


class SerialComputing(Computing):
    """Everything in the calling thread (tiny inputs, tests, debugging)."""

    cores = 1

    def run_partitions(
        self, fn: Callable[[Sequence[T]], R], partitions: Sequence[Sequence[T]], abort: threading.Event | None
    ) -> list[R]:
        """Run the partitions one after the other, checking ``abort`` between them."""
        out: list[R] = []
        for part in partitions:
            if abort is not None and abort.is_set():
                raise ComputingAborted("aborted")
            out.append(fn(part))
        return out


@contextlib.contextmanager
def _no_main_module() -> Iterator[None]:
    """Hide ``__main__`` while the pool's processes start.

    ``forkserver``/``spawn`` children re-import the parent's main script (as ``__mp_main__``). Under
    Airflow that script is the ``airflow`` CLI, and importing Airflow in every worker would cost
    seconds and side effects; the workers only need the functions they are sent, which are
    importable by module name.
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


@contextlib.contextmanager
def _children_allowed() -> Iterator[None]:
    """Let a task process of a Celery worker start the pool's workers.

    A Celery worker runs tasks in a prefork pool whose processes are daemonic; Airflow's task
    supervisor forks the task process from one and the flag is inherited, so multiprocessing refuses
    to start workers ("daemonic processes are not allowed to have children"). The flag guards against
    orphaned grandchildren of a process that multiprocessing itself terminates; the task process is
    managed by Airflow instead, and the pool is shut down at exit (its workers also exit when their
    parent's pipes close).
    """
    config = multiprocessing.current_process()._config  # type: ignore[attr-defined]
    auth_string: Any = multiprocessing.process.AuthenticationString  # type: ignore[attr-defined]
    key = config.get("authkey")
    if key is not None and type(key) is not auth_string:
        # Under billiard (Celery's multiprocessing fork) the key is billiard's own type, which
        # multiprocessing refuses to send to the forkserver; same bytes, multiprocessing's type.
        config["authkey"] = auth_string(bytes(key))
    daemon = config.get("daemon")
    if daemon:
        config["daemon"] = False
    try:
        yield
    finally:
        if daemon:
            config["daemon"] = daemon


def _warm_up(seconds: float) -> None:
    """Keep a worker busy briefly so that concurrent submits each start a new worker."""
    time.sleep(seconds)


def _pool_context() -> multiprocessing.context.BaseContext:
    # forkserver: children fork from a clean single-threaded server, never from this (threaded)
    # process; spawn where forkserver is unavailable.
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(["gmpy2", "numpy", "nacl.bindings", "phe.paillier"])
    return ctx


class ProcessPoolComputing(Computing):
    """Partitions run in a pool of worker processes, one per core by default."""

    def __init__(self, max_workers: int | None = None) -> None:
        self.cores = max(1, max_workers or os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                with _no_main_module(), _children_allowed():
                    pool = ProcessPoolExecutor(max_workers=self.cores, mp_context=_pool_context())
                    # The executor starts workers lazily, one per submit that finds no idle worker;
                    # start them all now so the first real job is spread over every core.
                    wait([pool.submit(_warm_up, 0.2) for _ in range(self.cores)])
                self._pool = pool
                log.debug("started a computing pool of %d processes", self.cores)
            return self._pool

    def run_partitions(
        self, fn: Callable[[Sequence[T]], R], partitions: Sequence[Sequence[T]], abort: threading.Event | None
    ) -> list[R]:
        """Submit every partition; wait, checking ``abort`` every 0.1 s (pending work is cancelled)."""
        if not partitions:
            return []
        executor = self._executor()
        with _children_allowed():  # a submit may replace a worker that exited
            futures: list[Future[R]] = [executor.submit(fn, part) for part in partitions]
        pending = set(futures)
        try:
            while pending:
                if abort is not None and abort.is_set():
                    raise ComputingAborted("aborted")
                _, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise

    def close(self) -> None:
        """Stop the workers."""
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None


_DEFAULT: ProcessPoolComputing | None = None
_DEFAULT_LOCK = threading.Lock()


def default_computing() -> ProcessPoolComputing:
    """The process-wide pool engine (created on first use, shut down at exit)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = ProcessPoolComputing()
            atexit.register(_DEFAULT.close)
        return _DEFAULT


def choose_computing(work_items: int, min_parallel: int) -> Computing:
    """The pool when there is enough work to pay for shipping it, else a serial engine."""
    if work_items >= min_parallel and (os.cpu_count() or 1) > 1:
        return default_computing()
    return SerialComputing()


__all__ = [
    "Computing",
    "ComputingAborted",
    "Partitioned",
    "ProcessPoolComputing",
    "SerialComputing",
    "choose_computing",
    "default_computing",
    "split_even",
]
