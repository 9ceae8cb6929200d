"""PostgreSQL's planner statistics follow the bulk writes (store/statistics.py).

PostgreSQL only: SQLite plans without statistics, and its store keeps none.
"""

from __future__ import annotations

import psycopg2
import pytest

from daemon.store import Store, statistics
from daemon.store.models import STATE_CODES, STATE_NEW, STATE_READY, File, Library, Tag
from tests.conftest import new_pg_schema_url

COLUMNS = ("library_id", "rel_path", "path_text", "size", "mtime_ns", "inode", "device",
           "content_hash", "is_missing", "state", "first_seen", "last_seen")


@pytest.fixture
def pg_store(pg_database, monkeypatch):
    monkeypatch.setattr(statistics, "MIN_ROWS", 100)
    opened = Store(new_pg_schema_url(pg_database))
    yield opened
    opened.close()


def _rows(library_id: int, start: int, count: int) -> list[tuple]:
    return [(library_id, f"f{i}".encode(), f"f{i}", i, i, i, 1, None, False, "new", 0, 0)
            for i in range(start, start + count)]


def _analyzed_rows(store: Store, table: str) -> float:
    """The table's size as its last ANALYZE saw it; -1 when never analyzed."""
    return store.query("SELECT reltuples FROM pg_class WHERE oid = to_regclass(?)", [table])[0][0]


def test_a_table_is_analyzed_each_time_its_writes_reach_its_analyzed_size(pg_store):
    library = Library.create(name="lib", root="/r", host="h", created_at=0.0)
    with pg_store.write_tx():
        pg_store.insert_rows(File, COLUMNS, _rows(library.id, 0, 99))
    assert _analyzed_rows(pg_store, "file") == -1  # fewer than MIN_ROWS: not yet
    with pg_store.write_tx():
        pg_store.insert_rows(File, COLUMNS, _rows(library.id, 99, 101))
    assert _analyzed_rows(pg_store, "file") == 200
    with pg_store.write_tx():
        pg_store.insert_rows(File, COLUMNS, _rows(library.id, 200, 150))
    assert _analyzed_rows(pg_store, "file") == 200  # 150 written since, of 200 analyzed
    with pg_store.write_tx():
        changed = pg_store.execute("UPDATE file SET state = ? WHERE id % 2 = 0",
                                   [STATE_CODES[STATE_READY]])
    assert changed.rowcount == 175
    assert _analyzed_rows(pg_store, "file") == 350  # 150 inserted + 175 updated >= 200
    assert pg_store.query(
        "SELECT most_common_vals::text FROM pg_stats WHERE tablename = 'file'"
        " AND schemaname = current_schema() AND attname = 'state'") == [
            (f"{{{STATE_CODES[STATE_READY]},{STATE_CODES[STATE_NEW]}}}",)]


def test_rolled_back_writes_and_untracked_tables_count_for_nothing(pg_store):
    library = Library.create(name="lib", root="/r", host="h", created_at=0.0)
    with pytest.raises(RuntimeError), pg_store.write_tx():
        pg_store.insert_rows(File, COLUMNS, _rows(library.id, 0, 300))
        raise RuntimeError("rolled back")
    assert File.select().count() == 0
    with pg_store.write_tx():
        pg_store.insert_values("scan_run", ("library_id", "host", "started_at", "finished_at",
                                            "status", "online", "scope", "stats"),
                               [(library.id, "h", 0.0, 0.0, "ok", True, "", "{}")] * 300)
    assert _analyzed_rows(pg_store, "scan_run") == -1
    with pg_store.write_tx():
        pg_store.insert_rows(File, COLUMNS, _rows(library.id, 0, 60))
    assert _analyzed_rows(pg_store, "file") == -1  # the 300 rolled back did not count


def test_writes_outside_a_transaction_are_counted_as_they_commit(pg_store):
    library = Library.create(name="lib", root="/r", host="h", created_at=0.0)
    pg_store.execute(
        "INSERT INTO tag (library_id, rel_path, tag, created_at)"
        " SELECT ?, ?, 't' || n, 0 FROM generate_series(1, 120) AS n", [library.id, b"a"])
    assert Tag.select().count() == 120
    assert _analyzed_rows(pg_store, "tag") == 120


def test_an_analyze_that_fails_leaves_the_commit_alone_and_is_tried_again(
        pg_database, monkeypatch):
    monkeypatch.setattr(statistics, "MIN_ROWS", 100)
    url = new_pg_schema_url(pg_database) + "%20-c%20lock_timeout%3D200"
    store = Store(url)
    library = Library.create(name="lib", root="/r", host="h", created_at=0.0)
    blocker = psycopg2.connect(url)
    with blocker.cursor() as cursor:  # holds the lock ANALYZE needs, until it rolls back
        cursor.execute("LOCK TABLE tag IN SHARE UPDATE EXCLUSIVE MODE")
    try:
        with store.write_tx():
            store.execute("INSERT INTO tag (library_id, rel_path, tag, created_at) SELECT ?, ?,"
                          " 't' || n, 0 FROM generate_series(1, 120) AS n", [library.id, b"a"])
        assert Tag.select().count() == 120
        assert _analyzed_rows(store, "tag") == -1
    finally:
        blocker.rollback()
        blocker.close()
    with store.write_tx():  # one more row: the 120 still count
        store.execute("UPDATE tag SET created_at = 1 WHERE tag = ?", ["t1"])
    assert _analyzed_rows(store, "tag") == 120
    store.close()
