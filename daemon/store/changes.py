"""The change feed: one row per change the index applies, ids that never repeat or go back.

Every write path names its changes with `Store.record_changes` inside its `write_tx`; they
are inserted when that transaction commits, in the same transaction, so a change is in the
feed exactly when it is in the index.

Ids must never go back *as a reader sees them*, or a consumer that stores the last id it saw
would skip one. A PostgreSQL sequence hands out ids in insert order, not commit order: if
transaction A takes id 101 and B takes 102 and commits first, a reader sees 102, stores it,
and never asks for 101. So the inserts of every transaction are serialized on one
transaction-scoped advisory lock, taken as the last statement before commit: ids are then
assigned, and made visible, in the same order. Taking it last (after the transaction's own
writes) means a transaction holding it waits on nothing else, so it cannot deadlock. SQLite's
BEGIN IMMEDIATE serializes writers already, and AUTOINCREMENT never reuses the id of a row
that retention dropped (a plain rowid table would, once the newest rows were dropped).

Retention drops the oldest rows; `dropped_through` remembers the highest id dropped, so a
reader whose `--since` is older than that is told (`reset`) instead of silently missing rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from daemon.units import iso_utc

if TYPE_CHECKING:
    from daemon.store.db import Store

TABLE = "change_log"
NOTIFY_CHANNEL = "assetd_changes"
LOCK_NAME = "assetd.changes"
DROPPED_THROUGH_KEY = "changes.dropped_through"
INSERT_PAGE_ROWS = 5000
DROP_MAX_IDS = 100_000

CREATED = "created"
UPDATED = "updated"
MOVED = "moved"
MISSING = "missing"
RESTORED = "restored"
PRUNED = "pruned"
TAGGED = "tagged"
UNTAGGED = "untagged"
INSIGHT = "insight"
CORRUPT = "corrupt"
LIBRARY_OFFLINE = "library_offline"
LIBRARY_ONLINE = "library_online"
KINDS = (CREATED, UPDATED, MOVED, MISSING, RESTORED, PRUNED, TAGGED, UNTAGGED, INSIGHT,
         CORRUPT, LIBRARY_OFFLINE, LIBRARY_ONLINE)

_COLUMNS = ("at", "host", "library", "kind", "path", "hash", "detail")


_NO_DETAIL: Mapping[str, Any] = MappingProxyType({})


class Change(NamedTuple):
    """A change about to be recorded. `detail` holds the kind's own keys (`old_path`, `tag`,
    `insight_kind`); `path` is the path relative to the library root, as people see it.

    A tuple, not a dataclass: a cold scan makes two per file, and a frozen dataclass costs
    twice as much to build (2.6 against 1.2 µs).
    """

    kind: str
    library: str | None
    path: str | None = None
    content_hash: str | None = None
    detail: Mapping[str, Any] = _NO_DETAIL


@dataclass(frozen=True)
class ChangeRow:
    """A recorded change, as `assetd changes` and `/changes` print it."""

    id: int
    at: float
    host: str
    library: str | None
    kind: str
    path: str | None
    content_hash: str | None
    detail: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "at": iso_utc(self.at, timespec="milliseconds"),
                "host": self.host, "library": self.library, "path": self.path,
                "kind": self.kind, "hash": self.content_hash, **self.detail}


@dataclass(frozen=True)
class Page:
    """What a reader gets: `reset_oldest_id` is set when changes after its `since` were
    already dropped by retention (the first kept id, the `reset` line's `oldest_id`)."""

    rows: list[ChangeRow]
    reset_oldest_id: int | None = None

    @property
    def last_id(self) -> int | None:
        return self.rows[-1].id if self.rows else None


def create_table(store: Store) -> None:
    """Migration 2. Raw SQL: the id must be AUTOINCREMENT on SQLite (see the docstring)."""
    id_column = ("id INTEGER PRIMARY KEY AUTOINCREMENT" if store.is_sqlite
                 else "id BIGSERIAL PRIMARY KEY")
    store.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} ({id_column}, at DOUBLE PRECISION NOT NULL,"
        " host TEXT NOT NULL, library TEXT, kind TEXT NOT NULL, path TEXT, hash TEXT,"
        " detail TEXT)")
    store.execute("CREATE TABLE IF NOT EXISTS setting (key VARCHAR(255) PRIMARY KEY,"
                  " value TEXT NOT NULL)")


def flush(store: Store, changes: Sequence[Change]) -> None:
    """Insert a committing transaction's changes (called by `Store.write_tx`, last)."""
    if not changes:
        return
    store.lock(LOCK_NAME)
    now = time.time()
    host = store.host
    # One JSON text per detail object: a scan's insight changes share one per kind, and
    # json.dumps per row was a third of this function at a million files. Every detail is
    # alive until the end, so id() names one object.
    texts: dict[int, str | None] = {}

    def text(detail: Mapping[str, Any]) -> str | None:
        key = id(detail)
        if key not in texts:
            texts[key] = json.dumps(dict(detail), sort_keys=True) if detail else None
        return texts[key]

    rows = [(now, host, library, kind, path, content_hash, text(detail))
            for kind, library, path, content_hash, detail in changes]
    for start in range(0, len(rows), INSERT_PAGE_ROWS):
        store.insert_values(TABLE, _COLUMNS, rows[start:start + INSERT_PAGE_ROWS])
    if not store.is_sqlite:
        store.execute(f"NOTIFY {NOTIFY_CHANNEL}")  # delivered at commit, to `--follow`


def parse_change_id(text: str) -> int:
    """A change id as a consumer passes it back (`changes --since`, `/changes?since=`): an
    integer, 0 or more (0: from the first change kept). ValueError says what is wrong; the
    caller says where (an argparse error, an HTTP 400)."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"not a change id: {text!r}") from None
    if value < 0:
        raise ValueError("a change id is 0 or more")
    return value


def read(store: Store, since: int = 0, *, library: str | None = None,
         limit: int | None = None) -> Page:
    """The changes after `since`, in id order (at most `limit`)."""
    reset = None
    dropped_through = int(get_setting(store, DROPPED_THROUGH_KEY) or 0)
    if since < dropped_through:
        oldest = store.query(f"SELECT min(id) FROM {TABLE}")[0][0]
        reset = oldest if oldest is not None else dropped_through + 1
    where, params = "id > ?", [since]
    if library is not None:
        where += " AND library = ?"
        params.append(library)
    text = (f"SELECT id, at, host, library, kind, path, hash, detail FROM {TABLE}"
            f" WHERE {where} ORDER BY id")
    if limit is not None:
        text += " LIMIT ?"
        params.append(limit)
    rows = [ChangeRow(id, at, host, lib, kind, path, content_hash,
                      json.loads(detail) if detail else {})
            for id, at, host, lib, kind, path, content_hash, detail in store.query(text, params)]
    return Page(rows, reset)


def iter_all(store: Store, since: int = 0, *, library: str | None = None,
             page_rows: int = 5000) -> Iterator[Page]:
    """Pages of everything after `since` (the first may carry the reset), without holding
    the whole feed in memory."""
    while True:
        page = read(store, since, library=library, limit=page_rows)
        yield page
        if len(page.rows) < page_rows:
            return
        since = page.rows[-1].id


def last_id(store: Store) -> int:
    return store.query(f"SELECT max(id) FROM {TABLE}")[0][0] or 0


def drop_older_than(store: Store, cutoff: float, *, max_ids: int = DROP_MAX_IDS) -> int:
    """Retention: drop the changes recorded before `cutoff` (epoch seconds); how many.

    `at` grows with id (both are taken at commit, under the lock), so the cut is one id,
    found by bisecting on the primary key: a few lookups, not a scan of a month of changes,
    and no index on `at`. Cheap when there is nothing to drop: one lookup. At most `max_ids`
    ids go per call (the daemon calls it every tick): deleting a million rows at once would
    hold the write lock for seconds.
    """
    # Two sub-selects: SQLite answers a lone min() or max() from the key, but reads the whole
    # table for `SELECT min(id), max(id)` (2M rows: 70 ms every tick).
    bounds = store.query(
        f"SELECT (SELECT min(id) FROM {TABLE}), (SELECT max(id) FROM {TABLE})")[0]
    if bounds[0] is None or _at(store, bounds[0]) >= cutoff:
        return 0
    low, high = bounds  # at(low) < cutoff; find the last id whose at < cutoff
    high = min(high, low + max_ids - 1)
    if _at(store, high) < cutoff:
        low = high
    while low < high:
        middle = (low + high + 1) // 2
        if _at(store, middle) < cutoff:
            low = middle
        else:
            high = middle - 1
    with store.write_tx():
        dropped = store.execute(f"DELETE FROM {TABLE} WHERE id <= ?", [low]).rowcount
        set_setting(store, DROPPED_THROUGH_KEY,
                    str(max(low, int(get_setting(store, DROPPED_THROUGH_KEY) or 0))))
    return dropped


def _at(store: Store, change_id: int) -> float:
    """`at` of the first change at or after `change_id` (ids may have gaps)."""
    return store.query(f"SELECT at FROM {TABLE} WHERE id >= ? ORDER BY id LIMIT 1",
                       [change_id])[0][0]


def get_setting(store: Store, key: str) -> str | None:
    rows = store.query("SELECT value FROM setting WHERE key = ?", [key])
    return rows[0][0] if rows else None


def set_setting(store: Store, key: str, value: str) -> None:
    store.execute("INSERT INTO setting (key, value) VALUES (?, ?)"
                  " ON CONFLICT (key) DO UPDATE SET value = excluded.value", [key, value])
