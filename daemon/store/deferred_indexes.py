"""The `file_content_hash` index, built once at the end of an index's first scan.

Content hashes are random keys: each new row's entry lands on a random leaf of that index.
At 1M files the index (~27 MB) outgrows SQLite's page cache (16 MB), and its inserts were
6.6 s of the 10.6 s that inserting a cold scan's rows takes (`bench/floor.py`, "sqlite insert"
with and without it), where building it afterwards, from one sort, takes under a second. So
the first scan of an empty index (not one `file` row) drops it and builds it once its rows are
in (`deferred`); a first `assetd scan` of several libraries, once after them all. Such a scan
looks nothing up by hash: its libraries have no row a new file could have moved from
(scanner.py).

A scan that does not get to its end (killed, the power lost) leaves the index missing: the
next `scan` or `run` builds it as it opens the database (`ensure`). Until then a look-up by
hash (`dupes`, `files --hash`, a move's source) reads the table instead: slower, never wrong.
Another process that opens the database for a scan while the first one runs builds it at
once, and the first scan goes on with it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from daemon.store.db import Store

NAME = "file_content_hash"  # peewee's name for `File.content_hash`'s index (models.py)
_CREATE = f"CREATE INDEX IF NOT EXISTS {NAME} ON file (content_hash)"


def exists(store: Store) -> bool:
    if store.is_sqlite:
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?"
    else:
        sql = "SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND indexname = ?"
    return bool(store.query(sql, [NAME]))


def ensure(store: Store) -> None:
    """Build the index if it is missing (a first scan that did not end). Asked first: on
    PostgreSQL even a CREATE INDEX IF NOT EXISTS waits for every writer of the table. Then
    asked again under a lock: two PostgreSQL sessions that both run that CREATE INDEX at
    once can fail one of them on the catalog's unique name, IF NOT EXISTS or not."""
    if exists(store):
        return
    with store.write_tx():
        store.lock(NAME)
        if not exists(store):
            store.execute(_CREATE)


@contextlib.contextmanager
def deferred(store: Store) -> Iterator[bool]:
    """Around a scan: without the index while `file` had no row when it started (yields
    whether it dropped it), then with it again, whether the scan ends or fails. Where the
    index is out already (an outer `deferred`: a first `scan` of several libraries, or
    another process's first scan), it is left to whoever dropped it."""
    with store.write_tx():
        store.lock(NAME)
        dropped = exists(store) and not store.query("SELECT 1 FROM file LIMIT 1")
        if dropped:
            store.execute(f"DROP INDEX {NAME}")
    if not dropped:
        yield False
        return
    try:
        yield True
    except BaseException:
        # The scan's own error is what matters; a database that fails here too (unreachable)
        # leaves the index to the next open.
        with contextlib.suppress(Exception):
            ensure(store)
        raise
    ensure(store)
