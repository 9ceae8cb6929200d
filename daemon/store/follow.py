"""Waiting for new changes (`assetd changes --follow`) without reading the table in a loop.

PostgreSQL: LISTEN on the channel every committing write NOTIFYs (changes.flush), on a
connection of its own: a wake-up comes from any host, at commit. SQLite has no
notifications; `PRAGMA data_version` changes when another connection commits, and costs no
table read, so polling it every `SQLITE_POLL_S` is a cheap wake-up. Either way the caller
re-reads from the last id it printed, so a missed or spurious wake-up loses nothing: it only
costs latency (bounded by the caller's timeout) or one empty query.
"""

from __future__ import annotations

import select
import time
from typing import TYPE_CHECKING

from daemon.store import pgdriver
from daemon.store.changes import NOTIFY_CHANNEL

if TYPE_CHECKING:
    from daemon.store.db import Store

SQLITE_POLL_S = 0.05


class ChangeWaiter:
    """`wait(timeout_s)` returns when changes may have been committed, or at the timeout.

    Create it before the first read: a commit between that read and the first wait is then
    still a wake-up.
    """

    def __init__(self, store: Store):
        self._store = store
        self._listener = None
        if store.is_sqlite:
            self._version = self._data_version()
        else:
            db = store.db
            psycopg2 = pgdriver.load()  # loaded by the store already; not at all on SQLite
            self._listener = psycopg2.connect(dbname=db.database, **db.connect_params)
            self._listener.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
            with self._listener.cursor() as cursor:
                cursor.execute(f"LISTEN {NOTIFY_CHANNEL}")

    def wait(self, timeout_s: float) -> None:
        if self._listener is not None:
            self._wait_notify(timeout_s)
        else:
            self._wait_sqlite(timeout_s)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def _wait_notify(self, timeout_s: float) -> None:
        listener = self._listener
        listener.poll()
        if not listener.notifies:
            select.select([listener], [], [], timeout_s)
            listener.poll()
        listener.notifies.clear()

    def _wait_sqlite(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            version = self._data_version()
            if version != self._version:
                self._version = version
                return
            time.sleep(SQLITE_POLL_S)

    def _data_version(self) -> int:
        return self._store.query("PRAGMA data_version")[0][0]
