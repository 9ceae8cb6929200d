"""Small, atomic queries the services compose: libraries, file snapshots, scan runs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from functools import partial

from peewee import IntegrityError

from daemon import logs
from daemon.config import LibraryConfig
from daemon.keys import last_path
from daemon.store import changes, labels
from daemon.store.db import Store
from daemon.store.hashes import all_to_db, from_db
from daemon.store.models import (
    STATE_CODES,
    STATE_ENRICHING,
    STATE_NAMES,
    STATE_NEW,
    STATE_READY,
    File,
    Library,
    ScanRun,
)
from daemon.store.rows import DbRow, KeyPage

SCAN_RUNS_KEPT = 200
SNAPSHOT_PAGE_ROWS = 5000
LOOKUP_CHUNK = 500
_SNAPSHOT_COLUMNS = (
    "id, rel_path, size, mtime_ns, inode, device, content_hash, is_missing, state"
)


def unsettled_condition(store: Store, set_checksum: str) -> tuple[str, list]:
    """SQL for "not `ready` under the enricher set `set_checksum`".

    Spelled as ranges of the (state, checksum_label) index (`IN`, `<`, `>`, not `<>`):
    at a million ready files SQLite then reads only the unsettled rows (2 ms) instead of
    every file of the library (0.6 s, every tick). Use it with `+library_id` so the
    library's own index does not win the choice.
    """
    # No label yet: no file was settled under this set. 0 is no label's id.
    label = labels.id_of(store, set_checksum) or 0
    ready = STATE_CODES[STATE_READY]
    return (
        "(state IN (?, ?) OR (state = ? AND checksum_label IS NULL)"
        " OR (state = ? AND checksum_label < ?) OR (state = ? AND checksum_label > ?))",
        [STATE_CODES[STATE_NEW], STATE_CODES[STATE_ENRICHING], ready, ready, label, ready,
         label],
    )


def in_id_order(store: Store) -> str:
    """`file` for a query that walks a library in id order, chunk after chunk (`id > ?
    ORDER BY id LIMIT n`).

    On SQLite, `NOT INDEXED`: the rowid range is then the plan. Left to itself, SQLite takes
    the (library_id, rel_path) index and sorts every row of the library for each chunk, which
    made the enrich step's first pass and the scheduled verify quadratic at a million files
    (a chunk of 500 cost a sort of 1M rows; the whole walk now takes 0.85 s). PostgreSQL's
    planner, with statistics, walks the primary key by itself.
    """
    return "file NOT INDEXED" if store.is_sqlite else "file"


def get_library(name: str) -> Library | None:
    return Library.get_or_none(Library.name == name)


def foreign_libraries(names: list[str], host: str) -> list[Library]:
    """The libraries among `names` that another host owns."""
    if not names:
        return []
    return list(Library.select().where(Library.name.in_(names) & (Library.host != host))
                .order_by(Library.name))


def adopt_library(store: Store, library: LibraryConfig, host: str) -> Library | None:
    """Make `host` the owner of the library (root from this host's config); rows, tags and
    insights are untouched. None when the index has no such library."""
    with store.write_tx():
        row = get_library(library.name)
        if row is not None:
            Library.update(root=library.path, host=host).where(Library.id == row.id).execute()
    return row


def ensure_library(store: Store, library: LibraryConfig, host: str) -> Library:
    """The library's row, created or updated from the config (name is the identity).

    A SQLite index belongs to one machine: a library of another host name there is this
    machine renamed, and is taken over (`library.adopted`). On PostgreSQL the callers refuse
    another host's library before they get here (`libraries.check_owned`).
    """
    row = get_library(library.name)
    if row is None:
        try:
            with store.write_tx():
                # The labels every change of the library names, before any other: a label
                # id of 1 is stored in no bytes (SQLite), on a row per change.
                labels.ids(store, [library.name, host])
                return Library.create(
                    name=library.name, root=library.path, host=host, created_at=time.time()
                )
        except IntegrityError:  # another process created it first
            row = get_library(library.name)
    if row.host != host:
        if not store.is_sqlite:
            raise RuntimeError(f"library {library.name} belongs to host {row.host}")
        logs.get_logger().warning(logs.LIBRARY_ADOPTED, library=library.name,
                                  previous_host=row.host, host=host,
                                  reason="the host name changed on a SQLite index")
    if (row.root, row.host) != (library.path, host):
        with store.write_tx():
            Library.update(root=library.path, host=host).where(Library.id == row.id).execute()
        row.root, row.host = library.path, host
    return row


def scope_condition(scopes: list[bytes]) -> tuple[str, list]:
    """SQL for "rel_path is one of these paths or under one of these directories".

    A range on the raw bytes uses the (library_id, rel_path) index: every path under
    `dir` sorts between `dir/` and `dir0` ('0' is the byte after '/').
    """
    if not scopes or b"" in scopes:
        return "", []
    clauses, params = [], []
    for scope in scopes:
        clauses.append("(rel_path = ? OR (rel_path >= ? AND rel_path < ?))")
        params += [scope, scope + b"/", scope + b"0"]
    return " AND (" + " OR ".join(clauses) + ")", params


def file_snapshot(store: Store, library_id: int, scopes: list[bytes]) -> dict[bytes, DbRow]:
    """Every row in scope at once (small scopes and tests; scans stream `key_pages`)."""
    where, params = scope_condition(scopes)
    rows = store.query(
        f"SELECT {_SNAPSHOT_COLUMNS} FROM file WHERE library_id = ?{where}",
        [library_id, *params],
    )
    return {row.rel_path: row for row in map(_db_row, rows)}


def _db_row(r: tuple) -> DbRow:
    return DbRow(r[0], bytes(r[1]), r[2], r[3], r[4], r[5], from_db(r[6]), bool(r[7]),
                 STATE_NAMES[r[8]])


# A row's `plan.row_key` as `keys.KEY_RECORD` bytes (`plan.encode_row_keys`), computed and
# concatenated by the database, a page at a time: no hash or state text is read, and no
# Python object is made per row for the unchanged files a rescan is mostly made of (fetching
# the keys as tuples was 2.4 s of a 1M-file rescan's parent process; the page blobs ~1 s).
_FAST_INODE = "CASE WHEN content_hash IS NULL OR is_missing THEN NULL ELSE inode END"
# Both databases aggregate the rows of the page subquery in its order, rel_path's: SQLite
# runs it as a co-routine, PostgreSQL as a Limit node, which no parallel plan splits (an
# ORDER BY inside string_agg sorted each page again: +30 % of the server's time). The
# merge checks the order it gets (`plan._RowStream`). SQLite's concatenation is text, whose
# bytes CAST AS BLOB returns unchanged; PostgreSQL's is bytea throughout.
_SQLITE_KEY_PAGE = (
    "SELECT CAST(group_concat(k, '') AS BLOB) FROM (SELECT rel_path || x'00'"
    f" || printf('%d %d %s %d', size, mtime_ns, {_FAST_INODE}, device) || x'00' AS k"
    " FROM file WHERE library_id = ? AND rel_path {op} ?{upper}"
    " ORDER BY rel_path LIMIT ?)"
)
_PG_KEY_PAGE = (
    "SELECT string_agg(rel_path || '\\x00'::bytea || convert_to(size || ' ' || mtime_ns"
    f" || ' ' || coalesce(({_FAST_INODE})::text, '') || ' ' || device, 'UTF8')"
    " || '\\x00'::bytea, ''::bytea) FROM (SELECT rel_path, size, mtime_ns, content_hash,"
    " is_missing, inode, device FROM file WHERE library_id = ? AND rel_path {op} ?{upper}"
    " ORDER BY rel_path LIMIT ?) page"
)


def key_pages(
    store: Store, library_id: int, scope: bytes, *, page_rows: int = SNAPSHOT_PAGE_ROWS
) -> Iterator[KeyPage]:
    """The rows of one scope (a file or a directory; b"" = all) in rel_path byte order, as
    pages of encoded `plan.row_key`s, each with a loader of its full rows.

    Page by page on the (library_id, rel_path) index, each page its own query starting
    after the last path seen: no cursor stays open across the scan's own writes, and memory
    holds a page or two. Rows the scan inserts meanwhile sort before the last path seen (the
    scan only writes paths the merge has passed), so no page returns them, and a page's full
    rows, read later, are as its keys were for every path the merge has not passed.
    """
    if not scope:
        yield from _key_pages(store, library_id, b"", None, page_rows)
        return
    # The scope as a file, then its subtree: `scope.txt` sorts between them, not in scope.
    yield from _key_pages(store, library_id, scope, scope + b"\0", page_rows)
    yield from _key_pages(store, library_id, scope + b"/", scope + b"0", page_rows)


def _key_pages(store: Store, library_id: int, first: bytes, end: bytes | None,
               page_rows: int) -> Iterator[KeyPage]:
    """The pages of the rows with first <= rel_path (< end)."""
    query = _SQLITE_KEY_PAGE if store.is_sqlite else _PG_KEY_PAGE
    upper, bound = (" AND rel_path < ?", [end]) if end is not None else ("", [])
    last, op = first, ">="
    while True:
        (keys,), = store.query(query.format(op=op, upper=upper),
                               [library_id, last, *bound, page_rows])
        if keys is None:
            return
        keys = bytes(keys)  # psycopg2 returns bytea as a memoryview
        last = last_path(keys)
        yield KeyPage(keys, last, partial(_rows_from, store, library_id,
                                          keys[:keys.index(b"\0")], last))
        if keys.count(b"\0") < 2 * page_rows:
            return
        op = ">"


def _rows_from(store: Store, library_id: int, first: bytes, last: bytes, start: bytes,
               limit: int) -> list[DbRow]:
    """The full rows of the page from `first` to `last`, from the path `start` on, at most
    `limit`."""
    rows = store.query(
        f"SELECT {_SNAPSHOT_COLUMNS} FROM file WHERE library_id = ? AND rel_path >= ?"
        " AND rel_path <= ? ORDER BY rel_path LIMIT ?",
        [library_id, max(first, start), last, limit])
    return list(map(_db_row, rows))


def rows_by_identity(
    store: Store, library_id: int, inodes: list[int]
) -> list[DbRow]:
    """Rows of a library with one of these inodes (the caller compares the full identity)."""
    return _rows_where(store, library_id, "inode", inodes)


def rows_by_hash(store: Store, library_id: int, content_hashes: list[str]) -> list[DbRow]:
    return _rows_where(store, library_id, "content_hash", all_to_db(set(content_hashes)))


def tagged_contents(store: Store, digests: set[bytes]) -> set[bytes]:
    """The content digests among these that some tag holds (a tag carry from any other
    content inserts nothing)."""
    found: set[bytes] = set()
    values = list(digests)
    for start in range(0, len(values), LOOKUP_CHUNK):
        chunk = values[start:start + LOOKUP_CHUNK]
        found.update(bytes(digest) for (digest,) in store.query(
            "SELECT DISTINCT content_hash FROM tag WHERE content_hash IN ("
            + ", ".join("?" for _ in chunk) + ")", chunk))
    return found


def _rows_where(store: Store, library_id: int, column: str, values: list) -> list[DbRow]:
    found: list[DbRow] = []
    values = sorted(set(values))
    for start in range(0, len(values), LOOKUP_CHUNK):
        chunk = values[start:start + LOOKUP_CHUNK]
        # `+library_id`: without statistics SQLite prefers the library_id index to the
        # inode/content_hash one, and reads the whole library for each lookup (50 ms at 100k
        # files, 0.5 s at 1M, for every watcher batch). The unary plus keeps the column out
        # of index selection, on PostgreSQL too.
        found += map(_db_row, store.query(
            f"SELECT {_SNAPSHOT_COLUMNS} FROM file WHERE {column} IN ("
            + ", ".join("?" for _ in chunk) + ") AND +library_id = ?",
            [*chunk, library_id],
        ))
    return found


def has_files(store: Store, library_id: int) -> bool:
    return bool(store.query("SELECT 1 FROM file WHERE library_id = ? LIMIT 1", [library_id]))


def count_present(library_id: int) -> int:
    return File.select().where((File.library == library_id) & ~File.is_missing).count()


def record_scan(
    store: Store,
    library_id: int,
    *,
    host: str,
    started_at: float,
    finished_at: float,
    status: str,
    online: bool,
    reason: str | None,
    scope: str,
    stats: dict[str, int],
) -> None:
    with store.write_tx():
        ScanRun.create(
            library=library_id, host=host, started_at=started_at, finished_at=finished_at,
            status=status, online=online, reason=reason, scope=scope, stats=json.dumps(stats),
        )
        # Every watcher batch is a scan: keep the recent history, not one row per event.
        store.execute(
            "DELETE FROM scan_run WHERE library_id = ? AND id < (SELECT id FROM scan_run"
            " WHERE library_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
            [library_id, library_id, SCAN_RUNS_KEPT - 1],
        )
        _record_availability(store, library_id, online)
        update = {Library.online: online, Library.offline_reason: reason}
        if online:
            update[Library.last_scan_at] = finished_at
        Library.update(update).where(Library.id == library_id).execute()


def set_library_online(store: Store, library_id: int, online: bool, reason: str | None) -> None:
    with store.write_tx():
        _record_availability(store, library_id, online)
        Library.update(online=online, offline_reason=reason).where(
            Library.id == library_id
        ).execute()


def _record_availability(store: Store, library_id: int, online: bool) -> None:
    """`library_offline` / `library_online` when the stored state flips. A library never
    seen before counts as online: first seen online is no news, first seen offline is."""
    rows = store.query("SELECT name, online FROM library WHERE id = ?", [library_id])
    if not rows:
        return
    name, was_online = rows[0]
    was_online = True if was_online is None else bool(was_online)
    if was_online != online:
        kind = changes.LIBRARY_ONLINE if online else changes.LIBRARY_OFFLINE
        store.record_changes([changes.Change(kind, name)])
