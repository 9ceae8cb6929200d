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

A row is lean (schema version 5): the host, the library and a tag or insight kind are
`labels` ids, the kind a small code (`KIND_CODES`), the hash its 16 bytes (`hashes`), and
`detail` JSON only for what no label says (`old_path`): 223 -> 114 B a file at 100k files
after a cold scan (two changes a file). Its time is integer milliseconds (`at_ms`, schema
version 9), what the feed prints: 6 B in a SQLite row instead of a float's 8.

Retention drops the oldest rows; `dropped_through` remembers the highest id dropped, so a
reader whose `--since` is older than that is told (`reset`) instead of silently missing rows.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from daemon.store import hashes, labels, paths
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

# Stored kind codes: append only, a code never changes meaning.
KIND_CODES = {kind: code for code, kind in enumerate(KINDS, start=1)}
_KIND_NAMES = {code: kind for kind, code in KIND_CODES.items()}
# The detail key a kind's label stands for (`{"tag": T}` is stored as T's label).
LABELLED_DETAIL = {TAGGED: "tag", UNTAGGED: "tag", INSIGHT: "insight_kind"}

_COLUMNS = ("at_ms", "host_label", "library_label", "kind", "path", "hash", "detail_label",
            "detail")


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


class CreatedRows(NamedTuple):
    """`created` changes of the file rows this transaction inserted into one library with
    ids in (`after_id`, `through_id`], in id order: made by one INSERT ... SELECT from those
    rows at flush, not one Python row per file (SQLite: 0.7 against 6.5 µs a change; a cold
    scan makes 100k of them). The recorder must be the only writer of that library's new
    rows in that id range (a scan holds the library's scan lock; on PostgreSQL the sequence
    hands out ids above every id it gave before, and other libraries' rows are filtered
    out) and must not change those rows' path or hash before the commit: the change says
    what the row holds at flush."""

    library: str
    library_id: int
    after_id: int
    through_id: int


def _created_from_rows(store: Store) -> str:
    """The INSERT ... SELECT of a `CreatedRows`: the file's 16-byte hash as it is."""
    from daemon.store import queries  # queries imports this module

    # By the id range: without statistics SQLite took `library_id = ?` to the (library_id,
    # rel_path) index and sorted the whole library, ~0.2 s a watcher batch at 1M files.
    return (f"INSERT INTO {TABLE} ({', '.join(_COLUMNS)})"
            f" SELECT ?, ?, ?, {KIND_CODES[CREATED]},"
            f" {paths.text_sql('file', is_sqlite=store.is_sqlite)}, content_hash, NULL, NULL"
            f" FROM {queries.in_id_order(store)}"
            " WHERE id > ? AND id <= ? AND library_id = ? ORDER BY id")


class PrunedRows(NamedTuple):
    """`pruned` changes of the file rows in the temporary table `PRUNED_TABLE` (which `prune`
    fills, in SQL, from the rows it is about to delete), in id order: made by one INSERT ...
    SELECT at flush, which then drops the table. A million rows pruned were a million `Change`
    tuples held until the commit: 500 MB."""

    libraries: tuple[str, ...]  # the names of the libraries of those rows (their labels)


PRUNED_TABLE = "pruned_file"


def create_pruned_table(store: Store, condition: str, params: Sequence[Any]) -> list[str]:
    """Copy (id, library, path text, hash) of the `file` rows `f` matching `condition` into
    `PRUNED_TABLE`, in this transaction; the names of their libraries."""
    store.execute(
        f"CREATE TEMPORARY TABLE {PRUNED_TABLE} AS SELECT f.id, l.name AS library,"
        f" {paths.text_sql('f', is_sqlite=store.is_sqlite)} AS path, f.content_hash"
        f" FROM file f JOIN library l ON l.id = f.library_id WHERE {condition}", params)
    return [name for name, in store.query(f"SELECT DISTINCT library FROM {PRUNED_TABLE}")]


def _pruned_from_table() -> str:
    return (f"INSERT INTO {TABLE} ({', '.join(_COLUMNS)})"
            f" SELECT ?, ?, lb.id, {KIND_CODES[PRUNED]}, p.path, p.content_hash, NULL, NULL"
            f" FROM {PRUNED_TABLE} p JOIN {labels.TABLE} lb ON lb.text = p.library ORDER BY p.id")


@dataclass(frozen=True)
class ChangeRow:
    """A recorded change, as `assetd changes` and `/changes` print it (`at`: epoch seconds,
    whole milliseconds)."""

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


def flush(store: Store, changes: Sequence[Change | CreatedRows | PrunedRows]) -> None:
    """Insert a committing transaction's changes (called by `Store.write_tx`, last)."""
    if not changes:
        return
    store.lock(LOCK_NAME)
    now_ms = at_ms(time.time())
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

    def label_of(kind: str, detail: Mapping[str, Any]) -> str | None:
        key = LABELLED_DETAIL.get(kind)
        if key is None or len(detail) != 1 or not isinstance(detail.get(key), str):
            return None
        return detail[key]

    labelled = [label_of(change.kind, change.detail) if change.__class__ is Change else None
                for change in changes]
    libraries = {name for change in changes for name in (
        change.libraries if change.__class__ is PrunedRows else (change.library,))}
    ids = labels.ids(store, [host, *libraries, *set(labelled)])
    host_id, to_db = ids[host], hashes.to_db
    created_from_rows = _created_from_rows(store)
    rows: list[tuple] = []
    for change, label in zip(changes, labelled, strict=True):
        if change.__class__ is CreatedRows:
            _insert_pages(store, rows)
            rows = []
            store.execute(created_from_rows, (now_ms, host_id, ids[change.library],
                                              change.after_id, change.through_id,
                                              change.library_id))
            continue
        if change.__class__ is PrunedRows:
            _insert_pages(store, rows)
            rows = []
            store.execute(_pruned_from_table(), (now_ms, host_id))
            store.execute(f"DROP TABLE {PRUNED_TABLE}")
            continue
        kind, library, path, content_hash, detail = change
        rows.append((now_ms, host_id, ids.get(library), KIND_CODES[kind], path,
                     to_db(content_hash), ids.get(label),
                     None if label is not None else text(detail)))
    _insert_pages(store, rows)
    if not store.is_sqlite:
        store.execute(f"NOTIFY {NOTIFY_CHANNEL}")  # delivered at commit, to `--follow`


def _insert_pages(store: Store, rows: Sequence[tuple]) -> None:
    for start in range(0, len(rows), INSERT_PAGE_ROWS):
        store.insert_values(TABLE, _COLUMNS, rows[start:start + INSERT_PAGE_ROWS])


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
    where, params = "c.id > ?", [since]
    if library is not None:
        library_id = labels.id_of(store, library)
        if library_id is None:
            return Page([], reset)
        where += " AND c.library_label = ?"
        params.append(library_id)
    # LEFT JOINs: SQLite then walks change_log by id and looks each label up by its key.
    text = ("SELECT c.id, c.at_ms, h.text, l.text, c.kind, c.path, c.hash, d.text, c.detail"
            f" FROM {TABLE} c LEFT JOIN {labels.TABLE} h ON h.id = c.host_label"
            f" LEFT JOIN {labels.TABLE} l ON l.id = c.library_label"
            f" LEFT JOIN {labels.TABLE} d ON d.id = c.detail_label"
            f" WHERE {where} ORDER BY c.id")
    if limit is not None:
        text += " LIMIT ?"
        params.append(limit)
    rows = [_change_row(*row) for row in store.query(text, params)]
    return Page(rows, reset)


def _change_row(id: int, at_ms: int, host: str, library: str | None, code: int,
                path: str | None, digest: bytes | None, label: str | None,
                detail: str | None) -> ChangeRow:
    kind = _KIND_NAMES[code]
    if label is not None:
        details = {LABELLED_DETAIL[kind]: label}
    else:
        details = json.loads(detail) if detail else {}
    return ChangeRow(id, at_ms / 1000, host, library, kind, path, hashes.from_db(digest),
                     details)


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

    `at_ms` grows with id (both are taken at commit, under the lock), so the cut is one id,
    found by bisecting on the primary key: a few lookups, not a scan of a month of changes,
    and no index on `at_ms`. Cheap when there is nothing to drop: one lookup. At most `max_ids`
    ids go per call (the daemon calls it every tick): deleting a million rows at once would
    hold the write lock for seconds.
    """
    # Two sub-selects: SQLite answers a lone min() or max() from the key, but reads the whole
    # table for `SELECT min(id), max(id)` (2M rows: 70 ms every tick).
    bounds = store.query(
        f"SELECT (SELECT min(id) FROM {TABLE}), (SELECT max(id) FROM {TABLE})")[0]
    cutoff_ms = cutoff * 1000
    if bounds[0] is None or _at_ms(store, bounds[0]) >= cutoff_ms:
        return 0
    low, high = bounds  # at(low) < cutoff; find the last id whose at < cutoff
    high = min(high, low + max_ids - 1)
    if _at_ms(store, high) < cutoff_ms:
        low = high
    while low < high:
        middle = (low + high + 1) // 2
        if _at_ms(store, middle) < cutoff_ms:
            low = middle
        else:
            high = middle - 1
    with store.write_tx():
        dropped = store.execute(f"DELETE FROM {TABLE} WHERE id <= ?", [low]).rowcount
        set_setting(store, DROPPED_THROUGH_KEY,
                    str(max(low, int(get_setting(store, DROPPED_THROUGH_KEY) or 0))))
    return dropped


def _at_ms(store: Store, change_id: int) -> int:
    """`at_ms` of the first change at or after `change_id` (ids may have gaps)."""
    return store.query(f"SELECT at_ms FROM {TABLE} WHERE id >= ? ORDER BY id LIMIT 1",
                       [change_id])[0][0]


def at_ms(ts: float) -> int:
    """Epoch seconds as the whole milliseconds the feed prints of them: `datetime` rounds a
    timestamp to microseconds (half to even), then `isoformat` cuts to milliseconds.
    (Rounding half up instead gives the same milliseconds: the two differ only at a tie
    below an even microsecond, never the last of a millisecond.) `migrations` converts the
    stored seconds of older feeds the same way in SQL."""
    whole = math.floor(ts)
    return whole * 1000 + round((ts - whole) * 1_000_000) // 1000


def get_setting(store: Store, key: str) -> str | None:
    rows = store.query("SELECT value FROM setting WHERE key = ?", [key])
    return rows[0][0] if rows else None


def set_setting(store: Store, key: str, value: str) -> None:
    store.execute("INSERT INTO setting (key, value) VALUES (?, ?)"
                  " ON CONFLICT (key) DO UPDATE SET value = excluded.value", [key, value])
