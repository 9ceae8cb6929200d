"""SQLite query plans of the walks that go through a whole library chunk by chunk.

A walk `id > ? ORDER BY id LIMIT n` must read the primary key in order. When SQLite chose
the (library_id, rel_path) index instead, every chunk sorted the whole library: at a million
files the daemon's first tick and its scheduled verify never ended (idle CPU 100 %). The plan,
not a timing, is what a test can hold steady.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from daemon import reconcile
from daemon.meta import enrich, tags
from daemon.meta.indexed import IndexedFile
from daemon.meta.verify_pass import rows_after
from daemon.reports import FileFilter, list_files
from daemon.scan import scanner
from daemon.store import Store, queries
from daemon.store import changes as feed
from daemon.store.changes import Change
from daemon.store.deferred_indexes import DEFERRED
from daemon.store.models import STATE_ENRICHING
from tests.conftest import write_tree
from tests.meta.rows import HASH_A, HASH_B, file, insight, library, make_config


def plans_of(store: Store, run) -> list[str]:
    """The query plan of every SELECT on `file` that `run()` executes."""
    statements: list[str] = []
    connection = store.db.connection()
    connection.set_trace_callback(statements.append)
    try:
        run()
    finally:
        connection.set_trace_callback(None)
    plans = []
    for sql in statements:
        if sql.lstrip().upper().startswith(("SELECT", "INSERT")) and " FROM file" in sql:
            rows = connection.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
            plans.append(" | ".join(row[-1] for row in rows))
    return plans


@pytest.fixture
def sqlite_store(sqlite_url):
    opened = Store(sqlite_url)
    yield opened
    opened.close()


def test_walks_in_id_order_use_the_primary_key(sqlite_store, tmp_path, monkeypatch):
    lib = library("lib")
    for i in range(50):
        file(lib, f"d/{i:03d}", HASH_A)
    config = make_config(sqlite_store.url, tmp_path)
    # The path past this many unsettled files walks the library by id (a million-file index).
    monkeypatch.setattr(enrich, "_BY_STATE_INDEX_MAX", 0)

    chunk = enrich._unsettled_chunk_query(
        sqlite_store, lib.id, enrich.enricher_set_checksum(
            enrich.active_enrichers(config.enrichers)))
    walks = plans_of(sqlite_store, lambda: (chunk(0), rows_after(sqlite_store, lib.id, 0, 10)))
    walks = [plan for plan in walks if "COUNT" not in plan.upper()]
    assert len(walks) == 2, walks
    for plan in walks:
        assert "INTEGER PRIMARY KEY" in plan and "TEMP B-TREE" not in plan, plan


def test_an_idle_retention_check_reads_no_table(sqlite_store):
    """Every tick asks whether changes are due to be dropped: key look-ups, never a scan of
    the change log (`SELECT min(id), max(id)` read all of it: 70 ms at 2M changes)."""
    with sqlite_store.write_tx():
        sqlite_store.record_changes([Change(feed.CREATED, "lib", f"f{i}") for i in range(20)])
    statements: list[str] = []
    connection = sqlite_store.db.connection()
    connection.set_trace_callback(statements.append)
    try:
        assert feed.drop_older_than(sqlite_store, time.time() - 3600) == 0
    finally:
        connection.set_trace_callback(None)
    plans = [" | ".join(row[-1] for row in connection.execute(
        "EXPLAIN QUERY PLAN " + sql).fetchall()) for sql in statements
        if sql.lstrip().upper().startswith("SELECT")]
    assert plans and all("SCAN change_log" not in plan for plan in plans), plans


def test_a_page_of_the_change_feed_walks_the_log_by_id_and_labels_by_key(sqlite_store):
    """The feed's rows name their host, library and tag by label id: a page is read in id
    order with each label looked up by its key, never a scan or sort of either table."""
    with sqlite_store.write_tx():
        sqlite_store.record_changes(
            [Change(feed.TAGGED, "lib", f"f{i}", None, {"tag": f"t{i % 3}"}) for i in range(20)])
    statements: list[str] = []
    connection = sqlite_store.db.connection()
    connection.set_trace_callback(statements.append)
    try:
        page = feed.read(sqlite_store, 5, limit=10)
    finally:
        connection.set_trace_callback(None)
    assert [row.detail for row in page.rows][:2] == [{"tag": "t2"}, {"tag": "t0"}]
    [plan] = [" | ".join(row[-1] for row in connection.execute(
        "EXPLAIN QUERY PLAN " + sql).fetchall()) for sql in statements if "FROM change_log" in sql]
    assert "SEARCH c USING INTEGER PRIMARY KEY" in plan, plan
    assert plan.count("SEARCH") == 4 and "SCAN" not in plan and "TEMP B-TREE" not in plan, plan


def test_a_parts_created_changes_read_the_new_rows_by_id(sqlite_store):
    """A scan part's `created` changes are one INSERT ... SELECT of the rows it inserted, by
    id range: by the library's index instead, it sorted the whole library for every watcher
    batch (~0.2 s each at a million files)."""
    lib = library("lib")
    for i in range(50):
        file(lib, f"d/{i:03d}", HASH_A)

    def record() -> None:
        with sqlite_store.write_tx():
            sqlite_store.record_changes([feed.CreatedRows("lib", lib.id, 10, 20)])

    [plan] = plans_of(sqlite_store, record)
    assert "INTEGER PRIMARY KEY" in plan and "TEMP B-TREE" not in plan, plan
    assert [row.path for row in feed.read(sqlite_store).rows] == [
        f"d/{i:03d}" for i in range(10, 20)]


def test_a_scan_part_is_settled_by_its_id_range(sqlite_store, tmp_path):
    """`settle_created` runs once per part of a one-shot scan: through the library's index
    it walked the whole library each time (a million-file scan, a hundred parts)."""
    lib = library("lib")
    for i in range(50):
        file(lib, f"d/{i:03d}", HASH_A, state=STATE_ENRICHING)
    config = make_config(sqlite_store.url, tmp_path)
    set_checksum = enrich.enricher_set_checksum(enrich.active_enrichers(config.enrichers))
    statements: list[str] = []
    connection = sqlite_store.db.connection()
    connection.set_trace_callback(statements.append)
    try:
        reconcile.settle_created(sqlite_store, config, lib.id, 10, 20, set_checksum)
    finally:
        connection.set_trace_callback(None)
    [plan] = [" | ".join(row[-1] for row in connection.execute(
        "EXPLAIN QUERY PLAN " + sql).fetchall()) for sql in statements
        if sql.startswith("UPDATE file")]
    first = plan.split(" | ")[0]
    assert first == "SEARCH file USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)", plan


def test_a_first_scan_reads_none_of_the_indexes_it_leaves_out(sqlite_store, tmp_path,
                                                               monkeypatch):
    """The first scan of an empty index drops `deferred_indexes.DEFERRED` and builds them at
    its end: nothing it runs meanwhile may need one, or each part would read the whole table.
    It looks nothing up by inode or hash (no row a new file could have moved from), settles
    its parts by id range and writes their `created` changes by id range: every statement on
    `file` it ran while they were out, planned with them back, uses none of them."""
    monkeypatch.setattr(scanner, "PART_FILES", 20)
    write_tree(tmp_path / "lib", {**{f"d{i % 3}/f{i}.txt": f"file {i % 40}" for i in range(70)},
                                  "img.png": b"\x89PNG\r\n\x1a\n" + bytes(64)})
    config = make_config(sqlite_store.url, tmp_path)
    statements: list[str] = []
    connection = sqlite_store.db.connection()
    connection.set_trace_callback(statements.append)
    try:
        report = scanner.scan(sqlite_store, config, [], [], options=scanner.ScanOptions(
            sniff=True, settle_parts=True))  # as `assetd scan` and the daemon scan
    finally:
        connection.set_trace_callback(None)
    assert report.stats["created"] == 71
    dropped = max(i for i, sql in enumerate(statements) if sql.startswith("DROP INDEX"))
    built = min(i for i, sql in enumerate(statements) if sql.startswith("CREATE INDEX"))
    on_file = [sql for sql in statements[dropped:built] if re.search(r"\bfile\b", sql)
               and sql.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE"))]
    assert sum(sql.startswith("UPDATE file SET state") for sql in on_file) == 4, on_file
    for sql in on_file:
        plan = " | ".join(row[-1] for row in connection.execute("EXPLAIN QUERY PLAN " + sql))
        assert not any(name in plan for name in DEFERRED), (sql, plan)


@pytest.mark.parametrize("declared", ["BLOB", "VARCHAR(255)"])
def test_look_ups_by_hash_search_the_hash_indexes(sqlite_url, declared):
    """Hashes are 16-byte digests (`hashes.py`): in a fresh index the columns are declared
    BLOB, in one migration 5 converted they are still VARCHAR(255) (values rewritten in
    place). Either way a look-up by a digest searches the hash's index (a scan of the table
    is every file, every tick's enrich look-up, every `files --hash`)."""
    store = Store(sqlite_url)
    if declared != "BLOB":  # as migration 5 leaves a schema-5 index
        store.execute("PRAGMA writable_schema = ON")
        store.execute("UPDATE sqlite_master SET sql = replace(sql, '\"content_hash\" BLOB',"
                      f" '\"content_hash\" {declared}') WHERE type = 'table'")
        store.execute("PRAGMA writable_schema = OFF")
        store.close()
        store = Store(sqlite_url)
    assert store.query("SELECT type FROM pragma_table_info('file')"
                       " WHERE name = 'content_hash'") == [(declared,)]
    try:
        lib = library("lib")
        for i in range(50):
            file(lib, f"d/{i:03d}", HASH_A if i % 2 else HASH_B)
        statements: list[str] = []
        connection = store.db.connection()
        connection.set_trace_callback(statements.append)
        try:
            assert len(queries.rows_by_hash(store, lib.id, [HASH_A])) == 25
            rows = list(list_files(store, FileFilter(content_hash=HASH_B)))
            assert [row.content_hash for row in rows] == [HASH_B] * 25
            enrich._satisfied(store, [HASH_A, HASH_B], [
                (e, enrich.enricher_checksum(e), None)
                for e in enrich.active_enrichers(make_config(sqlite_url, Path("/")).enrichers)])
            tags.file_tags(store, IndexedFile(lib.id, "lib", b"d/001", "d/001", HASH_A, False))
        finally:
            connection.set_trace_callback(None)
        # The trace shows each statement with its parameters bound (a digest is x'...').
        wanted = {"FROM file WHERE content_hash IN": "file_content_hash",
                  "f.content_hash = x'": "file_content_hash",
                  "FROM insight i WHERE i.content_hash IN":
                      "insight_content_hash_kind_label_is_current",
                  "FROM tag WHERE": "tag_content_hash"}
        for needle, index in wanted.items():
            [sql] = [s for s in statements if needle in s]
            plan = " | ".join(row[-1] for row in connection.execute("EXPLAIN QUERY PLAN " + sql))
            assert f"INDEX {index} (content_hash=?)" in plan or \
                f"INDEX {index} (content_hash=? AND" in plan, (needle, plan)
    finally:
        store.close()


def test_the_look_ups_of_unsettled_files_search_the_state_index(sqlite_store, tmp_path):
    """The idle tick's lifecycle pass and the enrich step's look-up of files not `ready`
    read the (state, checksum_label) index, not every file of the library (2 ms against
    0.6 s at a million ready files)."""
    lib = library("lib")
    for i in range(50):
        file(lib, f"d/{i:03d}", HASH_A, state="ready")
    # A `mime` result somewhere: without one no file can be ready, and the pass skips its
    # last statement (reconcile._make_ready).
    insight(HASH_B, "mime", generated_at=1.0)
    config = make_config(sqlite_store.url, tmp_path)
    statements: list[str] = []
    connection = sqlite_store.db.connection()
    connection.set_trace_callback(statements.append)
    try:
        with sqlite_store.write_tx():
            reconcile.lifecycle(sqlite_store, config)
        enrich._unsettled_chunk_query(sqlite_store, lib.id, enrich.enricher_set_checksum(
            enrich.active_enrichers(config.enrichers)))(0)
    finally:
        connection.set_trace_callback(None)
    by_state = [sql for sql in statements if "state" in sql and (
        sql.lstrip().startswith("UPDATE file") or " FROM file" in sql)]
    assert len(by_state) == 5, by_state  # three UPDATEs, the count and the chunk
    for sql in by_state:
        plan = " | ".join(row[-1] for row in connection.execute("EXPLAIN QUERY PLAN " + sql))
        assert "USING INDEX file_state_checksum_label" in plan, (sql, plan)
