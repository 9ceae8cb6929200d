"""The `file` table's secondary indexes, built once at the end of an index's first scan.

Each new row of a cold scan adds an entry to every index on `file`, and those of
`file_content_hash` (random keys) and `file_inode` land on random pages: at 1M files the
content_hash index alone (~27 MB) outgrows SQLite's page cache (16 MB). Inserting a cold
scan's rows at 1M (`bench/floor.py`, SQLite, builds included): 11.5 s with every index, 4.9 s
with the content_hash index built afterwards, 4.4 s with all three (each build one sort,
1.3 s for the three). The inserts are on the scan's critical path, the builds run once.
PostgreSQL, the same rows by COPY: 10.7-12.0 s with only the content_hash index left out,
9.8-10.3 s with all three. (`PRAGMA threads = 2` for SQLite's builds made them slower on two
busy cores, 1.39 -> 1.67 s, and the scan's peak RSS 79 -> 101 MiB: not used.)

So the first scan of an empty index (not one `file` row) drops `DEFERRED` and builds them
once its rows are in (`deferred`); a first `assetd scan` of several libraries, once after them
all, and so does the daemon's first start with several libraries: its writer drops them at
the first startup scan and builds them before its first other job (service/writer.py). Such a
scan needs none of them: its libraries have no row a new file could have moved from, so it
looks nothing up by inode or hash (scanner.py), and it settles its parts by id range
(`reconcile.settle_created`; tests/store/test_query_plans.py holds both). Only
(library_id, rel_path), which a scan reads and which keeps a path unique, stays.

A scan that does not get to its end (killed, the power lost) leaves them missing: the next
`scan` or `run` builds them as it opens the database (`ensure`). Until then a look-up they
serve (`dupes`, `files --hash`, a move's source, the files waiting for an enricher) reads the
table instead: slower, never wrong. Another process that opens the database for a scan while
the first one runs builds them at once, and the first scan goes on with them.

Each is built from the `File` model's own definition, as migration 0 creates it, so a
database whose first scan dropped and rebuilt them has the very indexes a new one has.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from daemon import logs
from daemon.store.models import File

if TYPE_CHECKING:
    from daemon.store.db import Store

# peewee's names for the indexes of `File.Meta.indexes` and `File.content_hash` (models.py);
# not (library_id, rel_path): a scan reads it, and it keeps a library's paths unique.
DEFERRED = ("file_content_hash", "file_inode", "file_state_checksum_label")
_LOCK = "assetd.deferred_indexes"


def missing(store: Store) -> list[str]:
    """The `DEFERRED` indexes the database does not have, in `DEFERRED`'s order."""
    if store.is_sqlite:
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'file'"
    else:
        sql = ("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
               " AND tablename = 'file'")
    present = {name for (name,) in store.query(sql)}
    return [name for name in DEFERRED if name not in present]


def ensure(store: Store) -> None:
    """Build the indexes that are missing (a first scan that did not end). Asked first: on
    PostgreSQL even a CREATE INDEX IF NOT EXISTS waits for every writer of the table. Then
    asked again under a lock: two PostgreSQL sessions that both run that CREATE INDEX at
    once can fail one of them on the catalog's unique name, IF NOT EXISTS or not."""
    if not missing(store):
        return
    started = time.monotonic()
    with store.write_tx():
        store.lock(_LOCK)
        statements = _create_statements(store)
        built = missing(store)
        for name in built:
            store.execute(statements[name])
    if built and logs.enabled("debug"):  # a one-shot scan imports no structlog for it
        logs.get_logger().debug("indexes.built", indexes=built,
                                duration_s=round(time.monotonic() - started, 3))


def _create_statements(store: Store) -> dict[str, str]:
    """Each `file` index's CREATE INDEX, by name, from the model as migration 0 makes it."""
    return {index._name: store.db.get_sql_context().sql(index.safe(True)).query()[0]
            for index in File._meta.fields_to_index()}


def drop_if_empty(store: Store) -> bool:
    """Drop them if `file` has no row and they are all there (whether it did): the caller
    then owes the database an `ensure` once its first rows are in."""
    with store.write_tx():
        store.lock(_LOCK)
        dropped = not missing(store) and not store.query("SELECT 1 FROM file LIMIT 1")
        if dropped:
            for name in DEFERRED:
                store.execute(f"DROP INDEX {name}")
    if dropped and logs.enabled("debug"):
        logs.get_logger().debug("indexes.deferred", indexes=list(DEFERRED))
    return dropped


@contextlib.contextmanager
def deferred(store: Store) -> Iterator[bool]:
    """Around a scan: without the indexes while `file` had no row when it started (yields
    whether it dropped them), then with them again, whether the scan ends or fails. Where
    one is out already (an outer `deferred`: a first `scan` of several libraries, or another
    process's first scan), they are left to whoever dropped it."""
    dropped = drop_if_empty(store)
    if not dropped:
        yield False
        return
    try:
        yield True
    except BaseException:
        # The scan's own error is what matters; a database that fails here too (unreachable)
        # leaves the indexes to the next open.
        with contextlib.suppress(Exception):
            ensure(store)
        raise
    ensure(store)
