"""The change log under the store: same transaction as the change, ids in commit order."""

from __future__ import annotations

import threading

import pytest

from daemon.store import Store
from daemon.store import changes as feed
from daemon.store.changes import Change
from daemon.store.models import File
from tests.conftest import new_pg_schema_url


def record(store: Store, path: str) -> None:
    with store.write_tx():
        store.record_changes([Change(feed.CREATED, "photos", path)])


def paths(store: Store, since: int = 0) -> list[str]:
    return [row.path for row in feed.read(store, since).rows]


def test_changes_are_written_with_their_transaction_or_not_at_all(store):
    record(store, "kept")
    with pytest.raises(RuntimeError, match="boom"), store.write_tx():
        store.record_changes([Change(feed.CREATED, "photos", "rolled-back")])
        with store.write_tx():  # nested: joins the outer transaction
            store.record_changes([Change(feed.CREATED, "photos", "nested")])
        raise RuntimeError("boom")
    record(store, "after")
    assert paths(store) == ["kept", "after"]
    with pytest.raises(RuntimeError, match="outside a write transaction"):
        store.record_changes([Change(feed.CREATED, "photos", "x")])


def test_host_and_detail_round_trip(db_url):
    store = Store(db_url, host="nas7")
    try:
        with store.write_tx():
            store.record_changes([Change(feed.MOVED, "photos", "b", "xxh128:" + "0" * 32,
                                         {"old_path": "a"})])
        [row] = feed.read(store).rows
        assert row.as_json() | {"at": None} == {
            "id": 1, "at": None, "host": "nas7", "library": "photos", "path": "b",
            "kind": "moved", "hash": "xxh128:" + "0" * 32, "old_path": "a"}
    finally:
        store.close()


def test_postgres_ids_become_visible_in_commit_order(pg_database):
    """A transaction that took an id and has not committed holds back every later one: a
    reader that stored the last id it saw can never skip one that commits late."""
    url = new_pg_schema_url(pg_database)
    slow, fast, reader = Store(url, host="slow"), Store(url, host="fast"), Store(url)
    flushed, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        with slow.write_tx():
            feed.flush(slow, [Change(feed.CREATED, "photos", "slow")])  # id taken, uncommitted
            flushed.set()
            release.wait(30)
        slow.close()

    def fast_writer() -> None:
        record(fast, "fast")
        fast.close()

    threads = [threading.Thread(target=slow_writer), threading.Thread(target=fast_writer)]
    try:
        threads[0].start()
        assert flushed.wait(30)
        threads[1].start()
        threads[1].join(1.0)
        # Without the lock the fast writer would have committed a later id already, and a
        # reader would see it before the slow one's.
        assert threads[1].is_alive()
        assert paths(reader) == []
    finally:
        release.set()
        for thread in threads:
            thread.join(30)
    rows = feed.read(reader).rows
    assert [(row.path, row.host) for row in rows] == [("slow", "slow"), ("fast", "fast")]
    assert rows[0].id < rows[1].id
    reader.close()


def test_created_rows_are_recorded_from_the_rows_themselves(store):
    """`CreatedRows` names a library's new rows by id range: another library's rows in
    that range are not its changes, and they come in id order with path and hash."""
    def add_library(name: str) -> int:
        store.execute("INSERT INTO library (name, root, host, created_at) VALUES (?, ?, ?, ?)",
                      [name, "/" + name, "h", 0.0])
        return store.query("SELECT id FROM library WHERE name = ?", [name])[0][0]

    def add_file(library_id: int, path: str, content_hash: str | None) -> int:
        store.insert_rows(File, _COLUMNS, [(library_id, path.encode(), path, 1, 2, 3, 4,
                                            content_hash, False, "new", 0, 0)])
        return store.query("SELECT max(id) FROM file")[0][0]

    photos, music = add_library("photos"), add_library("music")
    before = add_file(photos, "old", None)
    with store.write_tx():
        first = add_file(photos, "b", "xxh128:" + "1" * 32)
        add_file(music, "m", None)
        last = add_file(photos, "a", None)
        store.record_changes([Change(feed.MISSING, "photos", "x"),
                              feed.CreatedRows("photos", photos, before, last),
                              Change(feed.MISSING, "photos", "y")])
    assert first > before
    assert [(r.kind, r.library, r.path, r.content_hash) for r in feed.read(store).rows] == [
        ("missing", "photos", "x", None), ("created", "photos", "b", "xxh128:" + "1" * 32),
        ("created", "photos", "a", None), ("missing", "photos", "y", None)]


_COLUMNS = ("library_id", "rel_path", "path_text", "size", "mtime_ns", "inode", "device",
            "content_hash", "is_missing", "state", "first_seen", "last_seen")
