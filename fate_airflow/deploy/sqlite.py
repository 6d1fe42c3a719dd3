"""Connection arguments for a party's SQLite metadata database.

Airflow's ``[database] sql_alchemy_connect_args`` names an importable dict; these are those dicts.
Python's sqlite3 waits only 5 s for a write lock. Four Airflow processes share one SQLite file, and on
a loaded 2-core machine one of them (the dag-processor bulk-writing DAGs, the scheduler) can hold the
lock longer; the losing request then fails with ``database is locked`` (the api-server answers 500
"Database error", the scheduler loop crashes). Waiting longer is the SQLite way of taking turns.
"""

from __future__ import annotations

from typing import Any

#: Seconds a connection waits for another connection's write lock before giving up.
BUSY_TIMEOUT_SECONDS = 60.0

#: ``[database] sql_alchemy_connect_args`` and ``..._async`` (aiosqlite passes keywords on to
#: sqlite3.connect, so one dict serves both).
CONNECT_ARGS: dict[str, Any] = {"timeout": BUSY_TIMEOUT_SECONDS}

__all__ = ["BUSY_TIMEOUT_SECONDS", "CONNECT_ARGS"]
