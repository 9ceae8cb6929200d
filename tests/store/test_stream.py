"""`Store.stream`: the rows of a query that may return every file (`files`, `dupes`), read
without holding them all. SQLite steps its cursor as the rows are read; psycopg2's ordinary
cursor receives the whole result first (`files --json` grew by 22 MB a 100k files), so on
PostgreSQL the rows come through a server-side cursor, a page a round trip, closed when the
reading ends or stops."""

from __future__ import annotations

from daemon.meta.dupes import duplicate_groups
from daemon.reports import FileFilter, list_files
from daemon.store import db

# 1..N on both backends.
COUNT_TO = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " SELECT i FROM n ORDER BY i")


def open_cursors(store) -> int | None:
    """The session's server-side cursors (PostgreSQL); None on SQLite, which has none."""
    if store.is_sqlite:
        return None
    return store.query("SELECT count(*) FROM pg_cursors")[0][0]


def test_a_stream_reads_every_row_in_order_through_a_cursor_it_closes(store, monkeypatch):
    monkeypatch.setattr(db, "STREAM_PAGE_ROWS", 7)
    rows = store.stream(COUNT_TO, [50])
    first = next(rows)
    assert open_cursors(store) in (None, 1)
    seen = [first]
    for row in rows:
        assert store.query("SELECT 1") == [(1,)]  # the connection serves other queries between
        seen.append(row)
    assert seen == [(i,) for i in range(1, 51)]
    assert open_cursors(store) in (None, 0)


def test_a_stream_left_half_way_closes_its_cursor(store):
    rows = store.stream(COUNT_TO, [20])
    assert next(rows) == (1,)
    rows.close()  # as when a reader stops (`files | head`: a broken pipe)
    assert open_cursors(store) in (None, 0)
    assert list(store.stream(COUNT_TO, [3])) == [(1,), (2,), (3,)]  # a new one, a new name


def test_files_and_dupes_are_streamed(env, store):
    env.library("photos", {f"d/{i:03d}.jpg": f"content {i % 40}" for i in range(120)})
    env.cli("scan", "--no-enrich")
    files = list_files(store, FileFilter())
    first = next(files)
    assert open_cursors(store) in (None, 1)
    assert [first.rel_path, *(row.rel_path for row in files)] == [
        f"d/{i:03d}.jpg".encode() for i in range(120)]
    groups = duplicate_groups(store)
    first_group = next(groups)
    assert open_cursors(store) in (None, 1)
    assert 1 + sum(1 for _ in groups) == 40 and len(first_group.files) == 3
    assert open_cursors(store) in (None, 0)
