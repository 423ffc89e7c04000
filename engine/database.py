"""Database connection settings of Kefu's own engine (SQLite: WAL, foreign keys, locking).

They are installed on Kefu's engine only (``configure``): other databases the process talks to,
such as billing's interim tables, keep their own settings.

On SQLite, writers take the write lock at BEGIN (``BEGIN IMMEDIATE``): a transaction that read
first and wrote later could otherwise fail at once with "database is locked" in WAL mode, instead
of waiting its turn under the busy timeout.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

BUSY_TIMEOUT_MS = 30_000


def configure(engine: Engine) -> None:
    """Install Kefu's connection settings on ``engine`` (once)."""
    if not event.contains(engine, "connect", _on_connect):
        event.listen(engine, "connect", _on_connect)
        event.listen(engine, "begin", _on_begin)


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (see _on_begin)
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


# Execution option of a connection that only reads (e.g. a long report): on SQLite it begins a
# deferred transaction, so that it holds no write lock while it reads (WAL readers never block).
READ_ONLY = "kefu_read_only"


def _on_begin(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN" if connection.get_execution_options().get(READ_ONLY)
                                   else "BEGIN IMMEDIATE")


def engine_options(url: str) -> dict[str, Any]:
    """``create_engine`` keyword arguments suited to ``url``."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}}
    return {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 10}
