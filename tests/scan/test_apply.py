"""The rows apply writes, and the change feed's view of them (no database needed)."""

from __future__ import annotations

from daemon.scan import apply
from daemon.scan.hash import Hashed
from daemon.scan.plan import Plan
from daemon.scan.walk import DiskEntry
from daemon.store import changes as feed
from daemon.store.hashes import to_db
from daemon.store.models import STATE_CODES
from daemon.store.rows import DbRow

HASH_OLD, HASH_NEW, HASH_EDIT = ("xxh128:" + digit * 32 for digit in "0ab")


def test_inserted_rows_are_in_the_stored_form_their_column_lists_name():
    entry = DiskEntry(b"d/\xff.jpg", 3, 5, 7, 9)
    hashed = Hashed(HASH_NEW, 3, 5, 7, 9)
    unhashed = DiskEntry(b"new.jpg", 1, 2, 3, 9)
    accented = DiskEntry("d/été.jpg".encode(), 4, 5, 6, 9)
    inserted, pending, utf8 = (
        dict(zip(apply._INSERT_COLUMNS, row, strict=True)) for row in
        apply._insert_rows(1, [entry, unhashed, accented], {entry.rel_path: hashed}, 10.0, 5))
    # As `Store._rows_to_db` stores them: the digest, the state's code, and the path text
    # only where it is not the name's bytes decoded.
    assert (inserted["rel_path"], inserted["path_text"], inserted["content_hash"],
            inserted["inode"], inserted["state"], inserted["checksum_label"]) == (
        b"d/\xff.jpg", "d/\\xff.jpg", to_db(HASH_NEW), 7, STATE_CODES["enriching"], 5)
    assert (pending["rel_path"], pending["path_text"], pending["content_hash"], pending["size"],
            pending["mtime_ns"], pending["inode"], pending["state"],
            pending["checksum_label"]) == (b"new.jpg", "", None, 1, 2, 3, STATE_CODES["new"],
                                           None)
    assert utf8["path_text"] == ""
    row = DbRow(42, b"old.jpg", 1, 2, 7, 9, HASH_OLD, False, "ready")
    rewrite, _ = apply._rewrite_row(row, entry, hashed, 10.0)
    rewritten = dict(zip(("id", *apply._REWRITE_COLUMNS), rewrite, strict=True))
    assert (rewritten["id"], rewritten["path_text"], rewritten["content_hash"]) == (
        42, "d/\\xff.jpg", HASH_NEW)


def test_each_change_takes_its_path_and_hash_from_the_written_row():
    created = DiskEntry(b"new.jpg", 1, 1, 1, 1)
    edited_row = DbRow(1, b"a.jpg", 1, 1, 2, 1, HASH_OLD, False, "ready")
    edited = DiskEntry(b"a.jpg", 2, 2, 2, 1)
    touched_row = DbRow(2, b"t.jpg", 1, 1, 3, 1, HASH_OLD, False, "ready")
    touched = DiskEntry(b"t.jpg", 1, 9, 3, 1)  # new mtime, same bytes
    moved_row = DbRow(3, b"b.jpg", 1, 1, 4, 1, HASH_OLD, False, "ready")
    moved = DiskEntry(b"c/b.jpg", 1, 1, 4, 1)
    unhashed_row = DbRow(4, b"u.jpg", 1, 1, 5, 1, None, False, "new")
    plan = Plan(created=[created], updated=[(edited_row, edited), (touched_row, touched)],
                moved=[(moved_row, moved)], unchanged=[unhashed_row])
    inserted = feed.CreatedRows("photos", 7, 10, 11)  # read back from the rows in SQL
    rewrites = [apply._rewrite_row(edited_row, edited, Hashed(HASH_EDIT, 2, 2, 2, 1), 0.0)[0],
                apply._rewrite_row(touched_row, touched, Hashed(HASH_OLD, 1, 9, 3, 1), 0.0)[0]]
    hash_fills = [apply._rewrite_row(unhashed_row, DiskEntry(b"u.jpg", 1, 1, 5, 1),
                                     Hashed(HASH_NEW, 1, 1, 5, 1), 0.0)[0]]
    moves = [apply._rewrite_row(moved_row, moved, None, 0.0)[0]]
    *changes, last = apply._plan_changes("photos", plan, inserted, rewrites + hash_fills,
                                         moves, hash_fills)
    assert last is inserted  # last, as written: after the moves that may free its paths
    assert [(c.kind, c.path, c.content_hash, dict(c.detail)) for c in changes] == [
        ("updated", "a.jpg", HASH_EDIT, {}),  # the touch of t.jpg is no content change
        ("updated", "u.jpg", HASH_NEW, {}),
        ("moved", "c/b.jpg", HASH_OLD, {"old_path": "b.jpg"}),
    ]
