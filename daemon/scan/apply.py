"""Apply a plan to the database: bulk statements, one transaction per part.

Every change here keeps rows (and so tags and insights): a vanished file is marked missing, a
moved one keeps its id, an edited one keeps its tags on the new content.
"""

from __future__ import annotations

import time
from collections.abc import Container, Iterable, Sequence
from itertools import islice

from daemon.scan.hash import Hashed
from daemon.scan.plan import Plan
from daemon.scan.walk import DiskEntry
from daemon.store import Store, labels, paths, queries
from daemon.store import changes as feed
from daemon.store.changes import Change
from daemon.store.hashes import PREFIX as HASH_PREFIX
from daemon.store.hashes import from_db, to_db
from daemon.store.models import STATE_CODES, STATE_ENRICHING, STATE_NEW, File, Library
from daemon.store.rows import DbRow
from daemon.units import path_text

BATCH_ROWS = 5000

_INSERT_COLUMNS = (
    "library_id", "rel_path", "path_text", "size", "mtime_ns", "inode", "device",
    "content_hash", "is_missing", "state", "checksum_label", "first_seen",
)  # not last_seen: NULL until the row is rewritten (`models.File`)
# Keyed by id (the first value of each row).
_REWRITE_COLUMNS = (
    "rel_path", "path_text", "size", "mtime_ns", "inode", "device", "content_hash",
    "is_missing", "missing_since", "state", "last_seen",
)
_MOVE_FILE = "UPDATE file SET " + ", ".join(f"{c} = ?" for c in _REWRITE_COLUMNS) + " WHERE id = ?"
# Where the change feed reads a written row's path and hash, found by the columns' names: a
# column added to either list cannot make it read another value.
_REWRITTEN_PATH = 1 + _REWRITE_COLUMNS.index("path_text")  # after the id
_REWRITTEN_REL_PATH = 1 + _REWRITE_COLUMNS.index("rel_path")
_REWRITTEN_HASH = 1 + _REWRITE_COLUMNS.index("content_hash")
_REWRITTEN_STATE = 1 + _REWRITE_COLUMNS.index("state")
_MARK_MISSING = "UPDATE file SET is_missing = ?, missing_since = ? WHERE is_missing = ? AND id IN"
MARK_MISSING_CHUNK = 500
# Tags set by path while the hash was unknown follow a moved file to its new path.
_MOVE_PATH_TAGS = (
    "UPDATE tag SET rel_path = ? WHERE library_id = ? AND rel_path = ? AND content_hash IS NULL"
)
_MOVE_PATH_INSIGHTS = (
    "UPDATE insight SET rel_path = ?"
    " WHERE library_id = ? AND rel_path = ? AND content_hash IS NULL"
)
# An in-place edit keeps the file's tags: copy the old content's tags to the new content
# (or to the path, with a NULL hash, when the new content is not hashed yet; the NULL-hash
# fill pass completes them). The old rows stay for other copies of the old bytes.
_CARRY_TAGS_TO_HASH = (
    "INSERT INTO tag (library_id, rel_path, content_hash, tag, created_at)"
    " SELECT ?, ?, ?, t.tag, ? FROM tag t WHERE t.content_hash = ?"
    " AND NOT EXISTS (SELECT 1 FROM tag u WHERE u.tag = t.tag AND u.content_hash = ?)"
    " GROUP BY t.tag"
)
_CARRY_TAGS_TO_PATH = (
    "INSERT INTO tag (library_id, rel_path, content_hash, tag, created_at)"
    " SELECT ?, ?, NULL, t.tag, ? FROM tag t WHERE t.content_hash = ?"
    " AND NOT EXISTS (SELECT 1 FROM tag u WHERE u.tag = t.tag AND u.content_hash IS NULL"
    " AND u.library_id = ? AND u.rel_path = ?)"
    " GROUP BY t.tag"
)


def apply_plan(
    store: Store,
    library: Library,
    plan: Plan,
    hashes: dict[bytes, Hashed],
    *,
    known_hashes: Container[str] | None = None,
    set_checksum: str | None = None,
    now: float | None = None,
) -> tuple[int, int] | None:
    """Write the plan. `hashes` holds the files hashed this scan (by rel_path). Returns the
    ids of the rows it inserted, (after_id, through_id], or None.

    `known_hashes` is `replaced_content` of the whole scan's plan when `plan` is a part of it.
    `set_checksum` is the enricher set's (`enrichers.enricher_set_checksum`): `_insert_rows`
    says why a new row holds it.
    """
    now = time.time() if now is None else now
    seen_s = int(now)  # a file's first_seen / last_seen: whole seconds (`models.File`)
    library_id = library.id
    rewrites: list[tuple] = []
    carries: list[tuple[bytes, str, str | None]] = []
    replaced_by_known_content = replaced_content(plan) if known_hashes is None else known_hashes
    moves: list[tuple] = []
    left: set[bytes] = set()  # the paths the moves leave
    for row, entry in plan.updated + plan.restored + plan.moved:
        rewrite, carry = _rewrite_row(row, entry, hashes.get(entry.rel_path), seen_s)
        if row.rel_path == entry.rel_path:
            rewrites.append(rewrite)
        else:
            moves.append(rewrite)
            left.add(row.rel_path)
        if carry and carry[2] not in replaced_by_known_content:
            carries.append(carry)
    hash_fills = []
    for row in plan.unchanged:
        hashed = hashes.get(row.rel_path)
        if hashed is not None and row.content_hash is None:
            rewrite, _ = _rewrite_row(row, _entry_of(row), hashed, seen_s)
            rewrites.append(rewrite)
            hash_fills.append(rewrite)
    moved_paths = [(entry.rel_path, library_id, row.rel_path) for row, entry in plan.moved]

    # One transaction per part: a part is at most scanner.PART_FILES files.
    with store.write_tx():
        store.update_rows(File, "id", _REWRITE_COLUMNS, rewrites)
        # In order, one by one, where a move takes a path another one leaves: in a rotation
        # (`mv b c; mv a b`) b's row must leave path b before a's row takes it, and a
        # set-based UPDATE checks the unique path per row. Otherwise as the updates are,
        # set-based on PostgreSQL (a statement per row there: 10,000 moves, ~0.4 s).
        if left.isdisjoint(move[_REWRITTEN_REL_PATH] for move in moves):
            store.update_rows(File, "id", _REWRITE_COLUMNS, moves)
        else:
            store.executemany(_MOVE_FILE, [_move_params(move) for move in moves])
        if moved_paths and _has_unhashed(store, "tag", library_id):
            store.executemany(_MOVE_PATH_TAGS, moved_paths)
        if moved_paths and _has_unhashed(store, "insight", library_id):
            store.executemany(_MOVE_PATH_INSIGHTS, moved_paths)
        # After the moves: a new file can take the path a moved one left in this very plan
        # (`mv a c; touch a`: a's row goes to c, and a new row to a).
        created = None
        if plan.created:
            checksum_label = labels.ids(store, [set_checksum]).get(set_checksum)
            inserts = _insert_rows(library_id, plan.created, hashes, seen_s, checksum_label)
            after_id = _last_file_id(store)
            store.insert_rows(File, _INSERT_COLUMNS, inserts, stored=True)
            created = feed.CreatedRows(library.name, library_id, after_id, _last_file_id(store))
        carry_tags(store, library_id, carries, now)
        store.record_changes(_plan_changes(library.name, plan, created, rewrites, moves,
                                           hash_fills))
        _mark_missing(store, library, [row.id for row in plan.missing], now)
    return (created.after_id, created.through_id) if created else None


def _plan_changes(library: str, plan: Plan, created: feed.CreatedRows | None,
                  rewrites: list[tuple], moves: list[tuple],
                  hash_fills: list[tuple]) -> list[Change | feed.CreatedRows]:
    """The change feed's view of a plan part, from the rows as they were written: the
    inserted rows as one `CreatedRows` (read back in SQL at commit), and `_rewrite_row`
    tuples, read by their columns' names.

    A hash that becomes known for unchanged bytes is an `updated` too: a consumer that saw
    `created` with a null hash learns it there. The `created` come last, as the rows are
    written: a new file can take the path a file moved from in the same part, and a consumer
    replaying the feed must see that path left before it is taken again.
    """
    found: list[Change | feed.CreatedRows] = []
    at_path, at_hash = _REWRITTEN_PATH, _REWRITTEN_HASH
    # (path_text, content_hash) as written, by file id (the first value of a rewrite row).
    written = {row[0]: (row[at_path], row[at_hash]) for row in rewrites + moves}
    for row, _ in plan.updated:
        path, new_hash = written[row.id]
        # A touch (new mtime, same bytes) is no content change: not in the feed.
        if new_hash is None or new_hash != row.content_hash:
            found.append(Change(feed.UPDATED, library, path, new_hash))
    found += [Change(feed.RESTORED, library, *written[row.id]) for row, _ in plan.restored]
    found += [Change(feed.UPDATED, library, row[at_path], row[at_hash]) for row in hash_fills]
    found += [Change(feed.MOVED, library, *written[row.id], {"old_path": path_text(row.rel_path)})
              for row, _ in plan.moved]
    return [*found, created] if created else found


def replaced_content(plan: Plan) -> set[str]:
    """Hashes of files that left their place in this scan (vanished, or overwritten).

    New bytes at a path that are one of these are that file's, not an edit of the file that
    was there (`mv a b` over b, or a swap): b's tags are not carried onto them.
    """
    return {row.content_hash for row in plan.missing if row.content_hash} | {
        row.content_hash for row, _ in plan.updated if row.content_hash
    }


def carry_tags(
    store: Store,
    library_id: int,
    carries: Sequence[tuple[bytes, str, str | None]],
    now: float,
) -> int:
    """(rel_path, old_hash, new_hash_or_None) per edited file: its tags go with it."""
    digests = [(rel, to_db(old), to_db(new)) for rel, old, new in carries]
    tagged = queries.tagged_contents(store, {old for _, old, _ in digests})
    to_hash = [(library_id, rel, new, now, old, new)
               for rel, old, new in digests if new and old in tagged]
    to_path = [(library_id, rel, now, old, library_id, rel)
               for rel, old, new in digests if not new and old in tagged]
    store.executemany(_CARRY_TAGS_TO_HASH, to_hash)
    store.executemany(_CARRY_TAGS_TO_PATH, to_path)
    return len(carries)


# Statements that would change nothing are not sent. Each carry or path move is a statement
# of its own (executemany), and PostgreSQL plans and runs each: 10,000 edited files cost ~1 s
# there for their tag carries, 10,000 moved ones ~1 s for their unhashed tags and insights,
# where the tag table most often holds no tag of those contents (`queries.tagged_contents`),
# and no unhashed row at all.
def _has_unhashed(store: Store, table: str, library_id: int) -> bool:
    """Does `table` (tag, insight) hold a row of this library by path, with no hash yet?"""
    return bool(store.query(f"SELECT 1 FROM {table} WHERE library_id = ?"
                            " AND content_hash IS NULL LIMIT 1", [library_id]))


def mark_missing(store: Store, library: Library, row_ids: Iterable[int],
                 now: float | None = None) -> int:
    """Mark rows missing, by id (taken as they come: a whole library may vanish), a
    transaction per `BATCH_ROWS`; returns how many ids it was given."""
    now = time.time() if now is None else now
    given = 0
    row_ids = iter(row_ids)
    while batch := list(islice(row_ids, BATCH_ROWS)):
        with store.write_tx():
            _mark_missing(store, library, batch, now)
        given += len(batch)
    return given


def _mark_missing(store: Store, library: Library, row_ids: Sequence[int], now: float) -> None:
    """Set-based: one statement per `MARK_MISSING_CHUNK` ids (no round trip per row).

    Only rows still present change, and only those are `missing` in the feed, with the path
    and hash their row holds: the lookup runs in the write transaction, so it sees exactly
    what the UPDATE will change.
    """
    for start in range(0, len(row_ids), MARK_MISSING_CHUNK):
        chunk = row_ids[start:start + MARK_MISSING_CHUNK]
        marks = ", ".join("?" for _ in chunk)
        # (path, hash) as the feed shows them, of the rows still present.
        present = {row_id: (paths.shown(rel_path, text), from_db(digest))
                   for row_id, rel_path, text, digest in store.query(
                       f"SELECT id, rel_path, path_text, content_hash FROM file"
                       f" WHERE id IN ({marks}) AND NOT is_missing", list(chunk))}
        if not present:
            continue
        store.execute(f"{_MARK_MISSING} ({marks})", [True, now, False, *chunk])
        store.record_changes(Change(feed.MISSING, library.name, *present[row_id])
                             for row_id in chunk if row_id in present)


def _move_params(move: tuple) -> tuple:
    """`_MOVE_FILE`'s parameters of a `_rewrite_row` tuple as stored (`Store.insert_rows`
    says how): the id last."""
    values = list(move[1:])
    values[_REWRITTEN_HASH - 1] = to_db(values[_REWRITTEN_HASH - 1])
    values[_REWRITTEN_PATH - 1] = paths.stored(values[_REWRITTEN_REL_PATH - 1],
                                               values[_REWRITTEN_PATH - 1])
    values[_REWRITTEN_STATE - 1] = STATE_CODES[values[_REWRITTEN_STATE - 1]]
    return (*values, move[0])


def _entry_of(row: DbRow) -> DiskEntry:
    return DiskEntry(row.rel_path, row.size, row.mtime_ns, row.inode, row.device)


def _last_file_id(store: Store) -> int:
    return store.query("SELECT max(id) FROM file")[0][0] or 0


def _insert_rows(library_id: int, created: list[DiskEntry], hashes: dict[bytes, Hashed],
                 seen_s: int, checksum_label: int | None = None) -> list[tuple]:
    """The new files' rows as the database stores them (`Store.insert_rows(stored=True)`).

    A new file is `new` until hashed; one hashed on the way in starts `enriching`, the
    state the lifecycle pass would give it at once (on PostgreSQL that UPDATE rewrote every
    row of a cold scan and all its index entries: 1.5 s of 3.7 s at 100k files).

    An `enriching` row holds the enricher set's checksum (its label) already (nothing reads
    the checksum of a row that is not `ready`; the lifecycle pass writes the same one when it
    makes the row `ready`). The row then does not grow when it becomes `ready`: grown rows
    split SQLite's pages, and a fresh table was 10 % empty space (`file` 129 -> 121 B a file
    at 100k files, the database 438 -> 434).

    One comprehension, no Python call per file for an ASCII name: a cold scan builds a row
    for every file it finds, and converting rows built in the text forms afterwards (the
    store's `_rows_to_db`) was a tenth of a cold `scan --no-enrich`'s own CPU. The hash is
    this scan's own (`Hashed`), so its text needs no check before `fromhex`."""
    get, fromhex, prefix = hashes.get, bytes.fromhex, len(HASH_PREFIX)
    enriching, new = STATE_CODES[STATE_ENRICHING], STATE_CODES[STATE_NEW]
    stored_name = paths.stored_name
    return [
        (library_id, rel_path, text, *hashed[1:], fromhex(hashed[0][prefix:]), False, enriching,
         checksum_label, seen_s)
        if hashed else
        (library_id, rel_path, text, *entry[1:], None, False, new, None, seen_s)
        for entry in created
        for rel_path, hashed, text in ((
            entry[0], get(entry[0]), "" if entry[0].isascii() else stored_name(entry[0])),)
    ]


def _rewrite_row(
    row: DbRow, entry: DiskEntry, hashed: Hashed | None, seen_s: int
) -> tuple[tuple, tuple[bytes, str, str | None] | None]:
    """The UPDATE parameters, plus a tag carry when the content changed under the tags."""
    stat = hashed or entry
    content_hash, state, carry = row.content_hash, row.state, None
    if hashed is not None:
        content_hash = hashed.content_hash
    elif row.content_hash is not None and (row.size, row.mtime_ns) != (entry.size, entry.mtime_ns):
        content_hash = None  # changed, not hashed now (--no-hash, or a read error)
    if content_hash != row.content_hash and row.content_hash is not None:
        state = STATE_NEW
        carry = (entry.rel_path, row.content_hash, content_hash)
    elif content_hash is None:
        state = STATE_NEW
    rewrite = (
        row.id, entry.rel_path, path_text(entry.rel_path), stat.size, stat.mtime_ns,
        stat.inode, stat.device, content_hash, False, None, state, seen_s,
    )
    return rewrite, carry
