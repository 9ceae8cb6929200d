"""The `file` table's secondary indexes during an index's first scan
(store/deferred_indexes.py): left out while the first scan of an empty index inserts its rows,
built at its end, whether it ends or fails, built by the next `scan` or `run` where a first
scan never got to its end, and built as a new database has them."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from daemon.config import load_config
from daemon.scan import scanner
from daemon.scan.progress import Progress
from daemon.scan.scanner import ScanOptions, scan_library
from daemon.store import Store, deferred_indexes
from daemon.store.deferred_indexes import DEFERRED
from tests.conftest import REPO_ROOT, new_pg_schema_url

# A look-up each index serves, with the index's name.
LOOK_UPS = {"SELECT id FROM file WHERE content_hash = ?": ("file_content_hash", [b"\0" * 16]),
            "SELECT id FROM file WHERE inode = ?": ("file_inode", [1]),
            "SELECT id FROM file WHERE state = ? AND checksum_label = ?":
                ("file_state_checksum_label", [1, 1])}


class IndexesSeen(Progress):
    """The deferred indexes missing, looked at between the scan's parts."""

    def __init__(self, store, stop_after: int | None = None):
        self.store, self.seen, self.stop_after = store, [], stop_after

    def discovered(self, library: str, files: int) -> None:
        self.seen.append(deferred_indexes.missing(self.store))
        if self.stop_after is not None and len(self.seen) > self.stop_after:
            raise KeyboardInterrupt


def scan(env, store, library=0, progress=None):
    config = load_config(str(env.config_path))
    return scan_library(store, config, config.libraries[library], options=ScanOptions(),
                        progress=progress)


def plan_of(store, look_up: str, params: list) -> str:
    """(PostgreSQL would read a table this small whole, index or not: it is told not to.)"""
    if store.is_sqlite:
        rows = store.query(f"EXPLAIN QUERY PLAN {look_up}", params)
    else:
        with store.write_tx():
            store.execute("SET LOCAL enable_seqscan = off")
            rows = store.query(f"EXPLAIN {look_up}", params)
    return " ".join(str(value) for row in rows for value in row)


def assert_each_look_up_searches_its_index(store) -> None:
    for look_up, (name, params) in LOOK_UPS.items():
        assert name in plan_of(store, look_up, params), look_up


def index_definitions(store) -> dict[str, str]:
    """Every index of the database, by name: its CREATE statement as the database keeps it."""
    if store.is_sqlite:
        return dict(store.query("SELECT name, sql FROM sqlite_master WHERE type = 'index'"))
    (schema,) = store.query("SELECT current_schema()")[0]
    return {name: definition.replace(f" {schema}.", " ") for name, definition in store.query(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()")}


def drop_deferred(store) -> None:
    """As a first scan killed mid-way leaves them."""
    with store.write_tx():
        for name in DEFERRED:
            store.execute(f"DROP INDEX {name}")


def test_a_first_scan_builds_the_indexes_after_its_rows(env, store, monkeypatch):
    monkeypatch.setattr(scanner, "PART_FILES", 3)
    env.library("photos", {f"d/f{i}.txt": f"file {i}" for i in range(10)})
    progress = IndexesSeen(store)
    result = scan(env, store, progress=progress)
    assert result.stats["created"] == 10
    # Left out while the parts came in.
    assert progress.seen[1:] and all(seen == list(DEFERRED) for seen in progress.seen[1:])
    assert deferred_indexes.missing(store) == []
    assert_each_look_up_searches_its_index(store)


def test_the_indexes_a_first_scan_rebuilds_are_those_of_a_new_database(env, store, tmp_path,
                                                                         request):
    """Built as migration 0 creates them (the model's statement, quoted alike), not from a
    spelling of their own: a database whose first scan dropped them has the same schema as
    one that never did."""
    env.library("photos", {"a.txt": "a", "b.txt": "b"})
    scan(env, store)
    if store.is_sqlite:
        fresh_url = f"sqlite:///{tmp_path}/fresh.db"
    else:
        fresh_url = new_pg_schema_url(request.getfixturevalue("pg_database"))
    fresh = Store(fresh_url)
    try:
        assert index_definitions(store) == index_definitions(fresh)
    finally:
        fresh.close()
    assert set(DEFERRED) <= set(index_definitions(store))


def test_a_scan_into_an_index_that_has_files_keeps_the_indexes(env, store):
    env.library("photos", {"a.txt": "a"})
    env.library("music", {f"m{i}.txt": f"song {i}" for i in range(5)})
    scan(env, store, library=0)
    progress = IndexesSeen(store)
    scan(env, store, library=1, progress=progress)  # a new library, but not a new index
    assert progress.seen and all(seen == [] for seen in progress.seen)


def test_a_first_scan_of_several_libraries_builds_the_indexes_after_them_all(env, store):
    env.library("photos", {f"p{i}.txt": f"photo {i}" for i in range(4)})
    env.library("music", {f"m{i}.txt": f"song {i}" for i in range(4)})
    progress = IndexesSeen(store)
    config = load_config(str(env.config_path))
    report = scanner.scan(store, config, [], [], progress=progress)
    assert [library.stats["created"] for library in report.libraries] == [4, 4]
    # The second library's parts too.
    assert len(progress.seen) >= 2 and all(seen == list(DEFERRED) for seen in progress.seen)
    assert deferred_indexes.missing(store) == []


def test_a_first_scan_that_stops_builds_the_indexes_on_its_way_out(env, store, monkeypatch):
    monkeypatch.setattr(scanner, "PART_FILES", 2)
    env.library("photos", {f"f{i}.txt": f"file {i}" for i in range(8)})
    progress = IndexesSeen(store, stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        scan(env, store, progress=progress)
    assert progress.seen[-1] == list(DEFERRED)  # they were out when the stop came
    assert deferred_indexes.missing(store) == []
    # The parts applied before the stop are kept, and found through the indexes again.
    assert store.query("SELECT count(*) FROM file")[0][0] > 0
    assert_each_look_up_searches_its_index(store)


def test_the_next_scan_or_run_builds_the_indexes_a_killed_first_scan_left_out(env, db_url):
    env.library("photos", {"a.txt": "a"})
    first = Store(db_url)
    scan(env, first)
    drop_deferred(first)
    first.close()
    reader = Store(db_url, create=False)  # `status`, `files`: they read, they build nothing
    assert deferred_indexes.missing(reader) == list(DEFERRED)
    reader.close()
    opened = Store(db_url)  # what `scan` and `run` open
    try:
        assert deferred_indexes.missing(opened) == []
        assert_each_look_up_searches_its_index(opened)
    finally:
        opened.close()


def test_two_processes_that_find_the_indexes_missing_build_them_once(env, db_url):
    """PostgreSQL fails the second of two concurrent CREATE INDEX IF NOT EXISTS on its
    catalog's unique name: `ensure` asks again under a lock, so the second finds them built."""
    env.library("photos", {"a.txt": "a"})
    first = Store(db_url)
    scan(env, first)
    drop_deferred(first)
    opener = None
    try:
        with first.write_tx():  # this process builds them, and holds its transaction open
            first.lock(deferred_indexes._LOCK)
            for name in DEFERRED:
                first.execute(deferred_indexes._create_statements(first)[name])
            opener = subprocess.Popen(
                [sys.executable, "-c", "import sys\nfrom daemon.store import Store\n"
                 "Store(sys.argv[1]).close()", db_url],
                cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True)
            time.sleep(0.5)  # the other process finds them missing and waits
            assert opener.poll() is None
        _, stderr = opener.communicate(timeout=30)
        assert opener.returncode == 0, stderr
    finally:
        if opener is not None and opener.poll() is None:
            opener.kill()
        first.close()
