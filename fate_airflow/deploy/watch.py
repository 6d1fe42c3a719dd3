"""Make a job file dropped into a party's drop folder show up in Airflow within about a second.

The DAG factory (``dags/fate_jobs.py``) reads the drop folder, not the dags folder, so Airflow's own
file scan never notices a new job file: the loader is re-parsed only every
``min_file_process_interval``. The party service watches the folder and asks the dag-processor for
an immediate re-parse whenever the folder's listing changes.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

Signature = tuple[tuple[str, int, int], ...]


def folder_signature(folder: Path) -> Signature:
    """(name, size, mtime in ns) of every visible file directly in ``folder``; empty if unreadable."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return ()
    out: list[tuple[str, int, int]] = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if not entry.is_file(follow_symlinks=True):
                continue
            st = entry.stat(follow_symlinks=True)
        except OSError:  # removed between listing and stat
            continue
        out.append((entry.name, st.st_size, st.st_mtime_ns))
    return tuple(sorted(out))


class DropFolderWatcher:
    """Call ``on_change`` (e.g. a re-parse request) whenever the drop folder's listing changes.

    :param folder: the party's drop folder.
    :param on_change: called from the watcher's thread; its exceptions are logged, not raised.
    :param interval: seconds between two looks at the folder (one ``scandir``).
    """

    def __init__(self, folder: Path, on_change: Callable[[], None], interval: float = 1.0) -> None:
        self.folder = folder
        self._on_change = on_change
        self._interval = interval
        self._last = folder_signature(folder)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> bool:
        """Look once; returns whether the folder changed (and ``on_change`` was called)."""
        current = folder_signature(self.folder)
        if current == self._last:
            return False
        self._last = current
        try:
            self._on_change()
        except Exception:  # a missed re-parse only delays the DAG until the periodic parse
            log.exception("drop folder %s changed but the re-parse request failed", self.folder)
        return True

    def start(self) -> None:
        """Watch in a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, name="fate-drop-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.poll_once()

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


__all__ = ["DropFolderWatcher", "folder_signature"]
